#!/usr/bin/env bash
# Issue 6's acceptance, end to end: from a fresh clone, with PostgreSQL and Redis stopped,
# `make demo` serves a working site (tests/test_demo.py drives it with Chromium).
#   scripts/demo_fresh_clone.sh                  # services left as they are (the demo never uses them)
#   scripts/demo_fresh_clone.sh --stop-services  # stop local PostgreSQL and Redis first, restart them after
set -euo pipefail
repo=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
work=$(mktemp -d)
git clone -q "$repo" "$work/evalsite"
echo "fresh clone: $work/evalsite ($(git -C "$work/evalsite" rev-parse --short HEAD))"

pg_up() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }
if [[ "${1:-}" == --stop-services ]]; then
  restart() {
    echo "restarting PostgreSQL and Redis"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start || true
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /tmp --logfile /tmp/redis-demo-check.log || true
  }
  trap restart EXIT
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main stop || true
  redis-cli -h 127.0.0.1 -p 6379 shutdown nosave 2>/dev/null || true
  sleep 1
  if pg_up || redis_up; then echo "could not stop the services"; exit 1; fi
  echo "PostgreSQL and Redis are stopped"
fi

cd "$work/evalsite"
unset DATABASE_URL CELERY_BROKER_URL EVALSITE_DATA_DIR EVALSITE_SITE_URL
make setup
EVALSITE_REQUIRE_BROWSER=1 .venv/bin/python -m pytest tests/test_demo.py -m "" -v

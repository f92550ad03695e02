#!/bin/sh
# The production static set: collectstatic through whitenoise's manifest storage, so every file gets a
# hashed name and staticfiles/staticfiles.json maps {% static %} names to them (the storage that
# EVALSITE_MANIFEST_STATIC=1 selects at run time, as docker-compose sets it).
# The Dockerfile runs this script and the production smoke test (tests/test_production_smoke.py) runs
# it too, so the two cannot drift. `make static` runs it in the development venv.
set -eu
umask 022  # static files are public (the app itself runs with 077)
cd "$(dirname "$0")/.."
PY=${PY:-python}
build_dir=$(mktemp -d)
# Build-time only: no database, broker or real secret is touched by collectstatic. Static files are
# public: world-readable (umask 022) whichever user builds them, not the app's private 077.
env DJANGO_SECRET_KEY=build-only DJANGO_SECURE=0 EVALSITE_DATA_DIR="$build_dir" EVALSITE_MANIFEST_STATIC=1 EVALSITE_UMASK=022 \
  "$PY" manage.py collectstatic --noinput --clear -v0
rm -rf "$build_dir"
if [ ! -s staticfiles/staticfiles.json ]; then
  echo "build_static: staticfiles/staticfiles.json was not written" >&2
  exit 1
fi
echo "build_static: $(find staticfiles -type f | wc -l) files in staticfiles/ with a manifest"

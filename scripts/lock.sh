#!/usr/bin/env bash
# Regenerate the hashed locks from the requirements*.txt pins (README "Dependencies").
# Run it after adding or changing a pin:  scripts/lock.sh   (about a minute; needs PyPI)
#
#   requirements.lock         web image            from requirements.txt
#   requirements-worker.lock  GPU-worker image     from requirements-worker.txt, without torch (below)
#   requirements-fast.lock    + torchao            from requirements-fast.txt (optional fast mode, on top of the worker's)
#   requirements-dev.lock     make setup / CI      from requirements-dev.txt, without torch
#
# torch is the one package installed by its pin alone (torch==2.13.0, before the lock), not by hash:
# - the right file differs by machine: PyPI's CUDA build (with its nvidia-* wheels) in the GPU image,
#   the CPU wheel on disk here and in CI (plain `pip install torch==2.13.0` finds it), the CPU index on a
#   laptop (make setup TORCH_PIP_ARGS=...); one hash set cannot name all three;
# - hashing PyPI's CUDA build makes pip-compile download the multi-GB CUDA wheels to read their metadata
#   (measured here: 18 GB read in 20 minutes before it was stopped; `make setup` must stay offline-friendly).
# pip-compile's --unsafe-package torch keeps torch out of the locks; torch's own dependencies are
# resolved (from the CPU build's metadata) and hashed like everything else.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}

compile() {
  local out=$1; shift
  "$PY" -m piptools compile --quiet --generate-hashes --strip-extras --no-emit-index-url \
    --no-emit-find-links --no-emit-trusted-host --output-file "$out" "$@"
  echo "lock: wrote $out"
}

# Resolved against PyPI alone (no local mirrors, no machine constraints), so every hash is one of PyPI's
# files and pip-compile takes it from PyPI's JSON API instead of downloading every file to hash it.
pypi_only() (
  unset PIP_FIND_LINKS PIP_EXTRA_INDEX_URL PIP_CONSTRAINT PIP_INDEX_URL
  export PIP_CONFIG_FILE=/dev/null
  "$@"
)
pypi_only compile requirements.lock --allow-unsafe requirements.txt
# The torch sets: torch's metadata comes from the CPU wheel (pip's --find-links folder, /opt/wheels here),
# never from PyPI's multi-GB CUDA build; torch itself is left out of the lock (--unsafe-package).
TORCH_WHEELS=${TORCH_WHEELS:-/opt/wheels}
for set in worker dev; do
  pypi_only compile "requirements-$set.lock" --find-links "$TORCH_WHEELS" --unsafe-package torch "requirements-$set.txt"
done
pypi_only compile requirements-fast.lock requirements-fast.txt

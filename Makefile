# evalsite: `make demo` to try it, `make test` to test it.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PYTHONUNBUFFERED := 1

.PHONY: setup test test-fast demo demo-panel lint clean screenshots lock static

$(BIN)/python:
	$(PY) -m venv $(VENV)

# Reinstall only when a requirements file changed (idempotent).
# TORCH_PIP_ARGS lets a laptop take the small CPU build, e.g.
#   make setup TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
# Tesseract OCR (text accuracy) and fonts for the demo painters come from Debian's packages,
# installed with apt-get when missing (as root; otherwise it says what to install).
OCR_PACKAGES := tesseract-ocr tesseract-ocr-eng tesseract-ocr-chi-sim tesseract-ocr-deu fonts-dejavu-core fonts-wqy-microhei

# Installs from the hashed lock (scripts/lock.sh writes it from requirements*.txt): torch first, from
# whatever this machine offers (the CPU file on disk here; the lock leaves torch out on purpose), then
# everything else with --require-hashes.
$(STAMP): $(BIN)/python requirements-dev.lock
	@command -v tesseract >/dev/null && tesseract --list-langs 2>/dev/null | grep -q chi_sim || \
	  { [ "$$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(OCR_PACKAGES) >/dev/null || \
	    { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(OCR_PACKAGES) >/dev/null; } || \
	    echo "setup: OCR is off until you install: apt-get install $(OCR_PACKAGES)"; }
	$(BIN)/python -m pip install -q torch==2.13.0 $(TORCH_PIP_ARGS)
	$(BIN)/python -m pip install -q --require-hashes --no-deps -r requirements-dev.lock
	touch $(STAMP)

setup: $(STAMP)

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: setup
	$(BIN)/python -m pytest -m "not browser and not services and not slow" $(PYTEST_ARGS)

# Embedded demo: SQLite + filesystem broker, no services. Ctrl-C stops web and worker.
demo: setup
	$(BIN)/python manage.py demo $(DEMO_ARGS)

# Add simulated (flagged) ratings to the demo study so the leaderboard has content.
demo-panel: setup
	$(BIN)/python manage.py demo --panel $(DEMO_ARGS)

# README screenshots (tracked files under docs/screenshots): only here, never by `make test`.
screenshots: setup
	$(BIN)/python -m pytest -m screenshots -p no:randomly $(PYTEST_ARGS)
	EVALSITE_SCREENSHOTS=1 $(BIN)/python -m pytest tests/test_demo.py -p no:randomly $(PYTEST_ARGS)

# Regenerate requirements*.lock after changing a pin in requirements*.txt (needs PyPI).
lock: $(BIN)/python
	$(BIN)/python -m pip install -q pip-tools==7.6.2
	PY=$(BIN)/python scripts/lock.sh

# The production static set (hashed names + manifest), exactly as the Dockerfile builds it.
static: setup
	PY=$(BIN)/python scripts/build_static.sh

# ruff, then mypy with django-stubs over the apps (pyproject.toml [tool.mypy]; about 40 s cold, a few warm).
lint: setup
	$(BIN)/ruff check .
	$(BIN)/python -m mypy

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache

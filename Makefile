# evalsite: `make demo` to try it, `make test` to test it.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PYTHONUNBUFFERED := 1

.PHONY: setup test test-fast demo demo-panel lint clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

# Reinstall only when a requirements file changed (idempotent).
# TORCH_PIP_ARGS lets a laptop take the small CPU build, e.g.
#   make setup TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
$(STAMP): $(BIN)/python requirements.txt requirements-dev.txt
	$(BIN)/python -m pip install -q torch==2.13.0 $(TORCH_PIP_ARGS)
	$(BIN)/python -m pip install -q -r requirements-dev.txt
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

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache

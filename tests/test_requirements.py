"""The requirements split and its hashed locks (README "Dependencies"; scripts/lock.sh writes the locks)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(settings.BASE_DIR)
WORKER_ONLY = {"torch", "diffusers", "transformers", "accelerate", "bitsandbytes", "safetensors", "tokenizers",
               "huggingface-hub", "sentencepiece", "protobuf", "pytesseract", "torchao"}
LOCKS = {"requirements.txt": "requirements.lock", "requirements-worker.txt": "requirements-worker.lock",
         "requirements-fast.txt": "requirements-fast.lock", "requirements-dev.txt": "requirements-dev.lock"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: str) -> dict[str, str]:
    """name -> version of the == pins in a requirements file, following -r includes."""
    found: dict[str, str] = {}
    for raw in (ROOT / path).read_text().splitlines():
        line = raw.split("#")[0].strip()
        if line.startswith("-r "):
            found.update(pins(line[3:].strip()))
        elif match := re.match(r"([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^\s;\\]+)", line):
            found[_norm(match.group(1))] = match.group(2)
    return found


def lock_entries(path: str) -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes) of a pip-compile --generate-hashes lock."""
    text = (ROOT / path).read_text()
    entries = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        if match := re.match(r"([A-Za-z0-9_.\-]+)==(\S+)", block):
            entries[_norm(match.group(1))] = (match.group(2), block.count("--hash=sha256:"))
    return entries


def test_the_web_set_has_no_worker_package():
    assert not (set(pins("requirements.txt")) & WORKER_ONLY)
    assert not [name for name in lock_entries("requirements.lock") if name in WORKER_ONLY or name.startswith("nvidia")]


def test_the_worker_set_has_the_engine_and_fast_mode_is_an_extra():
    assert {"torch", "diffusers", "transformers", "accelerate", "bitsandbytes"} <= set(pins("requirements-worker.txt"))
    assert "torchao" not in pins("requirements-worker.txt") and "torchao" in pins("requirements-fast.txt")


@pytest.mark.parametrize(("source", "lock"), sorted(LOCKS.items()))
def test_each_lock_is_current_and_hashed(source, lock):
    """Every pin of the source is in its lock at the same version, every lock line has hashes, no torch."""
    entries = lock_entries(lock)
    stale = {name: (version, entries.get(name, ("missing",))[0]) for name, version in pins(source).items()
             if name != "torch" and entries.get(name, ("missing",))[0] != version}
    assert not stale, f"{lock} is stale (pin, lock): {stale}; run scripts/lock.sh"
    assert entries and all(count >= 1 for _, count in entries.values())
    # torch is installed by its pin, not from a lock (scripts/lock.sh says why)
    assert "torch" not in entries and not [n for n in entries if n.startswith("nvidia")]


def test_images_and_make_setup_install_from_the_locks():
    web = (ROOT / "Dockerfile").read_text()
    worker = (ROOT / "Dockerfile.worker").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install --require-hashes --no-deps -r requirements.lock" in web and "torch==" not in web
    assert "RUN scripts/build_static.sh" in web
    assert re.search(r"^FROM nvidia/cuda:[\w.\-]*runtime", worker, re.M)
    torch_pin = f"torch=={pins('requirements-worker.txt')['torch']}"
    assert f"pip install {torch_pin} && pip install --require-hashes --no-deps -r requirements-worker.lock" in worker
    assert "pip install --require-hashes --no-deps -r requirements-fast.lock" in worker
    assert f"pip install -q {torch_pin} $(TORCH_PIP_ARGS)" in makefile
    assert "pip install -q --require-hashes --no-deps -r requirements-dev.lock" in makefile

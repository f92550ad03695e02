"""Can this worker load a model? Checked without loading it: the weights are a local directory or cached
from the hub (or the hub is reachable to fetch them), and the declared memory fits this machine.

Django-free (the worker's reporting service stores the answers); torch is imported only to size the GPU.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from .spec import looks_local

# The file that proves a repo is in the local hub cache: a diffusers pipeline's index, else a config.
_MARKER_FILES = {"diffusers": ("model_index.json",), "transformers": ("config.json",)}


@dataclass(frozen=True)
class Machine:
    """What a worker has: its device, the memory models may use (GPU, or RAM on a CPU worker), the hub."""

    device: str
    gpu_name: str
    memory_bytes: int | None
    hub_reachable: bool


def hub_reachable(*, timeout: float = 2.0) -> bool:
    """Whether the model hub answers a TCP connect (never when HF_HUB_OFFLINE is set)."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return False
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host = endpoint.hostname or "huggingface.co"
    port = endpoint.port or (443 if endpoint.scheme != "http" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def machine_describe(*, vram_budget_bytes: int | None = None, check_hub: bool = True) -> Machine:
    """This process's device and memory (a VRAM budget, when set, caps the GPU's memory)."""
    # The web process imports this module (worker reports): torch loads only where a worker describes itself.
    import torch

    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        memory = props.total_memory if vram_budget_bytes is None else min(props.total_memory, vram_budget_bytes)
        return Machine(device="cuda", gpu_name=props.name, memory_bytes=memory,
                       hub_reachable=hub_reachable() if check_hub else False)
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        ram = None
    return Machine(device="cpu", gpu_name="", memory_bytes=ram, hub_reachable=hub_reachable() if check_hub else False)


def weights_cached(*, source: str, revision: str = "", backend: str = "diffusers") -> bool:
    """Whether a hub repo's weights are in the local hub cache (its index/config file is there)."""
    # Only a worker asks its hub cache; the web process imports this module without it.
    from huggingface_hub import try_to_load_from_cache

    for filename in _MARKER_FILES.get(backend, ("config.json",)):
        found = try_to_load_from_cache(source, filename, revision=revision or None)
        if isinstance(found, str):
            return True
    return False


def model_loadable(
    *, source: str, backend: str, machine: Machine, revision: str = "", min_vram_gb: float | None = None
) -> tuple[bool, str]:
    """(loadable, why) for one model on one machine; `why` says what was found either way."""
    if looks_local(source):
        path = Path(source).expanduser()
        if not path.is_dir():
            return False, f"local directory {str(path)!r} does not exist on this worker"
        where = "local directory"
    elif weights_cached(source=source, revision=revision, backend=backend):
        where = "weights cached locally"
    elif machine.hub_reachable:
        where = "hub reachable (weights will be downloaded)"
    else:
        return False, f"weights of {source!r} are not cached on this worker and the hub is unreachable"
    if min_vram_gb:
        need = min_vram_gb * 2**30
        if machine.device != "cuda":
            return False, f"needs a GPU with {min_vram_gb:g} GiB; this worker has no GPU"
        if machine.memory_bytes is not None and need > machine.memory_bytes:
            return False, (f"needs {min_vram_gb:g} GiB of GPU memory; this worker has "
                           f"{machine.memory_bytes / 2**30:.1f} GiB")
    return True, where

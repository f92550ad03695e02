"""The long-lived engine of one worker process: a VRAM-bounded cache of loaded models and the render loop.

Timing follows the rules of the score table: wall seconds of the pipeline call only, CUDA
synchronised before and after, model load and one warm-up call per loaded model excluded.
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import logging
import platform
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

from . import compat, loading
from .spec import LoadError, ModelSpec, OutOfMemory, RenderOutcome, RenderRequest, looks_local

log = logging.getLogger(__name__)

WARMUP_STEPS = 2  # same shapes as a real call (kernels, allocator, compile) at a fraction of its cost

# progress(key, step): step 0 = the image's pipeline call started, 1..n = denoising steps done (pipelines
# whose __call__ takes callback_on_step_end), None = the image is finished. Called on the engine's thread.
Progress = Callable[[str, int | None], None]


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def cuda_index(device: str, *, current: Callable[[], int] = torch.cuda.current_device) -> int:
    """The GPU index of "cuda:N" or, for a bare "cuda", the current device. set_per_process_memory_fraction
    refuses a device without an index ("Expected a torch.device with a specified index", seen on an H200
    with the worker's default Engine(device="cuda"), issue 14)."""
    index = torch.device(device).index
    return current() if index is None else index


def free_memory() -> None:
    """Drop what Python still holds, then give cached CUDA blocks back to the driver."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


def _quiet_progress_bars() -> None:
    """A worker's log is for events, not tqdm bars of every load and step."""
    # diffusers and transformers take seconds to import: they load when an Engine starts, not with this module.
    import diffusers
    import transformers

    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _takes_step_callback(pipe: Any) -> bool:
    try:
        return "callback_on_step_end" in inspect.signature(pipe.__call__).parameters
    except (TypeError, ValueError):
        return False


def _first_image(result: Any) -> Any:
    """Pipelines answer with .images (list); generate_image answers with an image."""
    images = getattr(result, "images", None)
    if images is not None:
        return images[0]
    if isinstance(result, (list, tuple)):
        return result[0]
    return result


class Engine:
    """One per worker process (one GPU). Not thread-safe; a worker renders one chunk at a time."""

    def __init__(self, device: str | None = None, vram_budget_bytes: int | None = None, overlap: bool = True,
                 memory_cap_bytes: int | None = None, oom_retry: bool = True,
                 memory_ceiling_bytes: int | None = None):
        """memory_cap_bytes caps what PyTorch may allocate on the GPU (EVALSITE_GPU_MEMORY_GIB): a
        smaller card emulated on a big one, or room left for other work. The CUDA context
        (~0.6-0.7 GiB) sits outside the cap. oom_retry=False turns the offload retry off (profiling).
        memory_ceiling_bytes: no later set_memory_cap goes above it, and set_memory_cap(None) returns
        to it instead of the whole card (a worker's EVALSITE_GPU_MEMORY_GIB: profile_vram's card caps stay
        under it). Both are kept on a CPU, where they apply nothing (memory_cap_bytes is then None)."""
        self.device = device or default_device()
        self.overlap = overlap
        self.oom_retry = oom_retry
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeError("Engine(device='cuda') but torch sees no CUDA device")
        for value in (memory_cap_bytes, memory_ceiling_bytes):
            if value is not None and value <= 0:
                raise ValueError("memory cap must be positive")
        self.memory_cap_requested: int | None = memory_cap_bytes  # as asked; memory_cap_bytes is what applies
        self.memory_ceiling_bytes: int | None = memory_ceiling_bytes
        self.memory_cap_bytes: int | None = None
        if memory_cap_bytes and self.device.startswith("cuda"):
            self.set_memory_cap(memory_cap_bytes)
        if vram_budget_bytes is None and self.device.startswith("cuda"):
            usable = self.memory_cap_bytes or torch.cuda.get_device_properties(self.device).total_memory
            vram_budget_bytes = int(usable * 0.9)
        self.vram_budget_bytes = vram_budget_bytes  # None on CPU = unbounded
        self._cache: OrderedDict[str, loading.Loaded] = OrderedDict()
        self._known_sizes: dict[str, int] = {}
        self.events: list[dict[str, Any]] = []  # loads, evictions, OOM retries: for logs and benchmarks
        self._progress: Progress | None = None  # set by render(); the liveness watchdog of the worker reads it
        _quiet_progress_bars()

    def set_memory_cap(self, cap_bytes: int | None) -> None:
        """Cap PyTorch's allocations on this GPU (None = the whole card, or the engine's ceiling), via the
        caching allocator. Never above memory_ceiling_bytes (Engine(memory_ceiling_bytes=...))."""
        total = torch.cuda.get_device_properties(self.device).total_memory
        if cap_bytes is not None and cap_bytes <= 0:
            raise ValueError("memory cap must be positive")
        if self.memory_ceiling_bytes is not None:
            cap_bytes = self.memory_ceiling_bytes if cap_bytes is None else min(cap_bytes, self.memory_ceiling_bytes)
        fraction = 1.0 if cap_bytes is None else min(1.0, cap_bytes / total)
        torch.cuda.set_per_process_memory_fraction(fraction, cuda_index(self.device))
        self.memory_cap_bytes = None if cap_bytes is None or fraction >= 1.0 else int(cap_bytes)

    # ----------------------------------------------------------------- information
    @property
    def gpu_name(self) -> str:
        return torch.cuda.get_device_name(self.device) if self.device.startswith("cuda") else ""

    def environment(self) -> dict[str, Any]:
        """Versions and hardware, for the settings snapshot of every Generation."""
        # diffusers and transformers take seconds to import: they load when an Engine starts, not with this module.
        import diffusers
        import transformers

        env: dict[str, Any] = {
            "device": "cuda" if self.device.startswith("cuda") else "cpu",
            "gpu_name": self.gpu_name,
            "torch": torch.__version__,
            "diffusers": diffusers.__version__,
            "transformers": transformers.__version__,
            "python": platform.python_version(),
            "cuda": torch.version.cuda or "",
        }
        try:
            # Optional: accelerate may be absent; the snapshot then has no version for it.
            import accelerate

            env["accelerate"] = accelerate.__version__
        except ImportError:
            pass
        try:
            # Optional: bitsandbytes is missing or fails without its native library on some hosts.
            import bitsandbytes

            env["bitsandbytes"] = bitsandbytes.__version__
        except Exception:  # noqa: BLE001 - bitsandbytes may fail to import without its native library
            pass
        if self.device.startswith("cuda"):
            props = torch.cuda.get_device_properties(self.device)
            env["gpu_total_memory"] = props.total_memory
            env["gpu_memory_cap"] = self.memory_cap_bytes
            env["cudnn"] = torch.backends.cudnn.version()
        return env

    def loaded_slugs(self) -> list[str]:
        return [loaded.spec.slug for loaded in self._cache.values()]

    # ----------------------------------------------------------------- cache
    def _evict(self, key: str) -> None:
        loaded = self._cache.pop(key, None)
        if loaded is None:
            return
        self.events.append({"event": "evict", "slug": loaded.spec.slug, "bytes": loaded.size_bytes})
        if loaded.backend == "diffusers" and hasattr(loaded.model, "remove_all_hooks"):
            loaded.model.remove_all_hooks()  # accelerate hooks hold references to the modules
        loaded.model = None
        del loaded
        free_memory()

    def evict_all(self) -> None:
        self._on_engine_thread(self._evict_all)

    def close(self) -> None:
        """Give back every loaded model and the engine's thread (an engine built for one job, e.g. a profile)."""
        self.evict_all()
        self._thread.shutdown(wait=True)

    def _evict_all(self) -> None:
        for key in list(self._cache):
            self._evict(key)

    def _make_room(self, need: int) -> None:
        if self.vram_budget_bytes is None:
            return
        while self._cache and sum(x.size_bytes for x in self._cache.values()) + need > self.vram_budget_bytes:
            self._evict(next(iter(self._cache)))  # least recently used first

    def _estimate(self, spec: ModelSpec) -> int:
        """Bytes to make room for before loading: what this spec took last time, else its files on disk."""
        key = spec.cache_key()
        if key in self._known_sizes:
            return self._known_sizes[key]
        path = Path(spec.source).expanduser()
        if looks_local(spec.source) and path.is_dir():
            weights = [p for p in path.rglob("*") if p.suffix in (".safetensors", ".bin", ".pt")]
            return sum(p.stat().st_size for p in weights)
        return 0

    def _timed_load(self, spec: ModelSpec, *, offload: str | None = None, reason: str = "") -> loading.Loaded:
        """loading.load, timed and recorded (first loads and OOM reloads alike), with its CUDA peak.

        A failed load is recorded too, and what it held is given back before the error goes up:
        the frames of the failed from_pretrained are cleared, then gc + empty_cache.
        """
        cuda = self.device.startswith("cuda")
        base_allocated = base_reserved = 0
        if cuda:
            base_allocated = torch.cuda.memory_allocated(self.device)
            base_reserved = torch.cuda.memory_reserved(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        start = time.perf_counter()
        failure: Exception | None = None
        try:
            loaded = loading.load(spec, device=self.device, offload=offload, max_gpu_bytes=self._max_gpu_bytes())
            _sync(self.device)
        except Exception as exc:  # noqa: BLE001 - recorded, memory freed, then raised again below
            failure = exc
        seconds = time.perf_counter() - start
        if failure is not None:
            self._free_after_failure(failure)
            event = {"event": "load_failed", "slug": spec.slug, "offload": offload or spec.offload,
                     "seconds": seconds, "error": f"{type(failure).__name__}: {failure}"[:500],
                     "oom": loading.is_oom(failure), "reason": reason}
            if cuda:
                event["allocated_after_free"] = torch.cuda.memory_allocated(self.device)
            self.events.append(event)
            raise failure
        loaded.load_seconds = seconds
        if cuda:
            loaded.load_peak_allocated = torch.cuda.max_memory_allocated(self.device) - base_allocated
            loaded.load_peak_reserved = torch.cuda.max_memory_reserved(self.device) - base_reserved
        self.events.append({"event": "load", "slug": spec.slug, "offload": loaded.offload,
                            "bytes": loaded.size_bytes, "seconds": loaded.load_seconds, "notes": loaded.notes,
                            "peak_allocated": loaded.load_peak_allocated,
                            "peak_reserved": loaded.load_peak_reserved, "reason": reason})
        log.info("model %s: loaded in %.1f s on %s (%.2f GiB, offload %s%s)", spec.slug, loaded.load_seconds,
                 self.device, loaded.size_bytes / 2**30, loaded.offload, f"; {reason}" if reason else "")
        return loaded

    def _free_after_failure(self, exc: BaseException) -> None:
        """What a failed load or call left in its frames goes, then the allocator's cache."""
        loading.release(exc)
        free_memory()

    def _max_gpu_bytes(self) -> int | None:
        return self.memory_cap_bytes if self.device.startswith("cuda") else None

    def _load(self, spec: ModelSpec) -> loading.Loaded:
        key = spec.cache_key()
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        self._make_room(self._estimate(spec))
        loaded = self._timed_load(spec)
        self._make_room(loaded.size_bytes)
        self._cache[key] = loaded
        self._known_sizes[key] = loaded.size_bytes
        return loaded

    def load(self, spec: ModelSpec) -> loading.Loaded:
        """Load (or reuse) and warm up, on the engine's thread; on OOM retry with model CPU offload."""
        return self._on_engine_thread(self._load_and_warm, spec)

    def _load_and_warm(self, spec: ModelSpec) -> loading.Loaded:
        phase = "loading"
        failure: BaseException | None = None
        try:
            loaded = self._load(spec)
            phase = "the warm-up call"
            self._warm_up(loaded)
            return loaded
        except torch.OutOfMemoryError as exc:
            failure = exc  # handled outside the except block, so the traceback's frames can be cleared
        self._free_after_failure(failure)
        del failure
        return self._reload_offloaded(spec, reason=phase)

    def _where(self) -> str:
        """The memory the engine had, for OOM messages."""
        if not self.device.startswith("cuda"):
            return ""
        total = torch.cuda.get_device_properties(self.device).total_memory
        cap = self.memory_cap_bytes
        return (f" (GPU memory cap {cap / 2**30:.1f} GiB of {total / 2**30:.1f} GiB)" if cap
                else f" ({total / 2**30:.1f} GiB GPU)")

    def _reload_offloaded(self, spec: ModelSpec, *, reason: str) -> loading.Loaded:
        key = spec.cache_key()
        current = self._cache[key].offload if key in self._cache else spec.offload
        self._evict(key)
        if current != "none" or not self.oom_retry:
            free_memory()
            already = f" with {current} CPU offload" if current != "none" else ""
            raise OutOfMemory(f"model {spec.slug!r} ran out of GPU memory during {reason}{already}{self._where()}")
        self._evict_all()  # give the retry the whole card
        self.events.append({"event": "oom_retry_offload", "slug": spec.slug, "during": reason})
        log.warning("model %s: CUDA out of memory during %s; reloading with model CPU offload", spec.slug, reason)
        phase = "loading"
        failure: BaseException | None = None
        try:
            loaded = self._timed_load(spec, offload="model", reason=f"model CPU offload after OOM during {reason}")
            loaded.notes.append(f"model CPU offload after CUDA out of memory during {reason}")
            self._cache[key] = loaded
            phase = "the warm-up call"
            self._warm_up(loaded)
            return loaded
        except torch.OutOfMemoryError as exc:
            failure = exc
        self._evict(key)
        self._free_after_failure(failure)
        del failure
        raise OutOfMemory(
            f"model {spec.slug!r} ran out of GPU memory during {reason}, and again during {phase} of the "
            f"reload with model CPU offload (even with model CPU offload){self._where()}"
        )

    # ----------------------------------------------------------------- rendering
    def _call(self, loaded: loading.Loaded, *, prompt: str, seed: int, steps: int | None = None,
              on_step: Callable[[int], None] | None = None) -> Any:
        spec = loaded.spec
        steps = steps or spec.num_inference_steps
        if loaded.backend == "transformers":
            kwargs: dict[str, Any] = {"prompt": prompt, "seed": seed, "image_size": f"{spec.height}x{spec.width}",
                                      "diff_infer_steps": steps}
            if spec.guidance_scale is not None:
                kwargs["diff_guidance_scale"] = spec.guidance_scale
            kwargs.update(spec.extra_params)
            guard = compat.cpu_remote_code() if not self.device.startswith("cuda") else contextlib.nullcontext()
            with torch.inference_mode(), guard:
                return _first_image(loaded.model.generate_image(**kwargs))
        # One generator per image, on the CPU whatever the device: the same seed gives the same
        # starting noise with or without offload, so an OOM retry doesn't change the image.
        kwargs = {
            "prompt": [prompt],  # a fresh list: ZImagePipeline rewrites its prompt list in place
            "num_inference_steps": steps,
            "width": spec.width,
            "height": spec.height,
            "generator": torch.Generator(device="cpu").manual_seed(seed),
            "output_type": "pil",
        }
        if spec.guidance_scale is not None:
            kwargs["guidance_scale"] = spec.guidance_scale
        kwargs.update(spec.extra_params)
        if on_step is not None and "callback_on_step_end" not in kwargs and _takes_step_callback(loaded.model):
            def step_end(_pipe: Any, index: int, _timestep: Any, callback_kwargs: dict) -> dict:
                on_step(index + 1)
                return callback_kwargs

            kwargs["callback_on_step_end"] = step_end
        with torch.inference_mode():
            return _first_image(loaded.model(**kwargs))

    def _warm_up(self, loaded: loading.Loaded) -> None:
        if loaded.warmup_seconds:
            return
        start = time.perf_counter()
        try:
            _sync(self.device)
            self._call(loaded, prompt="warm-up", seed=0, steps=min(WARMUP_STEPS, loaded.spec.num_inference_steps))
            _sync(self.device)
        except torch.OutOfMemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - a spec whose call can't run is a broken spec
            self._evict(loaded.spec.cache_key())
            loading.release(exc)
            raise LoadError(
                f"model {loaded.spec.slug!r} loaded but its first call failed: {type(exc).__name__}: {exc}"
            ) from exc
        loaded.warmup_seconds = time.perf_counter() - start or 1e-9
        self.events.append({"event": "warmup", "slug": loaded.spec.slug, "seconds": loaded.warmup_seconds})
        log.info("model %s: warm-up call %.1f s (not counted in its seconds per image)", loaded.spec.slug,
                 loaded.warmup_seconds)

    def _others_bytes(self, loaded: loading.Loaded) -> int:
        """CUDA bytes held by everything but this model (other cached models), to keep them out of its peak."""
        mine = 0
        modules = [loaded.model] if loaded.backend == "transformers" else loading.pipeline_modules(loaded.model).values()
        seen: set[int] = set()
        for module in modules:
            for t in list(module.parameters()) + list(module.buffers()):
                if t.is_cuda and id(t) not in seen:
                    seen.add(id(t))
                    mine += t.numel() * t.element_size()
        return max(0, torch.cuda.memory_allocated(self.device) - mine)

    def _render_one(self, loaded: loading.Loaded, request: RenderRequest) -> RenderOutcome:
        """One timed call. Peak VRAM is this model's: its weights and activations, not other cached models."""
        cuda = self.device.startswith("cuda")
        others = 0
        if cuda:
            others = self._others_bytes(loaded)
            torch.cuda.reset_peak_memory_stats(self.device)
        progress = self._progress
        on_step = (lambda step: progress(request.key, step)) if progress is not None else None
        _sync(self.device)
        if progress is not None:
            progress(request.key, 0)
        start = time.perf_counter()
        image = self._call(loaded, prompt=request.prompt, seed=request.seed, on_step=on_step)
        _sync(self.device)
        seconds = time.perf_counter() - start
        if progress is not None:
            progress(request.key, None)
        return RenderOutcome(
            key=request.key,
            image=image,
            seconds=seconds,
            peak_vram_allocated=torch.cuda.max_memory_allocated(self.device) - others if cuda else None,
            peak_vram_reserved=torch.cuda.max_memory_reserved(self.device) - others if cuda else None,
            device="cuda" if cuda else "cpu",
            gpu_name=self.gpu_name,
            offload_used=loaded.offload,
            native_width=getattr(image, "width", None),
            native_height=getattr(image, "height", None),
            fast_mode_used=loaded.fast_mode_used,
            seed=request.seed,
            prompt=request.prompt,
        )

    def render(self, spec: ModelSpec, requests: Iterable[RenderRequest], *,
               progress: Progress | None = None) -> Iterator[RenderOutcome]:
        """Render each request with this model, yielding each image as soon as it exists.

        ``progress`` (see Progress) hears when each image starts, each denoising step and each
        finish, so a caller can tell a slow render from a hung one.

        Raises LoadError (broken spec) before the first image and OutOfMemory when even a
        model-CPU-offload reload runs out of memory. An error that concerns one image only
        comes back as a RenderOutcome with `error` set.

        With overlap on, the next image is already rendering on the engine's thread while
        the caller normalizes and saves this one (PNG encoding and database writes release
        the GIL), so saving costs the sweep no GPU time. Images still come back one by one,
        in order, and at most one is in flight when the worker dies.
        """
        self._progress = progress
        self.load(spec)
        pending: Future[RenderOutcome] | None = None
        for request in requests:
            if not self.overlap:
                yield self._render_request(spec, request)
                continue
            upcoming = self._thread.submit(self._render_request, spec, request)
            if pending is not None:
                yield pending.result()
            pending = upcoming
        if pending is not None:
            yield pending.result()

    def _on_engine_thread(self, fn: Any, *args: Any) -> Any:
        """All torch work runs on one thread, so compiled code and CUDA state stay in one place."""
        if threading.current_thread().name.startswith("engine"):
            return fn(*args)
        return self._thread.submit(fn, *args).result()

    def _render_request(self, spec: ModelSpec, request: RenderRequest) -> RenderOutcome:
        loaded = self._cache.get(spec.cache_key()) or self._load_and_warm(spec)
        oom = False
        try:
            return self._render_one(loaded, request)
        except torch.OutOfMemoryError:
            oom = True  # handled below, outside the except block, so the failed call's tensors are freed
        except Exception as exc:  # noqa: BLE001 - one bad image must not stop the chunk
            log.exception("model %s: render of %s failed", spec.slug, request.key)
            return RenderOutcome(key=request.key, error=f"{type(exc).__name__}: {exc}",
                                 device="cuda" if self.device.startswith("cuda") else "cpu",
                                 gpu_name=self.gpu_name, offload_used=loaded.offload,
                                 seed=request.seed, prompt=request.prompt)
        assert oom
        del loaded
        free_memory()
        loaded = self._reload_offloaded(spec, reason=f"render of {request.key}")
        return self._render_after_oom(loaded, spec, request)

    def _render_after_oom(self, loaded: loading.Loaded, spec: ModelSpec, request: RenderRequest) -> RenderOutcome:
        try:
            return self._render_one(loaded, request)
        except torch.OutOfMemoryError:
            pass
        self._evict(spec.cache_key())
        raise OutOfMemory(
            f"model {spec.slug!r} ran out of GPU memory rendering {request.key} even with model CPU offload"
        )

"""Engine memory handling on a CPU, by failure injection (issue 14): OOM inside from_pretrained takes
the OOM path, a failed load gives its memory back, every load is recorded, messages say where."""

from __future__ import annotations

import dataclasses
import weakref

import diffusers
import pytest
import torch

from generation.engine import Engine, LoadError, OutOfMemory, RenderRequest, loading

REQUESTS = [RenderRequest(key=f"k{i}", prompt=f"prompt {i}", seed=7 + i) for i in range(2)]


def _inject_from_pretrained(monkeypatch, cls, *, fail_times: int, exc_factory):
    """The pipeline class's from_pretrained builds a module (memory a real load would hold), then fails
    `fail_times` times with exc_factory(); afterwards it loads for real."""
    real = cls.from_pretrained.__func__
    state = {"calls": 0, "held": []}

    def from_pretrained(klass, *args, **kwargs):
        state["calls"] += 1
        if state["calls"] <= fail_times:
            half_built = torch.nn.Linear(256, 256)  # stands for weights already placed when the load fails
            state["held"].append(weakref.ref(half_built))
            raise exc_factory()
        return real(klass, *args, **kwargs)

    monkeypatch.setattr(cls, "from_pretrained", classmethod(from_pretrained))
    return state


def _wrapped_oom():
    """What a library does: torch's OOM wrapped in its own error (bitsandbytes/accelerate paths)."""
    try:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 5.50 GiB (injected)")
    except torch.OutOfMemoryError as oom:
        try:
            raise RuntimeError("error while quantizing transformer") from oom
        except RuntimeError as wrapped:
            return wrapped


def test_oom_inside_from_pretrained_takes_the_offload_retry_not_load_error(tiny_specs, monkeypatch):
    spec = tiny_specs["flux"]
    state = _inject_from_pretrained(monkeypatch, diffusers.FluxPipeline, fail_times=1, exc_factory=_wrapped_oom)
    engine = Engine(device="cpu")
    outcomes = list(engine.render(spec, REQUESTS))
    assert state["calls"] == 2
    assert all(o.ok and o.offload_used == "model" for o in outcomes)
    kinds = [e["event"] for e in engine.events]
    assert kinds == ["load_failed", "oom_retry_offload", "load", "warmup"]
    failed = engine.events[0]
    assert failed["oom"] is True and "LoadOutOfMemory" in failed["error"] and "from_pretrained" in failed["error"]
    assert engine.events[1]["during"] == "loading"


def test_oom_inside_from_pretrained_twice_is_out_of_memory_for_the_fallback(tiny_specs, monkeypatch):
    spec = tiny_specs["flux"]
    state = _inject_from_pretrained(monkeypatch, diffusers.FluxPipeline, fail_times=2, exc_factory=_wrapped_oom)
    engine = Engine(device="cpu")
    with pytest.raises(OutOfMemory) as excinfo:
        engine.load(spec)
    message = str(excinfo.value)
    assert "during loading, and again during loading of the reload with model CPU offload" in message
    assert not isinstance(excinfo.value, LoadError)  # the sweep's fallback model takes over, not "could not load"
    assert engine.loaded_slugs() == []
    assert all(ref() is None for ref in state["held"])  # nothing of the two failed loads is still held
    assert [e["event"] for e in engine.events] == ["load_failed", "oom_retry_offload", "load_failed"]


def test_a_failed_load_gives_its_memory_back_even_while_the_error_is_kept(tiny_specs, monkeypatch):
    spec = tiny_specs["sd3"]
    state = _inject_from_pretrained(monkeypatch, diffusers.StableDiffusion3Pipeline, fail_times=1,
                                    exc_factory=lambda: ValueError("bad shard (injected)"))
    engine = Engine(device="cpu")
    with pytest.raises(LoadError, match="from_pretrained.*ValueError: bad shard") as excinfo:
        engine.load(spec)
    # excinfo keeps the exception and its traceback alive, as a log handler or a caller would; the engine
    # cleared the frames and ran gc itself, so the half-built module is gone without a gc.collect() here.
    assert excinfo.value.__cause__ is not None
    assert state["held"][0]() is None
    assert engine.events[-1]["event"] == "load_failed" and engine.events[-1]["oom"] is False


def test_without_the_fix_the_traceback_would_hold_the_module(tiny_specs, monkeypatch):
    """Guard for the test above: the injected module really is reachable from a kept traceback unless cleared."""
    monkeypatch.setattr(loading, "release", lambda exc: None)
    state = _inject_from_pretrained(monkeypatch, diffusers.StableDiffusion3Pipeline, fail_times=1,
                                    exc_factory=lambda: ValueError("bad shard (injected)"))
    with pytest.raises(LoadError) as excinfo:
        Engine(device="cpu").load(tiny_specs["sd3"])
    assert excinfo.value is not None and state["held"][0]() is not None


def test_oom_in_the_warm_up_is_named_and_both_loads_are_recorded(tiny_specs, monkeypatch):
    real_load = loading.load

    def load(spec, *, device, offload=None, **kwargs):
        loaded = real_load(spec, device=device, offload=offload, **kwargs)

        def oom(*args, **kw):
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")

        loaded.model.transformer.forward = oom
        return loaded

    monkeypatch.setattr(loading, "load", load)
    engine = Engine(device="cpu")
    with pytest.raises(OutOfMemory) as excinfo:
        engine.load(tiny_specs["sd3"])
    assert "during the warm-up call, and again during the warm-up call of the reload" in str(excinfo.value)
    loads = [e for e in engine.events if e["event"] == "load"]
    assert [e["offload"] for e in loads] == ["none", "model"]
    assert all(e["seconds"] > 0 for e in loads)  # the reload is timed like the first load
    assert loads[1]["reason"] == "model CPU offload after OOM during the warm-up call"


def test_offload_retry_off_for_profiling_says_where(tiny_specs, monkeypatch):
    _inject_from_pretrained(monkeypatch, diffusers.FluxPipeline, fail_times=1, exc_factory=_wrapped_oom)
    engine = Engine(device="cpu", oom_retry=False)
    with pytest.raises(OutOfMemory, match="during loading$"):
        engine.load(tiny_specs["flux"])
    assert "oom_retry_offload" not in [e["event"] for e in engine.events]


def test_quantized_offload_loads_components_one_by_one_without_allocator_warmup(tiny_specs, monkeypatch):
    """4-bit + model offload: each quantized component is loaded alone (and parked on the CPU), the
    pipeline gets them ready-made, and diffusers' caching-allocator warm-up is off during the load."""
    import diffusers.models.modeling_utils as modeling_utils

    calls = []

    class FakeQuant:
        quant_backend = "bitsandbytes_4bit"

        def _resolve_quant_config(self, *, is_diffusers, module_name):
            calls.append(("resolve", module_name, is_diffusers))
            return None  # no bitsandbytes on a CPU: the order and the hand-over are what is tested

    monkeypatch.setattr(loading, "pipeline_quantization", lambda spec, names: FakeQuant())
    real = diffusers.FluxPipeline.from_pretrained.__func__
    warmups = []

    def pipeline_from_pretrained(klass, *args, **kwargs):
        calls.append(("pipeline", sorted(k for k, v in kwargs.items() if isinstance(v, torch.nn.Module))))
        assert "quantization_config" not in kwargs
        warmups.append(modeling_utils._caching_allocator_warmup(None, {}, None, None))
        return real(klass, *args, **kwargs)

    monkeypatch.setattr(diffusers.FluxPipeline, "from_pretrained", classmethod(pipeline_from_pretrained))
    original_warmup = modeling_utils._caching_allocator_warmup
    spec = dataclasses.replace(tiny_specs["flux"], quantization="4bit", offload="model")
    engine = Engine(device="cpu")
    [outcome] = list(engine.render(spec, REQUESTS[:1]))
    assert outcome.ok and outcome.offload_used == "model"
    assert calls == [("resolve", "text_encoder_2", False), ("resolve", "transformer", True),
                     ("pipeline", ["text_encoder_2", "transformer"])]
    assert warmups == [None]  # the patched no-op answered inside from_pretrained
    assert modeling_utils._caching_allocator_warmup is original_warmup  # and it is restored afterwards
    notes = engine.load(spec).notes
    assert any("one at a time" in n for n in notes) and any("warm-up skipped" in n for n in notes)


def test_memory_cap_is_ignored_on_a_cpu():
    engine = Engine(device="cpu", memory_cap_bytes=8 * 2**30)
    assert engine.memory_cap_bytes is None and engine.vram_budget_bytes is None

"""Engine behaviour on a CPU: measurements, the VRAM-bounded cache, OOM -> offload, broken specs."""

from __future__ import annotations

import dataclasses
import gc
import json
import weakref

import pytest
import torch

from generation.engine import Engine, LoadError, ModelSpec, OutOfMemory, RenderRequest, loading
from generation.engine.engine import WARMUP_STEPS

REQUESTS = [RenderRequest(key=f"k{i}", prompt=f"prompt {i}", seed=100 + i) for i in range(3)]


def test_cpu_measurements_are_honest(tiny_specs, caplog):
    caplog.set_level("INFO", logger="generation.engine.engine")
    engine = Engine(device="cpu")
    outcomes = list(engine.render(tiny_specs["sd3"], REQUESTS))
    assert [o.key for o in outcomes] == ["k0", "k1", "k2"]
    for outcome in outcomes:
        assert outcome.ok and outcome.seconds > 0
        assert outcome.device == "cpu" and outcome.gpu_name == ""
        assert outcome.peak_vram_allocated is None and outcome.peak_vram_reserved is None  # not applicable
        assert (outcome.native_width, outcome.native_height) == (64, 64)
        assert outcome.offload_used == "none"
    kinds = [e["event"] for e in engine.events]
    assert kinds == ["load", "warmup"]  # one load, one uncounted warm-up, then three timed images
    # and the worker log says what the load and warm-up cost (they are not in the seconds per image)
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("model tiny-sd3: loaded in ") and "on cpu" in m for m in messages), messages
    assert any(m.startswith("model tiny-sd3: warm-up call ") for m in messages), messages


def test_render_yields_each_image_before_the_next_is_rendered(tiny_specs):
    engine = Engine(device="cpu")
    stream = engine.render(tiny_specs["flux"], REQUESTS)
    first = next(stream)
    assert first.key == "k0" and first.ok
    stream.close()  # a caller killed mid-chunk has already got (and saved) the first image


def test_call_arguments_reach_the_pipeline(tiny_specs, monkeypatch):
    """guidance 0.0 is passed (Z-Image needs it), extra_params pass through, prompt lists are fresh."""
    engine = Engine(device="cpu")
    spec = tiny_specs["zimage"]
    loaded = engine.load(spec)
    seen = []
    real_call = type(loaded.model).__call__

    def spy(self, **kwargs):
        seen.append({k: v for k, v in kwargs.items() if k != "generator"} | {"prompt_id": id(kwargs["prompt"])})
        return real_call(self, **kwargs)

    monkeypatch.setattr(type(loaded.model), "__call__", spy)
    list(engine.render(spec, REQUESTS[:2]))
    assert [s["guidance_scale"] for s in seen] == [0.0, 0.0]
    assert all(s["max_sequence_length"] == 32 and s["num_inference_steps"] == 2 for s in seen)
    assert [s["prompt"] for s in seen] == [["<|im_start|>user\nprompt 0<|im_end|>\n<|im_start|>assistant\n"],
                                           ["<|im_start|>user\nprompt 1<|im_end|>\n<|im_start|>assistant\n"]]
    # (ZImagePipeline rewrote each list in place with its chat template: the engine's own prompt is untouched)
    assert REQUESTS[0].prompt == "prompt 0"


def test_guidance_none_is_not_passed(tiny_specs, monkeypatch):
    engine = Engine(device="cpu")
    spec = dataclasses.replace(tiny_specs["flux"], guidance_scale=None)
    loaded = engine.load(spec)
    seen = []
    real_call = type(loaded.model).__call__
    monkeypatch.setattr(type(loaded.model), "__call__", lambda self, **kw: seen.append(kw) or real_call(self, **kw))
    list(engine.render(spec, REQUESTS[:1]))
    assert "guidance_scale" not in seen[0]


def test_the_warm_up_is_short_and_uncounted(tiny_specs):
    engine = Engine(device="cpu")
    list(engine.render(tiny_specs["sd3"], REQUESTS[:1]))
    list(engine.render(tiny_specs["sd3"], REQUESTS[1:]))  # cached: no second load, no second warm-up
    assert [e["event"] for e in engine.events] == ["load", "warmup"]
    assert WARMUP_STEPS < tiny_specs["sd3"].num_inference_steps


def test_lru_cache_evicts_within_the_budget_and_frees_the_model(tiny_specs):
    sizes = {}
    probe = Engine(device="cpu")
    for kind in ("sd3", "flux", "zimage"):
        sizes[kind] = probe.load(tiny_specs[kind]).size_bytes
    probe.evict_all()
    assert all(size > 100_000 for size in sizes.values())
    # Room for sd3 + flux, not for all three.
    engine = Engine(device="cpu", vram_budget_bytes=sizes["sd3"] + sizes["flux"] + 200_000)
    engine.load(tiny_specs["sd3"])
    engine.load(tiny_specs["flux"])
    sd3_transformer = weakref.ref(engine.load(tiny_specs["sd3"]).model.transformer)  # sd3 now most recent
    flux_transformer = weakref.ref(engine._cache[tiny_specs["flux"].cache_key()].model.transformer)
    assert engine.loaded_slugs() == ["tiny-flux", "tiny-sd3"]
    engine.load(tiny_specs["zimage"])
    assert engine.loaded_slugs() == ["tiny-zimage"] or engine.loaded_slugs() == ["tiny-sd3", "tiny-zimage"]
    assert "tiny-flux" not in engine.loaded_slugs()  # least recently used went first
    gc.collect()
    assert flux_transformer() is None  # no reference left anywhere: the memory is really free
    assert sum(x.size_bytes for x in engine._cache.values()) <= engine.vram_budget_bytes
    engine.evict_all()
    gc.collect()
    assert sd3_transformer() is None
    assert [e["slug"] for e in engine.events if e["event"] == "evict"][0] == "tiny-flux"


def _fail_unless_offloaded(monkeypatch, *, always: bool = False):
    """Failure injection: the transformer's forward raises CUDA OOM unless the pipeline is offloaded."""
    real_load = loading.load
    offloads = []

    def load(spec, *, device, offload=None, **kwargs):
        loaded = real_load(spec, device=device, offload=offload, **kwargs)
        offloads.append(loaded.offload)
        if loaded.offload == "none" or always:
            def oom(*args, **kwargs):
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (injected)")

            loaded.model.transformer.forward = oom
        return loaded

    monkeypatch.setattr(loading, "load", load)
    return offloads


def test_oom_reloads_with_model_offload_and_retries(tiny_specs, monkeypatch):
    offloads = _fail_unless_offloaded(monkeypatch)
    engine = Engine(device="cpu")
    outcomes = list(engine.render(tiny_specs["sd3"], REQUESTS))
    assert offloads == ["none", "model"]  # a real reload through enable_model_cpu_offload
    assert all(o.ok and o.offload_used == "model" for o in outcomes)
    loaded = engine._cache[tiny_specs["sd3"].cache_key()]
    assert hasattr(loaded.model.transformer, "_hf_hook")  # accelerate's offload hook is on the module
    assert any(e["event"] == "oom_retry_offload" for e in engine.events)
    # Same seed, same image, offloaded or not: the generator is on the CPU either way.
    plain = list(Engine(device="cpu").render(tiny_specs["sd3"], REQUESTS[:1]))[0]
    assert list(plain.image.getdata()) == list(outcomes[0].image.getdata())


def test_oom_during_a_render_after_warm_up_is_retried_once(tiny_specs, monkeypatch):
    engine = Engine(device="cpu")
    spec = tiny_specs["flux"]
    loaded = engine.load(spec)
    calls = {"n": 0}
    real_forward = loaded.model.transformer.forward

    def forward_oom_once(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return real_forward(*args, **kwargs)

    loaded.model.transformer.forward = forward_oom_once
    outcomes = list(engine.render(spec, REQUESTS[:2]))
    assert [o.offload_used for o in outcomes] == ["model", "model"]
    assert all(o.ok for o in outcomes)


def test_oom_even_with_offload_raises_out_of_memory(tiny_specs, monkeypatch):
    _fail_unless_offloaded(monkeypatch, always=True)
    engine = Engine(device="cpu")
    with pytest.raises(OutOfMemory, match="even with model CPU offload"):
        list(engine.render(tiny_specs["sd3"], REQUESTS))
    assert engine.loaded_slugs() == []  # nothing half-loaded stays behind


def test_missing_path_is_a_clear_load_error(tmp_path):
    spec = ModelSpec(slug="ghost", source=str(tmp_path / "nowhere"), pipeline_class="FluxPipeline")
    with pytest.raises(LoadError, match="does not exist"):
        list(Engine(device="cpu").render(spec, REQUESTS))


def test_wrong_class_is_a_clear_load_error(tiny_specs):
    engine = Engine(device="cpu")
    with pytest.raises(LoadError, match="not a diffusers pipeline class"):
        engine.load(dataclasses.replace(tiny_specs["flux"], pipeline_class="NoSuchPipeline"))
    with pytest.raises(LoadError, match="StableDiffusion3Pipeline"):
        engine.load(dataclasses.replace(tiny_specs["flux"], pipeline_class="StableDiffusion3Pipeline"))


def test_bad_call_settings_fail_the_model_not_the_process(tiny_specs):
    engine = Engine(device="cpu")
    broken = dataclasses.replace(tiny_specs["flux"], extra_params={"no_such_argument": 1})
    with pytest.raises(LoadError, match="first call failed"):
        list(engine.render(broken, REQUESTS))
    assert list(engine.render(tiny_specs["sd3"], REQUESTS[:1]))[0].ok  # the next model still works


def test_invalid_spec_values_are_refused():
    with pytest.raises(LoadError, match="quantization must be one of"):
        ModelSpec(slug="x", source="a/b", quantization="2bit")
    with pytest.raises(LoadError, match="source is empty"):
        ModelSpec(slug="x", source="")


def test_transformers_backend_with_remote_code(tiny_specs):
    engine = Engine(device="cpu")
    outcomes = list(engine.render(tiny_specs["hunyuan"], REQUESTS[:2]))
    assert all(o.ok for o in outcomes)
    loaded = engine._cache[tiny_specs["hunyuan"].cache_key()]
    assert type(loaded.model).__name__ == "TinyHunyuanForCausalLM"
    assert outcomes[0].image.size == (40, 40)


def test_quantization_targets_denoiser_and_big_text_encoders(tiny_dir):
    index = json.loads((tiny_dir / "tiny-sd3" / "model_index.json").read_text())
    assert loading.quantized_components(components=index) == ["text_encoder_3", "transformer"]
    index = json.loads((tiny_dir / "tiny-zimage" / "model_index.json").read_text())
    assert loading.quantized_components(components=index) == ["text_encoder", "transformer"]


def test_environment_names_versions_and_device():
    env = Engine(device="cpu").environment()
    assert env["device"] == "cpu" and env["gpu_name"] == ""
    assert env["torch"] == torch.__version__
    assert env["diffusers"] and env["transformers"]


def test_overlap_changes_timing_only_not_images_or_order(tiny_specs):
    overlapped = list(Engine(device="cpu", overlap=True).render(tiny_specs["flux"], REQUESTS))
    sequential = list(Engine(device="cpu", overlap=False).render(tiny_specs["flux"], REQUESTS))
    assert [o.key for o in overlapped] == [o.key for o in sequential] == ["k0", "k1", "k2"]
    for a, b in zip(overlapped, sequential, strict=True):
        assert list(a.image.getdata()) == list(b.image.getdata())


def test_fast_mode_is_not_faked_on_a_cpu(tiny_specs):
    spec = dataclasses.replace(tiny_specs["flux"], fast_mode=True, load_params={"fast_mode_fp8": True})
    engine = Engine(device="cpu")
    [outcome] = list(engine.render(spec, REQUESTS[:1]))
    assert outcome.ok and outcome.fast_mode_used is False  # the speed column must not claim fast mode
    assert any("fast mode skipped" in note for note in engine.load(spec).notes)

"""Compatibility shims the vendors' remote code needs from this environment (issue 14).

HunyuanImage-3.0's modeling code was written for transformers 4.56 and a full torchvision. Each
shim here is installed only where the thing it stands in for is missing, says what it did (the
engine puts that in the load notes), and does no more than the vendor code uses.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import inspect
import sys
import types
from collections.abc import Iterator

import numpy as np
import torch

_SHIMS: set[object] = set()  # the functions put in place here (a second install leaves them alone)


def _torchvision_transforms() -> str | None:
    """image_processor.py imports torchvision.transforms for Compose/ToTensor/Normalize (the VAE
    preprocessing of conditioning images). Where torchvision can't be imported (no wheel for this
    torch build, as on the CPU dev machines), a pure-torch stand-in with those three is registered."""
    try:
        importlib.import_module("torchvision.transforms")
        return None
    except Exception:  # noqa: BLE001 - a broken install (missing CUDA ops) counts as missing
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
    # transformers' image modules decide once, at import, whether torchvision is there: imported after
    # the stand-in they see it and import what it lacks (InterpolationMode), and every later import of
    # them fails, bitsandbytes' quantizer among them (NF4 loads of the remote code). Import them first.
    for module in ("transformers.image_utils", "transformers.image_transforms"):
        with contextlib.suppress(Exception):
            importlib.import_module(module)

    class Compose:
        def __init__(self, steps):
            self.steps = list(steps)

        def __call__(self, value):
            for step in self.steps:
                value = step(value)
            return value

    class ToTensor:
        def __call__(self, image):
            array = np.asarray(image.convert("RGB") if hasattr(image, "convert") else image, dtype=np.float32)
            return torch.from_numpy(array / 255.0).permute(2, 0, 1).contiguous()

    class Normalize:
        def __init__(self, mean, std):
            self.mean, self.std = torch.tensor(mean), torch.tensor(std)

        def __call__(self, tensor):
            return (tensor - self.mean.view(-1, 1, 1)) / self.std.view(-1, 1, 1)

    package = types.ModuleType("torchvision")
    transforms = types.ModuleType("torchvision.transforms")
    vars(transforms).update(Compose=Compose, ToTensor=ToTensor, Normalize=Normalize)
    vars(package)["transforms"] = transforms
    package.__path__ = []  # a package, so "from torchvision import transforms" works
    package.__spec__ = importlib.machinery.ModuleSpec("torchvision", None, is_package=True)
    transforms.__spec__ = importlib.machinery.ModuleSpec("torchvision.transforms", None)
    sys.modules["torchvision"] = package
    sys.modules["torchvision.transforms"] = transforms
    return "torchvision not importable: pure-torch stand-in for transforms.Compose/ToTensor/Normalize"


def _siglip2_processor() -> str | None:
    """hunyuan's image_processor.py builds `transformers.Siglip2ImageProcessorFast` (the torchvision
    backend in transformers 5). Without torchvision, the PIL backend of the same processor
    (Siglip2ImageProcessorPil, same options) is given that name."""
    # Each shim imports transformers itself: only remote-code models need the shims (engine.py imports
    # this module for every model).
    import transformers
    from transformers.utils import is_torchvision_available

    if is_torchvision_available():
        return None
    try:  # the PIL backend of the processor, where this transformers has it
        from transformers.models.siglip2.image_processing_pil_siglip2 import Siglip2ImageProcessorPil
    except ImportError:
        return None
    # transformers' lazy module can be replaced in sys.modules by later imports: set it on both.
    for module in {id(transformers): transformers, id(sys.modules["transformers"]): sys.modules["transformers"]}.values():
        module.Siglip2ImageProcessorFast = Siglip2ImageProcessorPil
    # `from transformers import Siglip2ImageProcessorFast` can still go through the lazy module's
    # deprecated-"Fast" fallback, which looks Siglip2ImageProcessor up in models.siglip2: point it there too.
    import transformers.models.siglip2 as siglip2

    siglip2.Siglip2ImageProcessor = Siglip2ImageProcessorPil
    return "transformers.Siglip2ImageProcessorFast -> Siglip2ImageProcessorPil (no torchvision)"


def _static_layer_one_argument() -> str | None:
    """transformers 5's StaticLayer.lazy_initialization(key_states, value_states) takes the value
    states too (K and V may differ in head dim); HunyuanStaticCache.update (written for 4.56) passes
    only the keys. Its K and V have one head dim, so the keys stand in for the values' shape."""
    # As above: transformers only when a remote-code model loads.
    from transformers import cache_utils

    layer = getattr(cache_utils, "StaticLayer", None)
    original = getattr(layer, "lazy_initialization", None)
    if layer is None or original is None or original in _SHIMS:
        return None
    if "value_states" not in inspect.signature(original).parameters:
        return None

    def lazy_initialization(self, key_states, value_states=None):
        return original(self, key_states, key_states if value_states is None else value_states)

    _SHIMS.add(lazy_initialization)
    layer.lazy_initialization = lazy_initialization
    return "transformers.cache_utils.StaticLayer.lazy_initialization: value_states optional (4.56 call)"


def install_remote_code_shims() -> list[str]:
    """Install what is missing; the notes say which shims were needed."""
    notes = [note for note in (_torchvision_transforms(), _siglip2_processor(), _static_layer_one_argument())
             if note]
    return notes


@contextlib.contextmanager
def cpu_remote_code() -> Iterator[None]:
    """HunyuanMoE.forward calls torch.cuda.set_device(hidden_states.device.index) unconditionally;
    on a CPU the index is None and torch raises. While the engine calls such code on a CPU,
    set_device(None) does nothing (CUDA devices are passed through unchanged). Its nvtx.range
    markers need a CUDA build of torch: on a CPU-only build they become no-op contexts. Its
    torch.autocast(device_type="cuda") regions become CPU autocast regions in bf16."""
    nvtx = torch.cuda.nvtx
    original = torch.cuda.set_device
    original_range = nvtx.range
    if not torch.backends.cuda.is_built():
        nvtx.range = lambda *args, **kwargs: contextlib.nullcontext()

    def set_device(device):
        if device is None or (isinstance(device, torch.device) and device.type == "cpu"):
            return None
        return original(device)

    original_autocast = torch.autocast

    def autocast(device_type, *args, **kwargs):
        # its bf16 denoising loop and fp16 VAE decode are written as CUDA autocast regions; CPU
        # autocast runs both in bf16 (its fp16 leaves group_norm with mixed dtypes on a CPU)
        if device_type != "cuda":
            return original_autocast(device_type, *args, **kwargs)
        kwargs["dtype"] = torch.bfloat16
        return original_autocast("cpu", **kwargs)

    original_group_norm = torch.nn.functional.group_norm

    def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
        # CUDA autocast runs group_norm in fp32 whatever the input; CPU kernels refuse a float input
        # with bf16 parameters (the VAE decode of a bf16 model): match the parameters' dtype
        if weight is not None and input.dtype != weight.dtype:
            input = input.to(weight.dtype)
        return original_group_norm(input, num_groups, weight, bias, eps)

    torch.cuda.set_device = set_device
    torch.autocast = autocast
    torch.nn.functional.group_norm = group_norm
    try:
        yield
    finally:
        torch.cuda.set_device = original
        torch.autocast = original_autocast
        torch.nn.functional.group_norm = original_group_norm
        nvtx.range = original_range

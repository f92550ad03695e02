"""Demo painters that draw what a prompt names, each with known flaws (samples/demo_truth.md).

This package's ``__init__`` and ``scene`` are plain Python (no torch): the simulated panel reads
the painters' flaws and plans from here; ``pipeline`` holds the diffusers side.
"""

from __future__ import annotations

from typing import Any

from .scene import Flaws

# The five demo models of `make demo`, best first on nothing in particular: each criterion has its
# own true order (TRUE_ORDER, checked by tests/test_demo_truth.py against the demo board).
PAINTERS: dict[str, Flaws] = {
    "painter-crisp": Flaws(text_misspell=0.10, misspell_chars=1, colour_error=0.20, object_missing=0.10,
                           blur=0.0, noise=0.0),
    "painter-careful": Flaws(text_misspell=0.25, misspell_chars=2, colour_error=0.0, object_missing=0.0,
                             blur=0.8, noise=0.0),
    "painter-dreamy": Flaws(text_misspell=0.30, text_missing=0.10, misspell_chars=2, colour_error=0.30,
                            object_missing=0.20, blur=0.4, noise=0.0),
    "painter-grainy": Flaws(text_misspell=0.35, text_missing=0.15, misspell_chars=3, colour_error=0.40,
                            object_missing=0.30, blur=0.0, noise=22.0),
    "painter-smudge": Flaws(text_misspell=0.35, text_missing=0.25, misspell_chars=3, colour_error=0.50,
                            object_missing=0.40, blur=3.5, noise=0.0),
}
NAMES = {
    "painter-crisp": "Crisp painter (demo)", "painter-careful": "Careful painter (demo)",
    "painter-dreamy": "Dreamy painter (demo)", "painter-grainy": "Grainy painter (demo)",
    "painter-smudge": "Smudge painter (demo)",
}
TRUE_ORDER: dict[str, list[str]] = {  # best first, per default criterion
    "prompt_accuracy": ["painter-careful", "painter-crisp", "painter-dreamy", "painter-grainy", "painter-smudge"],
    "photorealism": ["painter-crisp", "painter-dreamy", "painter-careful", "painter-grainy", "painter-smudge"],
    "text_rendering": ["painter-crisp", "painter-careful", "painter-dreamy", "painter-grainy", "painter-smudge"],
}
SIZE = 256  # native size of a demo painting (the sweep canvas scales it)

DEMO_MODELS: list[dict[str, Any]] = [
    {"slug": slug, "name": NAMES[slug], "kind": "painter", "backend": "diffusers", "pipeline_class": "",
     "dtype": "float32", "num_inference_steps": 1, "guidance_scale": None, "width": SIZE, "height": SIZE,
     "extra_params": {}, "load_params": {"trust_remote_code": True},
     "notes": "Offline demo painter: draws the prompt's objects, colours, counts and quoted text with known flaws "
              "(samples/demo_truth.md)."}
    for slug in PAINTERS
]

"""What a demo painter draws for a prompt, and how good that drawing is: pure Python, no torch.

A prompt is read for what a person could check by eye: its quoted text (the text it asks
for), the objects it names with their colours and counts (GenEval style: "three red apples
and a blue cup"), and a few scene words (night, forest, lake, sunrise...). A painter's flaws
then decide, per image, what it actually draws: text misspelled or missing, an object left
out, a wrong colour, blur and grain. The decisions use *common random numbers*: the draw
that decides whether the word "OPEN" of a given prompt and seed is misspelled is the same
for every painter, so a painter with a higher error rate misspells a superset of the words
and the five demo models have a known order per criterion, not one that depends on luck.

``image_quality`` turns a plan into the latent 1–10 quality a careful rater would give on
each criterion; the simulated panel scores from it (what was drawn, not a name hash).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (210, 40, 40), "green": (40, 160, 60), "blue": (40, 80, 210), "yellow": (240, 210, 40),
    "orange": (245, 140, 30), "purple": (130, 60, 170), "pink": (240, 120, 170), "black": (25, 25, 25),
    "white": (245, 245, 245), "grey": (128, 128, 128), "gray": (128, 128, 128), "brown": (130, 80, 40),
    "teal": (30, 150, 150), "coral": (250, 120, 90), "ultramarine": (30, 50, 170), "cadmium": (220, 50, 30),
    "golden": (220, 170, 40), "silver": (190, 190, 200),
}
# keyword -> (shape, default colour). English singular/plural, a few German and Chinese words of the sample suite.
OBJECTS: dict[str, tuple[str, str]] = {
    "apple": ("apple", "red"), "ball": ("ball", "orange"), "cube": ("box", "brown"), "box": ("box", "brown"),
    "cup": ("cup", "white"), "mug": ("cup", "white"), "car": ("car", "blue"), "dog": ("dog", "brown"),
    "cat": ("cat", "grey"), "tree": ("tree", "green"), "pine": ("tree", "green"), "forest": ("tree", "green"),
    "house": ("house", "brown"), "motel": ("house", "pink"), "teahouse": ("house", "brown"),
    "bottle": ("bottle", "orange"), "circle": ("ball", "teal"), "headphone": ("headphone", "black"),
    "person": ("person", "brown"), "woman": ("person", "purple"), "man": ("person", "blue"),
    "child": ("person", "yellow"), "fisherman": ("person", "grey"), "mountain": ("mountain", "grey"),
    "lake": ("lake", "blue"), "sun": ("sun", "orange"), "lantern": ("lantern", "red"), "chart": ("chart", "teal"),
    "bäckerin": ("person", "white"), "flower": ("flower", "pink"), "bird": ("bird", "black"),
    "茶馆": ("house", "brown"), "灯笼": ("lantern", "red"), "猫": ("cat", "grey"),
}
COUNTS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
          "1": 1, "2": 2, "3": 3, "4": 4, "5": 5, "6": 6}
SCENES = {  # background (top, bottom) by scene word, first match wins
    "night": ((15, 20, 50), (40, 40, 70)), "neon": ((15, 20, 50), (40, 40, 70)), "dark": ((20, 22, 30), (45, 45, 55)),
    "dusk": ((250, 150, 90), (90, 60, 110)), "sunrise": ((250, 190, 140), (150, 180, 210)),
    "傍晚": ((250, 150, 90), (90, 60, 110)), "forest": ((200, 225, 210), (60, 110, 70)),
    "rice": ((190, 210, 200), (70, 150, 60)), "desert": ((250, 200, 150), (220, 170, 110)),
    "marble": ((235, 235, 235), (200, 200, 205)), "studio": ((245, 245, 245), (225, 225, 225)),
}
DEFAULT_SCENE = ((205, 220, 240), (240, 240, 235))
_QUOTED = re.compile(r'"([^"]{2,80})"|“([^”]{1,80})”|„([^“”]{1,80})[“”]|「([^」]{1,80})」|‘([^’]{2,80})’')
_WORD = re.compile(r"[\w$€£]+", re.UNICODE)
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_CJK_SWAPS = "风清茶社山水月日天人大小中国文字花鸟"


@dataclass(frozen=True)
class Flaws:
    """A painter's known flaws: rates per element and finish settings (documented in samples/demo_truth.md)."""

    text_misspell: float = 0.0  # share of requested strings drawn with wrong characters
    text_missing: float = 0.0  # share of requested strings not drawn at all
    misspell_chars: int = 1  # characters changed in a misspelled string
    colour_error: float = 0.0  # share of objects drawn in another colour
    object_missing: float = 0.0  # share of requested object instances left out
    blur: float = 0.0  # Gaussian blur sigma in pixels at 256 px
    noise: float = 0.0  # grain: pixel noise standard deviation (0–255 scale)


@dataclass(frozen=True)
class Thing:
    shape: str
    colour: str  # the colour asked for (or the shape's usual one)
    count: int
    asked_colour: bool


@dataclass
class Plan:
    """What one image shows: background, each object instance drawn, each text string as drawn."""

    background: tuple[tuple[int, int, int], tuple[int, int, int]]
    objects: list[tuple[str, str, bool]] = field(default_factory=list)  # (shape, colour drawn, colour right)
    objects_asked: int = 0
    texts: list[tuple[str, str | None]] = field(default_factory=list)  # (asked, drawn or None when missing)
    flaws: Flaws = field(default_factory=Flaws)

    @property
    def objects_right(self) -> int:
        return sum(1 for _, _, right in self.objects if right)


def quoted_texts(prompt: str) -> list[str]:
    """The strings a prompt asks to be written (its quoted spans), in order."""
    out = []
    for match in _QUOTED.finditer(prompt):
        text = next(g for g in match.groups() if g)
        if text.strip():
            out.append(text.strip())
    return out


def things_named(prompt: str) -> list[Thing]:
    """Objects named by the prompt with the colour and count written just before them."""
    unquoted = _QUOTED.sub(" ", prompt)
    words = [w.lower() for w in _WORD.findall(unquoted)]
    found: list[Thing] = []
    seen: set[str] = set()
    for i, word in enumerate(words):
        key = word if word in OBJECTS else (word[:-1] if word.endswith("s") and word[:-1] in OBJECTS else None)
        if key is None or key in seen:
            continue
        seen.add(key)
        shape, colour = OBJECTS[key]
        count, asked = (2 if word != key and not word.endswith("ss") else 1), False
        for before in reversed(words[max(0, i - 3):i]):
            if before in COLOURS and not asked:
                colour, asked = before, True
            elif before in COUNTS:
                count = COUNTS[before]
                break
        found.append(Thing(shape=shape, colour=colour, count=min(count, 6), asked_colour=asked))
    # CJK prompts have no spaces: match their object words anywhere
    for key, (shape, colour) in OBJECTS.items():
        if not key.isascii() and key in unquoted and key not in seen:
            seen.add(key)
            found.append(Thing(shape=shape, colour=colour, count=1, asked_colour=False))
    return found[:5]


def scene_background(prompt: str) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    low = prompt.lower()
    for word, colours in SCENES.items():
        if word in low:
            return colours
    return DEFAULT_SCENE


def unit(*parts: object) -> float:
    """A uniform number in [0, 1) from its parts: the common random number of one decision."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def misspell(text: str, *, chars: int, key: str) -> str:
    """``text`` with ``chars`` of its letters replaced (deterministic per key); never equal to it."""
    positions = [i for i, ch in enumerate(text) if ch.isalnum()]
    if not positions:
        return text + "?"
    out = list(text)
    order = sorted(positions, key=lambda i: unit(key, "pos", i))
    for n, i in enumerate(order[:max(1, chars)]):
        ch = out[i]
        if "\u4e00" <= ch <= "\u9fff":
            pool = [c for c in _CJK_SWAPS if c != ch]
        elif ch.isdigit():
            pool = [c for c in "0123456789" if c != ch]
        else:
            pool = [c for c in _LETTERS if c != ch.upper()]
        new = pool[int(unit(key, "char", n) * len(pool))]
        out[i] = new.lower() if ch.islower() else new
    return "".join(out)


def plan_image(*, prompt: str, seed: int, flaws: Flaws) -> Plan:
    """Decide what this painter draws for (prompt, seed). Pure and deterministic."""
    plan = Plan(background=scene_background(prompt), flaws=flaws)
    palette = [c for c in COLOURS if c not in ("gray", "cadmium")]
    for thing in things_named(prompt):
        plan.objects_asked += thing.count
        for k in range(thing.count):
            if unit(prompt, seed, thing.shape, k, "missing") < flaws.object_missing:
                continue
            if unit(prompt, seed, thing.shape, k, "colour") < flaws.colour_error:
                others = [c for c in palette if COLOURS[c] != COLOURS[thing.colour]]
                plan.objects.append((thing.shape, others[int(unit(prompt, seed, thing.shape, k, "which") * len(others))],
                                     False))
            else:
                plan.objects.append((thing.shape, thing.colour, True))
    for j, text in enumerate(quoted_texts(prompt)):
        u = unit(prompt, seed, "text", j)
        if u < flaws.text_missing:
            plan.texts.append((text, None))
        elif u < flaws.text_missing + flaws.text_misspell:
            plan.texts.append((text, misspell(text, chars=flaws.misspell_chars, key=f"{prompt}|{seed}|{j}")))
        else:
            plan.texts.append((text, text))
    return plan


def image_quality(plan: Plan) -> dict[str, float | None]:
    """The latent 1–10 quality of one drawn image per default criterion (None: the criterion doesn't apply).

    prompt accuracy: share of asked elements (object instances in the right colour, strings written
    right) drawn; photorealism: lost to blur and grain; text rendering: 9 for a string written right,
    4.5 minus the changed characters for a misspelled one, 1.5 for a missing one (mean over strings).
    """
    f = plan.flaws
    text_scores = []
    for asked, drawn in plan.texts:
        if drawn is None:
            text_scores.append(1.5)
        elif drawn == asked:
            text_scores.append(9.0)
        else:
            text_scores.append(max(2.0, 4.5 - 0.5 * (f.misspell_chars - 1)))
    n_asked = plan.objects_asked + len(plan.texts)
    right = plan.objects_right + sum(1 for a, d in plan.texts if d == a)
    accuracy = 1.5 + 7.5 * (right / n_asked) if n_asked else 8.0 - 6.0 * f.object_missing
    return {
        "prompt_accuracy": accuracy - 0.15 * f.blur,
        "photorealism": 8.8 - 1.1 * f.blur - 0.07 * f.noise,
        "text_rendering": sum(text_scores) / len(text_scores) if text_scores else None,
    }


def painter_flaws(path) -> Flaws:
    """A saved painter's flaws, read from its config.json without loading it (for the simulated panel)."""
    config = json.loads((Path(path) / "painter" / "config.json").read_text())
    return Flaws(**{k: config[k] for k in Flaws.__dataclass_fields__ if k in config})

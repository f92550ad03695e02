"""The leaderboard as frozen, typed data: what ``selectors.leaderboard_compute`` builds and everything
else (the page, the CSV writers, the charts, the ``leaderboard`` command, snapshots) reads.

Plain Python only (no numpy, no Django), so a board can be pickled into the cache, written to
JSON and read back: ``board_to_dict`` / ``board_from_dict`` round-trip exactly (a test checks it).
Lists indexed by model follow ``Board.models``; dicts keyed by criterion use ``CriterionRef.key``.
A field added later needs a default, so boards stored before it still load.
"""

from __future__ import annotations

import dataclasses
import functools
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Union, get_args, get_origin, get_type_hints

BOARD_FORMAT = 2  # 2: ranks from differences (None where too few), estimands; bump when a field changes meaning (not when one is added with a default)


@dataclass(frozen=True)
class CriterionRef:
    id: int
    key: str
    name: str


@dataclass(frozen=True)
class ModelSettings:
    """The settings a model rendered with, as the page's "Generation settings" table shows them."""

    steps: int | None = None
    guidance: float | None = None
    size: str = ""
    dtype: str = ""
    quantization: str = ""
    offload: str = ""
    offload_used: str = ""  # what the worker actually used (it may fall back)
    pipeline: str = ""
    source: str = ""


@dataclass(frozen=True)
class CardFit:
    """One card class of a model's VRAM profile: the fastest setting that rendered under the card's cap."""

    card_gb: float
    setting: str = ""  # "": nothing rendered under this card's cap (does not fit)
    seconds: float | None = None  # per image, under the cap
    peak_allocated_gib: float | None = None
    peak_reserved_gib: float | None = None
    predicted: bool = False  # from the uncapped peaks (profile_vram --no-verify), not rendered under the cap


@dataclass(frozen=True)
class VramFit:
    """What the model's latest finished VRAM profile says: the smallest card it renders on ("Min VRAM",
    as the reference benchmark calls it), with which setting, and every card profiled."""

    profile_id: int
    gpu_name: str  # the GPU the profile ran on (cards emulated under caps on it)
    profiled_at: str  # ISO 8601, seconds
    min_card_gb: float | None = None  # None: it fits on none of the cards profiled
    min_setting: str = ""
    cards: tuple[CardFit, ...] = ()


@dataclass(frozen=True)
class ModelFacts:
    """One model of the board: who it is, how fast it rendered, its peak VRAM and settings."""

    id: int
    name: str
    slug: str
    imported: bool = False  # every image was made elsewhere (import_ratings, import_images): no speed or VRAM
    speed_median: float | None = None  # seconds per image
    speed_mean: float | None = None
    n_images: int = 0
    gpu: str = ""
    mode: str = ""  # fast / plain / mixed ("" for a model outside the sweep)
    vram_allocated_gib: float | None = None
    vram_reserved_gib: float | None = None
    n_imported: int = 0  # images of this model made elsewhere
    speed_supplied: float | None = None  # median seconds supplied with imported images (never measured here)
    settings: ModelSettings | None = None  # None: not a model of the sweep (e.g. a fallback's images)
    vram_fit: VramFit | None = None  # None: not profiled (profile_vram, or the model page's button)
    usd_per_hour: float | None = None  # the price of the GPU its images were rendered on (admin: GPU prices)
    usd_per_1000_images: float | None = None  # speed_median x 1000 / 3600 x usd_per_hour
    cost_note: str = ""  # why there is no cost (no price for the GPU, CPU, several GPUs, imported)

    def min_vram_setting(self) -> str:
        """The setting of "Min VRAM", or why there is none: "not profiled", "does not fit", "imported"."""
        if self.vram_fit is None:
            return "imported" if self.imported else "not profiled"
        return self.vram_fit.min_setting if self.vram_fit.min_card_gb is not None else "does not fit"


@dataclass(frozen=True)
class ScoreCell:
    """One model on one criterion (or one category of prompts): mean with its 95% CI, n and rank."""

    mean: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    n_prompts: int
    rank: int | None  # None: too few ratings (or no interval for the estimand): no rank
    norm_mean: float | None = None  # rater-normalized score (None where not computed)
    norm_ci_low: float | None = None
    norm_ci_high: float | None = None
    too_few: bool = False  # below the stated minimum: mean and n only
    n_raters: int = 0
    better_than: tuple[int, ...] = ()  # model indices this one is credibly better than (rater-adjusted)


@dataclass(frozen=True)
class Difference:
    """Models a − b (indices, a < b) on one criterion: rater-adjusted difference with its 95% interval and the
    verdict ("a", "b", "unclear", or "too few"), and the plain difference of means beside it."""

    a: int
    b: int
    difference: float | None
    ci_low: float | None
    ci_high: float | None
    verdict: str
    plain_difference: float | None = None
    plain_ci_low: float | None = None
    plain_ci_high: float | None = None

    def flipped(self) -> Difference:
        """The same comparison read as b − a."""
        neg = lambda x: None if x is None else -x  # noqa: E731
        return Difference(a=self.b, b=self.a, difference=neg(self.difference), ci_low=neg(self.ci_high),
                          ci_high=neg(self.ci_low), verdict={"a": "b", "b": "a"}.get(self.verdict, self.verdict),
                          plain_difference=neg(self.plain_difference), plain_ci_low=neg(self.plain_ci_high),
                          plain_ci_high=neg(self.plain_ci_low))


@dataclass(frozen=True)
class CriterionNotes:
    """What the page says about one criterion's intervals."""

    raters_estimable: bool = True  # False: 1–2 raters and the new-raters estimand: no interval at all
    df_min: float | None = None  # smallest Satterthwaite d.f. of a shown interval
    prompts_eff: float | None = None
    raters_eff: float | None = None
    components: Mapping[str, float] = field(default_factory=dict)  # variance components (1–10 scale)


@dataclass(frozen=True)
class EstimandResults:
    """Scores, differences and notes under one estimand (``ratings.results.crossed.ESTIMANDS``)."""

    scores: Mapping[str, tuple[ScoreCell, ...]] = field(default_factory=dict)
    differences: Mapping[str, tuple[Difference, ...]] = field(default_factory=dict)
    notes: Mapping[str, CriterionNotes] = field(default_factory=dict)


@dataclass(frozen=True)
class Agreement:
    """Krippendorff's alpha (interval) of one criterion and how many images it rests on."""

    alpha: float | None
    n_ratings: int
    n_images: int
    n_multi: int  # images rated twice or more


@dataclass(frozen=True)
class PairResult:
    """Bradley–Terry strengths of one criterion from the side-by-side answers, per model (board order)."""

    strength: tuple[float | None, ...]
    ci_low: tuple[float | None, ...]
    ci_high: tuple[float | None, ...]
    rank: tuple[int, ...]
    n_pairs: tuple[int, ...]
    win_rate: tuple[tuple[float | None, ...], ...]  # [i][j]: share of i-vs-j pairs i won; None if never paired
    games: tuple[tuple[int, ...], ...]
    ties: int
    n: int


@dataclass(frozen=True)
class PositionBias:
    left_win_rate: float | None
    ci_low: float | None
    ci_high: float | None
    mean_gap: float | None
    gap_ci_low: float | None
    gap_ci_high: float | None
    n_pairs: int
    p_value: float | None


@dataclass(frozen=True)
class Pairs:
    n_pairs: int = 0
    by_criterion: Mapping[str, PairResult] = field(default_factory=dict)
    position_bias: PositionBias | None = None


@dataclass(frozen=True)
class RaterRow:
    """One panelist's quality: gold (attention check) pass rate and agreement with the others."""

    id: int
    pseudonym: str
    excluded: bool
    simulated: bool
    n_ratings: int
    gold_n: int
    gold_pass_rate: float | None
    flagged: bool
    consensus_r: float | None


@dataclass(frozen=True)
class RaterSummary:
    n_panelists: int = 0
    n_excluded: int = 0
    n_simulated: int = 0
    n_flagged: int = 0
    median_consensus_r: float | None = None
    lowest: tuple[RaterRow, ...] = ()  # the five lowest consensus r
    gold_n: int = 0


@dataclass(frozen=True)
class OcrCorrelation:
    spearman: float | None
    n_images: int


@dataclass(frozen=True)
class OcrResults:
    """Automatic text accuracy per model (board order) of the images whose prompt asks for text."""

    n_images: int = 0
    n_checked: int = 0
    n_failed: int = 0
    cells: tuple[ScoreCell | None, ...] = ()
    all_words: tuple[float | None, ...] = ()
    correlation: OcrCorrelation | None = None

    def cell(self, i: int) -> ScoreCell | None:
        return self.cells[i] if i < len(self.cells) else None

    def all_words_of(self, i: int) -> float | None:
        return self.all_words[i] if i < len(self.all_words) else None


@dataclass(frozen=True)
class Board:
    """Everything the leaderboard shows for one study, computed at ``computed_at``."""

    study_id: int
    study_name: str
    computed_at: str  # ISO 8601, seconds
    criteria: tuple[CriterionRef, ...]
    models: tuple[ModelFacts, ...]
    scores: Mapping[str, tuple[ScoreCell, ...]]  # criterion key -> one cell per model
    by_category: Mapping[str, Mapping[str, tuple[ScoreCell, ...]]]  # category -> criterion key -> cells
    agreement: Mapping[str, Agreement]
    pairs: Pairs
    raters: RaterSummary
    ocr: OcrResults
    n_ratings_total: int
    n_ratings_used: int
    n_ratings_excluded: int
    n_ratings_gold: int
    n_ratings_simulated: int
    n_prompts: int
    n_resamples: int
    estimand: str = "raters_random"  # what ``scores`` and ``differences`` are about
    differences: Mapping[str, tuple[Difference, ...]] = field(default_factory=dict)  # criterion key -> pairs
    notes: Mapping[str, CriterionNotes] = field(default_factory=dict)
    by_estimand: Mapping[str, EstimandResults] = field(default_factory=dict)  # both estimands, computed

    def order(self) -> list[int]:
        """Model indices best first by the first criterion (rank, then mean); models without ratings or rank last."""

        def key(i: int) -> tuple:
            if not self.criteria:
                return (0, 0, 0, 0, self.models[i].name)
            cell = self.scores[self.criteria[0].key][i]
            return (cell.mean is None, cell.rank is None, cell.rank or 0, -(cell.mean or 0), self.models[i].name)

        return sorted(range(len(self.models)), key=key)

    def difference(self, key: str, i: int, j: int) -> Difference:
        """Model i − model j on criterion ``key`` (either order of the stored pair)."""
        for d in self.differences.get(key, ()):
            if (d.a, d.b) == (i, j):
                return d
            if (d.a, d.b) == (j, i):
                return d.flipped()
        raise KeyError((key, i, j))

    def for_estimand(self, estimand: str) -> Board:
        """This board with its scores, differences and notes under another estimand (unknown: unchanged)."""
        part = self.by_estimand.get(estimand)
        if part is None:
            return self
        return dataclasses.replace(self, estimand=estimand, scores=part.scores, differences=part.differences,
                                   notes=part.notes)


# --------------------------------------------------------------------------- JSON


def board_to_dict(board: Board) -> dict[str, Any]:
    """A JSON-ready dict (tuples become lists when dumped); ``board_from_dict`` reads it back."""
    return {"format": BOARD_FORMAT, **dataclasses.asdict(board)}


def board_from_dict(data: Mapping[str, Any]) -> Board:
    """The board ``board_to_dict`` wrote (after a trip through ``json``), equal to the original."""
    fmt = data.get("format", BOARD_FORMAT)
    if fmt != BOARD_FORMAT:
        raise ValueError(f"board format {fmt} is not {BOARD_FORMAT}")
    return _decode(Board, data)


@functools.cache
def _field_hints(tp: Any) -> tuple[tuple[str, Any], ...]:
    """(field name, resolved type) of a dataclass, once per class (get_type_hints is slow: half a page's time)."""
    hints = get_type_hints(tp)
    return tuple((f.name, hints[f.name]) for f in dataclasses.fields(tp))


def _decode(tp: Any, value: Any) -> Any:
    """Build ``tp`` (a dataclass, tuple[X, ...], Mapping[str, X], X | None or a scalar) from JSON data."""
    if value is None:
        return None
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        (inner,) = [a for a in get_args(tp) if a is not type(None)]
        return _decode(inner, value)
    if origin is tuple:
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(args[0], v) for v in value)
        return tuple(_decode(a, v) for a, v in zip(args, value, strict=True))
    if origin in (dict, Mapping):
        _, value_type = get_args(tp)
        return {k: _decode(value_type, v) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        make: Any = tp
        return make(**{name: _decode(hint, value[name]) for name, hint in _field_hints(make) if name in value})
    if tp is float:
        return float(value)
    return value

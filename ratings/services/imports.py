"""Rating import: ratings collected elsewhere (a spreadsheet, another tool, paper forms) become a study.

One row per score: ``rater, model, prompt, criterion, score`` (an integer 1–10), optionally
``category``, ``pair`` (an id shared by the rows of one side-by-side answer) with ``side``
(left/right), and ``seed`` (tells several images of one prompt and model apart). ``panelist`` is
read as ``rater`` and ``gold``/``excluded``/``simulated`` are honoured, so a study's own
``export_ratings`` CSV imports as it is. Other columns are ignored.

The study gets a suite of its prompts and a sweep of *imported* generations: one placeholder per
(prompt, model, seed) with ``origin=imported`` and no image file, so no page serves an image, no
worker renders it and no panelist is given it (items are made only from images). Its ratings,
assignments (one per rater and image, one per pair) and panelists are the rows a native study
has, so the leaderboard, its differences and the exports read it the same way.

The whole file is checked first; any problem raises RatingFileInvalid with ``PATH:LINE: message``
lines and nothing is written. Writes are bulk inserts in one transaction.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import PurePath

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from evalsite.csv_safe import csv_cell_read
from evalsite.errors import ServiceError
from generation.models import Generation, GenerationStatus, ImageModel, Origin, Sweep, SweepStatus
from generation.services.imports import image_model_create_imported, image_model_for_import
from prompts.importers.base import Problem
from prompts.importers.delimited import delimited_records
from prompts.models import Prompt, PromptSuite, text_digest
from prompts.services import MAX_LISTED_PROBLEMS, prompt_file_check

from ..models import (
    Assignment,
    AssignmentKind,
    AssignmentStatus,
    Criterion,
    Panelist,
    Rating,
    Side,
    Study,
    StudyMode,
    StudyStatus,
)
from ..signals import results_inputs_changed_on_commit
from .panelists import PSEUDONYM_MAX
from .studies import DEFAULT_CRITERIA

REQUIRED_COLUMNS = ("rater", "model", "prompt", "criterion", "score")
OPTIONAL_COLUMNS = ("category", "pair", "side", "seed", "gold", "excluded", "simulated")
COLUMN_ALIASES = {"panelist": "rater"}  # the export_ratings CSV names the rater "panelist"
FORMATS = ("csv", "tsv")
IMPORTED_QUESTION = "Imported ratings: the question the raters were asked is not recorded."
_KEY = re.compile(r"^[a-z0-9_-]+$")
_TRUE = {"1", "true", "yes", "y"}
_FALSE = {"", "0", "false", "no", "n"}
_LIMITS = {"model": 200, "category": 100, "pair": 200}
BATCH = 5000


class RatingFileInvalid(ServiceError):
    """The file can't be imported; nothing was written."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__(f"{len(problems)} problem(s)", messages=[f"line {p.line}: {p.message}" for p in problems])

    def lines(self, path: str) -> list[str]:
        """``PATH:LINE: message`` per problem (at most MAX_LISTED_PROBLEMS, then a count)."""
        shown = [p.format(path) for p in self.problems[:MAX_LISTED_PROBLEMS]]
        if len(self.problems) > len(shown):
            shown.append(f"{path}:0: … and {len(self.problems) - len(shown)} more problems")
        return shown


@dataclass(frozen=True)
class RatingRow:
    line: int
    rater: str
    model: str
    prompt: str
    criterion: str
    score: int
    category: str
    pair: str
    side: str  # single | left | right
    seed: int
    excluded: bool
    simulated: bool


@dataclass
class RatingImportResult:
    study: Study
    n_ratings: int
    n_models: int
    n_models_created: int
    n_prompts: int
    n_raters: int
    n_pairs: int
    n_gold_skipped: int
    fmt: str
    criteria: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- reading


def ratings_file_read(*, path) -> tuple[bytes, int]:
    """At most one byte over the size limit of a file, and its real size (OSError when unreadable)."""
    with open(path, "rb") as fh:
        data = fh.read(settings.RATINGS_FILE_MAX_BYTES + 1)
        fh.seek(0, 2)
        return data, fh.tell()


def ratings_format_detect(*, name: str, text: str) -> str:
    """TSV by extension, or when the header has tabs and no commas; CSV otherwise."""
    suffix = PurePath(name).suffix.lower()
    if suffix in (".tsv", ".tab"):
        return "tsv"
    if suffix == ".csv":
        return "csv"
    header = text.split("\n", 1)[0]
    return "tsv" if "\t" in header and "," not in header else "csv"


def _flag(value: str, *, column: str, line: int, problems: list[Problem]) -> bool:
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v not in _FALSE:
        problems.append(Problem(line, f"{column} is {value!r}; use 1 or 0"))
    return False


def _header(fields: list[str], line: int) -> tuple[dict[str, int] | None, list[Problem]]:
    """Column name -> position (aliases resolved), or the header's problems."""
    columns: dict[str, int] = {}
    for i, raw in enumerate(fields):
        name = raw.strip().lstrip("\ufeff").lower()
        name = COLUMN_ALIASES.get(name, name)
        if name in columns:
            return None, [Problem(line, f"column {name!r} appears twice in the header")]
        columns[name] = i
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        found = ", ".join(repr(f.strip()) for f in fields)
        return None, [Problem(line, f"missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                                    f"(the header has {found}); required: {', '.join(REQUIRED_COLUMNS)}")]
    return columns, []


def _row(fields: list[str], *, line: int, columns: dict[str, int], problems: list[Problem]) -> RatingRow | None:
    """One checked row, or None (its problems appended); gold rows come back as None without a problem."""
    def get(name: str) -> str:
        i = columns.get(name)
        return csv_cell_read(fields[i].strip()) if i is not None else ""  # '=… as the app's exports write it

    values = {name: get(name) for name in REQUIRED_COLUMNS}
    empty = [name for name, value in values.items() if not value]
    n_before = len(problems)
    if empty:
        problems.append(Problem(line, f"empty {', '.join(empty)}"))
    score = None
    if values["score"]:
        text = values["score"]
        score = int(text) if text.isdigit() else None
        if score is None or not 1 <= score <= 10:
            problems.append(Problem(line, f"score {text!r} is not a whole number from 1 to 10"))
    key = values["criterion"].lower()
    if key and (not _KEY.match(key) or len(key) > 50):
        problems.append(Problem(line, f"criterion {values['criterion']!r} is not a key: use letters, digits, "
                                      "'_' and '-' (at most 50), e.g. prompt_accuracy"))
    if len(values["rater"]) > PSEUDONYM_MAX:
        problems.append(Problem(line, f"rater is {len(values['rater'])} characters, over the {PSEUDONYM_MAX} limit"))
    if len(values["prompt"]) > settings.PROMPT_MAX_CHARS:
        problems.append(Problem(line, f"prompt is {len(values['prompt']):,} characters, over the "
                                      f"{settings.PROMPT_MAX_CHARS:,} limit"))
    category, pair = get("category"), get("pair")
    for name, value in (("model", values["model"]), ("category", category), ("pair", pair)):
        if len(value) > _LIMITS[name]:
            problems.append(Problem(line, f"{name} is {len(value)} characters, over the {_LIMITS[name]} limit"))
    side = get("side").lower()
    if side not in ("", Side.SINGLE, Side.LEFT, Side.RIGHT):
        problems.append(Problem(line, f"unknown side {get('side')!r}; use left or right (or leave it empty)"))
    elif pair and side in ("", Side.SINGLE):
        problems.append(Problem(line, f"pair {pair!r} needs a side: left or right"))
    elif not pair and side in (Side.LEFT, Side.RIGHT):
        problems.append(Problem(line, f"side {side} without a pair id (the pair column)"))
    seed_text = get("seed")
    seed = 0
    if seed_text:
        if seed_text.isdigit() and int(seed_text) < 2**63:
            seed = int(seed_text)
        else:
            problems.append(Problem(line, f"seed {seed_text!r} is not a whole number from 0 to 2^63-1"))
    gold = _flag(get("gold"), column="gold", line=line, problems=problems)
    excluded = _flag(get("excluded"), column="excluded", line=line, problems=problems)
    simulated = _flag(get("simulated"), column="simulated", line=line, problems=problems)
    if len(problems) > n_before or gold or score is None:  # no score is a problem already appended
        return None
    return RatingRow(line=line, rater=values["rater"], model=values["model"], prompt=values["prompt"],
                     criterion=key, score=score, category=category, pair=pair,
                     side=side if pair else Side.SINGLE, seed=seed, excluded=excluded, simulated=simulated)


def rating_rows_parse(*, text: str, fmt: str) -> tuple[list[RatingRow], int, list[Problem]]:
    """Checked rows, the number of gold (attention-check) rows left out, and every problem found."""
    records = delimited_records(text, delimiter="\t" if fmt == "tsv" else ",")  # read as the prompt importer does
    if not records:
        return [], 0, [Problem(0, "file is empty")]
    first_line, header = records[0]
    if isinstance(header, Problem):
        return [], 0, [header]
    columns, problems = _header(header, first_line)
    if columns is None:
        return [], 0, problems
    if len(records) == 1:
        return [], 0, [Problem(0, "file has a header but no ratings")]
    if len(records) - 1 > settings.RATINGS_FILE_MAX_ROWS:
        return [], 0, [Problem(0, f"{len(records) - 1:,} rows, over the limit of {settings.RATINGS_FILE_MAX_ROWS:,}; "
                                  "split the file")]
    rows: list[RatingRow] = []
    broken_pairs: set[str] = set()
    gold = 0
    width = len(header)
    kind = fmt.upper()
    for line, fields in records[1:]:
        if isinstance(fields, Problem):
            problems.append(fields)
            continue
        if fields == []:
            problems.append(Problem(line, "blank line: every line must hold a rating (remove it)"))
            continue
        if len(fields) != width:
            problems.append(Problem(line, f"expected {width} {kind} fields, found {len(fields)}"))
            continue
        n_before = len(problems)
        row = _row(fields, line=line, columns=columns, problems=problems)
        if row is not None:
            rows.append(row)
        elif len(problems) == n_before:
            gold += 1
        elif "pair" in columns and fields[columns["pair"]].strip():  # its pair is reported through this row
            broken_pairs.add(fields[columns["pair"]].strip())
    problems.extend(_consistency_problems([r for r in rows if not r.pair or r.pair not in broken_pairs]))
    problems.sort(key=lambda p: p.line)
    if not rows and not problems:
        problems.append(Problem(0, "file holds no ratings (only attention-check rows)"))
    return rows, gold, problems


def _consistency_problems(rows: list[RatingRow]) -> list[Problem]:
    """Across rows: duplicates, one category per prompt, and pairs of exactly two sides."""
    problems: list[Problem] = []
    first: dict[tuple, int] = {}
    category_of: dict[str, tuple[str, int]] = {}
    pairs: dict[str, list[RatingRow]] = defaultdict(list)
    for r in rows:
        if r.pair:
            pairs[r.pair].append(r)
        key = (r.rater, r.model, r.prompt, r.seed, r.criterion, r.pair)
        if key in first:
            problems.append(Problem(r.line, f"duplicate of line {first[key]} (same rater, model, prompt, "
                                            "criterion and pair)"))
            continue
        first[key] = r.line
        if r.category:
            seen = category_of.setdefault(r.prompt, (r.category, r.line))
            if seen[0] != r.category:
                problems.append(Problem(r.line, f"category {r.category!r}, but line {seen[1]} gives this prompt "
                                                f"category {seen[0]!r}"))
    for pair, members in pairs.items():
        problems.extend(_pair_problems(pair, members))
    return problems


def _pair_problems(pair: str, members: list[RatingRow]) -> list[Problem]:
    """A pair id: one rater, one prompt, one model per side, two different sides, both sides per criterion."""
    head = members[0]
    for r in members[1:]:
        if r.rater != head.rater:
            return [Problem(r.line, f"pair {pair!r} has rows of two raters ({head.rater!r} on line {head.line})")]
        if r.prompt != head.prompt:
            return [Problem(r.line, f"pair {pair!r} has rows of two prompts (another on line {head.line})")]
    by_side: dict[str, list[RatingRow]] = defaultdict(list)
    for r in members:
        by_side[r.side].append(r)
    if len(by_side) != 2:
        only = next(iter(by_side))
        lines = ", ".join(str(r.line) for r in members)
        return [Problem(head.line, f"pair {pair!r} has only a {only} side (line{'s' if len(members) > 1 else ''} "
                                   f"{lines}); a pair needs exactly two sides, left and right")]
    problems = []
    models = {}
    for side, rows in by_side.items():
        models[side] = rows[0].model
        for r in rows[1:]:
            if r.model != rows[0].model:
                problems.append(Problem(r.line, f"pair {pair!r}: the {side} side is {rows[0].model!r} on line "
                                                f"{rows[0].line} and {r.model!r} here"))
    if problems:
        return problems
    if models[Side.LEFT] == models[Side.RIGHT]:
        return [Problem(head.line, f"pair {pair!r} compares {models[Side.LEFT]!r} with itself")]
    crits = {side: {r.criterion: r.line for r in rows} for side, rows in by_side.items()}
    for side, other in ((Side.LEFT, Side.RIGHT), (Side.RIGHT, Side.LEFT)):
        for key, line in crits[side].items():
            if key not in crits[other]:
                problems.append(Problem(line, f"pair {pair!r} has no {other} side for criterion {key}"))
    return problems


# --------------------------------------------------------------------------- writing


def _rows_insert(model, rows: list[dict], *, with_ids: bool = False) -> list[int]:
    """Insert plain rows (field name -> value; other fields take their defaults); returns ids when asked.

    A default is computed once, except a unique one (Assignment.ref), computed per row.

    On PostgreSQL: ids drawn from the table's sequence and one COPY (a 100,000-rating file is mostly
    this insert, and building model instances for bulk_create costs several times the database's
    work); elsewhere bulk_create.
    """
    if not rows:
        return []
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    defaults = {f.attname: (None if f.null and not f.has_default() else f.get_default()) for f in fields}
    per_row = {f.attname: f for f in fields if f.unique and callable(f.default)}  # e.g. Assignment.ref
    for name in per_row:
        defaults.pop(name)
    for f in fields:
        if getattr(f, "auto_now_add", False) or getattr(f, "auto_now", False):
            defaults[f.attname] = timezone.now()
    if connection.vendor != "postgresql":
        objs = model.objects.bulk_create([model(**{**defaults, **r}) for r in rows], batch_size=BATCH)
        return [o.pk for o in objs] if with_ids else []
    table = model._meta.db_table
    names = [f.attname for f in fields]
    with connection.cursor() as cursor:
        ids: list[int] = []
        if with_ids:
            cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                           [table, len(rows)])
            ids = [i for (i,) in cursor.fetchall()]
            names = ["id", *names]
        columns = ", ".join(connection.ops.quote_name(n) for n in names)
        copy_sql = f"COPY {connection.ops.quote_name(table)} ({columns}) FROM STDIN"
        with connection.wrap_database_errors, cursor.cursor.copy(copy_sql) as copy:  # errors as Django's
            for i, r in enumerate(rows):
                values = [r[f.attname] if f.attname in r else
                          per_row[f.attname].get_default() if f.attname in per_row else defaults[f.attname]
                          for f in fields]
                copy.write_row([ids[i], *values] if with_ids else values)
    return ids


def _criteria_specs(rows: list[RatingRow]) -> list[dict]:
    """Known keys keep their name and question (in the usual order); a new key is its own name.

    Every imported criterion applies to all prompts: the file says which prompts were rated.
    """
    seen = list(dict.fromkeys(r.criterion for r in rows))
    defaults = {c["key"]: c for c in DEFAULT_CRITERIA}
    ordered = [k for k in defaults if k in seen] + [k for k in seen if k not in defaults]
    return [{"key": k, "name": defaults[k]["name"] if k in defaults else k,
             "question": defaults[k]["question"] if k in defaults else IMPORTED_QUESTION} for k in ordered]


def _models_for(names: list[str]) -> tuple[dict[str, ImageModel], int]:
    """Registered models by name (generation's one matching rule); the others created as imported (never rendered)."""
    found: dict[str, ImageModel] = {}
    created = 0
    for name in names:
        model = image_model_for_import(name=name)
        if model is None:
            model = image_model_create_imported(name=name, width=1024, height=1024,
                                        note="Created by import_ratings: rated elsewhere; never rendered here.")
            created += 1
        found[name] = model
    return found, created


def _suite_for(*, study_name: str, filename: str, created_by) -> PromptSuite:
    base = f"imported ratings: {study_name}"[:190]
    for i in range(1, 1000):
        name = base if i == 1 else f"{base} ({i})"
        try:
            with transaction.atomic():
                return PromptSuite.objects.create(
                    name=name, source_filename=filename[:255], source_format="ratings", created_by=created_by,
                    description="Prompts of ratings imported from elsewhere (import_ratings); no images.")
        except IntegrityError:
            continue
    raise RatingFileInvalid([Problem(0, f"no free suite name for study {study_name!r}")])


def ratings_import(
    *,
    path_or_name: str,
    data: bytes,
    study_name: str,
    fmt: str = "auto",
    size: int | None = None,
    created_by=None,
) -> RatingImportResult:
    """Check a whole ratings file, then create its study (closed, ``imported_from`` set) in one transaction.

    Raises RatingFileInvalid with every problem found and writes nothing when there is any.
    """
    study_name = (study_name or "").strip()
    request_problems = []
    if not study_name:
        request_problems.append(Problem(0, "study name is empty"))
    elif (name_max := Study._meta.get_field("name").max_length) is not None and len(study_name) > name_max:
        request_problems.append(Problem(0, f"study name is longer than {name_max} characters"))
    if fmt != "auto" and fmt not in FORMATS:
        request_problems.append(Problem(0, f"unknown format {fmt!r}; choose auto, csv or tsv"))
    if request_problems:
        raise RatingFileInvalid(request_problems)
    file_problems = prompt_file_check(data=data, size=size, max_bytes=settings.RATINGS_FILE_MAX_BYTES,
                                      kind="ratings file (CSV or TSV)")
    if file_problems:
        raise RatingFileInvalid(file_problems)
    text = data.decode("utf-8-sig")
    if fmt == "auto":
        fmt = ratings_format_detect(name=path_or_name, text=text)
    rows, gold, problems = rating_rows_parse(text=text, fmt=fmt)
    if problems:
        raise RatingFileInvalid(problems)
    filename = PurePath(path_or_name).name
    with transaction.atomic():
        result = _study_write(rows=rows, gold=gold, study_name=study_name, filename=filename, fmt=fmt,
                              created_by=created_by)
        results_inputs_changed_on_commit(study_id=result.study.pk, reason="import", n_ratings=result.n_ratings)
    return result


def _study_write(*, rows: list[RatingRow], gold: int, study_name: str, filename: str, fmt: str,
                 created_by) -> RatingImportResult:
    now = timezone.now()
    model_names = list(dict.fromkeys(r.model for r in rows))
    models, n_created = _models_for(model_names)
    suite = _suite_for(study_name=study_name, filename=filename, created_by=created_by)
    prompt_first: dict[str, RatingRow] = {}
    category: dict[str, str] = {}
    for r in rows:
        prompt_first.setdefault(r.prompt, r)
        if r.category:
            category.setdefault(r.prompt, r.category)
    prompts = Prompt.objects.bulk_create([
        Prompt(suite=suite, position=i, source_line=r.line, text=text, text_sha256=text_digest(text),
               category=category.get(text, ""))
        for i, (text, r) in enumerate(prompt_first.items(), start=1)
    ], batch_size=BATCH)
    prompt_of = {p.text: p for p in prompts}
    seeds = sorted({r.seed for r in rows})
    sweep = Sweep.objects.create(name=f"imported ratings: {study_name}"[:200], suite=suite, seeds=seeds,
                                 status=SweepStatus.DONE, started_at=now, finished_at=now, created_by=created_by)
    sweep.image_models.set([models[n] for n in model_names])
    gen_keys = list(dict.fromkeys((r.prompt, r.model, r.seed) for r in rows))
    gens = Generation.objects.bulk_create([
        Generation(sweep=sweep, prompt=prompt_of[p], model=models[m], seed=s, status=GenerationStatus.DONE,
                   origin=Origin.IMPORTED, finished_at=now, settings_snapshot={"imported_from": filename})
        for p, m, s in gen_keys
    ], batch_size=BATCH)
    gen_of = {k: g.pk for k, g in zip(gen_keys, gens, strict=True)}

    has_single = any(not r.pair for r in rows)
    has_pair = any(r.pair for r in rows)
    mode = StudyMode.BOTH if has_single and has_pair else (StudyMode.PAIR if has_pair else StudyMode.SINGLE)
    per_image: dict[int, set[str]] = defaultdict(set)
    for r in rows:
        per_image[gen_of[(r.prompt, r.model, r.seed)]].add(r.rater)
    study = Study.objects.create(
        name=study_name, sweep=sweep, mode=mode, status=StudyStatus.CLOSED, gold_enabled=False,
        ratings_per_item=max((len(v) for v in per_image.values()), default=1),
        imported_from=filename[:255], created_by=created_by,
        instructions=f"Ratings imported from {filename} on {now:%Y-%m-%d %H:%M} UTC; no images.",
    )
    specs = _criteria_specs(rows)
    criteria = Criterion.objects.bulk_create(
        Criterion(study=study, key=c["key"], name=c["name"], question=c["question"], order=i)
        for i, c in enumerate(specs)
    )
    crit_of = {c.key: c.pk for c in criteria}

    raters = sorted({r.rater for r in rows})  # panelists in name order: ids follow names, whatever the row order
    excluded = {r.rater for r in rows if r.excluded}
    simulated = {r.rater for r in rows if r.simulated}
    panelists = Panelist.objects.bulk_create([
        Panelist(study=study, pseudonym=name, is_simulated=name in simulated, excluded=name in excluded,
                 excluded_reason="excluded in the imported file" if name in excluded else "")
        for name in raters
    ], batch_size=BATCH)
    panelist_of = {p.pseudonym: p.pk for p in panelists}

    # one assignment per side-by-side answer (pair id), one per rater and image for single ratings
    groups: dict[tuple, list[RatingRow]] = defaultdict(list)
    for r in rows:
        groups[("pair", r.pair) if r.pair else ("single", r.rater, gen_of[(r.prompt, r.model, r.seed)])].append(r)
    assignments = []
    for key, members in groups.items():
        head = members[0]
        if key[0] == "pair":
            side_gen = {r.side: gen_of[(r.prompt, r.model, r.seed)] for r in members}
            left, right, kind = side_gen[Side.LEFT], side_gen[Side.RIGHT], AssignmentKind.PAIR
        else:
            left, right, kind = key[2], None, AssignmentKind.SINGLE
        assignments.append({
            "study_id": study.pk, "panelist_id": panelist_of[head.rater], "kind": kind, "left_id": left,
            "right_id": right, "shown_prompt_id": prompt_of[head.prompt].pk, "status": AssignmentStatus.DONE,
            "expires_at": now, "answered_at": now, "created_at": now})
    assignment_ids = _rows_insert(Assignment, assignments, with_ids=True)

    ratings = []
    for aid, members in zip(assignment_ids, groups.values(), strict=True):
        for r in members:
            ratings.append({
                "assignment_id": aid, "generation_id": gen_of[(r.prompt, r.model, r.seed)],
                "criterion_id": crit_of[r.criterion], "panelist_id": panelist_of[r.rater], "study_id": study.pk,
                "score": r.score, "side": r.side, "is_simulated": r.rater in simulated, "created_at": now})
    _rows_insert(Rating, ratings)
    return RatingImportResult(
        study=study, n_ratings=len(ratings), n_models=len(model_names), n_models_created=n_created,
        n_prompts=len(prompts), n_raters=len(raters), n_pairs=sum(1 for k in groups if k[0] == "pair"),
        n_gold_skipped=gold, fmt=fmt, criteria=[c["key"] for c in specs],
    )


__all__ = [
    "RatingFileInvalid",
    "RatingImportResult",
    "RatingRow",
    "rating_rows_parse",
    "ratings_file_read",
    "ratings_format_detect",
    "ratings_import",
]

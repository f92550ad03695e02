"""Writes for prompt suites: the one import path behind ``import_prompts`` and /suites/upload/."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import PurePath

from django.conf import settings
from django.db import IntegrityError, transaction

from evalsite.errors import ServiceError
from evalsite.text_safety import hidden_controls

from .importers import FORMATS, Problem, Row, format_detect, parse
from .models import Prompt, PromptSuite, text_digest
from .text_features import expected_text_guess, language_guess

# Longest value each column holds (PostgreSQL enforces these; SQLite would not).
_FIELD_LIMITS = {"category": 100, "challenge": 200, "expected_text": 1000, "language": 16}
_MAGIC = [
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (an .xlsx workbook? export it as CSV)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\xd0\xcf\x11\xe0", "an old Office document (.xls? export it as CSV)"),
    (b"RIFF", "a RIFF media file"),
]
MAX_LISTED_PROBLEMS = 200


class PromptFileInvalid(ServiceError):
    """The file (or the request) can't be imported; nothing was written."""

    def __init__(self, problems: list[Problem], *, warnings: Iterable[Problem] = ()):
        self.problems = problems
        self.warnings = list(warnings)
        super().__init__(f"{len(problems)} problem(s)", messages=[f"line {p.line}: {p.message}" for p in problems])

    def lines(self, path: str) -> list[str]:
        """``PATH:LINE: message`` per problem (at most MAX_LISTED_PROBLEMS, then a count)."""
        shown = [p.format(path) for p in self.problems[:MAX_LISTED_PROBLEMS]]
        hidden = len(self.problems) - len(shown)
        if hidden:
            shown.append(f"{path}:0: … and {hidden} more problems")
        return shown


@dataclass
class ImportResult:
    suite: PromptSuite
    count: int
    fmt: str
    warnings: list[Problem] = field(default_factory=list)
    replaced: bool = False
    unchanged: bool = False


def _size(n: int) -> str:
    mb = 1024 * 1024
    return f"{n / mb:.1f} MB ({n:,} bytes)" if n >= mb else f"{n:,} bytes"


def prompt_file_check(*, data: bytes, size: int | None = None, max_bytes: int | None = None,
                      kind: str = "prompt file") -> list[Problem]:
    """Whole-file problems, before any parsing: size, emptiness, binary, encoding.

    Also the first check of other text uploads (ratings.services.imports): ``max_bytes`` and
    ``kind`` (what the file should have been) default to a prompt file's.
    """
    limit = settings.PROMPT_FILE_MAX_BYTES if max_bytes is None else max_bytes
    size = len(data) if size is None else size
    if size > limit:
        return [Problem(0, f"file is {_size(size)}, over the limit of {_size(limit)}")]
    if not data.strip(b" \t\r\n\xef\xbb\xbf"):
        return [Problem(0, "file is empty")]
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return [Problem(0, "file is UTF-16 text; save it as UTF-8")]
    for magic, what in _MAGIC:
        if data.startswith(magic):
            return [Problem(0, f"binary file ({what}), not a text {kind}")]
    head = data[:8192]
    controls = sum(1 for b in head if b < 32 and b not in (9, 10, 12, 13))
    if b"\x00" in data or controls > len(head) // 20:
        return [Problem(0, f"binary file (control bytes such as NUL), not a text {kind}")]
    problems = []
    try:
        data.decode("utf-8-sig")
    except UnicodeDecodeError:
        for number, raw in enumerate(data.split(b"\n"), start=1):
            try:
                raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                bad = raw[exc.start : exc.start + 1].hex().upper()
                problems.append(
                    Problem(
                        number, f"bytes that are not UTF-8 (0x{bad} at byte {exc.start + 1}); save the file as UTF-8"
                    )
                )
    return problems


def _row_check(row: Row, *, max_chars: int) -> list[Problem]:
    problems = []
    if not row.text:
        problems.append(Problem(row.line, "empty prompt"))
    elif len(row.text) > max_chars:
        problems.append(Problem(row.line, f"prompt is {len(row.text):,} characters, over the {max_chars:,} limit"))
    for name, limit in _FIELD_LIMITS.items():
        value = getattr(row, name) or ""
        if len(value) > limit:
            problems.append(Problem(row.line, f"{name} is {len(value):,} characters, over the {limit:,} limit"))
    return problems


def prompt_rows_parse(*, text: str, fmt: str) -> tuple[list[Row], list[Problem], list[Problem]]:
    """Rows ready to save (stripped, derived fields filled, duplicates dropped), problems, warnings."""
    max_rows = settings.PROMPT_FILE_MAX_ROWS
    max_chars = settings.PROMPT_MAX_CHARS
    rows: list[Row] = []
    problems: list[Problem] = []
    warnings: list[Problem] = []
    first_line_of: dict[str, int] = {}
    records = 0
    for item in parse(fmt=fmt, text=text):
        if isinstance(item, Problem):
            problems.append(item)
            if item.line:
                records += 1
            continue
        records += 1
        if records > max_rows:
            problems.append(Problem(item.line, f"more than {max_rows:,} prompts (the row limit); split the file"))
            break
        item.text = item.text.strip()
        row_problems = _row_check(item, max_chars=max_chars)
        if row_problems:
            problems.extend(row_problems)
            continue
        digest = text_digest(item.text)
        if digest in first_line_of:
            warnings.append(
                Problem(item.line, f"duplicate of the prompt on line {first_line_of[digest]}; kept once", warning=True)
            )
            continue
        first_line_of[digest] = item.line
        for name in ("text", "expected_text", "category"):
            controls = hidden_controls(getattr(item, name) or "")
            if controls:  # shown to panelists as visible marks, isolated (evalsite.text_safety)
                warnings.append(Problem(item.line, f"{'prompt' if name == 'text' else name} holds invisible "
                                        f"control characters ({', '.join(controls)}) that can make it read "
                                        "differently; panelists see them as visible marks", warning=True))
        if item.expected_text is None:
            item.expected_text = expected_text_guess(text=item.text, category=item.category, challenge=item.challenge)[
                : _FIELD_LIMITS["expected_text"]
            ]
        if item.language is None:
            item.language = language_guess(item.text)
        rows.append(item)
    if not rows and not problems:
        problems.append(Problem(0, "file holds no prompts"))
    return rows, problems, warnings


def _prompt_build(*, suite: PromptSuite, position: int, row: Row) -> Prompt:
    return Prompt(
        suite=suite,
        position=position,
        source_line=row.line,
        text=row.text,
        text_sha256=text_digest(row.text),  # bulk_create skips Prompt.save()
        category=row.category,
        challenge=row.challenge,
        tags=row.tags,
        note=row.note,
        expected_text=row.expected_text or "",
        language=row.language or "",
        metadata=row.metadata,
    )


def _same_prompts(suite: PromptSuite, rows: list[Row]) -> bool:
    fields = ("text", "category", "challenge", "note", "expected_text", "language")
    stored = list(suite.prompts.order_by("position").values_list(*fields))
    wanted = [tuple(getattr(r, f) or "" for f in fields) for r in rows]
    return stored == wanted


def prompt_suite_import(
    *,
    path_or_name: str,
    data: bytes,
    suite_name: str,
    fmt: str = "auto",
    created_by=None,
    replace: bool = False,
    size: int | None = None,
) -> ImportResult:
    """Parse and check a whole prompt file, then save it as one suite in one transaction.

    Raises PromptFileInvalid with every problem found (file, rows, suite name) and
    writes nothing when there is any. ``size`` is the file's real size when ``data``
    was cut at the limit. With ``replace``, an existing suite's prompts are replaced,
    unless sweeps already use it (its images and ratings point at those prompts);
    re-importing identical prompts is then a no-op.
    """
    suite_name = suite_name.strip()
    request_problems = []
    if not suite_name:
        request_problems.append(Problem(0, "suite name is empty"))
    elif (name_max := PromptSuite._meta.get_field("name").max_length) is not None and len(suite_name) > name_max:
        request_problems.append(Problem(0, f"suite name is longer than {name_max} characters"))
    if fmt != "auto" and fmt not in FORMATS:
        request_problems.append(Problem(0, f"unknown format {fmt!r}; choose auto or one of {', '.join(FORMATS)}"))
    if request_problems:
        raise PromptFileInvalid(request_problems)

    file_problems = prompt_file_check(data=data, size=size)
    if file_problems:
        raise PromptFileInvalid(file_problems)
    text = data.decode("utf-8-sig")
    if fmt == "auto":
        fmt = format_detect(name=path_or_name, text=text)
    rows, problems, warnings = prompt_rows_parse(text=text, fmt=fmt)

    existing = PromptSuite.objects.filter(name=suite_name).first()
    if existing and not replace:
        problems.append(
            Problem(
                0,
                f"suite {suite_name!r} already exists ({existing.prompts.count()} prompts); choose another name or replace it",
            )
        )
    if problems:
        raise PromptFileInvalid(problems, warnings=warnings)

    with transaction.atomic():
        if existing:
            existing = PromptSuite.objects.select_for_update().get(pk=existing.pk)
            if _same_prompts(existing, rows):
                return ImportResult(suite=existing, count=len(rows), fmt=fmt, warnings=warnings, unchanged=True)
            sweeps = existing.sweeps.count()
            if sweeps:
                raise PromptFileInvalid(
                    [
                        Problem(
                            0,
                            f"suite {suite_name!r} is used by {sweeps} sweep(s); it can't be replaced, import under a new name",
                        )
                    ],
                    warnings=warnings,
                )
            existing.prompts.all().delete()
            suite = existing
            suite.source_filename = PurePath(path_or_name).name[:255]
            suite.source_format = fmt
            suite.save(update_fields=["source_filename", "source_format"])
        else:
            try:
                with transaction.atomic():
                    suite = PromptSuite.objects.create(
                        name=suite_name,
                        source_filename=PurePath(path_or_name).name[:255],
                        source_format=fmt,
                        created_by=created_by,
                    )
            except IntegrityError:
                raise PromptFileInvalid(
                    [Problem(0, f"suite {suite_name!r} already exists")], warnings=warnings
                ) from None
        Prompt.objects.bulk_create(
            [_prompt_build(suite=suite, position=i, row=row) for i, row in enumerate(rows, start=1)],
            batch_size=2000,
        )
    return ImportResult(suite=suite, count=len(rows), fmt=fmt, warnings=warnings, replaced=bool(existing))


def prompt_file_read(*, path) -> tuple[bytes, int]:
    """At most one byte over the size limit of a file, and its real size."""
    with open(path, "rb") as fh:
        data = fh.read(settings.PROMPT_FILE_MAX_BYTES + 1)
        fh.seek(0, 2)
        return data, fh.tell()

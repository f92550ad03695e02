"""The queries on the panelist hot path, in SQL; ``_free_where`` is the one rule of "a free item for
this panelist" (both strategies use it).

Why not the ORM: building these querysets (a "not seen" list that grows with every item a
panelist rates, three joins, FOR UPDATE OF … SKIP LOCKED) cost 3-4 ms of CPU per request in
Django's compiler, more than the database took to run them. The SQL is the same on both
databases except for the seen-list form and the lock clause (SQLite serialises writers instead).
"""

from __future__ import annotations

from typing import NamedTuple, TypedDict

from django.db import connection

from generation.models import Generation
from prompts.models import Prompt

from ..models import Study, StudyItem

ITEM = StudyItem._meta.db_table
GEN = Generation._meta.db_table
PROMPT = Prompt._meta.db_table
PROMPT_FIELDS = ("text", "expected_text", "language", "category")
_ITEM_COLS = ("id", "kind", "first_id", "second_id", "prompt_id", "model_pair", "target", "n_assigned", "n_done",
              "shuffle")


class FreeWhere(TypedDict):
    """The arguments of ``_free_where``, as callers pass them on to several queries."""

    study: Study
    seen: set[int]
    last_prompt: int | None


def _free_where(*, study: Study, seen: set[int], last_prompt: int | None) -> tuple[list[str], list]:
    """Items short of their k, with no image this panelist has seen, not the prompt they saw last."""
    where = ["i.study_id = %s", "i.n_assigned < i.target"]
    params: list = [study.pk]
    if last_prompt is not None:
        where.append("i.prompt_id <> %s")
        params.append(last_prompt)
    if seen:
        ids = sorted(seen)
        if connection.vendor == "postgresql":
            where += ["NOT (i.first_id = ANY(%s))", "(i.second_id IS NULL OR NOT (i.second_id = ANY(%s)))"]
            params += [ids, ids]
        else:
            marks = ",".join(["%s"] * len(ids))
            where += [f"i.first_id NOT IN ({marks})", f"(i.second_id IS NULL OR i.second_id NOT IN ({marks}))"]
            params += ids + ids
    return where, params


def free_level(*, study: Study, seen: set[int], last_prompt: int | None) -> int | None:
    """The lowest assignment count among the items this panelist may get (an index walk)."""
    where, params = _free_where(study=study, seen=seen, last_prompt=last_prompt)
    sql = f"SELECT i.n_assigned FROM {ITEM} i WHERE {' AND '.join(where)} ORDER BY i.n_assigned, i.shuffle LIMIT 1"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return row[0] if row else None


class Candidate(NamedTuple):
    """A free item as the active strategy sees it (models of its images included)."""

    id: int
    kind: str
    first_id: int
    second_id: int | None
    first_model_id: int
    second_model_id: int | None
    prompt_id: int
    n_done: int


def free_candidates(*, study: Study, seen: set[int], last_prompt: int | None, limit: int) -> list[Candidate]:
    """Up to ``limit`` free items, fewest assignments first (no lock: the choice is locked after)."""
    where, params = _free_where(study=study, seen=seen, last_prompt=last_prompt)
    sql = (
        f"SELECT i.id, i.kind, i.first_id, i.second_id, f.model_id, s.model_id, i.prompt_id, i.n_done FROM {ITEM} i "
        f"JOIN {GEN} f ON f.id = i.first_id LEFT JOIN {GEN} s ON s.id = i.second_id "
        f"WHERE {' AND '.join(where)} ORDER BY i.n_assigned, i.shuffle LIMIT %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, limit])
        return [Candidate(*row) for row in cursor.fetchall()]


def lock_free_item(*, study: Study, seen: set[int], last_prompt: int | None, kind: str | None = None,
                   model_pair: str | None = None, level: int | None = None, item_id: int | None = None,
                   skip_locked: bool = True) -> StudyItem | None:
    """Lock and return one free item (with the images' public ids and the prompt for the page).

    Given kind, model_pair and level: the first such item in shuffle order; else the first free
    item by (assignments, shuffle); given item_id: that item, if it is still free. Rows other
    requests hold are skipped (or, with skip_locked=False, waited for and re-checked).
    """
    where, params = _free_where(study=study, seen=seen, last_prompt=last_prompt)
    if item_id is not None:
        where.append("i.id = %s")
        params.append(item_id)
    if kind is not None:
        where += ["i.kind = %s", "i.model_pair = %s", "i.n_assigned = %s"]
        params += [kind, model_pair, level]
        order = "i.shuffle"
    else:
        order = "i.n_assigned, i.shuffle"
    lock = ""
    if connection.features.has_select_for_update:
        lock = " FOR UPDATE OF i SKIP LOCKED" if skip_locked else " FOR UPDATE OF i"
    cols = ", ".join(f"i.{c}" for c in _ITEM_COLS)
    prompt_cols = ", ".join(f"p.{c}" for c in PROMPT_FIELDS)
    sql = (
        f"SELECT {cols}, f.public_id, s.public_id, {prompt_cols} FROM {ITEM} i "
        f"JOIN {GEN} f ON f.id = i.first_id LEFT JOIN {GEN} s ON s.id = i.second_id "
        f"JOIN {PROMPT} p ON p.id = i.prompt_id "
        f"WHERE {' AND '.join(where)} ORDER BY {order} LIMIT 1{lock}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    n = len(_ITEM_COLS)
    item = StudyItem(study_id=study.pk, **dict(zip(_ITEM_COLS, row[:n], strict=True)))
    item.first = Generation(id=item.first_id, public_id=row[n])
    if item.second_id is not None:
        item.second = Generation(id=item.second_id, public_id=row[n + 1])
    item.prompt = Prompt(id=item.prompt_id, **dict(zip(PROMPT_FIELDS, row[n + 2:], strict=True)))
    return item

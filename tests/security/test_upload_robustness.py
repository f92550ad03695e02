"""Issue 12 (8): hostile JSON in a prompt file is a PATH:LINE: message and imports nothing (never a 500).

Runs on SQLite and, in CI, on PostgreSQL (where NUL and lone surrogates used to fail in the database).
"""

from __future__ import annotations

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from prompts.models import Prompt, PromptSuite
from prompts.services import PromptFileInvalid, prompt_suite_import
from tests.factories import staff_user

pytestmark = pytest.mark.django_db

OK = '{"prompt": "a red cube"}'
CASES = [
    # (id, JSON value on line 2, message)
    ("nested-5000", '{"prompt": "x", "m": ' + "[" * 5000 + "]" * 5000 + "}", "nested deeper than 32 levels"),
    ("nested-100000", '{"prompt": "x", "m": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested deeper than 32 levels"),
    ("nested-40", '{"prompt": "x", "m": ' + "[" * 40 + "]" * 40 + "}", "nested deeper than 32 levels"),
    ("nan", '{"prompt": "x", "score": NaN}', "NaN is not valid JSON"),
    ("infinity", '{"prompt": "x", "score": Infinity}', "Infinity is not valid JSON"),
    ("minus-infinity", '{"prompt": "x", "score": -Infinity}', "-Infinity is not valid JSON"),
    ("huge-number", '{"prompt": "x", "score": 1e999}', "the number 1e999 is too large"),
    ("surrogate-metadata", '{"prompt": "x", "note2": "\\ud800"}', "lone surrogate \\ud800"),
    ("surrogate-prompt", '{"prompt": "a \\udfff cat"}', "lone surrogate \\udfff"),
    ("surrogate-key", '{"prompt": "x", "\\ud800": 1}', "lone surrogate \\ud800"),
    ("nul-prompt", '{"prompt": "a\\u0000cat"}', "NUL character"),
    ("nul-metadata", '{"prompt": "x", "m": {"k": "\\u0000"}}', "NUL character"),
]


def _file(fmt: str, bad: str) -> tuple[str, bytes]:
    if fmt == "jsonl":
        return "p.jsonl", f"{OK}\n{bad}\n".encode()
    return "p.json", f"[{OK},\n{bad}]".encode()


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
@pytest.mark.parametrize(("case", "bad", "message"), CASES, ids=[c[0] for c in CASES])
def test_hostile_json_is_a_line_numbered_problem_and_imports_nothing(fmt, case, bad, message):
    name, data = _file(fmt, bad)
    with pytest.raises(PromptFileInvalid) as info:
        prompt_suite_import(path_or_name=name, data=data, suite_name="hostile")
    lines = info.value.lines(name)
    assert len(lines) == 1 and lines[0].startswith(f"{name}:2: ") and message in lines[0], lines
    assert not PromptSuite.objects.exists() and not Prompt.objects.exists()


@pytest.mark.parametrize(("case", "bad", "message"), [CASES[1], CASES[3], CASES[7], CASES[10]],
                         ids=["nested-100000", "nan", "surrogate", "nul"])
def test_the_upload_page_and_the_command_answer_with_the_line(client, tmp_path, case, bad, message):
    name, data = _file("jsonl", bad)
    client.force_login(staff_user("uploader", roles=("Suite uploaders",)))
    response = client.post("/suites/upload/", {"suite_name": "hostile", "format": "auto",
                                               "file": SimpleUploadedFile(name, data)})
    assert response.status_code == 400
    assert f"{name}:2: " in response.content.decode()
    path = tmp_path / name
    path.write_bytes(data)
    err = io.StringIO()
    with pytest.raises(CommandError):
        call_command("import_prompts", str(path), suite="hostile", stderr=err, stdout=io.StringIO())
    assert not PromptSuite.objects.exists()


def test_plain_json_metadata_still_imports():
    data = ('{"prompt": "a cat", "m": {"a": [1, 2.5, {"b": null}]}, "score": -3e10}\n'
            '{"prompt": "a dog", "note": "ünïcödé ✓"}\n').encode()
    result = prompt_suite_import(path_or_name="ok.jsonl", data=data, suite_name="fine")
    assert result.count == 2
    assert Prompt.objects.get(text="a cat").metadata["m"] == {"a": [1, 2.5, {"b": None}]}

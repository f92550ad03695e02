"""import_prompts: the command line contract (stdout, stderr lines, exit status)."""

from __future__ import annotations

import subprocess
import sys
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from prompts.models import Prompt, PromptSuite

pytestmark = pytest.mark.django_db


def _run(*args):
    out, err = StringIO(), StringIO()
    call_command("import_prompts", *map(str, args), stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_success_prints_count_and_duplicate_warnings_go_to_stderr(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("a red cube\na blue ball\na red cube\n")
    out, err = _run(path, "--suite", "cli")
    assert out == "imported 2 prompts into suite cli\n"
    assert err == f"{path}:3: warning: duplicate of the prompt on line 1; kept once\n"
    assert PromptSuite.objects.get(name="cli").source_filename == "p.txt"


def test_format_option_overrides_detection(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("a, b\nc, d\n")
    out, _ = _run(path, "--suite", "x", "--format", "txt")
    assert out == "imported 2 prompts into suite x\n"
    assert list(Prompt.objects.values_list("text", flat=True)) == ["a, b", "c, d"]


def test_invalid_file_lists_problems_raises_and_imports_nothing(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("prompt,category\nok,x\n,y\nz,1,2\n")
    err = StringIO()
    with pytest.raises(CommandError, match="2 problem"):
        call_command("import_prompts", str(path), "--suite", "bad", stderr=err)
    assert err.getvalue().splitlines() == [
        f"{path}:3: empty prompt",
        f"{path}:4: expected 2 CSV fields (prompt, category), found 3",
    ]
    assert not PromptSuite.objects.exists() and not Prompt.objects.exists()


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(CommandError, match=r"nope.txt:0: can't read the file: No such file"):
        _run(tmp_path / "nope.txt", "--suite", "x")


def test_replace_option(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("a\n")
    _run(path, "--suite", "r")
    path.write_text("b\nc\n")
    with pytest.raises(CommandError):
        _run(path, "--suite", "r")
    out, _ = _run(path, "--suite", "r", "--replace")
    assert out == "imported 2 prompts into suite r\n"
    out, _ = _run(path, "--suite", "r", "--replace")
    assert out == "suite r already holds these 2 prompts; nothing changed\n"
    assert list(Prompt.objects.values_list("text", flat=True)) == ["b", "c"]


@pytest.mark.slow
def test_exit_status_from_a_real_process(tmp_path):
    """`python manage.py import_prompts` exits non-zero with the problem lines on stderr."""
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a"}\nnot json\n')
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "EVALSITE_DATA_DIR": str(tmp_path / "var")}
    manage = settings.BASE_DIR / "manage.py"
    subprocess.run([sys.executable, manage, "migrate", "-v0"], env=env, check=True, cwd=tmp_path)
    proc = subprocess.run(
        [sys.executable, manage, "import_prompts", bad, "--suite", "s"], env=env, capture_output=True, text=True
    )
    assert proc.returncode != 0 and proc.stdout == ""
    assert proc.stderr.splitlines()[0] == f"{bad}:2: not valid JSON: Expecting value (column 1)"
    good = tmp_path / "good.txt"
    good.write_text("a cat\n")
    proc = subprocess.run(
        [sys.executable, manage, "import_prompts", good, "--suite", "s"], env=env, capture_output=True, text=True
    )
    assert (proc.returncode, proc.stdout) == (0, "imported 1 prompts into suite s\n")

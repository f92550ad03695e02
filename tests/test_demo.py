"""`make demo` end to end: embedded defaults only, a real worker and web server, a real browser.

It runs the same `make demo` a new user runs (with a free port and its own data folder), with
DATABASE_URL and CELERY_BROKER_URL removed from the environment, then: the invite link opens a
rating page with images, a rating saves, `make demo-panel` fills the study with simulated
ratings, the printed staff login reaches the leaderboard, and Ctrl-C stops web server and worker.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

pytestmark = [pytest.mark.browser, pytest.mark.slow]

BASE = Path(settings.BASE_DIR)
SCREENSHOT = BASE / "docs" / "screenshots" / "leaderboard.png"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _demo_command(target: str, args: str) -> list[str]:
    venv = Path(sys.prefix)
    if (venv / ".installed").exists():  # the Makefile's own venv: run exactly what a user runs
        return ["make", "-s", target, f"VENV={venv}", f"DEMO_ARGS={args}"]
    extra = ["--panel"] if target == "demo-panel" else []
    return [sys.executable, "manage.py", "demo", *extra, *args.split()]


def _processes_using(data_dir: Path) -> list[int]:
    """Processes whose environment names this demo's data folder (web server, worker, demo)."""
    found = []
    needle = f"EVALSITE_DATA_DIR={data_dir}".encode()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if needle in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                found.append(int(pid))
        except OSError:
            continue
    return found


@pytest.fixture
def demo(tmp_path):
    port = _free_port()
    data = tmp_path / "demo-data"
    env = {k: v for k, v in os.environ.items()
           if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "EVALSITE_SITE_URL", "DJANGO_SETTINGS_MODULE"}}
    env.update(EVALSITE_DATA_DIR=str(data), PYTHONUNBUFFERED="1")
    log = tmp_path / "demo.out"
    with open(log, "wb") as out:
        proc = subprocess.Popen(_demo_command("demo", f"--addr 127.0.0.1:{port}"), cwd=BASE, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 600
    text = ""
    while time.monotonic() < deadline and proc.poll() is None:
        text = log.read_text(errors="replace")
        if "Ctrl-C stops both" in text:
            break
        time.sleep(1)
    else:
        proc.kill()
        pytest.fail(f"make demo did not start serving:\n{log.read_text(errors='replace')[-4000:]}")
    yield {"proc": proc, "text": text, "port": port, "data": data, "env": env, "log": log}
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        for pid in _processes_using(data):
            os.kill(pid, signal.SIGKILL)


def test_make_demo_serves_a_working_site(demo, page, tmp_path):
    text, port = demo["text"], demo["port"]
    site = f"http://127.0.0.1:{port}"
    invite = re.search(r"Panelist invite:\s+(\S+)", text).group(1)
    user, password = re.search(r"user (\S+)\s+password (\S+)", text).groups()
    leaderboard = re.search(r"Leaderboard:\s+(\S+)", text).group(1)
    assert invite.startswith(f"{site}/r/") and leaderboard.startswith(site)
    assert re.search(r"rendered (\d+)/\1, failed 0", text), "every demo image rendered"

    # A panelist: the invite link opens a rating page with images, and a rating saves.
    page.goto(invite)
    page.keyboard.press("Enter")  # consent
    page.wait_for_selector("#rating-item form.rate-form")
    images = page.locator("#rating-item img")
    assert images.count() >= 1
    page.wait_for_function(
        "() => [...document.querySelectorAll('#rating-item img')].every(i => i.complete && i.naturalWidth > 0)",
        timeout=15_000)
    before = page.locator("#rating-item").get_attribute("data-assignment")
    for i in range(page.locator("fieldset.scale").count()):
        page.keyboard.press(str(7 - i % 3))
    page.keyboard.press("Enter")
    page.wait_for_function(
        "(b) => { const el = document.getElementById('rating-item');"
        " return el && el.getAttribute('data-assignment') !== b; }", arg=before)
    assert page.locator("#saved").inner_text().strip() == "Saved."
    # The panelist cannot see the leaderboard of the open study.
    assert page.goto(leaderboard).status in (302, 403, 404) or "/admin/login" in page.url

    # make demo-panel adds simulated ratings while the demo keeps serving.
    panel = subprocess.run(_demo_command("demo-panel", "--panelists 4"), cwd=BASE, env=demo["env"],
                           capture_output=True, text=True, timeout=600)
    assert panel.returncode == 0, panel.stdout + panel.stderr

    # Staff: the printed login reaches the leaderboard, with the demo models' rows.
    page.context.clear_cookies()
    page.goto(f"{site}/admin/login/?next={leaderboard.removeprefix(site)}")
    page.fill("#id_username", user)
    page.fill("#id_password", password)
    page.keyboard.press("Enter")
    page.wait_for_url(leaderboard)
    body = page.locator("body").inner_text()
    assert "Prompt accuracy" in body and "painter (demo)" in body.lower()
    assert page.locator("#leaderboard tbody tr").count() == 5  # the five demo models
    # The README's leaderboard picture is this one: the real demo, nothing made up. Only
    # `make screenshots` (EVALSITE_SCREENSHOTS=1) writes the tracked file; make test leaves it alone.
    page.set_viewport_size({"width": 1280, "height": 900})
    shot = SCREENSHOT if os.environ.get("EVALSITE_SCREENSHOTS") == "1" else tmp_path / SCREENSHOT.name
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shot), full_page=True, clip={"x": 0, "y": 0, "width": 1280, "height": 1500})
    assert shot.stat().st_size > 10_000

    # Ctrl-C (SIGINT to the foreground process group) stops web server and worker cleanly.
    proc = demo["proc"]
    os.killpg(proc.pid, signal.SIGINT)
    # make itself then re-raises SIGINT (as after any Ctrl-C); the demo command exits 0.
    code = proc.wait(timeout=60)
    out = demo["log"].read_text(errors="replace")
    assert code in (0, -signal.SIGINT), out[-3000:]
    assert "Stopping web server and worker" in out and "Traceback" not in out, out[-3000:]
    deadline = time.monotonic() + 20
    while _processes_using(demo["data"]) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _processes_using(demo["data"]) == []
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()

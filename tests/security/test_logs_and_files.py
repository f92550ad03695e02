"""Issue 12 (9): tokens are masked in every log line; data files and logs are the owner's only."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request

from django.conf import settings

from evalsite.logmask import mask_tokens

TOKEN = "Zq8w3XkPm2Lr9Vt6Yb1Nc4Hd7Jf0Gs5"
SETUP = "import django,os;os.environ['DJANGO_SETTINGS_MODULE']='evalsite.settings';django.setup();"


def _env(tmp_path, **extra):
    return {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(settings.BASE_DIR),
            "EVALSITE_DATA_DIR": str(tmp_path / "data"), **extra}


def test_mask_tokens_keeps_only_the_last_four_characters():
    line = f'127.0.0.1 "GET /r/{TOKEN}/a/xYz123abc/ HTTP/1.1" 200 "http://h/r/{TOKEN}/" ?token={TOKEN}'
    masked = mask_tokens(line)
    assert TOKEN not in masked and TOKEN[:8] not in masked
    assert f"/r/…{TOKEN[-4:]}/a/xYz123abc/" in masked and f"token=…{TOKEN[-4:]}" in masked
    assert mask_tokens("GET /studies/3/ 200") == "GET /studies/3/ 200"


def test_django_log_lines_mask_tokens(tmp_path):
    code = SETUP + (
        "import logging;logging.getLogger('django.request').warning('Not Found: %s', '/r/" + TOKEN + "/');"
        "logging.getLogger('ratings').error('boom /r/" + TOKEN + "/start/', exc_info=ValueError('/r/" + TOKEN + "/'))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=_env(tmp_path), capture_output=True, text=True,
                         cwd=settings.BASE_DIR, check=True)
    assert "Not Found: /r/…" in out.stderr and "boom /r/…" in out.stderr
    assert TOKEN not in out.stderr


def _free_port() -> int:
    for port in range(8121, 8130):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise RuntimeError("no free port in 8121-8129")


def test_gunicorn_access_and_error_logs_mask_tokens(tmp_path):
    port = _free_port()
    access, error = tmp_path / "access.log", tmp_path / "error.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "evalsite.wsgi", "-b", f"127.0.0.1:{port}", "-w", "1",
         "--access-logfile", str(access), "--error-logfile", str(error),
         "--logger-class", "evalsite.logmask.GunicornLogger"],
        env=_env(tmp_path), cwd=settings.BASE_DIR, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/r/{TOKEN}/?token={TOKEN}"
        for _ in range(100):
            try:
                urllib.request.urlopen(url, timeout=5)
                break
            except urllib.error.HTTPError:
                break  # any answer (404/500: this data dir has no tables) is a logged request
            except OSError:
                time.sleep(0.2)
        time.sleep(0.5)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    logged = access.read_text()
    assert f"/r/…{TOKEN[-4:]}/" in logged, logged
    assert TOKEN not in logged and TOKEN not in error.read_text()
    assert stat.S_IMODE(access.stat().st_mode) == 0o600


def test_data_files_and_logs_are_not_world_readable(tmp_path):
    code = SETUP + (
        "from django.core.files.storage import default_storage;from django.core.files.base import ContentFile;"
        "from django.db import connection;from django.conf import settings as s;"
        "name=default_storage.save('g/ab/x.png', ContentFile(b'x'));print(default_storage.path(name));"
        "connection.cursor().execute('select 1');print(s.DATABASES['default']['NAME']);"
        "open(s.DATA_DIR/'web.log','a').write('x');print(s.DATA_DIR/'web.log');print(s.DATA_DIR/'secret_key')"
    )
    out = subprocess.run([sys.executable, "-c", code], env=_env(tmp_path), capture_output=True, text=True,
                         cwd=settings.BASE_DIR, check=True).stdout.split()
    for path in out:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
    for folder in (tmp_path / "data", os.path.dirname(out[0])):
        assert stat.S_IMODE(os.stat(folder).st_mode) & 0o077 == 0, folder

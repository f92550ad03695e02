"""Production mode (DJANGO_SECURE=1, as docker-compose sets it): check --deploy clean, bad keys refuse to start."""

from __future__ import annotations

import secrets
import subprocess
import sys

import pytest
from django.conf import settings

from evalsite.secret_key import secret_key_problem
from tests.compose_env import compose_service_env


def _manage(args: list[str], env: dict[str, str], tmp_path) -> subprocess.CompletedProcess:
    environ = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "EVALSITE_DATA_DIR": str(tmp_path / "data"), **env}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=settings.BASE_DIR, env=environ,
                          capture_output=True, text=True, timeout=120)


def test_check_deploy_is_clean_in_the_compose_environment(tmp_path):
    env = compose_service_env("web", {"DJANGO_SECRET_KEY": secrets.token_urlsafe(50)})
    assert env["DJANGO_SECURE"] == "1" and env["EVALSITE_MANIFEST_STATIC"] == "1"
    done = _manage(["check", "--deploy", "--fail-level", "WARNING"], env, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues (0 silenced)." in done.stdout


def test_the_compose_environment_sets_https_headers(tmp_path):
    env = compose_service_env("web", {"DJANGO_SECRET_KEY": secrets.token_urlsafe(50)})
    code = ("from django.conf import settings as s;"
            "print(s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE,"
            " s.SECURE_PROXY_SSL_HEADER)")
    done = _manage(["shell", "-c", code], env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1].split() == ["True", "31536000", "True", "True", "('HTTP_X_FORWARDED_PROTO',", "'https')"]


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("", "DJANGO_SECRET_KEY is not set"),
        ("change-me-to-a-long-random-string", "DJANGO_SECRET_KEY is a placeholder"),
        ("short-but-random-9f2k", "DJANGO_SECRET_KEY is too short (21 characters"),
        ("a" * 60, "DJANGO_SECRET_KEY is too short (60 characters, 1 distinct"),
    ],
)
def test_production_refuses_to_start_without_a_real_secret_key(tmp_path, key, message):
    env = compose_service_env("web", {"DJANGO_SECRET_KEY": key})
    done = _manage(["check"], env, tmp_path)
    assert done.returncode != 0
    assert message in done.stderr, done.stderr
    assert not (tmp_path / "data" / "secret_key").exists()  # no silent fallback to a generated key


def test_the_example_env_file_key_is_refused():
    example = dict(line.split("=", 1) for line in (settings.BASE_DIR / ".env.example").read_text().splitlines()
                   if "=" in line and not line.startswith("#"))
    assert secret_key_problem(example["DJANGO_SECRET_KEY"]) is not None
    assert example["DJANGO_SECURE"] == "1"


def test_a_generated_key_passes():
    assert secret_key_problem(secrets.token_urlsafe(50)) is None

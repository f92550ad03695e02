"""The environment docker-compose gives a service, read from docker-compose.yml (tests run it without Docker)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
_VAR = re.compile(r"\$\$|\$\{(?P<name>\w+)(?::?-(?P<default>[^}]*))?\}|\$(?P<bare>\w+)")


def substitute(value: str, variables: dict[str, str]) -> str:
    """Compose's interpolation: ${NAME}, ${NAME:-default}, ${NAME-default}, $NAME and $$."""

    def one(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("name") or match.group("bare")
        if variables.get(name):
            return variables[name]
        return match.group("default") or ""

    return _VAR.sub(one, value)


def compose_file() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def dockerfile_env(dockerfile: str = "Dockerfile") -> dict[str, str]:
    """The ENV lines of a Dockerfile (KEY=VALUE pairs, continuation lines joined)."""
    text = (ROOT / dockerfile).read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            for pair in line[4:].split():
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def compose_service_env(service: str, variables: dict[str, str] | None = None) -> dict[str, str]:
    """The service's environment (anchors and merge keys resolved), interpolated from ``variables``."""
    env = compose_file()["services"][service].get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: substitute(str(value), variables or {}) for key, value in env.items()}

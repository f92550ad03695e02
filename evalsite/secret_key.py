"""The production secret-key rule (settings refuse to start on a bad key when DJANGO_SECURE=1)."""

from __future__ import annotations

# Keys that appear in this repository's examples and build steps: never a production secret.
PLACEHOLDER_KEYS = frozenset({"change-me-to-a-long-random-string", "build-only", "change-me", "changeme", "x"})
MIN_LENGTH = 50  # Django's check --deploy (security.W009) asks for 50 characters, 5 distinct
MIN_DISTINCT = 5
HOW_TO_MAKE_ONE = "python -c 'import secrets; print(secrets.token_urlsafe(50))'"


def secret_key_problem(key: str) -> str | None:
    """Why ``key`` must not sign production sessions, or None when it may."""
    if not key:
        return "is not set"
    lowered = key.lower()
    if key in PLACEHOLDER_KEYS or "change-me" in lowered or "changeme" in lowered or lowered.startswith("django-insecure"):
        return "is a placeholder (the example value from .env.example or a build-time key)"
    if len(key) < MIN_LENGTH or len(set(key)) < MIN_DISTINCT:
        return f"is too short ({len(key)} characters, {len(set(key))} distinct; at least {MIN_LENGTH} and {MIN_DISTINCT})"
    return None

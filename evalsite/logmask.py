"""Panelist tokens never reach a log: a logging filter and a gunicorn logger that mask them.

A panelist's token is the whole credential (``/r/<token>/…``, and a study's shared link has the
same form), so every log line with a path in it (Django's request log, gunicorn's access and error
logs, anything else through the root handler) carries ``/r/…<last 4>/`` instead.
"""

from __future__ import annotations

import logging
import re

try:  # gunicorn is a runtime requirement of the web process only
    from gunicorn.glogging import Logger as _GunicornLogger
except ImportError:  # pragma: no cover
    _GunicornLogger = object

TOKEN_PATH = re.compile(r"/r/([A-Za-z0-9_-]{5,})")
TOKEN_PARAM = re.compile(r"((?:token|share)=)([A-Za-z0-9_-]{5,})", re.IGNORECASE)


def mask_tokens(text: str) -> str:
    """``/r/AbCdEf…wxyz/`` -> ``/r/…wxyz/``: enough to tell lines apart, nothing to log in with."""
    text = TOKEN_PATH.sub(lambda m: "/r/…" + m.group(1)[-4:], text)
    return TOKEN_PARAM.sub(lambda m: m.group(1) + "…" + m.group(2)[-4:], text)


class TokenMaskFilter(logging.Filter):
    """On a handler: the record's message, arguments merged in, with tokens masked (and its traceback)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not lose the line
            message = str(record.msg)
        masked = mask_tokens(message)
        if masked != message or record.args:
            record.msg, record.args = masked, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = mask_tokens(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = mask_tokens(record.exc_text)
        return True


class GunicornLogger(_GunicornLogger):
    """gunicorn ``--logger-class``: access-log atoms (path, query, referer, request line) and error
    lines with tokens masked."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.addFilter(TokenMaskFilter())

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        return {k: mask_tokens(v) if isinstance(v, str) else v for k, v in atoms.items()}

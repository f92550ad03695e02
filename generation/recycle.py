"""Replace the worker process with a fresh run of its own command line (no Django, no torch).

Used by the liveness watchdog when a render hangs. ``os.execv`` keeps the pid (a container's
PID 1 stays, a supervisor sees no exit) and ends every thread, the hung one too; every file
descriptor is marked close-on-exec first, so nothing of the old process survives: no broker
socket, no ``/dev/nvidia*`` handle, hence no CUDA context or GPU memory.
"""

from __future__ import annotations

import logging
import os
import sys

logger = logging.getLogger(__name__)

EXIT_RECYCLE = 75  # exit status when execv itself fails (EX_TEMPFAIL): the process manager restarts us


def close_on_exec_all() -> int:
    """Mark every descriptor above stderr close-on-exec; returns how many were open."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return 0
    count = 0
    for name in names:
        fd = int(name)
        if fd > 2:
            try:
                os.set_inheritable(fd, False)
                count += 1
            except OSError:
                pass
    return count


def process_recycle(argv: list[str] | None = None) -> None:
    """Exec ``argv`` (default: this process's own command line, ``sys.orig_argv``); never returns."""
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    close_on_exec_all()
    try:
        os.execv(sys.executable, argv or sys.orig_argv)
    except OSError:
        logger.exception("worker recycle: execv failed; exiting with %d", EXIT_RECYCLE)
    os._exit(EXIT_RECYCLE)

"""Does the watchdog's recycle free a GPU held by a hung CUDA call? (issue 13, worker liveness)

Phase 1 holds GPU memory, launches a kernel that spins for minutes (``torch.cuda._sleep``) and
blocks in ``torch.cuda.synchronize()`` as a hung render would; a watchdog thread then calls
``generation.recycle.process_recycle`` (what the worker's watchdog calls) to exec phase 2 in the same
pid. Phase 2 prints the time the recycle took, the GPU memory free in the fresh process and how long
a 8192³ bf16 matmul takes there (the spinning kernel must be gone too). Prints one table row.

    python benchmarks/watchdog_recycle_gpu.py [--hold-gib 40] [--keep-fds]

``--keep-fds`` skips the close-on-exec step, to see whether it matters.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from generation import recycle  # noqa: E402

GIB = 2**30


def phase_one(hold_gib: float, keep_fds: bool) -> None:
    held = torch.empty(int(hold_gib * GIB), dtype=torch.uint8, device="cuda")
    free, total = torch.cuda.mem_get_info()
    torch.cuda._sleep(int(1.98e9 * 600))  # ~10 minutes of spinning on the GPU

    def watchdog() -> None:
        time.sleep(3)
        os.environ.update(RECYCLE_PHASE="2", RECYCLE_T0=repr(time.time()), RECYCLE_FREE_BEFORE=repr(free),
                          RECYCLE_TOTAL=repr(total), RECYCLE_KEEP_FDS="1" if keep_fds else "0",
                          RECYCLE_HELD=repr(hold_gib))
        if keep_fds:
            recycle.close_on_exec_all = lambda: 0  # the control: exec with the old descriptors inherited
        recycle.process_recycle()

    threading.Thread(target=watchdog, daemon=True).start()
    torch.cuda.synchronize()  # hangs: the watchdog's exec ends it
    print("unreachable: synchronize returned", held.shape)


def phase_two() -> None:
    free, total = torch.cuda.mem_get_info()
    start = time.time()  # the fresh process has imported torch and created its CUDA context
    t0 = float(os.environ["RECYCLE_T0"])
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(10):
        a @ a
    torch.cuda.synchronize()
    matmul_ms = (time.perf_counter() - t) / 10 * 1e3
    smi = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader"], capture_output=True,
                         text=True).stdout.strip()
    print("| keep fds | held GiB | free before exec GiB | free after exec GiB | exec→CUDA ready s | 8192³ bf16 matmul ms | nvidia-smi used |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {os.environ['RECYCLE_KEEP_FDS']} | {float(os.environ['RECYCLE_HELD']):.0f} "
          f"| {float(os.environ['RECYCLE_FREE_BEFORE']) / GIB:.1f} | {free / GIB:.1f} | {start - t0:.1f} "
          f"| {matmul_ms:.2f} | {smi} |", flush=True)


if __name__ == "__main__":
    if os.environ.get("RECYCLE_PHASE") == "2":
        phase_two()
    else:
        parser = argparse.ArgumentParser()
        parser.add_argument("--hold-gib", type=float, default=40.0)
        parser.add_argument("--keep-fds", action="store_true")
        args = parser.parse_args()
        phase_one(args.hold_gib, args.keep_fds)

"""The machine description every benchmark JSON carries (numbers mean little without the box they ran on),
and where that JSON goes."""

from __future__ import annotations

import importlib
import json
import os
import platform
import statistics
import time
from pathlib import Path


def machine(*packages: str) -> dict:
    """Platform, cores, memory, Python, the 1-min load average now, and the versions of `packages`."""
    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "python": platform.python_version(), "load_avg_at_start": os.getloadavg()}
    for name in packages:
        info[name] = getattr(importlib.import_module(name), "__version__", "?")
    return info


def write_result(result: dict, out) -> None:
    """Write a benchmark's JSON to `out` (parents created) and say where."""
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {out}")


def median_seconds(call, repeats: int) -> float:
    """Median wall time of `call()` over `repeats` runs, after one untimed warm-up run."""
    call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)

"""The machine description every benchmark JSON carries: numbers mean little without the box they ran on."""

from __future__ import annotations

import importlib
import os
import platform


def machine(*packages: str) -> dict:
    """Platform, cores, memory, Python, the 1-min load average now, and the versions of `packages`."""
    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "python": platform.python_version(), "load_avg_at_start": os.getloadavg()}
    for name in packages:
        info[name] = getattr(importlib.import_module(name), "__version__", "?")
    return info

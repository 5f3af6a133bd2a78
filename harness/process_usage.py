"""What a running process uses, read from Linux's ``/proc``: CPU time and resident memory.

The benchmarks and the simulated kiosk fleet measure the processes they start with these; off
Linux, or once the process is gone, both read 0.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cpu_seconds", "rss_mib"]


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of process ``pid`` so far (``/proc/<pid>/stat``)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int | None) -> float:
    """Resident memory (VmRSS) of process ``pid``, in MiB (``/proc/<pid>/status``)."""
    if pid is None:
        return 0.0
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return 0.0
    for line in lines:
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0

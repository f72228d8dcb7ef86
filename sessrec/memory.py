"""The peak memory of this process, counted so that it is this program's own."""

from __future__ import annotations

import resource
import sys
from pathlib import Path

_STATUS = Path("/proc/self/status")


def peak_rss_mb() -> float:
    """Peak resident memory of this process since it started its program, in MiB.

    On Linux this is the kernel's VmHWM. getrusage's ru_maxrss is not used there: a process keeps
    the larger of its own peak and that of the process it was started from across exec (Python
    and Ray start processes with vfork), so a small worker of a large parent reports the parent's
    size."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass  # no /proc (macOS): ru_maxrss is the best measure there
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # macOS counts bytes, Linux KiB

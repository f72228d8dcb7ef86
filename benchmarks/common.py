"""Shared by the benchmarks: the reference sessions, timing, and writing a report."""

from __future__ import annotations

import atexit
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from sessrec.core.sessions import Sessions
from sessrec.core.synth import synth_sessions
from sessrec.formats import sessions_from_jsonl

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "data" / "online_retail_sessions.jsonl"
OUT = Path(__file__).resolve().parent / "out"


def run_module(module: str, *args: str) -> dict[str, Any]:
    """``python -m module args`` in a process of its own (its own Ray, memory and caches, so no
    measurement inherits another's); the JSON object it prints last."""
    out = subprocess.run([sys.executable, "-m", module, *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def scratch_dir(prefix: str) -> str:
    """A temporary folder removed when the process exits (a sweep leaves hundreds of MB)."""
    folder = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def reference_sessions() -> Sessions:
    if not REFERENCE.exists():
        sys.exit(f"the reference sessions are not at {REFERENCE}; this benchmark needs them")
    return sessions_from_jsonl(REFERENCE.read_bytes(), str(REFERENCE))


def data_sessions() -> Sessions:
    """The real sessions when present, else synthetic ones of a similar size."""
    if REFERENCE.exists():
        return reference_sessions()
    return synth_sessions(n_sessions=4_000, n_items=3_600, n_clusters=120, mean_length=96)


def data_label() -> str:
    return (
        "the real sessions (4,234 sessions, 3,684 items)"
        if REFERENCE.exists()
        else "synthetic sessions (4,000 x 3,600 items)"
    )


def best_of(repeats: int, call: Callable[[], Any]) -> tuple[float, Any]:
    """Fastest of several runs (seconds) and the last result: the least noisy single figure."""
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - started)
    return min(times), result


def mean_std(values: list[float]) -> str:
    array = np.asarray(values) * 100
    return f"{array.mean():.2f} ± {array.std(ddof=1):.2f}" if len(array) > 1 else f"{array.mean():.2f}"


def machine() -> str:
    import os

    return f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


def write_report(name: str, title: str, lines: list[str], data: dict[str, Any]) -> Path:
    OUT.mkdir(exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps({"machine": machine(), **data}, indent=2, default=float) + "\n")
    markdown = OUT / f"{name}.md"
    markdown.write_text(f"# {title}\n\nMachine: {machine()}\n\n" + "\n".join(lines) + "\n")
    print(markdown.read_text())
    return markdown

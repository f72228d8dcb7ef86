"""Not a test: runs the subprocess of
tests/test_formats.py::test_a_process_that_read_a_parquet_table_exits_cleanly N times in a row
while 2 `yes > /dev/null` processes load the CPUs, and prints how many exited cleanly.

    .venv/bin/python tests/stress/parquet_exit_loop.py [N]   # default 200
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

READ_AND_EXIT = (
    "import sys; from sessrec import formats; formats.read_parquet(open(sys.argv[1], 'rb').read(), sys.argv[1])"
)


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    rng = np.random.default_rng(0)
    columns = {f"metric_{i}": rng.random(48) for i in range(30)}
    table = pa.table({**columns, "curve": [rng.random(10).tolist() for _ in range(48)]})
    load = [subprocess.Popen(["yes"], stdout=subprocess.DEVNULL) for _ in range(2)]
    failures: list[tuple[int, int, str]] = []
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "trials.parquet"
            pq.write_table(table, path)
            for i in range(runs):
                command = [sys.executable, "-c", READ_AND_EXIT, str(path)]
                result = subprocess.run(command, capture_output=True, text=True, timeout=120)
                if result.returncode != 0:
                    failures.append((i, result.returncode, result.stderr.strip()[-300:]))
                    print(f"run {i}: exit {result.returncode}: {result.stderr.strip()[-300:]}", flush=True)
    finally:
        for process in load:  # only the load processes this script started
            process.kill()
            process.wait()
    print(f"{runs - len(failures)}/{runs} clean exits under load ({time.monotonic() - started:.0f} s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

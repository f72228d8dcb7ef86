"""A trial's peak memory is its own, not that of the process that started it."""

import subprocess
import sys

import numpy as np

from sessrec.memory import peak_rss_mb


def test_a_child_of_a_large_process_reports_its_own_peak() -> None:
    ballast = np.ones(2**27)  # 1 GiB, every page touched
    assert peak_rss_mb() > 1024
    child = subprocess.run(
        [sys.executable, "-c", "from sessrec.memory import peak_rss_mb; print(peak_rss_mb())"],
        capture_output=True,
        text=True,
        check=True,
    )
    # Python alone is about 10 MB; getrusage would report this process's 1 GiB and more.
    assert float(child.stdout) < 200, child.stdout
    del ballast


def test_the_peak_grows_with_what_the_process_touches() -> None:
    before = peak_rss_mb()
    ballast = np.ones(int(before * 2**20 / 8) + 2**25)  # the peak so far plus 256 MiB
    assert peak_rss_mb() >= before + 256
    del ballast

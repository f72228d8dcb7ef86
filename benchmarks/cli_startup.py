"""How long ``sessrec --help`` (and each sub-app's) takes, and which heavy libraries it loads.

    .venv/bin/python benchmarks/cli_startup.py [--runs 10]

Prints the median and the spread of wall times over ``--runs`` runs of each command in a fresh
interpreter, the slowest imports (``python -X importtime``) of ``sessrec --help``, and the heavy
libraries any of them loaded. The target is under 0.5 s (issue #23). CPUs on a shared machine
are noisy: compare medians of runs taken together, not single figures."""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

from sessrec.cli.names import HEAVY_MODULES

COMMANDS = [[], ["data"], ["tune"], ["tune", "run"], ["results"], ["k8s"], ["submit"], ["jobs"], ["train"], ["serve"]]
TARGET_S = 0.5


def wall_times(args: list[str], runs: int) -> tuple[list[float], list[float]]:
    """Wall and CPU (user + system) seconds of each run: on a loaded machine the CPU time is the
    steadier figure."""
    times, cpu = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "sessrec", *args, "--help"], capture_output=True, check=True)
        times.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return times, cpu


def slowest_imports(count: int = 8) -> list[tuple[int, str]]:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "sessrec", "--help"], capture_output=True, text=True
    )
    rows = []
    for line in result.stderr.splitlines():
        if line.startswith("import time:") and "|" in line and "cumulative" not in line:
            _, cumulative, name = line.split("|")
            rows.append((int(cumulative), name.strip()))
    return sorted(rows, reverse=True)[:count]


def heavy_loaded(args: list[str]) -> list[str]:
    probe = (
        "import sys; sys.argv = ['sessrec', *sys.argv[1:], '--help']; from sessrec.cli import run; run(); "
        f"print([m for m in {list(HEAVY_MODULES)!r} if m in sys.modules], file=sys.stderr)"
    )
    result = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True)
    return eval(result.stderr.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    rows = []
    for args in COMMANDS:
        times, cpu = wall_times(args, options.runs)
        rows.append(
            {
                "median_cpu_s": round(statistics.median(cpu), 3),
                "command": " ".join(["sessrec", *args, "--help"]),
                "median_s": round(statistics.median(times), 3),
                "min_s": round(min(times), 3),
                "max_s": round(max(times), 3),
                "heavy_loaded": heavy_loaded(args),
            }
        )
    imports = [{"module": name, "cumulative_ms": round(us / 1000, 1)} for us, name in slowest_imports()]
    if options.json:
        print(json.dumps({"target_s": TARGET_S, "commands": rows, "slowest_imports": imports}, indent=2))
        return
    for row in rows:
        flag = "" if row["median_s"] < TARGET_S else "  (over the target)"
        print(
            f"{row['command']:<32} median {row['median_s']:.3f} s  [{row['min_s']:.3f} .. {row['max_s']:.3f}]  "
            f"cpu {row['median_cpu_s']:.3f} s  "
            f"heavy: {', '.join(row['heavy_loaded']) or 'none'}{flag}"
        )
    print("slowest imports of sessrec --help (cumulative):")
    for row in imports:
        print(f"  {row['cumulative_ms']:>7.1f} ms  {row['module']}")


if __name__ == "__main__":
    main()

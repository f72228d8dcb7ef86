"""Small builders shared by the tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from sessrec.core.sessions import Sessions

SESSREC = [sys.executable, "-m", "sessrec"]
REFERENCE_SESSIONS = Path(__file__).resolve().parents[2] / "shared" / "data" / "online_retail_sessions.jsonl"


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, their children, ...), from the parent links in
    ``/proc/*/stat``; not ``pid`` itself."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # exited meanwhile
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    family, index = [pid], 0
    while index < len(family):
        family += children.get(family[index], [])
        index += 1
    return family[1:]


def process_name(pid: int) -> str:
    """A process's name (``/proc/<pid>/comm``: "raylet", "gcs_server"), "" once it has ended. Not
    its command line: a Ray worker's, before it renames itself, names the raylet's socket too."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def kill_with_descendants(pid: int) -> None:
    """SIGKILL a process and every process below it, the family gathered first. Ray's workers
    leave the driver's process group, and one that outlived the driver by a moment could finish
    its trial."""
    for member in [pid, *descendants(pid)]:
        try:
            os.kill(member, signal.SIGKILL)
        except ProcessLookupError:
            pass


def sessions(*lists: list[str]) -> Sessions:
    return Sessions.from_lists(lists)


def run_cli(*args: str, cwd: Path, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the installed CLI as a user would, in a subprocess."""
    return subprocess.run([*SESSREC, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode != 0, result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


class CliResult:
    def __init__(self, code: int, stdout: str, stderr: str):
        self.returncode, self.stdout, self.stderr = code, stdout, stderr

    def json(self):
        import json

        return json.loads(self.stdout)


def cli_in_process(capsys, *args: str) -> CliResult:
    """Run ``sessrec ARGS`` through its real entry point in this process (fast, same output)."""
    from sessrec.cli import run

    capsys.readouterr()
    argv = sys.argv
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)  # run() keeps its own
    sys.argv = ["sessrec", *args]
    try:
        code = run()
    finally:
        sys.argv = argv
        signal.signal(signal.SIGINT, handlers[0])
        signal.signal(signal.SIGTERM, handlers[1])
    out = capsys.readouterr()
    return CliResult(code, out.out, out.err)


#: The cheapest finished sweep with every stored file (on a dataset "demo"): two trials x 2 epochs.
TWO_TRIAL_SWEEP = {
    "name": "t",
    "dataset": "demo",
    "split": {"seed": 0, "n": 50},
    "space": {"vector_size": 8, "window": [2, 3]},
    "scheduler": {"type": "fifo", "max_t": 2},
    "resources": {"cpus_per_trial": 1},
}


def local_sweep_env(folder: Path, storage: str | None = None, **extra: str) -> dict[str, str]:
    """The environment of a CLI run as a user on a laptop runs it: storage under ``folder`` (or
    ``storage``), an embedded Ray with auth off, ``folder`` as HOME; ``extra`` variables on top."""
    import os

    env = {
        **os.environ,
        "SESSREC_STORAGE": storage or str(folder / "store"),
        "RAY_AUTH_MODE": "disabled",
        "HOME": str(folder),
        **extra,
    }
    env.pop("RAY_ADDRESS", None)
    return env


def synth_dataset(
    folder: Path, env: dict[str, str], name: str = "demo", *, sessions: int, items: int, clusters: int
) -> None:
    """``sessrec data synth`` into the env's storage; the test fails if it does."""
    args = ["--name", name, "--sessions", str(sessions), "--items", str(items), "--clusters", str(clusters)]
    result = run_cli("data", "synth", *args, cwd=folder, env=env)
    assert result.returncode == 0, result.stderr


def start_sweep(
    folder: Path, env: dict[str, str], spec: str, sweep_id: str, *, until: str, timeout: float = 180
) -> tuple[subprocess.Popen, Path]:
    """``sessrec tune run SPEC`` on 1 CPU in a session of its own (so its group can be signalled),
    logging to ``folder/<id>.log``; returns once the log shows ``until``."""
    import time

    log_path = folder / f"{sweep_id}.log"
    driver = subprocess.Popen(
        [*SESSREC, "tune", "run", spec, "--sweep-id", sweep_id, "--num-cpus", "1"],
        cwd=folder,
        env=env,
        stdout=open(log_path, "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.time() + timeout
    while until not in log_path.read_text():
        assert driver.poll() is None and time.time() < deadline, log_path.read_text()[-2000:]
        time.sleep(0.3)
    return driver, log_path

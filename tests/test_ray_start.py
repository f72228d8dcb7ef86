"""Issue #23: a failed start of the embedded Ray is retried, with a line on stderr; one that keeps
failing is one error line, and the sweep stores nothing (its id stays free).

The failures are real, not stand-ins for Ray:
- the embedded Ray's temp folder is taken by a plain file, so ``ray.init`` itself fails ("File
  exists") until the file goes;
- the raylet is killed just before the driver registers with it, and Ray ends the driver's
  process itself (``_Exit(1)``, "Failed to get the system config from raylet"): the ``sessrec``
  process, which runs the command in a child, runs it again.
The private temp folder's parent is moved to a folder of the test's own
(``ray_start.PRIVATE_TEMP_PARENT``), so that the shared ``/tmp/sessrec-ray-<uid>`` of other runs
on the machine is never touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from sessrec.sweep import ray_start
from tests.helpers import (
    SESSREC,
    TWO_TRIAL_SWEEP,
    descendants,
    kill_with_descendants,
    local_sweep_env,
    process_name,
    synth_dataset,
)

pytestmark = pytest.mark.slow

#: The CLI with the embedded Ray's temp folder under argv[1] (the rest: sessrec's arguments).
CLI_WITH_TEMP_PARENT = (
    "import sys; from sessrec.sweep import ray_start; ray_start.PRIVATE_TEMP_PARENT = sys.argv[1]; "
    "from sessrec.cli import run; sys.argv = ['sessrec', *sys.argv[2:]]; sys.exit(run())"
)


@pytest.fixture
def blocked_parent() -> Iterator[Path]:
    """A temp-folder parent (short: Ray's socket paths must stay under 107 characters) whose
    embedded Ray temp folder ``sessrec-ray-<uid>/ray`` is a plain file: ray.init fails on it."""
    parent = Path(tempfile.mkdtemp(prefix="rs", dir="/tmp"))
    private = parent / f"sessrec-ray-{os.getuid()}"
    private.mkdir(mode=0o700)
    (private / "ray").write_text("not a folder\n")
    yield parent
    shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture
def sweep_folder(tmp_path: Path) -> tuple[Path, dict[str, str], str]:
    env = local_sweep_env(tmp_path)
    synth_dataset(tmp_path, env, sessions=300, items=80, clusters=6)
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(TWO_TRIAL_SWEEP))
    return tmp_path, env, str(spec)


def test_a_failed_start_is_retried_and_the_sweep_runs(blocked_parent, sweep_folder):
    folder, env, spec = sweep_folder
    command = [sys.executable, "-c", CLI_WITH_TEMP_PARENT, str(blocked_parent)]
    command += ["tune", "run", spec, "--sweep-id", "s1", "--num-cpus", "1", "--json"]
    driver = subprocess.Popen(command, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    try:
        assert driver.stderr is not None
        for line in driver.stderr:
            lines.append(line)
            if "retrying" in line:
                # The condition clears, as a busy temp folder would: the next attempt starts Ray.
                (blocked_parent / f"sessrec-ray-{os.getuid()}" / "ray").unlink(missing_ok=True)
        stdout = driver.stdout.read() if driver.stdout else ""
        driver.wait(timeout=240)
    finally:
        if driver.poll() is None:
            driver.kill()
    stderr = "".join(lines)
    assert driver.returncode == 0, stderr[-3000:]
    retries = [line for line in lines if line.startswith("Ray did not start")]
    assert retries and "File exists" in retries[0] and "attempt 2 of 3" in retries[0], stderr
    assert "Traceback" not in stderr
    assert '"status": "completed"' in stdout
    # The retried start ran in the private folder, now a folder; nothing of the failed one is left.
    assert (blocked_parent / f"sessrec-ray-{os.getuid()}" / "ray").is_dir()


def test_a_start_that_keeps_failing_is_one_error_line_and_stores_nothing(
    blocked_parent, sweep_folder, cli, monkeypatch
):
    folder, env, spec = sweep_folder
    monkeypatch.setenv("SESSREC_STORAGE", env["SESSREC_STORAGE"])
    monkeypatch.setattr(ray_start, "PRIVATE_TEMP_PARENT", str(blocked_parent))
    monkeypatch.setattr(ray_start, "EMBEDDED_RETRY_PAUSE_S", 0.2)
    started = time.monotonic()
    result = cli("tune", "run", spec, "--sweep-id", "s2", "--num-cpus", "1")
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr
    assert [line.partition(" (")[0] for line in lines[:-1]] == ["Ray did not start"] * 2, result.stderr
    assert lines[-1].startswith("error: the embedded Ray did not start (3 attempts)"), result.stderr
    assert "File exists" in lines[-1]
    assert time.monotonic() - started < 60
    # Ray is started before the sweep claims its id: nothing of it is stored, and the id is free.
    assert not (folder / "store" / "sweeps" / "s2").exists()
    listed = cli("results", "list", "--json")
    assert listed.returncode == 0 and "s2" not in listed.stdout


def test_a_failed_start_leaves_no_process_or_session_folder_of_its_own(tmp_path):
    """What a start that failed half-way leaves (processes naming its session folder, the folder)
    goes; another session's processes, and a session that was there before, stay."""
    temp = tmp_path / "ray"
    ours = temp / f"session_2026-01-01_00-00-00_000001_{os.getpid()}"
    older = temp / f"session_2025-01-01_00-00-00_000001_{os.getpid()}"
    other = temp / f"session_2026-01-01_00-00-00_000001_{os.getpid()}1"  # a longer name: not ours
    for folder in (ours, older, other):
        (folder / "logs").mkdir(parents=True)
    sleeper = [sys.executable, "-c", "import time; time.sleep(120)"]
    left = subprocess.Popen([*sleeper, f"--session-dir={ours}"])
    kept = subprocess.Popen([*sleeper, f"--log-dir={other}/logs"])
    try:
        ray_start._clean_failed_start(str(temp), before={older.name})
        assert left.wait(timeout=10) != 0
        assert kept.poll() is None
        assert not ours.exists() and older.exists()
    finally:
        for process in (left, kept):
            if process.poll() is None:
                process.kill()
                process.wait()


#: The ``sessrec`` process (``main``: it runs the command in a child, and again where Ray ends that),
#: with the embedded Ray's temp folder under argv[1]. The first argv[3] starts of Ray, counted in the
#: file argv[2], have their raylet killed just before the driver registers with it; the rest:
#: sessrec's arguments.
CLI_WITH_DYING_RAYLET = """
import os, sys
from sessrec.sweep import ray_start
ray_start.PRIVATE_TEMP_PARENT, ray_start.EMBEDDED_RETRY_PAUSE_S = sys.argv[1], 0.2
counter, deaths = sys.argv[2], int(sys.argv[3])
if os.environ.get(ray_start.SUPERVISED_VAR):
    import ray._private.worker as worker
    connect = worker.connect
    def raylet_dies_first(node, *args, **kwargs):
        starts = len(open(counter).read()) if os.path.exists(counter) else 0
        open(counter, "a").write("x")
        if starts < deaths:
            raylet = node.all_processes["raylet"][0].process
            raylet.kill()
            raylet.wait()
        return connect(node, *args, **kwargs)
    worker.connect = raylet_dies_first
from sessrec.cli import main
sys.argv = ["sessrec", *sys.argv[4:]]
main()
"""


def _run_with_dying_raylet(folder: Path, env: dict[str, str], spec: str, sweep_id: str, deaths: int):
    temp_parent = Path(tempfile.mkdtemp(prefix="rs", dir="/tmp"))  # short: Ray's socket paths
    try:
        command = [sys.executable, "-c", CLI_WITH_DYING_RAYLET, str(temp_parent), str(folder / "starts"), str(deaths)]
        command += ["tune", "run", spec, "--sweep-id", sweep_id, "--num-cpus", "1", "--json"]
        result = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=400)
        sessions = sorted((temp_parent / f"sessrec-ray-{os.getuid()}" / "ray").glob("session_2*"))
        leftovers = [pid for session in sessions for pid in ray_start._processes_naming(str(session))]
        return result, sessions, leftovers
    finally:
        shutil.rmtree(temp_parent, ignore_errors=True)


def test_a_start_that_ray_ends_is_run_again_and_the_sweep_runs(sweep_folder):
    folder, env, spec = sweep_folder
    result, sessions, _ = _run_with_dying_raylet(folder, env, spec, "h1", deaths=1)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (folder / "starts").read_text() == "xx"  # two Ray starts: the first one's raylet killed
    retries = [line for line in result.stderr.splitlines() if line.startswith("Ray did not start")]
    assert len(retries) == 1, result.stderr
    assert "Ray ended the process: Failed to get the system config from raylet" in retries[0], retries
    assert retries[0].endswith("(attempt 2 of 3)")
    assert "Traceback" not in result.stderr
    assert '"status": "completed"' in result.stdout
    assert len(sessions) == 1  # the ended start's session folder is gone; the second's is left, as Ray leaves it


def test_a_start_that_ray_keeps_ending_is_one_error_line_and_stores_nothing(sweep_folder):
    folder, env, spec = sweep_folder
    result, sessions, leftovers = _run_with_dying_raylet(folder, env, spec, "h2", deaths=99)
    assert result.returncode == 1, result.stderr[-3000:]
    assert (folder / "starts").read_text() == "xxx"
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    ours = [line for line in lines if not line.startswith("[")]  # Ray's own line, as it ends each start
    assert [line.partition(" (")[0] for line in ours[:-1]] == ["Ray did not start"] * 2, result.stderr
    assert ours[-1].startswith("error: the embedded Ray did not start (3 attempts); the last: Ray ended the process")
    assert "Traceback" not in result.stderr
    assert sessions == [] and leftovers == []
    # Ray is started before the sweep claims its id: nothing of it is stored.
    assert not (folder / "store" / "sweeps" / "h2").exists()


def _state(pid: int) -> str:
    """A process's state letter (R, S, T for stopped, ...); "gone" once it has ended."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return "gone"


def _wait_for(condition, what, timeout: float = 30) -> None:
    """Wait until ``condition()``; past ``timeout`` fail, saying ``what`` (or what ``what()`` says)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what() if callable(what) else what
        time.sleep(0.1)


def test_the_command_in_its_child_stops_goes_on_and_ends_with_the_sessrec_process(sweep_folder):
    """Ctrl-Z and fg reach the child and its Ray; a SIGKILLed ``sessrec`` process takes the child
    and its Ray with it (no sweep runs on unseen)."""
    folder, env, _ = sweep_folder
    synth_dataset(folder, env, "big", sessions=6000, items=600, clusters=20)
    spec = folder / "slow.yaml"
    slow = {**TWO_TRIAL_SWEEP, "dataset": "big", "scheduler": {"type": "fifo", "max_t": 5}}
    spec.write_text(yaml.safe_dump({**slow, "space": {"vector_size": 16, "window": [2, 4, 6]}}))
    driver = subprocess.Popen(
        [*SESSREC, "tune", "run", str(spec), "--sweep-id", "k1", "--num-cpus", "1"],
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    family: list[int] = []
    try:

        def raylet() -> list[int]:
            return [pid for pid in descendants(driver.pid) if process_name(pid) == "raylet"]

        _wait_for(lambda: raylet() != [], "no raylet started below the sessrec process", timeout=120)
        child, family = descendants(driver.pid)[0], descendants(driver.pid)
        assert b"tune" in _cmdline(child) and raylet()[0] in descendants(child)
        os.kill(driver.pid, signal.SIGTSTP)  # Ctrl-Z
        _wait_for(lambda: _state(child) == "T" and _state(driver.pid) == "T", "Ctrl-Z did not stop the child")
        os.kill(driver.pid, signal.SIGCONT)  # fg
        _wait_for(lambda: _state(child) not in ("T", "gone"), "fg did not continue the child")
        assert driver.poll() is None
        running = [child, *raylet(), *(pid for pid in family if process_name(pid) == "gcs_server")]
        os.kill(driver.pid, signal.SIGKILL)
        # Ray's agents linger a while after their raylet, as after any SIGKILLed driver: they run no trial.
        _wait_for(
            lambda: all(_state(pid) in ("gone", "Z") for pid in running),
            lambda: "outlived it: " + ", ".join(f"{pid} {process_name(pid)} {_state(pid)}" for pid in running),
        )
    finally:
        kill_with_descendants(driver.pid)
        driver.wait()
        for pid in family:  # those that outlived it: no longer below it
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""

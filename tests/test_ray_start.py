"""Issue #23: a failed start of the embedded Ray is retried, with a line on stderr; one that keeps
failing is one error line, and the sweep stores nothing (its id stays free).

The failure is real, not a stand-in for Ray: the embedded Ray's temp folder is taken by a plain
file, so ``ray.init`` itself fails ("File exists") until the file goes. The private temp folder's
parent is moved to a folder of the test's own (``cluster.PRIVATE_TEMP_PARENT``), so that the
shared ``/tmp/sessrec-ray-<uid>`` of other runs on the machine is never touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from sessrec.sweep import cluster
from tests.helpers import TWO_TRIAL_SWEEP, local_sweep_env, synth_dataset

pytestmark = pytest.mark.slow

#: The CLI with the embedded Ray's temp folder under argv[1] (the rest: sessrec's arguments).
CLI_WITH_TEMP_PARENT = (
    "import sys; from sessrec.sweep import cluster; cluster.PRIVATE_TEMP_PARENT = sys.argv[1]; "
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
    monkeypatch.setattr(cluster, "PRIVATE_TEMP_PARENT", str(blocked_parent))
    monkeypatch.setattr(cluster, "EMBEDDED_RETRY_PAUSE_S", 0.2)
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
        cluster._clean_failed_start(str(temp), before={older.name})
        assert left.wait(timeout=10) != 0
        assert kept.poll() is None
        assert not ours.exists() and older.exists()
    finally:
        for process in (left, kept):
            if process.poll() is None:
                process.kill()
                process.wait()

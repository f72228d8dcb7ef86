"""The CLI as a well-made Typer app (issue #23): fast, light --help, --version, completion,
Click's metavars, 80 columns, exit 130 on Ctrl-C, --set / --time-budget / --stop-at input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sessrec.cli import names
from tests.helpers import SESSREC, assert_one_line_error, run_cli

SUB_APPS = ["data", "tune", "results", "k8s", "submit", "jobs"]
PROBE = (
    "import json, sys; heavy = json.loads(sys.argv[2]); sys.argv = ['sessrec', *json.loads(sys.argv[1])]; "
    "from sessrec.cli import run; code = run(); "
    "print(json.dumps([code, [m for m in heavy if m in sys.modules]]), file=sys.stderr)"
)


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "SESSREC_STORAGE": str(tmp_path / "store"), "SESSREC_CONFIG": str(tmp_path / "none.yaml")}
    env.update(extra)
    return env


@pytest.mark.parametrize(
    "args", [[], *[[sub] for sub in SUB_APPS], ["tune", "run"], ["train"], ["serve"], ["jobs", "logs"]]
)
def test_help_loads_no_heavy_library(tmp_path, args):
    argv = json.dumps([*args, "--help"])
    result = subprocess.run(
        [sys.executable, "-c", PROBE, argv, json.dumps(names.HEAVY_MODULES)],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    code, loaded = json.loads(result.stderr.strip().splitlines()[-1])
    assert code == 0 and "Usage: sessrec" in result.stdout, result.stderr
    assert loaded == [], f"sessrec {' '.join(args)} --help imported {loaded}"


def test_names_copied_for_help_match_their_sources():
    from sessrec.core.recommenders import MODELS
    from sessrec.core.session_metrics import EXCLUDES
    from sessrec.core.sessions import DEFAULT_PRODUCT_PATTERN
    from sessrec.k8s.defaults import SERVE_PORT
    from sessrec.pipeline import BASELINE_METHODS
    from sessrec.serving import DEFAULT_RELOAD_INTERVAL_S
    from sessrec.spec import BUILTIN_SPECS, DEFAULT_K, DEFAULT_PAIRS, MAX_K

    assert names.BUILTIN_SPECS == BUILTIN_SPECS
    assert names.BASELINE_METHODS == BASELINE_METHODS
    assert names.MODELS == tuple(MODELS)
    assert names.EXCLUDES == EXCLUDES
    assert names.DEFAULT_PRODUCT_PATTERN == DEFAULT_PRODUCT_PATTERN
    assert (names.DEFAULT_K, names.MAX_K, names.DEFAULT_PAIRS) == (DEFAULT_K, MAX_K, DEFAULT_PAIRS)
    assert (names.SERVE_PORT, names.DEFAULT_RELOAD_INTERVAL_S) == (SERVE_PORT, DEFAULT_RELOAD_INTERVAL_S)


def test_version(tmp_path):
    from sessrec import __version__

    result = run_cli("--version", cwd=tmp_path, env=_env(tmp_path))
    assert result.returncode == 0 and result.stdout.strip() == f"sessrec {__version__}", result.stderr


def test_completion_is_listed_and_shown(tmp_path):
    help_text = run_cli("--help", cwd=tmp_path, env=_env(tmp_path, COLUMNS="100")).stdout
    assert "--install-completion" in help_text and "--show-completion" in help_text
    script = run_cli(
        "--show-completion", "bash", cwd=tmp_path, env=_env(tmp_path, _TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION="1")
    )
    assert script.returncode == 0 and "_SESSREC_COMPLETE=complete_bash" in script.stdout, script.stderr
    words = subprocess.run(
        SESSREC,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(tmp_path, _SESSREC_COMPLETE="complete_bash", COMP_WORDS="sessrec tu", COMP_CWORD="1"),
    )
    assert words.stdout.split() == ["tune"], (words.stdout, words.stderr)


@pytest.mark.parametrize("args", [["tune", "run"], ["submit", "tune"], ["k8s", "render"], ["train"], ["jobs", "logs"]])
def test_help_at_80_columns_has_whole_option_names_and_click_metavars(tmp_path, args):
    result = run_cli(*args, "--help", cwd=tmp_path, env=_env(tmp_path, COLUMNS="80"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "<str>" not in result.stdout and "<int" not in result.stdout and "<bool>" not in result.stdout
    assert "TEXT" in result.stdout or "INTEGER" in result.stdout
    for line in lines:
        for word in line.split():
            if word.startswith("--"):
                assert "…" not in word, line
    if args == ["tune", "run"]:
        assert "--no-resume-existing" in result.stdout and "INTEGER RANGE" in result.stdout
        assert "Usage: sessrec tune run [OPTIONS] SPEC" in result.stdout


def test_set_overrides_spec_fields(tmp_path):
    env = _env(tmp_path)
    assert (
        run_cli(
            "data", "synth", "--name", "demo", "--sessions", "600", "--items", "60", cwd=tmp_path, env=env
        ).returncode
        == 0
    )
    plain = run_cli("tune", "run", "tiny", "--dry-run", "--json", cwd=tmp_path, env=env)
    changed = run_cli(
        "tune",
        "run",
        "tiny",
        "--dry-run",
        "--json",
        "--set",
        "space.window=[3,7,9]",
        "--set",
        "scheduler.type=fifo",
        cwd=tmp_path,
        env=env,
    )
    assert plain.returncode == 0 and changed.returncode == 0, changed.stderr
    assert json.loads(changed.stdout)["trials"] == json.loads(plain.stdout)["trials"] // 2 * 3
    estimate = json.loads(plain.stdout)
    low, high = estimate["estimated_wall_seconds_range"]
    assert low <= estimate["estimated_wall_seconds_worst_case"] <= high or low <= high


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--set", "scheduler.max_tt=3"], "unknown spec field 'scheduler.max_tt'"),
        (["--set", "nosuch=3"], "unknown spec field 'nosuch'"),
        (["--set", "scheduler.max_t=abc"], "scheduler.max_t"),
        (["--set", "window"], "expected PATH=VALUE"),
        (["--time-budget", "20x"], "--time-budget '20x'"),
        (["--time-budget", "0s"], "--time-budget '0s'"),
    ],
)
def test_bad_overrides_are_one_line(tmp_path, args, fragment):
    result = run_cli("tune", "run", "tiny", "--dry-run", *args, cwd=tmp_path, env=_env(tmp_path))
    assert_one_line_error(result, fragment)


def test_durations():
    from sessrec.cli.tune import parse_duration

    assert [parse_duration(t, "--x") for t in ("90", "90s", "20m", "1.5h")] == [90, 90, 1200, 5400]


@pytest.mark.parametrize(
    "args",
    [
        ["data", "synth", "--name", "big", "--sessions", "3000000", "--items", "5000"],
        ["tune", "run", "tiny", "--num-cpus", "1"],
    ],
    ids=["data-synth", "tune-run"],
)
def test_ctrl_c_exits_130(tmp_path, args):
    env = _env(tmp_path)
    if args[0] == "tune":
        assert (
            run_cli(
                "data", "synth", "--name", "demo", "--sessions", "600", "--items", "60", cwd=tmp_path, env=env
            ).returncode
            == 0
        )
    process = subprocess.Popen(
        [*SESSREC, *args], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        time.sleep(3.0)
        assert process.poll() is None, process.communicate()
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr
    assert "error: interrupted" in stderr and "Traceback" not in stderr, stderr

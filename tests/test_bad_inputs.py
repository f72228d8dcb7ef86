"""Bad input through the real CLI (a subprocess, with a timeout): one `error: ...` line on stderr,
a non-zero exit, no traceback, no hang, nothing written (issue #21)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from sessrec.errors import SessrecError
from tests.helpers import TWO_TRIAL_SWEEP, assert_one_line_error, run_cli

#: Far more than any of these needs; a hang or a runaway read fails the test instead of the machine.
TIMEOUT = 120

SPEC = "name: t\ndataset: demo\nspace: {vector_size: 8, window: 2}\nscheduler: {type: fifo, max_t: 1}\n"


def cli(tmp_path: Path, *args: str, env: dict | None = None):
    base = {**os.environ, "SESSREC_STORAGE": str(tmp_path / "store"), "SESSREC_CONFIG": str(tmp_path / "none.yaml")}
    return run_cli(*args, cwd=tmp_path, env={**base, **(env or {})}, timeout=TIMEOUT)


# --- #3: unbounded inputs ---------------------------------------------------------------------


def test_a_spec_that_is_not_a_regular_file_is_refused(tmp_path: Path):
    result = cli(tmp_path, "tune", "run", "/dev/zero", "--dry-run")
    assert_one_line_error(result, "/dev/zero", "not a regular file")


def test_a_spec_over_the_size_limit_is_refused_unparsed(tmp_path: Path):
    spec = tmp_path / "big.yaml"
    spec.write_text(SPEC + "#" * (1 << 20) + "\n")
    for args in (["tune", "run", str(spec), "--dry-run"], ["k8s", "render", str(spec)]):
        assert_one_line_error(cli(tmp_path, *args), str(spec), "1 MiB")


def billion_laughs() -> str:
    """9 nested levels of aliases under space.window: 9**10 strings once expanded."""
    levels = ["&a0 [" + ", ".join(["lol"] * 9) + "]"]
    levels += [f"&a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    return "name: t\ndataset: demo\nspace:\n  window: [" + ", ".join(levels) + "]\n"


@pytest.mark.parametrize("command", [["tune", "run", "{spec}", "--dry-run"], ["k8s", "render", "{spec}"]])
def test_a_spec_whose_aliases_expand_without_bound_is_refused(tmp_path: Path, command: list[str]):
    spec = tmp_path / "laughs.yaml"
    spec.write_text(billion_laughs())
    result = cli(tmp_path, *[part.format(spec=spec) for part in command])
    assert_one_line_error(result, str(spec), "aliases")


def test_a_recursive_alias_is_refused(tmp_path: Path):
    spec = tmp_path / "loop.yaml"
    spec.write_text("name: t\ndataset: demo\nspace:\n  window: &w [1, *w]\n")
    assert_one_line_error(cli(tmp_path, "tune", "run", str(spec), "--dry-run"), str(spec), "alias")


def test_a_spec_with_a_few_aliases_still_runs(tmp_path: Path):
    spec = tmp_path / "anchors.yaml"
    spec.write_text("name: t\ndataset: demo\nspace: {vector_size: &v 8, window: *v}\nscheduler: {type: fifo}\n")
    result = cli(tmp_path, "k8s", "render", str(spec))
    assert result.returncode == 0, result.stderr


def test_a_settings_file_that_is_a_device_or_too_big_is_refused(tmp_path: Path):
    result = cli(tmp_path, "results", "list", env={"SESSREC_CONFIG": "/dev/zero"})
    assert_one_line_error(result, "/dev/zero", "not a regular file")
    big = tmp_path / "settings.yaml"
    big.write_text("storage: x\n" + "#" * (1 << 20))
    assert_one_line_error(cli(tmp_path, "results", "list", env={"SESSREC_CONFIG": str(big)}), str(big), "1 MiB")


def test_a_manifest_that_is_a_device_is_refused(tmp_path: Path):
    assert_one_line_error(cli(tmp_path, "k8s", "validate", "/dev/zero"), "/dev/zero", "not a regular file")


def test_a_stored_json_file_that_is_a_device_is_refused(tmp_path: Path):
    sweep = tmp_path / "store" / "sweeps" / "t-1"
    sweep.mkdir(parents=True)
    (sweep / "manifest.json").symlink_to("/dev/zero")
    result = cli(tmp_path, "results", "best", "t-1")
    assert_one_line_error(result, "manifest.json")


# --- #9: messages that are not one clear line ---------------------------------------------------


def test_a_jsonl_item_with_an_unpaired_surrogate_escape_is_refused_naming_its_line(tmp_path: Path):
    lines = [json.dumps([f"a{i % 7}", f"b{i % 5}", f"c{i % 3}", "d"]) for i in range(50)]
    lines.insert(7, '["a", "\\ud800", "b", "c"]')
    (tmp_path / "x.jsonl").write_text("\n".join(lines) + "\n")
    result = cli(tmp_path, "data", "prepare", "x.jsonl", "--name", "x")
    assert_one_line_error(result, "x.jsonl line 8", "surrogate")
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize("command", [["results", "list"], ["data", "synth", "--name", "d"]])
def test_a_storage_root_that_cannot_be_read_is_refused(tmp_path: Path, command: list[str]):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o000)
    try:
        for root in ("/proc/1/root", str(locked / "store")):
            if os.geteuid() == 0 and root != "/proc/1/root":
                continue  # root reads any folder
            result = cli(tmp_path, "--storage", root, *command)
            assert_one_line_error(result, root)
            assert "unexpected" not in result.stderr
    finally:
        locked.chmod(0o700)


@pytest.mark.parametrize(
    "variables, fragment",
    [
        ({"AWS_ENDPOINT_URL": "notaurl"}, "AWS_ENDPOINT_URL"),
        ({"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_DEFAULT_REGION": "us-east-1\nx"}, "AWS_DEFAULT_REGION"),
    ],
)
@pytest.mark.parametrize("command", [["results", "list"], ["results", "show", "s1"], ["data", "stats", "demo"]])
def test_bad_s3_settings_are_one_line_naming_the_variable(tmp_path: Path, variables: dict, fragment: str, command):
    env = {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", **variables}
    result = cli(tmp_path, "--storage", "s3://bucket/x", *command, env=env)
    assert_one_line_error(result, fragment)
    assert "unexpected" not in result.stderr


def test_an_s3_root_with_dot_dot_segments_is_refused(tmp_path: Path):
    env = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}
    for root in ("s3://bucket/../x", "s3://bucket/a/./b", "s3://bucket/a/.."):
        result = cli(tmp_path, "--storage", root, "results", "list", env=env)
        assert_one_line_error(result, root, "'..'" if ".." in root else "'.'")


def test_a_csv_decoding_error_gives_the_byte_offset_in_the_file(tmp_path: Path):
    header = b"InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
    row = "{},85123A,café item,1,12/1/2010 8:26,2.55,17850,UK\n"
    good = b"".join(row.format(536365 + i).encode("utf-8") for i in range(3000))
    bad = row.format(999999).encode("latin-1")
    data = header + good + bad
    (tmp_path / "m.csv").write_bytes(data)
    offset = len(header) + len(good) + bad.index(b"\xe9")
    result = cli(tmp_path, "data", "prepare", "m.csv", "--name", "m", "--encoding", "utf-8")
    assert_one_line_error(result, f"byte {offset}", "line 3002")


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("sweep")
    (folder / "sweep.yaml").write_text(yaml.safe_dump(TWO_TRIAL_SWEEP))
    for args in (
        ["data", "synth", "--name", "demo", "--sessions", "400", "--items", "150", "--clusters", "5"],
        ["tune", "run", "sweep.yaml", "--sweep-id", "s1", "--num-cpus", "2"],
    ):
        result = cli(folder, *args)
        assert result.returncode == 0, result.stderr[-3000:]
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("command", ["report", "fetch"])
def test_a_to_folder_that_is_a_device_is_refused_before_writing(finished_sweep: Path, command: str):
    args = ["report", "s1"] if command == "report" else ["results", "fetch", "s1"]
    result = cli(finished_sweep, *args, "--to", "/dev/null")
    assert_one_line_error(result, "/dev/null", "not a folder")
    assert "File exists" not in result.stderr


# --- #8: symlinks in a local storage root -----------------------------------------------------------


def test_a_symlink_in_the_storage_root_does_not_carry_writes_outside(tmp_path: Path):
    (tmp_path / "store").mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "store" / "datasets").symlink_to(outside, target_is_directory=True)
    result = cli(tmp_path, "data", "synth", "--name", "demo", "--sessions", "400", "--items", "150", "--clusters", "5")
    assert_one_line_error(result, "outside the storage root")
    assert list(outside.iterdir()) == []


# --- #4: patience variables checked before a sweep claims its id -------------------------------------


@pytest.mark.parametrize(
    "variable, value",
    [("SESSREC_STORAGE_PATIENCE", "abc"), ("SESSREC_STORAGE_PATIENCE", "-5"), ("SESSREC_CLUSTER_PATIENCE", "abc")],
)
def test_a_bad_patience_is_refused_before_the_sweep_id_is_claimed(tmp_path: Path, variable: str, value: str):
    synth = cli(tmp_path, "data", "synth", "--name", "demo", "--sessions", "400", "--items", "150", "--clusters", "5")
    assert synth.returncode == 0, synth.stderr
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(TWO_TRIAL_SWEEP))
    result = cli(tmp_path, "tune", "run", "sweep.yaml", "--sweep-id", "s1", env={variable: value})
    assert_one_line_error(result, variable, repr(value))
    assert not (tmp_path / "store" / "sweeps").exists() or not list((tmp_path / "store" / "sweeps").iterdir())
    result = cli(tmp_path, "tune", "resume", "s1", env={variable: value})
    assert_one_line_error(result, variable)


def test_patience_is_read_from_the_one_settings_model(monkeypatch):
    from sessrec import settings

    monkeypatch.setenv("SESSREC_STORAGE_PATIENCE", "7.5")
    monkeypatch.delenv("SESSREC_CLUSTER_PATIENCE", raising=False)
    assert settings.patience("SESSREC_STORAGE_PATIENCE") == 7.5
    assert settings.patience("SESSREC_CLUSTER_PATIENCE") == 30.0
    for bad in ("abc", "-5", "0", "nan", "inf"):
        monkeypatch.setenv("SESSREC_CLUSTER_PATIENCE", bad)
        expected = f"SESSREC_CLUSTER_PATIENCE must be a number of seconds above 0, not '{bad}'"
        with pytest.raises(SessrecError, match=expected):
            settings.check_patience()


def test_every_seconds_variable_is_checked_alike(monkeypatch):
    """The lease's expiry and the job agent's wait go through the patience's one parser: a range
    each, one line naming the variable, whatever the bad value."""
    from sessrec.jobs_client import agent_wait_s
    from sessrec.sweep.records import lease_timing

    monkeypatch.setenv("SESSREC_LEASE_EXPIRY", " 12 ")
    monkeypatch.setenv("SESSREC_JOB_AGENT_WAIT", "0")
    assert lease_timing().expiry_s == 12.0 and agent_wait_s() == 0.0
    cases = [
        ("SESSREC_LEASE_EXPIRY", lease_timing, "from 1 to 3600", ("soon", "0.5", "3601", "nan", "inf")),
        ("SESSREC_JOB_AGENT_WAIT", agent_wait_s, "from 0 to 3600", ("soon", "-1", "3600.5", "nan")),
    ]
    for variable, read, bounds, bad_values in cases:
        for bad in bad_values:
            monkeypatch.setenv(variable, bad)
            with pytest.raises(SessrecError, match=f"^{variable} must be a number of seconds {bounds}, not '{bad}'$"):
                read()
        monkeypatch.delenv(variable)

"""A sweep job that ends with `sessrec results promote` (render --promote, the chart's `promote`): the
entrypoint, its quoting through KubeRay's submitter shell and Ray's job shell, validation, the chart
agreeing with the CLI, and one real run of the rendered entrypoint on a local Ray cluster."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from k8s_tools import CHART, REPO, Helm, find, helm_fixture  # noqa: F401  (the `helm` fixture)
from servers import RayLocalCluster
from typer.testing import CliRunner

from sessrec import layout
from sessrec.cli import app
from sessrec.errors import SessrecError
from sessrec.k8s import defaults, manifests, render, validate
from sessrec.spec import builtin_spec_text, parse_spec
from sessrec.sweep.records import SWEEP_ID_PREFIX_LENGTH, new_sweep_id, sweep_id_prefix

TINY = yaml.safe_load(builtin_spec_text("tiny"))
SECRET = "sessrec-s3-credentials"
RUN = {"cluster": {"enabled": False}, "oneOff": {"enabled": True}}
#: new_sweep_id's shape for the spec "tiny": <name>-<UTC date>-<UTC time>-<4 hex>.
GENERATED = re.compile(r"^tiny-\d{8}-\d{6}-[0-9a-f]{4}$")
VENV_BIN = str(Path(sys.executable).parent)


def rendered(kind: str, spec: str | None = "tiny", **options: Any) -> list[dict[str, Any]]:
    return manifests.render_objects(spec, render.RenderOptions(kind=kind, **options))


def job_spec(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """The RayJob spec of any job kind: the RayJob's, the RayCronJob's template or the CronJob's manifest."""
    kinds = {o["kind"] for o in objects}
    if "RayCronJob" in kinds:
        return find(objects, "RayCronJob")["spec"]["jobTemplate"]
    if "CronJob" in kinds:
        carried = next(o for o in objects if o["kind"] == "ConfigMap" and "rayjob.yaml" in o.get("data", {}))
        return yaml.safe_load(carried["data"]["rayjob.yaml"])["spec"]
    return find(objects, "RayJob")["spec"]


def script_of(entrypoint: str) -> str:
    words = shlex.split(entrypoint)
    assert words[:2] == ["bash", "-c"] and len(words) == 3, words
    return words[2]


# ---- the entrypoint ------------------------------------------------------------------------------


def test_a_scheduled_run_promotes_the_sweep_it_made() -> None:
    for kind in ("raycronjob", "cronjob"):
        entrypoint = job_spec(rendered(kind, promote="tiny-best"))["entrypoint"]
        assert script_of(entrypoint) == (
            f"SWEEP_ID=tiny-{defaults.SWEEP_ID_STAMP}"
            ' && sessrec tune run sweep.yaml --address auto --sweep-id "$SWEEP_ID"'
            ' && sessrec results promote "$SWEEP_ID" --name tiny-best --if-better'
        ), kind


def test_a_one_off_job_promotes_its_fixed_sweep_and_a_retry_promotes_again() -> None:
    entrypoint = job_spec(rendered("rayjob", sweep_id="tiny-1", promote="tiny-best", promote_if_better=False))[
        "entrypoint"
    ]
    assert entrypoint == (
        "bash -c 'SWEEP_ID=tiny-1"
        ' && sessrec tune run sweep.yaml --address auto --sweep-id "$SWEEP_ID" --resume-existing'
        ' && sessrec results promote "$SWEEP_ID" --name tiny-best\''
    )
    generated = job_spec(rendered("rayjob", promote="m"))["entrypoint"]
    assert script_of(generated).startswith(f"SWEEP_ID=tiny-{defaults.SWEEP_ID_STAMP} && ")


def test_a_long_spec_name_is_cut_so_the_sweep_id_fits(helm: Helm) -> None:
    long_name = "abcdefghijklmnopqr--uvwx"  # 24 characters, the most a spec name may have; "--" at the cut
    spec = parse_spec(yaml.safe_dump({**TINY, "name": long_name}))
    made = new_sweep_id(spec)
    assert made.startswith("abcdefghijklmnopqr-2") and len(made) == 39
    assert layout.check_name(made, "sweep id")
    theirs = job_spec(helm.objects({"sweep": {**TINY, "name": long_name}, **RUN, "promote": {"name": "m"}}))
    assert script_of(theirs["entrypoint"]).startswith(f"SWEEP_ID=abcdefghijklmnopqr-{defaults.SWEEP_ID_STAMP} && ")
    ours = render.entrypoint(render.RenderOptions(kind="raycronjob", promote="m"), long_name, None)
    assert ours == theirs["entrypoint"]
    assert sweep_id_prefix(long_name) == "abcdefghijklmnopqr"
    assert f"trunc {SWEEP_ID_PREFIX_LENGTH}" in (CHART / "templates" / "_helpers.tpl").read_text()


def test_without_promote_the_entrypoint_is_as_before() -> None:
    assert job_spec(rendered("raycronjob"))["entrypoint"] == defaults.ENTRYPOINT
    assert job_spec(rendered("rayjob", sweep_id="tiny-1"))["entrypoint"] == (
        f"{defaults.ENTRYPOINT} --sweep-id tiny-1 --resume-existing"
    )


def test_the_stamp_makes_new_sweep_id_s_shape_once_per_run() -> None:
    spec = parse_spec(builtin_spec_text("tiny"))
    assert GENERATED.match(new_sweep_id(spec))
    made = subprocess.run(
        ["bash", "-c", f"SWEEP_ID=tiny-{defaults.SWEEP_ID_STAMP} && echo $SWEEP_ID && echo $SWEEP_ID"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert len(made) == 2 and made[0] == made[1] and GENERATED.match(made[0]), made
    assert layout.check_name(made[0], "sweep id")


def _through_kuberay_and_ray(entrypoint: str, bin_dir: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The entrypoint as it reaches the driver: KubeRay's submitter runs `bash -ce '... ray job submit
    ... -- <entrypoint> ; ...'` (the words `ray job submit` gets come from that bash), Ray joins
    them with shlex.join and runs the result with /bin/sh (subprocess shell=True)."""
    words = subprocess.run(
        ["bash", "-ce", f"printf '%s\\0' -- {entrypoint} ;"], capture_output=True, text=True, check=True
    ).stdout.split("\0")[1:-1]
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    return subprocess.run(shlex.join(words), shell=True, capture_output=True, text=True, env=env, cwd=cwd)


def test_the_entrypoint_survives_both_shells(tmp_path: Path) -> None:
    """Every word arrives as rendered, quotes in a dataset included, and both commands get one id."""
    calls = tmp_path / "calls.jsonl"
    fake = tmp_path / "bin" / "sessrec"
    fake.parent.mkdir()
    fake.write_text(
        f'#!{sys.executable}\nimport json, sys\nopen({str(calls)!r}, "a").write(json.dumps(sys.argv[1:]) + "\\n")\n'
    )
    fake.chmod(0o755)
    dataset = "s3://bucket/it's a file.parquet"
    for kind in ("raycronjob", "rayjob"):
        calls.unlink(missing_ok=True)
        entrypoint = job_spec(rendered(kind, dataset=dataset, promote="tiny-best"))["entrypoint"]
        result = _through_kuberay_and_ray(entrypoint, fake.parent, tmp_path)
        assert result.returncode == 0, result.stderr
        tune, promote = (json.loads(line) for line in calls.read_text().splitlines())
        sweep_id = tune[tune.index("--sweep-id") + 1]
        assert GENERATED.match(sweep_id), sweep_id
        assert tune == ["tune", "run", "sweep.yaml", "--address", "auto", "--dataset", dataset, "--sweep-id", sweep_id]
        assert promote == ["results", "promote", sweep_id, "--name", "tiny-best", "--if-better"]
    # A failed sweep promotes nothing.
    fake.write_text(f'#!{sys.executable}\nimport sys\nopen({str(calls)!r}, "a").write("x\\n")\nsys.exit(3)\n')
    calls.unlink()
    entrypoint = job_spec(rendered("rayjob", sweep_id="tiny-1", promote="tiny-best"))["entrypoint"]
    result = _through_kuberay_and_ray(entrypoint, fake.parent, tmp_path)
    assert result.returncode == 3 and calls.read_text() == "x\n"


@pytest.mark.parametrize("kind", ["rayjob", "raycronjob", "cronjob"])
def test_jobs_that_promote_are_valid(kind: str) -> None:
    objects = rendered(kind, promote="tiny-best", promote_if_better=False)
    assert validate.validate_text(render.dump_yaml(objects), "promote.yaml")[1] == []


REFUSALS = [
    ("rayjob", "tiny", {"promote": "Best_Model"}, "--promote 'Best_Model': not a model name"),
    ("raycronjob", "tiny", {"promote": "a" * 41}, "at most 40 characters"),
    ("cronjob", "tiny", {"promote": "x; rm -rf /"}, "not a model name"),
    ("rayjob", "tiny", {"promote_if_better": False}, "--promote-always needs --promote NAME"),
    ("raycluster", None, {"promote": "best"}, "--kind raycluster takes no SPEC"),
    ("rayservice", None, {"model": "best", "promote": "best"}, "--kind rayservice takes no SPEC"),
]


@pytest.mark.parametrize(("kind", "spec", "options", "message"), REFUSALS, ids=[m for *_, m in REFUSALS])
def test_render_refuses(kind: str, spec: str | None, options: dict[str, Any], message: str) -> None:
    with pytest.raises(SessrecError, match=re.escape(message)):
        rendered(kind, spec, **options)


def test_cli_renders_promote_and_names_it_in_its_command_line() -> None:
    runner = CliRunner()
    argv = ["k8s", "render", "tiny", "--kind", "cronjob", "--promote", "tiny-best", "--promote-always"]
    result = runner.invoke(app, argv)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == f"# Rendered by: sessrec {' '.join(argv)}"
    entrypoint = job_spec([d for d in yaml.safe_load_all(result.stdout) if d])["entrypoint"]
    assert script_of(entrypoint).endswith("--name tiny-best")
    bad = [f"{VENV_BIN}/sessrec", "k8s", "render", "tiny", "--promote", "Bad Name"]
    result = subprocess.run(bad, capture_output=True, text=True)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.splitlines() == [
        "error: --promote 'Bad Name': not a model name: lower-case letters, digits and '-', "
        "starting with a letter, at most 40 characters"
    ]


# ---- the chart -----------------------------------------------------------------------------------


def chart(helm: Helm, values: dict[str, Any]) -> list[dict[str, Any]]:
    return helm.objects({"sweep": TINY, **RUN, "s3": {"existingSecret": SECRET}, **values})


def cli(kind: str, **options: Any) -> list[dict[str, Any]]:
    return rendered(kind, name="sessrec-tiny", s3_config="sessrec-tiny-s3", s3_secret=SECRET, **options)


def test_chart_jobs_promote_as_the_cli_s(helm: Helm) -> None:
    scheduled = {"oneOff": {"enabled": False}, "schedule": {"enabled": True}}
    cases = [
        ({"promote": {"name": "tiny-best"}}, cli("rayjob", promote="tiny-best")),
        (
            {"promote": {"name": "tiny-best", "ifBetter": False}, "oneOff": {"enabled": True, "sweepId": "tiny-1"}},
            cli("rayjob", promote="tiny-best", promote_if_better=False, sweep_id="tiny-1"),
        ),
        ({**scheduled, "promote": {"name": "tiny-best"}}, cli("raycronjob", promote="tiny-best")),
        (
            {
                **scheduled,
                "schedule": {"enabled": True, "mode": "cronjob"},
                "promote": {"name": "m", "ifBetter": False},
            },
            cli("cronjob", promote="m", promote_if_better=False),
        ),
    ]
    for values, ours in cases:
        theirs = chart(helm, values)
        assert job_spec(theirs)["entrypoint"] == job_spec(ours)["entrypoint"], values
        assert job_spec(theirs) == job_spec(ours), values
        count, found = validate.validate_text(yaml.safe_dump_all(theirs), "chart")
        assert found == [], "\n".join(map(str, found))


def test_chart_without_promote_renders_as_before(helm: Helm) -> None:
    assert job_spec(chart(helm, {}))["entrypoint"] == defaults.ENTRYPOINT
    assert job_spec(chart(helm, {"promote": {"name": "", "ifBetter": False}}))["entrypoint"] == defaults.ENTRYPOINT


def test_a_ci_values_file_promotes_and_lints_strict(helm: Helm) -> None:
    promoting = [p for p in sorted((CHART / "ci").glob("*.yaml")) if yaml.safe_load(p.read_text()).get("promote")]
    assert promoting, "a ci/ values file sets promote"
    for path in promoting:
        result = helm.run("lint", "--strict", str(CHART), "--values", str(path))
        assert result.returncode == 0, result.stdout + result.stderr
        objects = helm.objects(None, path, release="ci")
        assert "sessrec results promote" in job_spec(objects)["entrypoint"]


def test_the_chart_repeats_the_promote_constants() -> None:
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())["properties"]["promote"]["properties"]
    assert f'$stamp := "{defaults.SWEEP_ID_STAMP}"' in helpers
    assert f"{defaults.SWEEP_ID_VARIABLE}=%s" in helpers
    assert f'{defaults.PROMOTE_COMMAND} \\"${defaults.SWEEP_ID_VARIABLE}\\"' in helpers
    assert values["promote"] == {"name": "", "ifBetter": defaults.PROMOTE_IF_BETTER}
    assert schema["name"]["maxLength"] == layout.MAX_NAME_LENGTH
    assert schema["name"]["pattern"] == f"^({layout.NAME_PATTERN.pattern[1:-1]})?$"


# ---- the rendered entrypoint, run ----------------------------------------------------------------

SMALL = {
    **TINY,
    "space": {**TINY["space"], "window": 2, "negative": 5, "ns_exponent": 0.75},
    "scheduler": {"type": "asha", "max_t": 1, "grace_period": 1, "reduction_factor": 2},
}


@pytest.mark.slow
def test_a_rendered_scheduled_run_sweeps_and_promotes_on_ray(tmp_path: Path) -> None:
    """The RayCronJob's entrypoint, submitted as KubeRay's submitter does (`ray job submit` from
    bash, the spec folder as working_dir) to a local Ray cluster whose node has the storage in its
    environment, as the pods get it: one sweep, promoted under the name, its id in the record."""
    store, spec_dir = tmp_path / "store", tmp_path / "etc-sessrec"
    spec_dir.mkdir()
    (spec_dir / defaults.SPEC_KEY).write_text(yaml.safe_dump(SMALL, sort_keys=False))
    env = {**os.environ, "SESSREC_STORAGE": str(store)}
    subprocess.run(
        [f"{VENV_BIN}/sessrec", "data", "synth", "--name", "demo", "--sessions", "500", "--items", "100"],
        env=env,
        check=True,
        capture_output=True,
    )
    job = job_spec(rendered("raycronjob", str(spec_dir / defaults.SPEC_KEY), promote="tiny-best"))
    runtime_env = {**yaml.safe_load(job["runtimeEnvYAML"]), "working_dir": str(spec_dir)}
    started = time.monotonic()
    with RayLocalCluster(num_workers=0, head_cpus=2, env={"SESSREC_STORAGE": str(store)}) as cluster:
        command = (
            f"ray job submit --address {cluster.dashboard_url} "
            f"--runtime-env-json {shlex.quote(json.dumps(runtime_env))} -- {job['entrypoint']} ;"
        )
        submit_env = {**os.environ, **cluster.client_env(), "PATH": f"{VENV_BIN}:{os.environ['PATH']}"}
        submit_env.pop("RAY_ADDRESS")  # the submitter names the dashboard, as KubeRay's does
        result = subprocess.run(["bash", "-ce", command], env=submit_env, capture_output=True, text=True, timeout=300)
    log = result.stdout + result.stderr
    assert result.returncode == 0 and "succeeded" in log, log[-4000:]
    sweeps = sorted(p.name for p in (store / layout.SWEEPS).iterdir())
    assert len(sweeps) == 1 and GENERATED.match(sweeps[0]), sweeps
    records = json.loads((store / layout.MODELS / "tiny-best" / layout.PROMOTIONS_FILE).read_text())
    assert [(r["decision"], r["sweep_id"], r["if_better"]) for r in records] == [("promoted", sweeps[0], True)]
    assert f"promoted sweep {sweeps[0]}'s best" in log
    print(f"sweep and promotion on Ray in {time.monotonic() - started:.0f} s")

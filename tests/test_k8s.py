"""sessrec.k8s: rendered manifests are valid, and validation catches what the cluster would refuse."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from k8s_tools import REPO, find
from typer.testing import CliRunner

from sessrec.cli import app
from sessrec.errors import SessrecError
from sessrec.k8s import defaults, manifests, render, rules, validate
from sessrec.spec import BUILTIN_SPECS, builtin_spec_text

SESSREC = str(Path(sys.executable).parent / "sessrec")


def rendered(kind: str, spec: str | None = "tiny", **options: Any) -> list[dict[str, Any]]:
    return manifests.render_objects(spec, render.RenderOptions(kind=kind, **options))


def problems(objects: list[dict[str, Any]]) -> list[str]:
    return [str(p) for p in validate.validate_text(render.dump_yaml(objects), "test.yaml")[1]]


@pytest.mark.parametrize("spec", BUILTIN_SPECS)
@pytest.mark.parametrize("kind", ["rayjob", "raycronjob", "cronjob"])
def test_rendered_jobs_are_valid(kind: str, spec: str) -> None:
    # seed3d and reference name no dataset of their own: the job is told which.
    dataset = None if yaml.safe_load(builtin_spec_text(spec)).get("dataset") else "retail"
    assert problems(rendered(kind, spec, dataset=dataset)) == []


def test_rendered_cluster_is_valid_and_hardened() -> None:
    objects = rendered("raycluster", None)
    assert problems(objects) == []
    cluster = find(objects, "RayCluster", "sessrec")["spec"]
    assert cluster["enableInTreeAutoscaling"] is True
    assert cluster["authOptions"] == {"mode": "token"}
    assert cluster["rayVersion"] == defaults.RAY_VERSION
    workers = cluster["workerGroupSpecs"][0]
    assert (workers["minReplicas"], workers["maxReplicas"]) == (defaults.WORKER_MIN, defaults.WORKER_MAX)
    for pod in (cluster["headGroupSpec"]["template"]["spec"], workers["template"]["spec"]):
        assert pod["securityContext"] == {
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "runAsGroup": 100,
            "fsGroup": 100,
            "seccompProfile": {"type": "RuntimeDefault"},
        }
        container = pod["containers"][0]
        assert container["securityContext"] == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
        assert container["envFrom"] == [
            {"configMapRef": {"name": "sessrec-s3"}},
            {"secretRef": {"name": "sessrec-s3-credentials"}},
        ]
    assert workers["template"]["spec"]["automountServiceAccountToken"] is False


def test_rayjob_ships_the_spec_and_runs_the_laptop_command() -> None:
    objects = rendered("rayjob", "seed3d", sweep_id="seed3d-weekly", dataset="retail")
    sweep = find(objects, "ConfigMap", "sessrec-seed3d-sweep")
    assert sweep["data"]["sweep.yaml"] == builtin_spec_text("seed3d")  # verbatim, comments included
    job = find(objects, "RayJob", "sessrec-seed3d")["spec"]
    assert (
        job["entrypoint"]
        == "sessrec tune run sweep.yaml --address auto --dataset retail --sweep-id seed3d-weekly --resume-existing"
    )
    assert yaml.safe_load(job["runtimeEnvYAML"])["working_dir"] == "/etc/sessrec"
    submitter = job["submitterPodTemplate"]["spec"]
    assert submitter["volumes"] == [{"name": "sweep", "configMap": {"name": "sessrec-seed3d-sweep"}}]
    assert submitter["containers"][0]["volumeMounts"][0]["mountPath"] == "/etc/sessrec"
    assert "command" not in submitter["containers"][0]  # KubeRay supplies `ray job submit`
    assert (job["shutdownAfterJobFinishes"], job["ttlSecondsAfterFinished"]) == (True, defaults.JOB_TTL_SECONDS)
    assert (job["activeDeadlineSeconds"], job["backoffLimit"]) == (
        defaults.JOB_DEADLINE_SECONDS,
        defaults.JOB_BACKOFF_LIMIT,
    )


def test_rayjob_on_an_existing_cluster() -> None:
    objects = rendered("rayjob", cluster_selector={"ray.io/cluster": "sessrec"}, s3_secret=None)
    assert problems(objects) == []
    job = find(objects, "RayJob")["spec"]
    assert job["clusterSelector"] == {"ray.io/cluster": "sessrec"}
    for absent in ("rayClusterSpec", "backoffLimit", "shutdownAfterJobFinishes", "ttlSecondsAfterFinished"):
        assert absent not in job


def test_an_image_may_carry_a_registry_port_and_a_digest() -> None:
    image = "registry.example.com:5000/ml/sessrec:1.2.3@sha256:" + "ab" * 32
    job = find(rendered("rayjob", image=image), "RayJob")
    head = job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert head["image"] == image


def test_schedules_generate_a_sweep_id_per_run() -> None:
    cron = find(rendered("raycronjob", schedule="@daily", time_zone="Europe/Berlin"), "RayCronJob")["spec"]
    assert (cron["schedule"], cron["timeZone"]) == ("@daily", "Europe/Berlin")
    assert cron["jobTemplate"]["entrypoint"] == defaults.ENTRYPOINT
    objects = rendered("cronjob")
    manifest = yaml.safe_load(find(objects, "ConfigMap", "sessrec-tiny-rayjob")["data"]["rayjob.yaml"])
    assert manifest["metadata"]["generateName"] == "sessrec-tiny-"
    assert manifest["spec"]["entrypoint"] == defaults.ENTRYPOINT
    assert find(objects, "CronJob")["spec"]["concurrencyPolicy"] == "Forbid"
    assert find(objects, "Role")["rules"] == [{"apiGroups": ["ray.io"], "resources": ["rayjobs"], "verbs": ["create"]}]
    binding = find(objects, "RoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "sessrec-tiny-scheduler"}]


def test_render_accepts_a_spec_file(tmp_path: Path) -> None:
    spec = tmp_path / "mine.yaml"
    spec.write_text("name: mine\ndataset: demo\nspace: {window: [1, 2]}\n")
    assert find(rendered("rayjob", str(spec)), "RayJob")["metadata"]["name"] == "sessrec-mine"
    spec.write_text("name: mine\ndataset: demo\nspace: {window: [1, 2]}\nscheduler: {max_t: 2, grace_period: 5}\n")
    with pytest.raises(SessrecError, match="grace_period"):
        rendered("rayjob", str(spec))


@pytest.mark.parametrize(
    ("kind", "spec", "options", "message"),
    [
        ("rayjob", None, {}, "needs a SPEC"),
        ("rayjob", "no-such-spec.yaml", {}, "no spec file"),
        ("raycluster", "tiny", {}, "takes no SPEC"),
        ("helmchart", "tiny", {}, "unknown kind"),
        ("raycronjob", "tiny", {"name": "a" * 37}, "at most 36"),
        ("rayjob", "tiny", {"name": "Sessrec"}, "DNS-1035"),
        ("cronjob", "tiny", {"name": "a" * 42}, "at most 47"),  # its RayJobs get 6 more characters
        ("raycronjob", "tiny", {"sweep_id": "fixed"}, "each scheduled run"),
        ("rayjob", "tiny", {"sweep_id": "Not_A_Slug"}, "invalid sweep id"),
        ("rayjob", "tiny", {"cluster_selector": {"team": "ml"}}, "ray.io/cluster"),
        ("rayjob", "tiny", {"cluster_selector": {"ray.io/cluster": "My_Cluster"}}, "no RayCluster can have that name"),
        ("rayjob", "tiny", {"schedule": "@daily"}, "raycronjob or cronjob"),
        ("raycronjob", "tiny", {"schedule": "0 2 * *"}, "needs 5 fields"),
        ("cronjob", "tiny", {"time_zone": "Mars/Olympus"}, "IANA"),
        ("rayjob", "tiny", {"image": ""}, "give an image reference"),
        ("raycluster", None, {"image": "sessrec :1"}, "give an image reference"),
        ("rayjob", "tiny", {"image": "Team/Sessrec:1"}, "give an image reference"),
        ("rayjob", "tiny", {"image": "sessrec@sha256:123"}, "give an image reference"),
        ("rayjob", "tiny", {"s3_config": "Bad_Name"}, "--s3-config 'Bad_Name': not a Kubernetes object name"),
        ("cronjob", "tiny", {"s3_secret": "-x"}, "--s3-secret '-x': not a Kubernetes object name"),
    ],
)
def test_render_refuses(kind: str, spec: str | None, options: dict, message: str) -> None:
    with pytest.raises(SessrecError, match=message):
        rendered(kind, spec, **options)


def test_a_job_without_a_dataset_is_refused() -> None:
    for kind in ("rayjob", "raycronjob", "cronjob"):
        with pytest.raises(SessrecError, match="the spec names no dataset: set 'dataset' in it or pass --dataset"):
            rendered(kind, "seed3d")
    with pytest.raises(SessrecError, match="the cluster reads a dataset in the storage, or an s3:// sessions file"):
        rendered("rayjob", "seed3d", dataset="./sessions.parquet")
    with pytest.raises(SessrecError, match="invalid dataset name"):
        rendered("rayjob", "seed3d", dataset="My Data")
    cron = find(
        rendered("cronjob", "seed3d", dataset="s3://bucket/retail.parquet"), "ConfigMap", "sessrec-seed3d-rayjob"
    )
    assert "--dataset s3://bucket/retail.parquet" in cron["data"]["rayjob.yaml"]


def test_a_trial_bigger_than_a_worker_is_refused_on_an_ephemeral_cluster_only(tmp_path) -> None:
    spec = yaml.safe_load(builtin_spec_text("tiny"))
    path = tmp_path / "big.yaml"
    path.write_text(yaml.safe_dump({**spec, "resources": {**spec.get("resources", {}), "cpus_per_trial": 8}}))
    with pytest.raises(SessrecError, match="cpus_per_trial is 8, but a worker has 4 CPUs"):
        rendered("rayjob", str(path))
    # A shared cluster's workers are its own business.
    assert rendered("rayjob", str(path), cluster_selector={"ray.io/cluster": "big-workers"})


@pytest.mark.parametrize(
    "expr", ["0 2 * * *", "*/15 0-6,22 1-31/2 JAN-mar sun", "@daily", "@every 1h30m", "0 0 ? * MON-FRI"]
)
def test_cron_accepts(expr: str) -> None:
    assert rules.cron_problem(expr) is None


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("0 2 * *", "5 fields"),
        ("60 * * * *", "minute"),
        ("0 24 * * *", "hour"),
        ("0 0 0 * *", "day of month"),
        ("0 0 * 13 *", "month"),
        ("0 0 * * 7", "day of week"),
        ("0 0 * * 5-1", "backwards"),
        ("*/0 * * * *", "step"),
        ("CRON_TZ=UTC 0 2 * * *", "timeZone"),
        ("@fortnightly", "descriptor"),
    ],
)
def test_cron_refuses(expr: str, message: str) -> None:
    assert message in (rules.cron_problem(expr) or "")


def test_the_chart_s_cron_pattern_accepts_what_cron_problem_accepts() -> None:
    """The values schema's pattern is made from the same field table: on listed and on random
    expressions the two agree, except on ranges that run backwards, which only cron_problem sees."""
    import random
    import re

    pattern = re.compile(rules.cron_pattern())
    pieces = [
        "*",
        "?",
        "0",
        "5",
        "07",
        "59",
        "60",
        "23",
        "24",
        "31",
        "32",
        "12",
        "13",
        "6",
        "7",
        "JAN",
        "dec",
        "Sun",
        "MONDAY",
        "1-5",
        "5-1",
        "*/15",
        "*/0",
        "1-30/7",
        "x",
        "",
        "-1",
        "1,2",
        "2/3",
    ]
    rng = random.Random(0)
    expressions = [" ".join(rng.choice(pieces) for _ in range(rng.choice([4, 5, 5, 5, 6]))) for _ in range(3000)]
    expressions += [
        "@daily",
        "@every 90s",
        "@every 1.5h",
        "@every",
        "@every 1x",
        "@hourly now",
        " 0 2 * * * ",
        "0  2 * * *",
        "0 2 * * *\n",
    ]
    for expr in expressions:
        if "backwards" in (rules.cron_problem(expr) or ""):
            continue
        assert (rules.cron_problem(expr) is None) == bool(pattern.match(expr)), expr


def test_strict_schema_is_the_api_servers_strict_field_validation() -> None:
    schema = validate.strict_schema(
        {
            "type": "object",
            "properties": {
                "cpu": {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]},
                "port": {"x-kubernetes-int-or-string": True},
                "when": {"type": "string", "nullable": True},
                "free": {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": True,
                    "properties": {"a": {"type": "string"}},
                },
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        }
    )
    validator = jsonschema.Draft7Validator(schema)
    good = {"cpu": "500m", "port": 8080, "when": None, "free": {"a": "x", "b": 1}, "labels": {"x": "y"}}
    assert list(validator.iter_errors(good)) == []
    for bad in ({"cpu": 0.5}, {"port": True}, {"when": 3}, {"extra": 1}, {"labels": {"x": 1}}):
        assert list(validator.iter_errors(bad)), bad


def _rayjob() -> dict[str, Any]:
    return find(rendered("rayjob"), "RayJob")


def _cronjob() -> dict[str, Any]:
    return find(rendered("cronjob"), "CronJob")


def _worker(job: dict) -> dict:
    return job["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]


def _set(obj: dict, path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for key in parents:
        obj = obj[int(key)] if isinstance(obj, list) else obj[key]
    obj[last] = value


def _mutated(make: Callable[[], dict], path: str, value: Any) -> dict:
    obj = copy.deepcopy(make())
    _set(obj, path, value)
    return obj


# Field paths as reported, and the same places as paths for _mutated().
W = "spec.rayClusterSpec.workerGroupSpecs[0]"
WPOD = f"{W}.template.spec"
WCONTAINER = f"{WPOD}.containers[0].securityContext"
M_WPOD = "spec.rayClusterSpec.workerGroupSpecs.0.template.spec"
M_WCONTAINER = f"{M_WPOD}.containers.0"
CRONPOD = "spec.jobTemplate.spec.template.spec"  # no list on the way: both forms agree

CASES = [
    (_mutated(_rayjob, "spec.rayClusterSpec.bogus", 1), "spec.rayClusterSpec.bogus", "unknown field"),
    (
        _mutated(_rayjob, f"{M_WCONTAINER}.resources.limits.cpu", 1.5),
        f"{WPOD}.containers[0].resources.limits.cpu",
        "integer or a string",
    ),
    (_mutated(_rayjob, "spec.activeDeadlineSeconds", 2**40), "spec.activeDeadlineSeconds", "int32"),
    (
        _mutated(_rayjob, f"{M_WCONTAINER}.resources.requests.memory", "9Gi"),
        f"{WPOD}.containers[0].resources.requests.memory",
        "9Gi exceeds limits.memory (8Gi): the API server refuses the pod",
    ),
    (
        _mutated(_rayjob, f"{M_WCONTAINER}.resources.limits.cpu", "3500m"),
        f"{WPOD}.containers[0].resources.requests.cpu",
        "4 exceeds limits.cpu (3500m)",
    ),
    (
        _mutated(_rayjob, f"{M_WCONTAINER}.resources.limits.memory", "8000m"),
        f"{WPOD}.containers[0].resources.limits.memory",
        "8000m is 8 bytes: the m suffix is milli",
    ),
    (_mutated(_rayjob, "spec.submissionMode", "Batch"), "spec.submissionMode", "not K8sJobMode"),
    (_mutated(_rayjob, "metadata.name", "a" * 48), "metadata.name", "at most 47"),
    (_mutated(_rayjob, "metadata.name", "1-sweep"), "metadata.name", "DNS-1035"),
    (
        _mutated(_rayjob, "spec.shutdownAfterJobFinishes", False),
        "spec.ttlSecondsAfterFinished",
        "needs shutdownAfterJobFinishes",
    ),
    (
        _mutated(_rayjob, "spec.rayClusterSpec.workerGroupSpecs.0.minReplicas", 9),
        f"{W}.minReplicas",
        "greater than maxReplicas",
    ),
    (_mutated(_rayjob, "spec.rayClusterSpec.rayVersion", "2.40.0"), "spec.rayClusterSpec.rayVersion", ">= 2.52.0"),
    (_mutated(_rayjob, "spec.clusterSelector", {"ray.io/cluster": "x"}), "spec.backoffLimit", "with clusterSelector"),
    (
        {**_rayjob(), "spec": {k: v for k, v in _rayjob()["spec"].items() if k != "submitterPodTemplate"}},
        "spec.submitterPodTemplate",
        "no security context",
    ),
    (_mutated(_rayjob, "spec.runtimeEnvYAML", "[1, 2"), "spec.runtimeEnvYAML", "YAML mapping"),
    (
        _mutated(_rayjob, f"{M_WCONTAINER}.securityContext.allowPrivilegeEscalation", True),
        f"{WCONTAINER}.allowPrivilegeEscalation",
        "must be false",
    ),
    (
        _mutated(_rayjob, f"{M_WCONTAINER}.securityContext.capabilities", {"add": ["SYS_ADMIN"]}),
        f"{WCONTAINER}.capabilities.drop",
        "must include ALL",
    ),
    (_mutated(_rayjob, f"{M_WPOD}.securityContext.runAsUser", 0), f"{WCONTAINER}.runAsUser", "non-zero uid"),
    (
        _mutated(_rayjob, f"{M_WPOD}.securityContext.seccompProfile", {"type": "Unconfined"}),
        f"{WCONTAINER}.seccompProfile.type",
        "RuntimeDefault",
    ),
    (
        _mutated(_rayjob, f"{M_WPOD}.volumes", [{"name": "h", "hostPath": {"path": "/"}}]),
        f"{WPOD}.volumes[0].hostPath",
        "not allowed",
    ),
    (
        _mutated(_rayjob, "spec.rayClusterSpec.autoscalerOptions.securityContext", {}),
        "spec.rayClusterSpec.autoscalerOptions.securityContext.allowPrivilegeEscalation",
        "must be false",
    ),
    (_mutated(_cronjob, "spec.schedule", "0 25 * * *"), "spec.schedule", "hour"),
    (_mutated(_cronjob, f"{CRONPOD}.containers.0.bogus", 1), f"{CRONPOD}.containers[0].bogus", "unknown field"),
    (
        _mutated(_cronjob, f"{CRONPOD}.securityContext.runAsNonRoot", False),
        f"{CRONPOD}.containers[0].securityContext.runAsNonRoot",
        "must be true",
    ),
    (_mutated(_cronjob, "metadata.name", "c" * 53), "metadata.name", "at most 52"),
    (_mutated(_cronjob, "metadata.labels.team", "-bad-"), "metadata.labels.team", "label value"),
    (
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "s"},
            "data": {"sweep.yaml": "space: {window: 3.5}"},
        },
        "data.sweep.yaml",
        "integers",
    ),
    ({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}, "kind", "has no Widget"),
    (
        {"apiVersion": "ray.io/v1", "kind": "RayCronJob", "metadata": {"name": "x"}, "spec": {"schedule": "@daily"}},
        "spec",
        "'jobTemplate' is a required property",
    ),
]


@pytest.mark.parametrize(("obj", "field", "message"), CASES, ids=[f"{field}: {message}" for _, field, message in CASES])
def test_validation_reports_field_and_reason(obj: dict, field: str, message: str) -> None:
    found = validate.validate_object(obj, "case.yaml")
    assert any(p.field == field and message in p.message for p in found), [str(p) for p in found]


def test_validation_looks_inside_configmaps() -> None:
    objects = rendered("cronjob")
    carrier = find(objects, "ConfigMap", "sessrec-tiny-rayjob")
    job = yaml.safe_load(carrier["data"]["rayjob.yaml"])
    job["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["maxReplica"] = 4
    carrier["data"]["rayjob.yaml"] = yaml.safe_dump(job)
    found = [str(p) for p in validate.validate_object(carrier, "cron.yaml")]
    assert found == [
        "cron.yaml (ConfigMap/sessrec-tiny-rayjob data.rayjob.yaml): RayJob/sessrec-tiny-: error: "
        "spec.rayClusterSpec.workerGroupSpecs[0].maxReplica: unknown field"
    ]


def test_not_an_object_and_bad_yaml() -> None:
    assert "not a Kubernetes object" in str(validate.validate_text("- 1\n", "list.yaml")[1][0])
    assert "not valid YAML" in str(validate.validate_text("a: [1\n", "broken.yaml")[1][0])


def test_crd_folder_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSREC_CRD_DIR", str(tmp_path))
    with pytest.raises(SessrecError, match="no CRD for ray.io kind RayJob"):
        validate.validate_object(_rayjob(), "job.yaml")
    monkeypatch.setenv("SESSREC_CRD_DIR", str(tmp_path / "missing"))
    with pytest.raises(SessrecError, match="SESSREC_CRD_DIR"):
        validate.validate_object(_rayjob(), "job.yaml")


def test_cli_render_prints_its_own_command_line() -> None:
    result = CliRunner().invoke(app, ["k8s", "render", "tiny", "--kind", "raycronjob", "--schedule", "@weekly"])
    assert result.exit_code == 0, result.output
    first, second = result.stdout.splitlines()[:2]
    assert first == "# Rendered by: sessrec k8s render tiny --kind raycronjob --schedule @weekly"
    assert "feature gate RayCronJob" in second
    assert find([d for d in yaml.safe_load_all(result.stdout) if d], "RayCronJob")["spec"]["schedule"] == "@weekly"


def test_cli_validate_reads_stdin_and_chart_schema_checks() -> None:
    runner = CliRunner()
    result = runner.invoke(
        app, ["k8s", "validate", "-"], input=manifests.render("tiny", render.RenderOptions(kind="raycronjob"))
    )
    assert (result.exit_code, result.stdout) == (0, "ok: 2 objects in 1 file, policy restricted\n"), result.output
    script = REPO / "scripts" / "sync_chart_schema.py"
    result = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True)
    assert result.returncode == 0 and "up to date" in result.stdout, result.stdout + result.stderr


def test_cli_validate_good_and_bad_files(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(manifests.render("tiny", render.RenderOptions(kind="rayjob")))
    ok = subprocess.run([SESSREC, "k8s", "validate", str(good)], capture_output=True, text=True)
    assert (ok.returncode, ok.stdout.strip()) == (0, "ok: 2 objects in 1 file, policy restricted"), ok.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(good.read_text().replace("maxReplicas: 8", "maxReplicas: 8\n        bogus: true"))
    failed = subprocess.run([SESSREC, "k8s", "validate", str(good), str(bad)], capture_output=True, text=True)
    assert failed.returncode == 1
    assert failed.stderr.splitlines() == [
        f"{bad}: RayJob/sessrec-tiny: error: spec.rayClusterSpec.workerGroupSpecs[0].bogus: unknown field",
        "error: 1 error in 1 of 4 objects",
    ]
    as_json = subprocess.run(
        [SESSREC, "k8s", "validate", str(good), str(bad), "--json"], capture_output=True, text=True
    )
    assert as_json.returncode == 1
    assert as_json.stderr.splitlines() == ["error: 1 error in 1 of 4 objects"]
    report = json.loads(as_json.stdout)
    assert (report["files"], report["objects"], report["objects_with_problems"]) == (2, 4, 1)
    assert report["problems"] == [
        {
            "source": str(bad),
            "obj": "RayJob/sessrec-tiny",
            "field": "spec.rayClusterSpec.workerGroupSpecs[0].bogus",
            "message": "unknown field",
            "level": "error",
        }
    ]
    empty = tmp_path / "empty.yaml"
    empty.write_text("---\n")
    nothing = subprocess.run([SESSREC, "k8s", "validate", str(empty)], capture_output=True, text=True)
    assert (nothing.returncode, nothing.stderr.strip()) == (1, f"error: no objects in {empty}"), nothing.stderr
    not_yaml = tmp_path / "not.yaml"
    not_yaml.write_text("a: [\n")
    broken = subprocess.run([SESSREC, "k8s", "validate", str(not_yaml)], capture_output=True, text=True)
    assert (broken.returncode, broken.stderr.splitlines()[-1]) == (1, "error: 1 error"), broken.stderr

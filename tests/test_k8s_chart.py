"""The Helm chart: lint, every CI values file renders valid objects, bad values are refused with a
clear message, and the chart renders the same jobs and cluster as `sessrec k8s render`."""

from __future__ import annotations

import json
import re
import shutil
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from k8s_tools import CHART, Helm, find, helm_fixture, load_script  # noqa: F401  (the `helm` fixture)

from sessrec import __version__, layout
from sessrec.k8s import defaults, manifests, render, rules, validate
from sessrec.spec import BUILTIN_SPECS, builtin_spec_text, parse_spec

CI_VALUES = sorted((CHART / "ci").glob("*.yaml"))
TINY = yaml.safe_load(builtin_spec_text("tiny"))
SECRET = "sessrec-s3-credentials"
sync = load_script("sync_chart_schema")  # scripts/sync_chart_schema.py


def test_ci_values_cover_the_variants() -> None:
    variants = [yaml.safe_load(path.read_text()) for path in CI_VALUES]
    assert any(v.get("cluster", {}).get("enabled") for v in variants)
    assert any(not v.get("cluster", {}).get("enabled") for v in variants)
    assert {v.get("schedule", {}).get("mode") for v in variants} >= {"raycronjob", "cronjob"}
    assert any(v.get("s3", {}).get("existingSecret") for v in variants)
    assert any(v.get("job", {}).get("target") == "cluster" for v in variants)


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_lint_strict(helm: Helm, values: Path) -> None:
    result = helm.run("lint", "--strict", str(CHART), "--values", str(values))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_ci_values_render_valid_objects(helm: Helm, values: Path) -> None:
    result = helm.template(None, values, release="ci")
    assert result.returncode == 0, result.stderr
    count, found = validate.validate_text(result.stdout, f"helm template -f {values.name}")
    assert found == [], "\n".join(map(str, found))
    objects = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    kinds = {doc["kind"] for doc in objects}
    settings = yaml.safe_load(values.read_text())
    # The S3 settings always; the spec and the `helm test` pod that checks it when there is a spec.
    assert "ConfigMap" in kinds and ("Pod" in kinds) == ("sweep" in settings)
    spec_maps = [doc for doc in objects if doc["metadata"]["labels"].get("app.kubernetes.io/component") == "sweep-spec"]
    assert len(spec_maps) == ("sweep" in settings)
    assert ("RayCluster" in kinds) == settings.get("cluster", {}).get("enabled", True)
    assert ("RayJob" in kinds) == settings.get("oneOff", {}).get("enabled", False)
    mode = settings.get("schedule", {}).get("mode") if settings.get("schedule", {}).get("enabled") else None
    assert ("RayCronJob" in kinds) == (mode == "raycronjob")
    assert ({"CronJob", "Role", "RoleBinding", "ServiceAccount"} <= kinds) == (mode == "cronjob")


def test_install_dry_run_renders_notes(helm: Helm) -> None:
    result = helm.run(
        "install", "nightly", str(CHART), "--dry-run=client", "--values", str(CHART / "ci" / "cronjob-values.yaml")
    )
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("NOTES:", 1)[1]
    for line in (
        "kubectl -n default get cronjob nightly-sessrec",
        "sessrec jobs logs",
        "sessrec results best <sweep-id>",
        "get rayjobs -l app.kubernetes.io/instance=nightly",
    ):
        assert line in notes
    # RayCronJob's runs carry KubeRay's label only (their template is a RayJob spec, without metadata).
    result = helm.run(
        "install", "nightly", str(CHART), "--dry-run=client", "--values", str(CHART / "ci" / "raycronjob-values.yaml")
    )
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("NOTES:", 1)[1]
    assert "get rayjobs -l ray.io/cronjob-name=seed3d-nightly" in notes, notes  # its fullnameOverride


def test_the_cluster_alone_needs_no_sweep_spec(helm: Helm) -> None:
    result = helm.run(
        "install", "shared", str(CHART), "--dry-run=client", "--values", str(CHART / "ci" / "cluster-only-values.yaml")
    )
    assert result.returncode == 0, result.stderr
    assert "sweep" not in yaml.safe_load((CHART / "ci" / "cluster-only-values.yaml").read_text())
    notes = result.stdout.split("NOTES:", 1)[1]
    # KubeRay names the head service and the token Secret with CheckName (names over 50 characters lose their
    # start): looked up by the cluster's status and by label, which hold for any length.
    assert "get raycluster shared-sessrec -o jsonpath='{.status.head.serviceName}') 8265:8265" in notes
    assert "get secret -l ray.io/cluster=shared-sessrec -o jsonpath='{.items[0].data.auth_token}'" in notes
    assert "sessrec submit tune SPEC" in notes
    assert "helm test" not in notes and 'sweep "' not in notes and "RayJob NAME" not in notes
    assert "AWS_ENDPOINT_URL" not in notes  # AWS S3 itself: no endpoint to name
    with_minio = helm.run(
        "install", "dev", str(CHART), "--dry-run=client", "--values", str(CHART / "ci" / "ephemeral-values.yaml")
    )
    assert "the cluster reaches the object store at http://minio.minio.svc.cluster.local:9000" in with_minio.stdout
    # A sweep that runs, once or on a schedule, still needs its spec.
    for values in ({"oneOff": {"enabled": True}}, {"schedule": {"enabled": True}}):
        refused = helm.template(values)
        assert refused.returncode != 0 and "missing property 'sweep'" in refused.stderr, refused.stderr


def test_test_hook_pod_checks_the_spec_with_the_image(helm: Helm) -> None:
    pod = find(helm.objects(tiny()), "Pod", "sessrec-tiny-test")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    container = pod["spec"]["containers"][0]
    assert container["command"][:4] == ["sessrec", "k8s", "render", "/etc/sessrec/sweep.yaml"]
    assert container["image"] == defaults.DEFAULT_IMAGE
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_a_digest_pins_every_pod_s_image(helm: Helm) -> None:
    digest = "sha256:" + "0123456789abcdef" * 4
    objects = helm.objects(
        tiny(image={"repository": "registry.example.com:5000/ml/sessrec", "tag": "1.2.3", "digest": digest})
    )
    images = [container["image"] for obj in objects for container in _containers(obj)]
    assert images and set(images) == {f"registry.example.com:5000/ml/sessrec:1.2.3@{digest}"}


#: A one-off sweep alone (the chart's defaults are the long-lived cluster alone).
RUN = {"cluster": {"enabled": False}, "oneOff": {"enabled": True}}


def tiny(**values: Any) -> dict[str, Any]:
    return {"sweep": TINY, **RUN, **values}


BAD_VALUES = [
    (
        tiny(worker={"minReplicas": 5, "maxReplicas": 2}),
        "worker.minReplicas (5) must not exceed worker.maxReplicas (2)",
    ),
    (tiny(worker={"maxReplicas": 2**31}), "'/worker/maxReplicas': maximum"),  # an int32 in the RayCluster
    (tiny(fullnameOverride="a" * 48), f'RayJob name "{"a" * 48}" is 48 characters; KubeRay allows at most 47'),
    (
        tiny(oneOff={"enabled": False}, schedule={"enabled": True}, fullnameOverride="nightly-" + "b" * 29),
        'RayCronJob name "nightly-' + "b" * 29 + '" is 37 characters; KubeRay allows at most 36',
    ),
    (
        tiny(oneOff={"enabled": False}, schedule={"enabled": True, "mode": "cronjob"}, fullnameOverride="d" * 42),
        f'RayJob name "{"d" * 42}-xxxxx" is 48 characters',
    ),
    (tiny(fullnameOverride="c" * 54), "'/fullnameOverride': maxLength"),
    (
        tiny(job={"shutdownAfterJobFinishes": False}),
        "job.ttlSecondsAfterFinished > 0 needs job.shutdownAfterJobFinishes: true",
    ),
    (tiny(job={"target": "cluster"}), 'job.target "cluster" needs job.clusterName or cluster.enabled: true'),
    # Helm merges maps: raising a request keeps the default limit under it.
    (tiny(head={"resources": {"requests": {"cpu": "6"}}}), "head.resources: requests.cpu (6) exceeds limits.cpu (2)"),
    (
        tiny(worker={"resources": {"requests": {"memory": "2Gi"}, "limits": {"memory": "2G"}}}),
        "worker.resources: requests.memory (2Gi) exceeds limits.memory (2G)",
    ),
    (
        tiny(job={"submitter": {"resources": {"requests": {"cpu": "1001m"}}}}),
        "job.submitter.resources: requests.cpu (1001m)",
    ),
    (
        tiny(worker={"resources": {"requests": {"memory": "8000m"}, "limits": {"memory": "8000m"}}}),
        "'/worker/resources/requests/memory'",
    ),
    # A YAML number of a million or more is a float64 to Helm, printed as 2e+09.
    (
        tiny(worker={"resources": {"requests": {"memory": 2000000000}, "limits": {"memory": "1Gi"}}}),
        "worker.resources: requests.memory (2e+09) exceeds limits.memory (1Gi)",
    ),
    (
        {**RUN, "sweep": {**TINY, "resources": {"cpus_per_trial": 8}}},
        "sweep.resources.cpus_per_trial (8) is more than a worker's 4 CPUs",
    ),
    (
        {
            **RUN,
            "sweep": {**TINY, "resources": {"cpus_per_trial": 3}},
            "worker": {"resources": {"requests": {"cpu": "1"}, "limits": {"cpu": "1500m"}}},
        },
        "sweep.resources.cpus_per_trial (3) is more than a worker's 2 CPUs",
    ),
    (tiny(oneOff={"enabled": False}), "nothing to deploy"),
    (tiny(rayVersion="2.40.0"), "needs Ray >= 2.52.0"),
    (tiny(workers={"maxReplicas": 4}), "additional properties 'workers' not allowed"),
    (tiny(head={"cpu": 4}), "additional properties 'cpu' not allowed"),
    (tiny(oneOff={"sweepId": "Nightly_Run"}), "'/oneOff/sweepId'"),
    (tiny(s3={"storage": "/data/sessrec"}), "'/s3/storage'"),
    (tiny(schedule={"enabled": True, "cron": "0 2 * *"}), "'/schedule/cron'"),  # the schema's short pattern
    (
        tiny(schedule={"enabled": True, "cron": "0 25 * * *"}),
        'schedule.cron "0 25 * * *": not a schedule',
    ),  # KubeRay would refuse it
    (tiny(image={"repository": "Team/Sessrec"}), "'/image/repository'"),  # registries want lower-case paths
    (tiny(image={"repository": "sessrec:0.1.0"}), "'/image/repository'"),  # the tag has its own value
    (tiny(image={"digest": "sha256:abc"}), "'/image/digest'"),
    (tiny(schedule={"enabled": True, "kubectl": {"image": "kubectl latest"}}), "'/schedule/kubectl/image'"),
    (tiny(schedule={"enabled": True, "cron": "0 2 * * MON-FR"}), 'schedule.cron "0 2 * * MON-FR"'),
    (tiny(schedule={"enabled": True, "mode": "cron"}), "'/schedule/mode'"),
    ({**RUN, "sweep": {**TINY, "metric": "precision_at_k"}}, "'/sweep/metric'"),
    (
        {**RUN, "sweep": {**TINY, "space": {"window": 2, "hidden_size": 8}}},
        "additional properties 'hidden_size' not allowed",
    ),
    ({**RUN, "sweep": {"name": "no-space"}}, "'/sweep': missing property 'space'"),
    ({**RUN, "sweep": {k: v for k, v in TINY.items() if k != "dataset"}}, "sweep.dataset: the spec names no dataset"),
    (RUN, "missing property 'sweep'"),
    ({"sweep": TINY}, "sweep: a spec is given but nothing runs it: set oneOff.enabled: true"),
    (
        tiny(cluster={"enabled": True}, job={"target": "cluster", "backoffLimit": 2}),
        'job.backoffLimit (2): retries are for job.target "ephemeral" only',
    ),
    (
        {**RUN, "sweep": {**TINY, "search": {"method": "grid", "num_samples": 40}}},
        "sweep.search.shuffle: ASHA will judge the first trials of this 320-point grid against its first corner only",
    ),
    # Typos, negative replica counts, GPU groups without a GPU limit: each names the value's path.
    (tiny(worker={"minReplica": 1}), "at '/worker': additional properties 'minReplica' not allowed"),
    (tiny(worker={"minReplicas": -1}), "'/worker/minReplicas': minimum"),
    (
        tiny(
            additionalWorkerGroups={
                "big": {"minReplicas": 0, "maxReplicas": -2, "resources": defaults.WORKER_RESOURCES}
            }
        ),
        "'/additionalWorkerGroups/big/maxReplicas': minimum",
    ),
    (
        tiny(
            additionalWorkerGroups={
                "gpu": {"gpu": True, "minReplicas": 0, "maxReplicas": 2, "resources": defaults.WORKER_RESOURCES}
            }
        ),
        "at '/additionalWorkerGroups/gpu/resources/limits': missing property 'nvidia.com/gpu'",
    ),
    (
        tiny(
            additionalWorkerGroups={"cpu": {"minReplicas": 0, "maxReplicas": 2, "resources": defaults.WORKER_RESOURCES}}
        ),
        'additionalWorkerGroups.cpu: worker.groupName is "cpu" already',
    ),
    (
        tiny(
            additionalWorkerGroups={"big": {"minReplicas": 3, "maxReplicas": 2, "resources": defaults.WORKER_RESOURCES}}
        ),
        "additionalWorkerGroups.big.minReplicas (3) must not exceed its maxReplicas (2)",
    ),
    (tiny(head={"rayStartParams": {"num-gpus": 1}}), "'/head/rayStartParams/num-gpus'"),
    # promote: a model name, a boolean, and a job to end
    (tiny(promote={"name": "Best"}), "/promote/name"),
    (tiny(promote={"name": "a" * 41}), "/promote/name"),
    (tiny(promote={"name": "best'; rm -rf /"}), "/promote/name"),
    (tiny(promote={"name": "best", "ifBetter": "yes"}), "/promote/ifBetter"),
    (tiny(promote={"name": "best", "always": True}), "always"),
    ({"promote": {"name": "best"}}, 'promote.name "best": only a sweep job promotes'),
]


@pytest.mark.parametrize(("values", "message"), BAD_VALUES, ids=[m for _, m in BAD_VALUES])
def test_bad_values_are_refused(helm: Helm, values: dict[str, Any], message: str) -> None:
    result = helm.template(values)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def test_rules_for_ephemeral_clusters_and_private_registries_apply_where_they_matter(helm: Helm) -> None:
    # TTL without shutdown matters only for the ephemeral clusters that a shared-cluster job never makes.
    shared = tiny(cluster={"enabled": True}, job={"target": "cluster", "shutdownAfterJobFinishes": False})
    assert "ttlSecondsAfterFinished" not in find(helm.objects(shared), "RayJob")["spec"]
    # A kubectl image mirrored into the private registry is pulled with the same secrets.
    scheduled = tiny(
        oneOff={"enabled": False}, schedule={"enabled": True, "mode": "cronjob"}, imagePullSecrets=[{"name": "regcred"}]
    )
    pod = find(helm.objects(scheduled), "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    # A trial as big as a worker fits (a 1.5-CPU limit gives Ray 2 CPUs); another team's cluster is not checked.
    big = {**TINY, "resources": {"cpus_per_trial": 2}}
    assert (
        helm.template(
            {**RUN, "sweep": big, "worker": {"resources": {"requests": {"cpu": "1"}, "limits": {"cpu": "1500m"}}}}
        ).returncode
        == 0
    )
    elsewhere = {
        **RUN,
        "sweep": {**TINY, "resources": {"cpus_per_trial": 64}},
        "job": {"target": "cluster", "clusterName": "gpu-pool"},
    }
    assert helm.template(elsewhere).returncode == 0


def test_requests_equal_to_limits_in_other_units_are_accepted(helm: Helm) -> None:
    worker = {"resources": {"requests": {"cpu": 1, "memory": "1Gi"}, "limits": {"cpu": "1000m", "memory": 2000000000}}}
    cluster = find(helm.objects(tiny(worker=worker, cluster={"enabled": True})), "RayCluster")
    container = cluster["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"] == {"cpu": "1000m", "memory": 2000000000}
    head = {"resources": {"requests": {"cpu": 2, "memory": "1.5Gi"}, "limits": {"cpu": "2000m", "memory": "1536Mi"}}}
    assert helm.template(tiny(head=head)).returncode == 0


def test_unquoted_n_in_a_sweep_is_refused_not_misread(helm: Helm, tmp_path: Path) -> None:
    # Helm reads values as YAML 1.1, where a bare `n` key is the boolean false.
    values = tmp_path / "values.yaml"
    values.write_text("sweep:\n" + textwrap.indent(builtin_spec_text("tiny"), "  "))
    result = helm.template(None, values)
    message = 'sweep.split.n: quote the key ("n"): Helm reads YAML 1.1, where a bare n is the boolean false'
    assert result.returncode != 0 and message in result.stderr, result.stderr


@pytest.mark.parametrize("name", BUILTIN_SPECS)
def test_sweep_configmap_round_trips_the_spec(helm: Helm, name: str) -> None:
    spec = {"dataset": "retail", **yaml.safe_load(builtin_spec_text(name))}  # a running sweep needs one
    text = find(helm.objects({**RUN, "sweep": spec}), "ConfigMap", "sessrec-tiny-sweep")["data"]["sweep.yaml"]
    assert yaml.safe_load(text) == spec
    assert parse_spec(text).raw == parse_spec(yaml.safe_dump(spec)).raw


def test_values_schema_embeds_the_spec_schema(tmp_path: Path) -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["properties"]["sweep"] == sync.chart_sweep_schema()
    assert sync.sync_chart_schema(CHART, check=True)
    # The helper repairs a stale copy.
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    schema["properties"]["sweep"]["properties"].pop("metric")
    schema["properties"]["schedule"]["properties"]["cron"]["pattern"] = ".*"
    (chart / "values.schema.json").write_text(json.dumps(schema))
    assert not sync.sync_chart_schema(chart, check=True)
    assert not sync.sync_chart_schema(chart, check=False)
    repaired = json.loads((chart / "values.schema.json").read_text())
    assert repaired["properties"]["sweep"] == sync.chart_sweep_schema()
    assert repaired["properties"]["schedule"]["properties"]["cron"]["pattern"] == rules.CRON_SHAPE
    assert sync.sync_chart_schema(chart, check=True)
    # The full cron pattern that checks.yaml matches.
    assert (CHART / "files" / "cron-pattern.txt").read_text() == rules.cron_pattern() + "\n"
    (chart / "files" / "cron-pattern.txt").write_text(".*\n")
    assert not sync.sync_chart_schema(chart, check=False) and sync.sync_chart_schema(chart, check=True)


def test_values_schema_has_one_parameter_schema() -> None:
    """The nine space parameters refer to one definition instead of repeating it."""
    text = (CHART / "values.schema.json").read_text()
    schema = json.loads(text)
    space = schema["properties"]["sweep"]["properties"]["space"]["properties"]
    assert len(space) >= 9 and all(entry == {"$ref": "#/definitions/sweepParameter"} for entry in space.values())
    assert text.count('"linspace"') == 1


def test_chart_versions_follow_the_package() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == __version__  # the default image tag
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["rayVersion"] == defaults.RAY_VERSION
    assert values["schedule"]["kubectl"]["image"] == defaults.KUBECTL_IMAGE
    assert chart["kubeVersion"] == f">={defaults.KUBE_VERSION}.0-0"


def test_the_chart_repeats_the_python_constants() -> None:
    """Every constant the chart repeats equals sessrec's own, so a change on one side fails here.

    Besides these, the render tests below compare what the chart renders from its defaults with
    `sessrec k8s render`, and test_values_schema_embeds_the_spec_schema the schema parts that
    scripts/sync_chart_schema.py generates (sweep spec schema, cron and image patterns)."""
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    values_text = (CHART / "values.yaml").read_text()
    values = yaml.safe_load(values_text)
    schema = json.loads((CHART / "values.schema.json").read_text())
    props, definitions = schema["properties"], schema["definitions"]

    def optional(pattern: re.Pattern[str]) -> str:  # the same rule, or the empty string ("use the default")
        return f"^({pattern.pattern[1:-1]})?$"

    # KubeRay's name limits: the chart's checks, values.yaml's comment and the schema's maxLength.
    checked = re.findall(
        r'"sessrec\.checkNameLength" \(list "(\w+)" (\$fullname|\(printf "%s-(x*)" \$fullname\)) (\d+)\)', helpers
    )
    assert {kind for kind, *_ in checked} == {"RayCluster", "RayJob", "RayService", "RayCronJob", "CronJob"}, checked
    for kind, name, suffix, limit in checked:
        assert int(limit) == defaults.NAME_LIMITS[kind], kind
        if name != "$fullname":  # a generateName prefix: the API server appends random characters
            assert len(suffix) == defaults.GENERATE_NAME_SUFFIX
    comment = re.search(r"KubeRay limits it: (.*) characters", values_text)
    assert comment, "values.yaml names KubeRay's limits of fullnameOverride"
    assert {kind: int(limit) for kind, limit in re.findall(r"(\w+) (\d+)", comment.group(1))} == {
        kind: defaults.NAME_LIMITS[kind] for kind in ("RayCluster", "RayJob", "RayService", "RayCronJob")
    }
    for key in ("nameOverride", "fullnameOverride"):
        assert props[key]["maxLength"] == max(defaults.NAME_LIMITS.values()), key
        assert props[key]["pattern"] == optional(defaults.DNS1035), key
    cluster_name = props["job"]["properties"]["clusterName"]
    assert (cluster_name["maxLength"], cluster_name["pattern"]) == (
        defaults.NAME_LIMITS["RayCluster"],
        optional(defaults.DNS1035),
    )
    fullname_rule = re.search(r'regexMatch "([^"]+)" \$fullname', helpers)
    assert fullname_rule and fullname_rule.group(1) == defaults.DNS1035.pattern
    sweep_id = props["oneOff"]["properties"]["sweepId"]
    assert (sweep_id["maxLength"], sweep_id["pattern"]) == (layout.MAX_NAME_LENGTH, optional(layout.NAME_PATTERN))
    assert definitions["dnsSubdomain"]["pattern"] == defaults.DNS1123_SUBDOMAIN.pattern
    assert definitions["dnsSubdomain"]["maxLength"] == defaults.SUBDOMAIN_LIMIT
    # Resource quantities (memory without the milli suffix, which would be a fraction of a byte); the
    # chart's groups capture, quantity_value's one group does not: the same language.
    quantity = rules.QUANTITY.pattern.replace("(?:", "(")
    assert definitions["quantity"]["oneOf"][1]["pattern"] == quantity
    assert definitions["memoryQuantity"]["oneOf"][1]["pattern"] == quantity.replace("(m|", "(")
    # The first Ray with token authentication: the chart's check, its message and values.yaml's comment.
    versions = re.findall(
        r'(?:semverCompare "|\bRay |authentication needs )>= ?([0-9]+\.[0-9]+\.[0-9]+)', helpers + values_text
    )
    assert versions == [defaults.TOKEN_AUTH_RAY_VERSION] * 3, versions
    # values.yaml's defaults (the render tests compare what they render, too).
    assert values["rayVersion"] == defaults.RAY_VERSION
    assert values["schedule"]["cron"] == defaults.DEFAULT_SCHEDULE
    assert values["schedule"]["kubectl"]["image"] == defaults.KUBECTL_IMAGE
    assert values["schedule"]["kubectl"]["resources"] == defaults.KUBECTL_RESOURCES
    assert values["head"]["resources"] == defaults.HEAD_RESOURCES
    assert values["worker"]["resources"] == defaults.WORKER_RESOURCES
    assert values["autoscaler"]["resources"] == defaults.AUTOSCALER_RESOURCES
    assert values["job"]["submitter"]["resources"] == defaults.SUBMITTER_RESOURCES
    assert values["head"]["shmSize"] == values["worker"]["shmSize"] == defaults.SHM_SIZE
    assert values["worker"]["groupName"] == defaults.WORKER_GROUP
    assert (values["worker"]["minReplicas"], values["worker"]["maxReplicas"]) == (
        defaults.WORKER_MIN,
        defaults.WORKER_MAX,
    )
    assert values["autoscaler"]["idleTimeoutSeconds"] == defaults.AUTOSCALER_IDLE_SECONDS
    assert values["job"]["ttlSecondsAfterFinished"] == defaults.JOB_TTL_SECONDS
    assert values["job"]["activeDeadlineSeconds"] == defaults.JOB_DEADLINE_SECONDS
    assert (
        values["job"]["backoffLimit"] is None
    )  # unset: the template's default, so target "cluster" can refuse a set one
    assert f"backoffLimit: {{{{ ternary {defaults.JOB_BACKOFF_LIMIT} $root.Values.job.backoffLimit" in helpers


# ---- one definition: the chart renders what `sessrec k8s render` renders -----------------------


def cli(kind: str, spec: str | None = "tiny", **options: Any) -> list[dict[str, Any]]:
    return manifests.render_objects(spec, render.RenderOptions(kind=kind, **options))


def chart(helm: Helm, values: dict[str, Any], release: str = "sessrec-tiny") -> list[dict[str, Any]]:
    return helm.objects({"sweep": TINY, **RUN, "s3": {"existingSecret": SECRET}, **values}, release=release)


def test_one_off_rayjob_matches_the_cli(helm: Helm) -> None:
    ours = cli("rayjob", name="sessrec-tiny", s3_config="sessrec-tiny-s3", s3_secret=SECRET, sweep_id="tiny-1")
    theirs = chart(helm, {"oneOff": {"enabled": True, "sweepId": "tiny-1"}})
    assert find(theirs, "RayJob", "sessrec-tiny")["spec"] == find(ours, "RayJob", "sessrec-tiny")["spec"]
    assert yaml.safe_load(find(theirs, "ConfigMap", "sessrec-tiny-sweep")["data"]["sweep.yaml"]) == TINY


def test_rayjob_on_the_release_cluster_matches_the_cli(helm: Helm) -> None:
    ours = cli(
        "rayjob",
        name="sessrec-tiny",
        s3_config="sessrec-tiny-s3",
        s3_secret=SECRET,
        cluster_selector={"ray.io/cluster": "sessrec-tiny"},
    )
    theirs = chart(helm, {"cluster": {"enabled": True}, "job": {"target": "cluster"}})
    assert find(theirs, "RayJob")["spec"] == find(ours, "RayJob")["spec"]
    # ... and the cluster it selects is the release's.
    assert find(theirs, "RayCluster")["metadata"]["name"] == "sessrec-tiny"


def test_raycronjob_matches_the_cli(helm: Helm) -> None:
    ours = cli("raycronjob", name="sessrec-tiny", s3_config="sessrec-tiny-s3", s3_secret=SECRET, time_zone="Etc/UTC")
    theirs = chart(helm, {"oneOff": {"enabled": False}, "schedule": {"enabled": True, "timeZone": "Etc/UTC"}})
    assert find(theirs, "RayCronJob")["spec"] == find(ours, "RayCronJob")["spec"]


def test_cronjob_fallback_matches_the_cli(helm: Helm) -> None:
    ours = cli("cronjob", name="sessrec-tiny", s3_config="sessrec-tiny-s3", s3_secret=SECRET, schedule="15 4 * * *")
    theirs = chart(
        helm, {"oneOff": {"enabled": False}, "schedule": {"enabled": True, "mode": "cronjob", "cron": "15 4 * * *"}}
    )
    assert find(theirs, "CronJob")["spec"] == find(ours, "CronJob")["spec"]
    assert find(theirs, "Role")["rules"] == find(ours, "Role")["rules"]
    for kind in ("RoleBinding", "ServiceAccount"):
        assert find(theirs, kind)["metadata"]["name"] == find(ours, kind)["metadata"]["name"]
    assert find(theirs, "RoleBinding")["subjects"] == find(ours, "RoleBinding")["subjects"]

    def carried(objects: list[dict[str, Any]]) -> dict[str, Any]:
        return yaml.safe_load(find(objects, "ConfigMap", "sessrec-tiny-rayjob")["data"]["rayjob.yaml"])

    assert carried(theirs)["spec"] == carried(ours)["spec"]
    assert carried(theirs)["metadata"]["generateName"] == carried(ours)["metadata"]["generateName"]


def test_raycluster_matches_the_cli(helm: Helm) -> None:
    ours = cli("raycluster", None)
    theirs = helm.objects({"s3": {"existingSecret": SECRET}}, release="sessrec")  # the chart's defaults
    assert find(theirs, "RayCluster", "sessrec")["spec"] == find(ours, "RayCluster", "sessrec")["spec"]
    # An upgrade replaces the long-lived cluster's pods (KubeRay refuses the field on a RayJob's cluster).
    assert find(ours, "RayCluster")["spec"]["upgradeStrategy"] == {"type": "Recreate"}
    assert "upgradeStrategy" not in find(chart(helm, {}), "RayJob")["spec"]["rayClusterSpec"]
    kept = helm.objects({"cluster": {"upgradeStrategy": "None"}})
    assert find(kept, "RayCluster")["spec"]["upgradeStrategy"] == {"type": "None"}
    settings = find(theirs, "ConfigMap", defaults.DEFAULT_S3_CONFIG)["data"]
    assert set(settings) == {"SESSREC_STORAGE", "AWS_DEFAULT_REGION"}


def _containers(node: Any) -> Iterator[dict[str, Any]]:
    """Every container anywhere in an object (pod templates nest at different depths per kind)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                yield from value
            else:
                yield from _containers(value)
    elif isinstance(node, list):
        for item in node:
            yield from _containers(item)

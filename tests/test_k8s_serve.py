"""Serving on Kubernetes (issue 24, item 4): `sessrec k8s render --kind rayservice` and the chart's
`serve` values give a KubeRay RayService that runs `sessrec serve`'s deployment, valid against
KubeRay's CRD at every pod security level, and the chart renders what the CLI renders."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml
from k8s_tools import CHART, Helm, find, helm_fixture  # noqa: F401  (the `helm` fixture)
from typer.testing import CliRunner

from sessrec import layout, serving
from sessrec.cli import app
from sessrec.errors import SessrecError
from sessrec.k8s import defaults, manifests, policy, render, validate

SECRET = "sessrec-s3-credentials"
SERVE_VALUES = CHART / "ci" / "serve-values.yaml"


def service(**options: Any) -> dict[str, Any]:
    objects = manifests.render_objects(None, render.RenderOptions(kind="rayservice", **options))
    assert len(objects) == 1
    return objects[0]


def config_of(obj: dict[str, Any]) -> dict[str, Any]:
    config = yaml.safe_load(obj["spec"]["serveConfigV2"])
    assert isinstance(config, dict)
    return config


def deployment_of(obj: dict[str, Any]) -> dict[str, Any]:
    (application,) = config_of(obj)["applications"]
    (deployment,) = application["deployments"]
    return deployment


def checks(level: str = "restricted") -> validate.Checks:
    return validate.Checks(policy=level)


# ---- `sessrec k8s render --kind rayservice` ------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"model": "retail-best"},
        {"model": "retail-best", "replicas": 3},
        {"model": "s3://bucket/prefix/models/retail-best", "min_replicas": 0, "max_replicas": 6},
        {
            "model": "nightly-20240101",
            "max_replicas": 2,
            "target_ongoing_requests": 2.5,
            "replica_cpus": 0.5,
            "replica_memory": "512Mi",
            "s3_secret": None,
            "image": "registry.example.com:5000/ml/sessrec:1.0",
        },
    ],
    ids=["defaults", "fixed", "autoscaled", "everything"],
)
def test_rendered_rayservice_is_valid_at_every_policy_level(options: dict[str, Any]) -> None:
    text = manifests.render(None, render.RenderOptions(kind="rayservice", **options))
    for level in policy.LEVELS:
        count, found = validate.validate_text(text, "rayservice.yaml", checks(level))
        assert (count, found) == (1, []), (level, [str(p) for p in found])


def test_rayservice_runs_the_serve_deployment_on_the_cluster_s_pods() -> None:
    obj = service(model="retail-best", name="recs")
    assert (obj["apiVersion"], obj["kind"], obj["metadata"]["name"]) == ("ray.io/v1", "RayService", "recs")
    assert obj["metadata"]["labels"]["app.kubernetes.io/component"] == "serve"
    config = config_of(obj)
    assert config["http_options"] == {"host": "0.0.0.0", "port": defaults.SERVE_PORT}
    (application,) = config["applications"]
    assert application["import_path"] == "sessrec.serving:app_from_args" == defaults.SERVE_IMPORT_PATH
    assert application["args"] == {"model": "retail-best"}
    assert (application["name"], application["route_prefix"]) == (defaults.SERVE_APP, "/")
    assert deployment_of(obj) == {
        "name": defaults.SERVE_DEPLOYMENT,
        "num_replicas": defaults.SERVE_REPLICAS,
        "ray_actor_options": {"num_cpus": defaults.SERVE_REPLICA_CPUS, "memory": 2 * 1024**3},
    }
    # Head and workers are the RayCluster's (one builder): same image, pods, S3 settings and credentials.
    cluster = manifests.render_objects(None, render.RenderOptions(kind="raycluster", name="recs"))[0]["spec"]
    cluster.pop("upgradeStrategy")
    assert obj["spec"]["rayClusterConfig"] == cluster
    job = manifests.render_objects("tiny", render.RenderOptions(kind="rayjob"))[1]["spec"]["rayClusterSpec"]
    for pods in (obj["spec"]["rayClusterConfig"], job):
        head = pods["headGroupSpec"]["template"]["spec"]["containers"][0]
        assert head["envFrom"] == [
            {"configMapRef": {"name": defaults.DEFAULT_S3_CONFIG}},
            {"secretRef": {"name": SECRET}},
        ]


def test_replicas_or_an_autoscaling_range() -> None:
    assert deployment_of(service(model="m", replicas=4))["num_replicas"] == 4
    autoscaled = deployment_of(service(model="m", max_replicas=5))
    assert autoscaled["num_replicas"] == "auto"  # Serve wants no fixed count next to autoscaling_config
    assert autoscaled["autoscaling_config"] == {
        "min_replicas": defaults.SERVE_MIN_REPLICAS,
        "max_replicas": 5,
        "target_ongoing_requests": defaults.SERVE_TARGET_ONGOING_REQUESTS,
    }
    ranged = deployment_of(service(model="m", min_replicas=0, max_replicas=3, target_ongoing_requests=4))
    assert ranged["autoscaling_config"] == {"min_replicas": 0, "max_replicas": 3, "target_ongoing_requests": 4}
    sized = deployment_of(service(model="m", replica_cpus=0.25, replica_memory="1.5Gi"))
    assert sized["ray_actor_options"] == {"num_cpus": 0.25, "memory": 1536 * 1024**2}


def test_ray_serve_accepts_the_config_and_builds_sessrec_serve_s_deployment(monkeypatch: pytest.MonkeyPatch) -> None:
    from ray._common.utils import import_attr
    from ray.serve._private.api import call_user_app_builder_with_args_if_necessary
    from ray.serve.schema import ServeDeploySchema

    for obj in (service(model="retail-best"), service(model="m", min_replicas=0, max_replicas=3)):
        config = ServeDeploySchema.model_validate(config_of(obj))  # Ray Serve's own config schema
        (application,) = config.applications
        builder = import_attr(application.import_path)
        assert builder is serving.app_from_args
        monkeypatch.setenv("SESSREC_STORAGE", "s3://bucket/sessrec")
        built = call_user_app_builder_with_args_if_necessary(builder, application.args)
        deployment = built._bound_deployment
        assert deployment.name == application.deployments[0].name == defaults.SERVE_DEPLOYMENT
        # The same deployment as `sessrec serve`: its class, and the model and storage from the args and the pod's env.
        local = serving.build_app("retail-best", "s3://bucket/sessrec", 1, serving.DEFAULT_RELOAD_INTERVAL_S)
        assert deployment.func_or_class.__qualname__ == local._bound_deployment.func_or_class.__qualname__
        assert built._bound_deployment.name == local._bound_deployment.name
        assert built._bound_deployment._deployment_config.max_ongoing_requests == 64
        assert built._bound_deployment._deployment_config.max_ongoing_requests == (
            local._bound_deployment._deployment_config.max_ongoing_requests
        )
        args = built._bound_deployment._replica_config.init_args
        assert args == (application.args["model"], "s3://bucket/sessrec", serving.DEFAULT_RELOAD_INTERVAL_S)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({}, "args.model is required"),
        ({"model": "m", "replicas": 2}, "unknown args replicas"),
        ({"model": "m", "reload_interval": "soon"}, "reload_interval must be 0 or more seconds"),
        ({"model": "m", "reload_interval": -1}, "reload_interval must be 0 or more seconds"),
        ({"model": "m", "storage": "gs://bucket"}, "only local folders and s3://bucket/prefix"),
    ],
)
def test_app_from_args_refuses_bad_args(args: dict[str, Any], message: str) -> None:
    with pytest.raises(SessrecError, match=re.escape(message)):
        serving.app_from_args(args)


def test_app_from_args_takes_storage_and_reload_interval() -> None:
    built = serving.app_from_args({"model": "m", "storage": "s3://other/root", "reload_interval": "10"})
    assert built._bound_deployment._replica_config.init_args == ("m", "s3://other/root", 10.0)


RENDER_REFUSES = [
    ({}, "--kind rayservice needs --model"),
    ({"model": "./models/m"}, "the cluster reads a model in the storage, or an s3:// folder"),
    ({"model": "Retail_Best"}, "invalid model name or sweep id"),
    (
        {"model": "m", "replicas": 2, "max_replicas": 4},
        "give --replicas (a fixed count) or --min-replicas/--max-replicas",
    ),
    ({"model": "m", "min_replicas": 2}, "--min-replicas needs --max-replicas"),
    ({"model": "m", "min_replicas": 5, "max_replicas": 4}, "--min-replicas (5) must not exceed --max-replicas (4)"),
    ({"model": "m", "max_replicas": 0}, "--max-replicas 0: at least 1"),
    ({"model": "m", "replicas": 0}, "--replicas 0: at least 1"),
    ({"model": "m", "target_ongoing_requests": 4}, "--target-ongoing-requests is for autoscaling"),
    ({"model": "m", "max_replicas": 2, "target_ongoing_requests": 0}, "must be above 0"),
    ({"model": "m", "replica_cpus": -1}, "--replica-cpus -1"),
    ({"model": "m", "replica_memory": "2000m"}, "--replica-memory '2000m'"),
    ({"model": "m", "replica_memory": "lots"}, "--replica-memory 'lots'"),
    ({"model": "m", "name": "s" * 48}, f"RayService name {'s' * 48!r}: is 48 characters; at most 47"),
    ({"model": "m", "dataset": "retail"}, "--kind rayservice takes no SPEC"),
    ({"model": "m", "schedule": "0 2 * * *"}, "--schedule and --time-zone are for --kind raycronjob or cronjob"),
    ({"model": "m", "image": "Sessrec:latest"}, "--image 'Sessrec:latest'"),
]


@pytest.mark.parametrize(("options", "message"), RENDER_REFUSES, ids=[m for _, m in RENDER_REFUSES])
def test_render_refuses(options: dict[str, Any], message: str) -> None:
    with pytest.raises(SessrecError, match=re.escape(message)):
        manifests.render_objects(None, render.RenderOptions(kind="rayservice", **options))


def test_serve_options_are_for_rayservice_only() -> None:
    with pytest.raises(SessrecError, match="are for --kind rayservice"):
        manifests.render_objects("tiny", render.RenderOptions(kind="rayjob", model="m"))
    with pytest.raises(SessrecError, match="are for --kind rayservice"):
        manifests.render_objects(None, render.RenderOptions(kind="raycluster", replicas=2))
    with pytest.raises(SessrecError, match="takes no SPEC"):
        manifests.render_objects("tiny", render.RenderOptions(kind="rayservice", model="m"))


def test_cli_renders_and_validates_a_rayservice(tmp_path: Any) -> None:
    runner = CliRunner()
    argv = [
        "k8s",
        "render",
        "--kind",
        "rayservice",
        "--model",
        "retail-best",
        "--min-replicas",
        "1",
        "--max-replicas",
        "4",
        "--target-ongoing-requests",
        "8",
        "--replica-cpus",
        "0.5",
    ]
    result = runner.invoke(app, argv)
    assert result.exit_code == 0, result.output
    first = result.stdout.splitlines()[0]
    assert first == (
        "# Rendered by: sessrec k8s render --kind rayservice --model retail-best --min-replicas 1 "
        "--max-replicas 4 --target-ongoing-requests 8 --replica-cpus 0.5"
    )
    obj = yaml.safe_load(result.stdout.split("\n", 1)[1])
    assert deployment_of(obj)["autoscaling_config"]["max_replicas"] == 4
    manifest = tmp_path / "rayservice.yaml"
    manifest.write_text(result.stdout)
    for level in policy.LEVELS:
        checked = runner.invoke(app, ["k8s", "validate", str(manifest), "--policy", level])
        assert checked.exit_code == 0 and f"ok: 1 object in 1 file, policy {level}" in checked.stdout, checked.output
    refused = runner.invoke(app, ["k8s", "render", "--kind", "rayservice"])
    assert refused.exit_code != 0 and "needs --model" in str(refused.exception or refused.output)


def test_rayservice_is_a_kind_with_kuberay_s_name_limit() -> None:
    assert "rayservice" in defaults.KINDS
    assert defaults.NAME_LIMITS["RayService"] == 47
    # KubeRay names the RayService's clusters <name>-<5 characters>: within the RayCluster limit.
    assert defaults.NAME_LIMITS["RayService"] + 1 + defaults.GENERATE_NAME_SUFFIX <= defaults.NAME_LIMITS["RayCluster"]


def test_validation_catches_a_broken_rayservice() -> None:
    obj = service(model="m")
    obj["metadata"]["name"] = "r" * 48
    obj["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["securityContext"].pop("runAsNonRoot")
    obj["spec"]["serveConfigV2"] = {"applications": []}  # a string in the CRD
    found = {(p.field, p.level) for p in validate.validate_object(obj, "bad.yaml", checks())}
    assert ("spec.serveConfigV2", "error") in found
    assert ("metadata.name", "error") in found
    assert any(level == "policy" and "headGroupSpec" in field for field, level in found), found


# ---- the chart: serve.* values, the same RayService as the CLI ------------------------------------


def chart_service(helm: Helm, serve: dict[str, Any], release: str = "sessrec-serve", **values: Any) -> dict[str, Any]:
    objects = helm.objects(
        {
            "cluster": {"enabled": False},
            "s3": {"existingSecret": SECRET},
            "serve": {"enabled": True, **serve},
            **values,
        },
        release=release,
    )
    return find(objects, "RayService")


def same_service(chart: dict[str, Any], ours: dict[str, Any]) -> None:
    """The chart's RayService spec equals render's: the serve config read as YAML (Helm quotes the
    model, PyYAML need not), everything else as is."""
    assert config_of(chart) == config_of(ours)
    rest = {k: v for k, v in chart["spec"].items() if k != "serveConfigV2"}
    assert rest == {k: v for k, v in ours["spec"].items() if k != "serveConfigV2"}


def test_chart_rayservice_matches_the_cli_with_the_defaults(helm: Helm) -> None:
    ours = service(model="retail-best", name="sessrec-serve", s3_config="sessrec-serve-s3", s3_secret=SECRET)
    theirs = chart_service(helm, {"model": "retail-best"})
    assert theirs["metadata"]["name"] == "sessrec-serve"
    same_service(theirs, ours)


def test_chart_rayservice_matches_the_cli_autoscaled_and_sized(helm: Helm) -> None:
    ours = service(
        model="s3://bucket/models/retail",
        name="sessrec-serve",
        s3_config="sessrec-serve-s3",
        s3_secret=SECRET,
        min_replicas=0,
        max_replicas=6,
        target_ongoing_requests=2.5,
        replica_cpus=0.5,
        replica_memory="1536Mi",
    )
    theirs = chart_service(
        helm,
        {
            "model": "s3://bucket/models/retail",
            "autoscaling": {"minReplicas": 0, "maxReplicas": 6, "targetOngoingRequests": 2.5},
            "resources": {"cpus": 0.5, "memory": "1536Mi"},
        },
    )
    same_service(theirs, ours)
    fixed = chart_service(helm, {"model": "m", "replicas": 3})
    same_service(
        fixed, service(model="m", name="sessrec-serve", s3_config="sessrec-serve-s3", s3_secret=SECRET, replicas=3)
    )


def test_serve_values_file_renders_a_valid_service_alone(helm: Helm) -> None:
    result = helm.run("lint", "--strict", str(CHART), "--values", str(SERVE_VALUES))
    assert result.returncode == 0, result.stdout + result.stderr
    rendered = helm.template(None, SERVE_VALUES, release="ci")
    assert rendered.returncode == 0, rendered.stderr
    for level in policy.LEVELS:
        count, found = validate.validate_text(rendered.stdout, "helm template", checks(level))
        assert count and found == [], (level, [str(p) for p in found])
    kinds = sorted(doc["kind"] for doc in yaml.safe_load_all(rendered.stdout) if doc)
    assert kinds == ["ConfigMap", "RayService"]  # no cluster, no sweep: serving alone is something to deploy
    install = helm.run("install", "recs", str(CHART), "--dry-run=client", "--values", str(SERVE_VALUES))
    assert install.returncode == 0, install.stderr
    notes = install.stdout.split("NOTES:", 1)[1]
    assert "Model retail-best is served by RayService recs-sessrec" in notes
    assert "port-forward svc/recs-sessrec-serve-svc 8000:8000" in notes


def test_serve_is_off_by_default(helm: Helm) -> None:
    assert not any(obj["kind"] == "RayService" for obj in helm.objects())
    values = yaml.safe_load((CHART / "values.yaml").read_text())["serve"]
    assert values == {
        "enabled": False,
        "model": "",
        "replicas": defaults.SERVE_REPLICAS,
        "autoscaling": {
            "minReplicas": defaults.SERVE_MIN_REPLICAS,
            "maxReplicas": None,
            "targetOngoingRequests": defaults.SERVE_TARGET_ONGOING_REQUESTS,
        },
        "resources": {"cpus": defaults.SERVE_REPLICA_CPUS, "memory": defaults.SERVE_REPLICA_MEMORY},
    }


def test_each_serve_value_reaches_the_rayservice(helm: Helm) -> None:
    """helm-unittest style: one value at a time, and where it lands."""
    base = chart_service(helm, {"model": "retail-best"})
    assert yaml.safe_load(base["spec"]["serveConfigV2"])["applications"][0]["args"] == {"model": "retail-best"}
    assert deployment_of(base)["num_replicas"] == 1
    assert deployment_of(chart_service(helm, {"model": "nightly-best"}))  # serve.model
    assert (
        config_of(chart_service(helm, {"model": "nightly-best"}))["applications"][0]["args"]["model"] == "nightly-best"
    )
    assert deployment_of(chart_service(helm, {"model": "m", "replicas": 5}))["num_replicas"] == 5  # serve.replicas
    scaled = deployment_of(chart_service(helm, {"model": "m", "replicas": 5, "autoscaling": {"maxReplicas": 7}}))
    assert scaled["num_replicas"] == "auto"  # serve.autoscaling.maxReplicas turns autoscaling on; replicas unused
    assert scaled["autoscaling_config"] == {"min_replicas": 1, "max_replicas": 7, "target_ongoing_requests": 16}
    low = deployment_of(chart_service(helm, {"model": "m", "autoscaling": {"minReplicas": 0, "maxReplicas": 2}}))
    assert low["autoscaling_config"]["min_replicas"] == 0  # serve.autoscaling.minReplicas
    target = deployment_of(
        chart_service(helm, {"model": "m", "autoscaling": {"maxReplicas": 2, "targetOngoingRequests": 3}})
    )
    assert target["autoscaling_config"]["target_ongoing_requests"] == 3  # serve.autoscaling.targetOngoingRequests
    # targetOngoingRequests alone, without maxReplicas, changes nothing: no autoscaling.
    assert "autoscaling_config" not in deployment_of(
        chart_service(helm, {"model": "m", "autoscaling": {"targetOngoingRequests": 3}})
    )
    cpus = deployment_of(chart_service(helm, {"model": "m", "resources": {"cpus": 2}}))
    assert cpus["ray_actor_options"] == {"num_cpus": 2, "memory": 2 * 1024**3}  # serve.resources.cpus
    memory = deployment_of(chart_service(helm, {"model": "m", "resources": {"memory": "3G"}}))
    assert memory["ray_actor_options"] == {"num_cpus": 1, "memory": 3 * 10**9}  # serve.resources.memory
    # serve.enabled: off leaves no RayService; on next to the cluster, both (different kinds, one name).
    objects = helm.objects({"serve": {"enabled": True, "model": "m"}}, release="both")
    assert {obj["kind"] for obj in objects} >= {"RayCluster", "RayService"}
    assert find(objects, "RayService")["metadata"]["name"] == find(objects, "RayCluster")["metadata"]["name"]


SERVE_BAD_VALUES = [
    ({"enabled": True}, "serve.model: serve.enabled needs the model to serve"),
    ({"enabled": True, "model": "Retail_Best"}, "'/serve/model'"),
    ({"enabled": True, "model": "m" * 41}, "'/serve/model'"),  # a model name has at most 40 characters
    ({"enabled": True, "model": "./models/m"}, "'/serve/model'"),
    ({"enabled": True, "model": "m", "replicas": 0}, "'/serve/replicas': minimum"),
    ({"enabled": True, "model": "m", "autoscaling": {"maxReplicas": 0}}, "'/serve/autoscaling/maxReplicas'"),
    ({"enabled": True, "model": "m", "autoscaling": {"minReplicas": -1}}, "'/serve/autoscaling/minReplicas': minimum"),
    (
        {"enabled": True, "model": "m", "autoscaling": {"minReplicas": 3, "maxReplicas": 2}},
        "serve.autoscaling.minReplicas (3) must not exceed serve.autoscaling.maxReplicas (2)",
    ),
    (
        {"enabled": True, "model": "m", "autoscaling": {"maxReplicas": 2, "targetOngoingRequests": 0}},
        "'/serve/autoscaling/targetOngoingRequests'",
    ),
    ({"enabled": True, "model": "m", "resources": {"cpus": -1}}, "'/serve/resources/cpus': minimum"),
    ({"enabled": True, "model": "m", "resources": {"memory": "2000m"}}, "'/serve/resources/memory'"),
    ({"enabled": True, "model": "m", "resources": {"gpus": 1}}, "additional properties 'gpus' not allowed"),
    ({"enabled": True, "model": "m", "replica": 2}, "additional properties 'replica' not allowed"),
]


@pytest.mark.parametrize(("serve", "message"), SERVE_BAD_VALUES, ids=[m for _, m in SERVE_BAD_VALUES])
def test_bad_serve_values_are_refused(helm: Helm, serve: dict[str, Any], message: str) -> None:
    result = helm.template({"cluster": {"enabled": False}, "serve": serve})
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def test_a_rayservice_name_over_kuberay_s_limit_is_refused(helm: Helm) -> None:
    values = {"cluster": {"enabled": False}, "serve": {"enabled": True, "model": "m"}, "fullnameOverride": "s" * 48}
    result = helm.template(values)
    assert (
        result.returncode != 0
        and f'RayService name "{"s" * 48}" is 48 characters; KubeRay allows at most 47' in result.stderr
    )
    assert helm.template({**values, "fullnameOverride": "s" * 47}).returncode == 0


def test_the_chart_repeats_the_serve_constants() -> None:
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    block = helpers.split('{{- define "sessrec.serveConfig" -}}', 1)[1].split("{{- end }}\n\n", 1)[0]
    assert f"import_path: {defaults.SERVE_IMPORT_PATH}\n" in block
    assert f"- name: {defaults.SERVE_APP}\n" in block
    assert f"- name: {defaults.SERVE_DEPLOYMENT}\n" in block
    assert f"port: {defaults.SERVE_PORT}\n" in block
    schema = json.loads((CHART / "values.schema.json").read_text())
    model = schema["properties"]["serve"]["properties"]["model"]
    name = re.compile(model["pattern"])
    assert name.match("a" * layout.MAX_NAME_LENGTH) and not name.match("a" * (layout.MAX_NAME_LENGTH + 1))
    assert name.match("s3://bucket/models/m") and name.match("") and not name.match("Models")

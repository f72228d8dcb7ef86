"""Issue #22, the chart and manifests as platform teams expect: validation that never crashes, CRDs from a
folder or the cluster, pod security as policy levels, the ordered-ASHA warning on the Kubernetes side, the
chart's defaults and parity values (asserted on `helm template` objects, with the real helm), the preflight
`helm test` pod and its `sessrec data check`, and the packaged chart."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from k8s_tools import CHART, CRD_DIR, REPO, Helm, find, helm_fixture  # noqa: F401  (the `helm` fixture)

from sessrec import __version__
from sessrec.k8s import defaults, manifests, policy, render, validate
from sessrec.spec import builtin_spec_text

SESSREC = str(Path(sys.executable).parent / "sessrec")
SAMPLES = sorted((REPO / "tests" / "data" / "k8s-samples").glob("*.yaml"))
CI_VALUES = sorted((CHART / "ci").glob("*.yaml"))
TINY = yaml.safe_load(builtin_spec_text("tiny"))
RUN = {"cluster": {"enabled": False}, "oneOff": {"enabled": True}}


def sessrec(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SESSREC, *args], capture_output=True, text=True, env=env, timeout=120)


def checks(level: str = "restricted") -> validate.Checks:
    return validate.Checks(policy=level, crds=validate.CrdStore.from_dir(CRD_DIR))


# ---- defect 2: a validator never crashes on bad input --------------------------------------------


def _leaves(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if path:
        yield path
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _leaves(value, (*path, index))


WRONG = ["600", -3, 1.5, True, None, [1], {"a": 1}]


def test_a_malformed_rayjob_is_an_error_not_a_crash() -> None:
    job = find(manifests.render_objects("tiny", render.RenderOptions(kind="rayjob")), "RayJob")
    job["spec"]["ttlSecondsAfterFinished"] = "600"
    found = validate.validate_object(job, "job.yaml", checks())
    assert [(p.field, p.level) for p in found] == [("spec.ttlSecondsAfterFinished", "error")], found
    assert "'600' is not of type 'integer'" in found[0].message


@pytest.mark.parametrize("kind", ["rayjob", "raycronjob", "cronjob", "raycluster"])
def test_wrongly_typed_fields_anywhere_never_crash(kind: str) -> None:
    """Every field of a rendered object, in turn, replaced by values of other types (two per field,
    rotating through WRONG): each object validates to problems, never to an exception."""
    objects = manifests.render_objects(None if kind == "raycluster" else "tiny", render.RenderOptions(kind=kind))
    obj = objects[-1]
    paths = list(_leaves(obj))
    for number, path in enumerate(paths):
        for wrong in (WRONG[number % len(WRONG)], WRONG[(number + 3) % len(WRONG)]):
            mutated = copy.deepcopy(obj)
            node = mutated
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = wrong
            validate.validate_object(mutated, "fuzz.yaml", checks())  # raises on a crash


# ---- defect 1: CRDs from --crd-dir, --from-cluster, or a one-line how-to -------------------------


def test_without_crds_validate_says_how_to_get_them(tmp_path: Path) -> None:
    manifest = tmp_path / "job.yaml"
    manifest.write_text(manifests.render("tiny", render.RenderOptions(kind="rayjob")))
    env = {key: value for key, value in __import__("os").environ.items() if key != "SESSREC_CRD_DIR"}
    result = sessrec("k8s", "validate", str(manifest), env=env)
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1, result.stderr
    for hint in (
        "--crd-dir",
        "kuberay-operator Helm chart",
        "--from-cluster",
        "kubectl get crd rayclusters.ray.io rayjobs.ray.io rayservices.ray.io raycronjobs.ray.io -o yaml",
    ):
        assert hint in result.stderr
    ok = sessrec("k8s", "validate", "--crd-dir", str(CRD_DIR), str(manifest), env=env)
    assert ok.returncode == 0 and ok.stdout.startswith("ok: 2 objects"), ok.stderr


def test_crd_dir_takes_kubectl_get_crd_output(tmp_path: Path) -> None:
    """`kubectl get crd ... -o yaml > crds.yaml` writes one List: any file name, several CRDs."""
    items = [yaml.safe_load((CRD_DIR / f"ray.io_{kind}.yaml").read_text()) for kind in ("rayjobs", "rayclusters")]
    (tmp_path / "crds.yaml").write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": items}))
    store = validate.CrdStore.from_dir(tmp_path)
    job = find(manifests.render_objects("tiny", render.RenderOptions(kind="rayjob")), "RayJob")
    assert validate.validate_object(job, "job.yaml", validate.Checks(crds=store)) == []
    cron = find(manifests.render_objects("tiny", render.RenderOptions(kind="raycronjob")), "RayCronJob")
    with pytest.raises(validate.SessrecError, match="no CRD for ray.io kind RayCronJob"):
        validate.validate_object(cron, "cron.yaml", validate.Checks(crds=store))


class _FakeApiServer(BaseHTTPRequestHandler):
    """A stand-in for the Kubernetes API server (there is no cluster here): it answers the
    apiextensions endpoint of the CRDs it has, from the CRD files, and 404 otherwise."""

    crds: dict[str, bytes] = {}
    requests: list[tuple[str, str | None]] = []

    def do_GET(self) -> None:
        self.requests.append((self.path, self.headers.get("Authorization")))
        prefix = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
        body = self.crds.get(self.path[len(prefix) :]) if self.path.startswith(prefix) else None
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", "application/json")
        body = (
            body
            or json.dumps(
                {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}
            ).encode()
        )
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def api_server(tmp_path: Path) -> Iterator[Path]:
    """A kubeconfig pointing at the stand-in API server on 127.0.0.1 (RayCronJob's CRD absent, as
    without the operator's feature gate)."""
    _FakeApiServer.crds = {
        validate.CRD_NAMES[kind]: json.dumps(
            yaml.load(
                (CRD_DIR / f"ray.io_{kind.lower()}s.yaml").read_bytes(),
                Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader),
            )
        ).encode()
        for kind in ("RayJob", "RayCluster", "RayService")
    }
    _FakeApiServer.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeApiServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "test",
                "clusters": [{"name": "test", "cluster": {"server": f"http://127.0.0.1:{server.server_port}"}}],
                "users": [{"name": "me", "user": {"token": "t0ken"}}],
                "contexts": [{"name": "test", "context": {"cluster": "test", "user": "me"}}],
            }
        )
    )
    try:
        yield kubeconfig
    finally:
        server.shutdown()
        server.server_close()


def test_from_cluster_reads_the_crds_through_the_api(api_server: Path, tmp_path: Path) -> None:
    import os

    env = {key: value for key, value in os.environ.items() if key != "SESSREC_CRD_DIR"} | {
        "KUBECONFIG": str(api_server)
    }
    manifest = tmp_path / "job.yaml"
    manifest.write_text(manifests.render("tiny", render.RenderOptions(kind="rayjob")))
    result = sessrec("k8s", "validate", "--from-cluster", str(manifest), env=env)
    assert result.returncode == 0 and result.stdout.startswith("ok: 2 objects"), result.stderr
    assert (
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/rayjobs.ray.io",
        "Bearer t0ken",
    ) in _FakeApiServer.requests
    cron = tmp_path / "cron.yaml"
    cron.write_text(manifests.render("tiny", render.RenderOptions(kind="raycronjob")))
    missing = sessrec("k8s", "validate", "--from-cluster", str(cron), env=env)
    assert (
        missing.returncode == 1
        and "no CRD for ray.io kind RayCronJob in the cluster at http://127.0.0.1" in missing.stderr
    )
    nowhere = sessrec(
        "k8s", "validate", "--from-cluster", str(manifest), env=env | {"KUBECONFIG": str(tmp_path / "none")}
    )
    assert nowhere.returncode == 1 and nowhere.stderr.startswith("error: --from-cluster: no usable kubeconfig")


# ---- defect 3: pod security is a policy level ----------------------------------------------------


def test_kube_version_defaults_to_the_newest_bundled_schemas() -> None:
    from kubernetes_validate.utils import latest_version

    assert validate.latest_kube_version() == ".".join(latest_version().split(".")[:2])
    assert validate.Checks().version() == validate.latest_kube_version()


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
def test_plain_kuberay_samples_pass_baseline_not_restricted(sample: Path) -> None:
    text = sample.read_text()
    for level in ("privileged", "baseline"):
        assert validate.validate_text(text, sample.name, checks(level))[1] == [], level
    found = validate.validate_text(text, sample.name, checks("restricted"))[1]
    assert found and {p.level for p in found} == {"policy"}, found


BASELINE_BREACHES = [
    ("spec.hostNetwork", True, "spec.hostNetwork"),
    ("spec.hostPID", True, "spec.hostPID"),
    ("spec.volumes", [{"name": "h", "hostPath": {"path": "/"}}], "spec.volumes[0].hostPath"),
    ("spec.containers.0.securityContext", {"privileged": True}, "spec.containers[0].securityContext.privileged"),
    (
        "spec.containers.0.securityContext",
        {"capabilities": {"add": ["SYS_ADMIN"]}},
        "spec.containers[0].securityContext.capabilities.add",
    ),
    ("spec.containers.0.ports", [{"containerPort": 80, "hostPort": 80}], "spec.containers[0].ports[0].hostPort"),
    ("spec.securityContext", {"seccompProfile": {"type": "Unconfined"}}, "spec.securityContext.seccompProfile.type"),
    (
        "spec.securityContext",
        {"sysctls": [{"name": "kernel.msgmax", "value": "1"}]},
        "spec.securityContext.sysctls[0].name",
    ),
    ("spec.containers.0.securityContext", {"procMount": "Unmasked"}, "spec.containers[0].securityContext.procMount"),
]


@pytest.mark.parametrize(("where", "value", "field"), BASELINE_BREACHES, ids=[f for _, _, f in BASELINE_BREACHES])
def test_baseline_checks(where: str, value: Any, field: str) -> None:
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]},
    }
    node: Any = pod
    *parents, last = where.split(".")
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    node[last] = value
    assert validate.validate_object(pod, "pod.yaml", checks("privileged")) == []
    found = validate.validate_object(pod, "pod.yaml", checks("baseline"))
    assert [(p.field, p.level) for p in found] == [(field, "policy")], found
    assert field in {p.field for p in validate.validate_object(pod, "pod.yaml", checks("restricted"))}
    # Capabilities of the runtime's default set are baseline.
    assert policy.container_context_problems({"capabilities": {"add": ["CHOWN"]}}, "baseline") == []


def test_cli_output_tells_errors_from_policy(tmp_path: Path) -> None:
    sample = REPO / "tests" / "data" / "k8s-samples" / "rayjob.yaml"
    broken = tmp_path / "broken.yaml"
    broken.write_text(sample.read_text().replace("ttlSecondsAfterFinished: 120", 'ttlSecondsAfterFinished: "120"'))
    result = sessrec("k8s", "validate", str(sample), str(broken))
    lines = result.stderr.splitlines()
    assert result.returncode == 1
    assert f"{broken}: RayJob/team-job: error: spec.ttlSecondsAfterFinished: '120' is not of type 'integer'" in lines
    assert any(line.startswith(f"{sample}: RayJob/team-job: policy: ") for line in lines)
    assert re.fullmatch(r"error: 1 error and \d+ policy findings \(restricted\) in 2 of 2 objects", lines[-1]), lines[
        -1
    ]
    baseline = sessrec("k8s", "validate", "--policy", "baseline", str(sample))
    assert (baseline.returncode, baseline.stdout.strip()) == (0, "ok: 1 object in 1 file, policy baseline")
    report = json.loads(sessrec("k8s", "validate", "--json", str(broken)).stdout)
    assert report["policy"] == "restricted" and {p["level"] for p in report["problems"]} == {"error", "policy"}


# ---- defect 5: the ordered ASHA grid is reported on the Kubernetes side --------------------------


def _ordered_spec(tmp_path: Path) -> Path:
    values = yaml.safe_load((CHART / "ci" / "raycronjob-values.yaml").read_text())
    assert values["sweep"]["search"]["shuffle"] is True  # the example itself is fixed
    spec = copy.deepcopy(values["sweep"])
    del spec["search"]["shuffle"]
    path = tmp_path / "seed3d.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_render_and_validate_warn_of_an_ordered_asha_grid(tmp_path: Path) -> None:
    spec = _ordered_spec(tmp_path)
    warning = (
        "ASHA will judge the first trials of this 539-point grid against its first corner only "
        "(32 run at once, in grid order); set search.shuffle: true to run it in a seeded random order"
    )
    rendered = sessrec("k8s", "render", str(spec))
    assert rendered.returncode == 0
    assert rendered.stderr.splitlines() == [
        "note: expects ConfigMap sessrec-s3 (SESSREC_STORAGE, AWS_* settings) and Secret sessrec-s3-credentials "
        "(AWS credentials) in the namespace; render does not create them",
        f"warning: {warning}",
    ]
    manifest = tmp_path / "job.yaml"
    manifest.write_text(rendered.stdout)
    checked = sessrec("k8s", "validate", str(manifest))
    assert checked.returncode == 0, checked.stderr  # a warning does not fail
    assert checked.stderr.splitlines() == [
        f"{manifest}: ConfigMap/sessrec-seed3d-sweep: warning: data.sweep.yaml: {warning}"
    ]
    assert checked.stdout.strip() == "ok: 2 objects in 1 file (1 warning), policy restricted"
    shuffled = sessrec("k8s", "render", "seed3d")
    assert len(shuffled.stderr.splitlines()) == 1  # the note alone


# ---- the chart: defaults, lint, every manifest at every level, parity values ---------------------


def test_lint_strict_with_the_defaults(helm: Helm) -> None:
    result = helm.run("lint", "--strict", str(CHART))
    assert result.returncode == 0, result.stdout + result.stderr
    kinds = sorted(obj["kind"] for obj in helm.objects())
    assert kinds == ["ConfigMap", "RayCluster"]  # the long-lived cluster; sweeps arrive with `sessrec submit`


@pytest.mark.parametrize("values", [None, *CI_VALUES], ids=lambda p: p.name if p else "defaults")
def test_every_rendered_manifest_is_valid_at_every_policy_level(helm: Helm, values: Path | None) -> None:
    result = helm.template(None, *([values] if values else []), release="ci")
    assert result.returncode == 0, result.stderr
    for level in policy.LEVELS:
        count, found = validate.validate_text(result.stdout, "helm template", checks(level))
        assert count and found == [], (level, [str(p) for p in found])


def test_sessrec_renders_are_valid_at_every_policy_level() -> None:
    for kind in ("rayjob", "raycronjob", "cronjob", "raycluster"):
        text = manifests.render(None if kind == "raycluster" else "tiny", render.RenderOptions(kind=kind))
        for level in policy.LEVELS:
            assert validate.validate_text(text, kind, checks(level))[1] == [], (kind, level)


def test_every_value_has_a_doc_comment() -> None:
    """helm-docs style: a `# --` comment above every value, except maps whose keys have their own,
    and keys inside a documented value (e.g. resources.requests.cpu)."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    undocumented = []
    documented_at: list[int] = []  # indents of documented ancestors
    for number, line in enumerate(lines):
        match = re.match(r"^( *)([A-Za-z][\w.-]*):", line)
        if not match:
            continue
        indent = len(match.group(1))
        documented_at = [level for level in documented_at if level < indent]
        comments = []
        for previous in reversed(lines[:number]):
            if not previous.strip().startswith("#"):
                break
            comments.append(previous.strip())
        following = next((ln for ln in lines[number + 1 :] if ln.strip() and not ln.strip().startswith("#")), "")
        is_map = len(following) - len(following.lstrip()) > indent and line.rstrip().endswith(":")
        if any(c.startswith("# --") for c in comments):
            documented_at.append(indent)
        elif not documented_at and not is_map:
            undocumented.append(line.strip())
    assert undocumented == []


PARITY = {
    "podLabels": {"team": "ml"},
    "podAnnotations": {"karpenter.sh/do-not-disrupt": "true"},
    "priorityClassName": "batch-high",
    "serviceAccountName": "ray-s3",
    "env": [
        {"name": "HTTPS_PROXY", "value": "http://proxy:3128"},
        {"name": "AWS_CA_BUNDLE", "value": "/etc/ca/ca.pem"},
    ],
    "envFrom": [{"configMapRef": {"name": "proxy-settings"}}],
    "volumes": [{"name": "ca", "configMap": {"name": "corporate-ca"}}],
    "volumeMounts": [{"name": "ca", "mountPath": "/etc/ca", "readOnly": True}],
    "image": {"pullPolicy": "Always"},
    "head": {
        "rayStartParams": {"dashboard-host": "0.0.0.0"},
        "serviceType": "LoadBalancer",
        "serviceAnnotations": {"service.beta.kubernetes.io/aws-load-balancer-internal": "true"},
    },
    "worker": {"rayStartParams": {"metrics-export-port": "8080"}},
    "additionalWorkerGroups": {
        "gpu": {
            "gpu": True,
            "minReplicas": 0,
            "maxReplicas": 2,
            "resources": {
                "requests": {"cpu": "8", "memory": "32Gi"},
                "limits": {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": 1},
            },
            "nodeSelector": {"nvidia.com/gpu.present": "true"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        },
        "highmem": {
            "minReplicas": 1,
            "maxReplicas": 3,
            "shmSize": "8Gi",
            "resources": {"requests": {"cpu": "4", "memory": "64Gi"}, "limits": {"cpu": "4", "memory": "64Gi"}},
        },
    },
}


def test_parity_values_reach_the_cluster(helm: Helm) -> None:
    objects = helm.objects({**PARITY, "sweep": TINY, "oneOff": {"enabled": True}})
    for cluster in (find(objects, "RayCluster")["spec"], find(objects, "RayJob")["spec"]["rayClusterSpec"]):
        head = cluster["headGroupSpec"]
        assert head["rayStartParams"] == {"num-cpus": "0", "dashboard-host": "0.0.0.0"}
        assert head["serviceType"] == "LoadBalancer"
        assert head["headService"]["metadata"]["annotations"] == PARITY["head"]["serviceAnnotations"]
        groups = {group["groupName"]: group for group in cluster["workerGroupSpecs"]}
        assert list(groups) == ["cpu", "gpu", "highmem"]
        assert groups["cpu"]["rayStartParams"] == {"metrics-export-port": "8080"}
        gpu = groups["gpu"]["template"]["spec"]
        assert gpu["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert (
            gpu["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
            and gpu["tolerations"][0]["key"] == "nvidia.com/gpu"
        )
        assert (groups["gpu"]["minReplicas"], groups["gpu"]["maxReplicas"], groups["highmem"]["replicas"]) == (0, 2, 1)
        assert groups["highmem"]["template"]["spec"]["volumes"][0]["emptyDir"]["sizeLimit"] == "8Gi"
        assert groups["gpu"]["template"]["spec"]["volumes"][0]["emptyDir"]["sizeLimit"] == defaults.SHM_SIZE
        for template in [head["template"], *(group["template"] for group in groups.values())]:
            pod, container = template["spec"], template["spec"]["containers"][0]
            assert template["metadata"]["labels"]["team"] == "ml"
            assert template["metadata"]["annotations"] == PARITY["podAnnotations"]
            assert (pod["priorityClassName"], pod["serviceAccountName"]) == ("batch-high", "ray-s3")
            assert container["env"] == PARITY["env"] and container["envFrom"][-1] == PARITY["envFrom"][0]
            assert container["imagePullPolicy"] == "Always"
            assert {"name": "ca", "configMap": {"name": "corporate-ca"}} in pod["volumes"]
            assert container["volumeMounts"][-1] == PARITY["volumeMounts"][0]
    for level in policy.LEVELS:  # the extra values keep the pods valid and restricted
        found = validate.validate_text(render.dump_yaml(objects), "parity", checks(level))[1]
        assert found == [], [str(p) for p in found]


def test_new_values_unset_render_as_before(helm: Helm) -> None:
    """Unset parity values add nothing: the chart's RayJob equals `sessrec k8s render`'s."""
    ours = manifests.render_objects(
        "tiny", render.RenderOptions(kind="rayjob", name="sessrec-tiny", s3_config="sessrec-tiny-s3", s3_secret=None)
    )
    theirs = helm.objects({"sweep": TINY, **RUN})
    assert find(theirs, "RayJob")["spec"] == find(ours, "RayJob")["spec"]


# ---- preflight: `helm test` checks storage and dataset with `sessrec data check` -----------------


def test_helm_test_pod_checks_storage_and_dataset(helm: Helm) -> None:
    values = {
        **RUN,
        "sweep": TINY,
        "s3": {"existingSecret": "creds"},
        "serviceAccountName": "ray-s3",
        "env": PARITY["env"],
        "envFrom": PARITY["envFrom"],
        "volumes": PARITY["volumes"],
        "volumeMounts": PARITY["volumeMounts"],
    }
    pod = find(helm.objects(values), "Pod", "sessrec-tiny-test-storage")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    container = pod["spec"]["containers"][0]
    assert container["command"] == ["sessrec", "data", "check", TINY["dataset"]]
    assert container["image"] == defaults.DEFAULT_IMAGE
    assert container["envFrom"] == [
        {"configMapRef": {"name": "sessrec-tiny-s3"}},
        {"secretRef": {"name": "creds"}},
        *PARITY["envFrom"],
    ]
    assert container["env"][1:] == PARITY["env"] and pod["spec"]["serviceAccountName"] == "ray-s3"
    assert PARITY["volumeMounts"][0] in container["volumeMounts"]


@pytest.mark.slow
def test_data_check_against_real_s3(s3_env: Any, tmp_path: Path) -> None:
    import os

    env = dict(os.environ) | {
        "SESSREC_STORAGE": f"s3://{s3_env.bucket}/check",
        "SESSREC_CONFIG": str(tmp_path / "none"),
    }
    made = subprocess.run(
        [SESSREC, "data", "synth", "--name", "demo", "--sessions", "200"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    ok = subprocess.run([SESSREC, "data", "check", "demo"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert ok.returncode == 0 and len(ok.stdout.splitlines()) == 1, ok.stderr
    assert ok.stdout.startswith(f"ok: dataset demo in s3://{s3_env.bucket}/check: 200 sessions readable")
    missing = subprocess.run([SESSREC, "data", "check", "nope"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert missing.returncode == 1 and missing.stderr.startswith("error: no dataset 'nope'"), missing.stderr
    assert len(missing.stderr.splitlines()) == 1
    wrong = env | {"AWS_SECRET_ACCESS_KEY": "wrong"}
    refused = subprocess.run(
        [SESSREC, "data", "check", "demo"], capture_output=True, text=True, env=wrong, cwd=tmp_path
    )
    assert refused.returncode == 1 and len(refused.stderr.splitlines()) == 1, refused.stderr


# ---- packaging -----------------------------------------------------------------------------------


def test_chart_packages_with_the_package_version(helm: Helm, tmp_path: Path) -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["version"] == chart["appVersion"] == __version__
    result = helm.run("package", str(CHART), "--destination", str(tmp_path))
    assert result.returncode == 0, result.stderr
    packaged = tmp_path / f"sessrec-{__version__}.tgz"
    assert packaged.is_file()
    assert helm.run("lint", "--strict", str(packaged)).returncode == 0
    import tarfile

    with tarfile.open(packaged) as archive:
        names = archive.getnames()
    assert "sessrec/files/cron-pattern.txt" in names and "sessrec/values.schema.json" in names
    assert not any("/ci/" in name for name in names)  # CI values stay out of the package (.helmignore)


def test_dockerfile_pins_its_base_by_digest_argument() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_DIGEST=", dockerfile, re.M)
    assert "FROM ${BASE_IMAGE}${BASE_DIGEST:+@${BASE_DIGEST}}" in dockerfile
    docs = (REPO / "docs" / "kubernetes.md").read_text()
    assert "helm push" in docs and "oci://" in docs and "docker push" in docs

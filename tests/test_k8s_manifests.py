"""The checked-in manifests (jobs/, cluster/) and the container image definition."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml
from k8s_tools import REPO, find, hadolint, kubectl
from packaging.requirements import Requirement
from typer.testing import CliRunner

from sessrec.cli import app
from sessrec.k8s import defaults, validate

RENDERED = sorted((REPO / "jobs").glob("*.yaml")) + [REPO / "cluster" / "base" / "raycluster.yaml"]
OVERLAYS = ["cluster/base", "cluster/overlays/dev", "cluster/overlays/prod"]


@pytest.mark.parametrize("path", RENDERED, ids=lambda p: str(p.relative_to(REPO)))
def test_rendered_files_are_current(path: Path) -> None:
    text = path.read_text()
    command = text.splitlines()[0].removeprefix("# Rendered by: ")
    argv = shlex.split(command)
    assert argv[:3] == ["sessrec", "k8s", "render"], f"{path} must start with its `# Rendered by:` command"
    result = CliRunner().invoke(app, argv[1:])
    assert result.exit_code == 0, result.output
    assert result.stdout == text, f"{path.relative_to(REPO)} is stale: run `{command} > {path.relative_to(REPO)}`"


def test_job_manifests_are_valid() -> None:
    count, problems = validate.validate_files(str(p) for p in sorted((REPO / "jobs").glob("*.yaml")))
    assert problems == [], "\n".join(map(str, problems))
    objects = [d for p in sorted((REPO / "jobs").glob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d]
    assert len(objects) == count
    kinds = {o["kind"] for o in objects}
    assert kinds == {"ConfigMap", "RayJob", "RayCronJob", "CronJob", "ServiceAccount", "Role", "RoleBinding"}
    on_cluster = find(objects, "RayJob", "sessrec-tiny-on-cluster")["spec"]
    assert on_cluster["clusterSelector"] == {"ray.io/cluster": "sessrec"}  # the cluster/ RayCluster


@pytest.mark.skipif(kubectl() is None, reason="needs kubectl for `kubectl kustomize`")
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kustomize_builds_valid_objects(overlay: str) -> None:
    result = subprocess.run([kubectl(), "kustomize", str(REPO / overlay)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    count, problems = validate.validate_text(result.stdout, f"kubectl kustomize {overlay}")
    assert problems == [], "\n".join(map(str, problems))
    objects = [d for d in yaml.safe_load_all(result.stdout) if d]
    cluster = find(objects, "RayCluster", "sessrec")
    settings = find(objects, "ConfigMap", defaults.DEFAULT_S3_CONFIG)["data"]
    assert settings["SESSREC_STORAGE"].startswith("s3://")
    pods = [cluster["spec"]["headGroupSpec"], *cluster["spec"]["workerGroupSpecs"]]
    images = {c["image"] for pod in pods for c in pod["template"]["spec"]["containers"]}
    if overlay == "cluster/base":
        assert images == {defaults.DEFAULT_IMAGE}
        return
    # Overlays: own namespace under the restricted pod security standard, own image and sizes.
    namespace = find(objects, "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert cluster["metadata"]["namespace"] == namespace["metadata"]["name"]
    assert images == {"registry.example.com/ml/sessrec:0.1.0"}
    workers = cluster["spec"]["workerGroupSpecs"][0]
    assert workers["maxReplicas"] == {"cluster/overlays/dev": 2, "cluster/overlays/prod": 32}[overlay]


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run([hadolint(), str(REPO / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_ray_is_the_clusters_ray() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    base = re.search(r"^ARG BASE_IMAGE=rayproject/ray:(\d+\.\d+\.\d+)-py3\d+$", dockerfile, re.M)
    assert base, "BASE_IMAGE must be a pinned rayproject/ray:<version>-py3<minor> tag"
    assert base.group(1) == defaults.RAY_VERSION  # every rayVersion in the manifests
    pyproject = (REPO / "pyproject.toml").read_text()  # no tomllib: the project supports Python 3.10
    ray = Requirement(re.search(r'^\s*"(ray\[[^"]*)",?$', pyproject, re.M).group(1))
    assert ray.specifier.contains(defaults.RAY_VERSION), (
        f"pyproject's {ray} excludes the image's Ray {defaults.RAY_VERSION}"
    )
    assert re.search(r"^USER 1000(:100)?$", dockerfile, re.M), "the image must run as the base image's non-root user"


def test_dockerignore_sends_only_the_package() -> None:
    rules = [line for line in (REPO / ".dockerignore").read_text().splitlines() if line and not line.startswith("#")]
    assert rules[0] == "*"  # an allow-list: .venv, .git, .tools, tests, data never reach the builder
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    copied = set()
    for line in (REPO / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            copied.update(arg.rstrip("/") for arg in line.split()[1:-1] if not arg.startswith("--"))
    assert copied == allowed

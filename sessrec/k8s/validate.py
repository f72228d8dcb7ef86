"""Validate manifests offline, as an API server and the KubeRay operator would.

ray.io objects are checked against the CRDs' ``openAPIV3Schema`` made strict (unknown fields are
errors), the operator's own rules (name lengths, TTL needs shutdown, replica bounds, cron syntax)
are checked here, built-in kinds go through ``kubernetes-validate``, and every pod must meet the
pod policy (``sessrec.k8s.policy``).
"""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import jsonschema
import yaml

from sessrec import yaml_text
from sessrec.errors import SessrecError
from sessrec.k8s.defaults import (
    DNS1123_SUBDOMAIN,
    KUBE_VERSION,
    LABEL_LIMIT,
    LABEL_NAME,
    NAME_LIMITS,
    SPEC_KEY,
    TOKEN_AUTH_RAY_VERSION,
)
from sessrec.k8s.policy import container_context_problems, pod_resources_problems, pod_security_problems, pod_specs
from sessrec.k8s.rules import cron_problem, name_problem, time_zone_problem
from sessrec.spec import parse_spec


@dataclass(frozen=True)
class Problem:
    source: str
    obj: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.source}: {self.obj}: {self.field}: {self.message}"


def crd_dir() -> Path:
    """KubeRay's CRDs: $SESSREC_CRD_DIR, else ../shared/k8s/crds next to the repository."""
    env = os.environ.get("SESSREC_CRD_DIR")
    # This file is <repository>/sessrec/k8s/validate.py: parents[3] is the repository's folder.
    return Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "k8s" / "crds"


@functools.cache
def _crd(directory: Path, kind: str) -> dict[str, Any]:
    # One parse per file and process: each CRD is about 1 MB of YAML.
    path = directory / f"ray.io_{kind.lower()}s.yaml"
    if not directory.is_dir():
        raise SessrecError(f"no KubeRay CRD folder {directory}: set SESSREC_CRD_DIR to the folder with ray.io_*.yaml")
    if not path.is_file():
        raise SessrecError(f"no CRD for ray.io kind {kind} in {directory} (looked for {path.name})")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with path.open("rb") as handle:
        crd = yaml.load(handle, Loader=loader)
    if not isinstance(crd, dict) or crd.get("spec", {}).get("names", {}).get("kind") != kind:
        raise SessrecError(f"{path} is not the CustomResourceDefinition of {kind}")
    return crd


_FORMATS = jsonschema.FormatChecker(formats=())


@_FORMATS.checks("int32")
def _int32(value: Any) -> bool:
    return not isinstance(value, int) or -(2**31) <= value < 2**31


@_FORMATS.checks("int64")
def _int64(value: Any) -> bool:
    return not isinstance(value, int) or -(2**63) <= value < 2**63


@functools.cache
def _crd_validator(directory: Path, kind: str, version: str) -> jsonschema.protocols.Validator | None:
    for entry in _crd(directory, kind)["spec"]["versions"]:
        if entry["name"] == version and entry.get("served", False):
            schema = strict_schema(entry["schema"]["openAPIV3Schema"])
            return jsonschema.Draft7Validator(schema, format_checker=_FORMATS)
    return None


def strict_schema(node: Any) -> Any:
    """A CRD structural schema as plain JSON Schema with the API server's strict field validation.

    ``x-kubernetes-int-or-string`` becomes integer-or-string, ``nullable`` adds null, and objects
    that list ``properties`` refuse other fields unless they preserve unknown fields.
    """
    if not isinstance(node, dict):
        return node
    out = dict(node)
    if "properties" in out:
        out["properties"] = {key: strict_schema(value) for key, value in out["properties"].items()}
    for key in ("items", "additionalProperties", "not"):
        if isinstance(out.get(key), dict):
            out[key] = strict_schema(out[key])
    for key in ("anyOf", "allOf", "oneOf"):
        if key in out:
            out[key] = [strict_schema(item) for item in out[key]]
    if out.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if out.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    preserves = out.get("x-kubernetes-preserve-unknown-fields")
    if "properties" in out and "additionalProperties" not in out and not preserves:
        out["additionalProperties"] = False
    return out


def validate_files(paths: Iterable[str], kube_version: str = KUBE_VERSION) -> tuple[int, list[Problem]]:
    """Validate manifest files ("-": standard input); returns (objects checked, problems)."""
    count = 0
    problems: list[Problem] = []
    for path in paths:
        if path == "-":
            text, source = sys.stdin.read(), "<stdin>"
        else:
            try:
                text, source = Path(path).read_text(encoding="utf-8"), path
            except (OSError, UnicodeDecodeError) as exc:
                raise SessrecError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
        n, found = validate_text(text, source, kube_version)
        count, problems = count + n, problems + found
    return count, problems


def validate_text(text: str, source: str, kube_version: str = KUBE_VERSION) -> tuple[int, list[Problem]]:
    try:
        documents = [doc for doc in yaml_text.load_all(text) if doc is not None]
    except yaml.YAMLError as exc:
        return 0, [Problem(source, "-", "-", f"not valid YAML: {yaml_text.error_text(exc)}")]
    problems: list[Problem] = []
    for index, doc in enumerate(documents):
        problems += validate_object(doc, source, kube_version, index)
    return len(documents), problems


def validate_object(obj: Any, source: str, kube_version: str = KUBE_VERSION, index: int = 0) -> list[Problem]:
    if not isinstance(obj, dict) or not isinstance(obj.get("apiVersion"), str) or not isinstance(obj.get("kind"), str):
        return [Problem(source, f"document {index + 1}", "-", "not a Kubernetes object (needs apiVersion and kind)")]
    kind = obj["kind"]
    metadata = obj.get("metadata")
    meta: dict[str, Any] = metadata if isinstance(metadata, dict) else {}
    label = f"{kind}/{meta.get('name') or meta.get('generateName') or f'(document {index + 1})'}"
    found: list[tuple[str, str]] = []
    group, _, version = obj["apiVersion"].rpartition("/")
    if group == "ray.io":
        found += _crd_problems(obj, kind, version)
    else:
        found += _builtin_problems(obj, kube_version)
    found += _metadata_problems(kind, meta)
    found += _operator_problems(obj, kind)
    for path, pod in pod_specs(obj, kind):
        found += pod_security_problems(pod, path)
        found += pod_resources_problems(pod, path)
    problems = [Problem(source, label, where, message) for where, message in found]
    if kind == "ConfigMap" and isinstance(obj.get("data"), dict):
        problems += _configmap_content_problems(obj["data"], source, label, kube_version)
    return problems


def _crd_problems(obj: dict, kind: str, version: str) -> list[tuple[str, str]]:
    validator = _crd_validator(crd_dir(), kind, version)
    if validator is None:
        return [("apiVersion", f"ray.io/{version} is not a served version of {kind}")]
    return list(_schema_errors(validator.iter_errors(obj)))


def _builtin_problems(obj: dict, kube_version: str) -> list[tuple[str, str]]:
    try:  # imported here: only `validate` needs it, and it is not a dependency of the package itself
        import kubernetes_validate
        from kubernetes_validate.utils import SchemaNotFoundError, VersionNotSupportedError
    except ImportError:
        message = "validating built-in kinds needs the kubernetes-validate package (pip install kubernetes-validate)"
        raise SessrecError(message) from None
    try:
        kubernetes_validate.validate(obj, kube_version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return list(_schema_errors([exc]))
    except SchemaNotFoundError:
        return [("kind", f"Kubernetes {kube_version} has no {obj['kind']} in {obj['apiVersion']}")]
    except VersionNotSupportedError:
        raise SessrecError(f"kubernetes-validate has no schemas for Kubernetes {kube_version}") from None
    return []


def _dotted(path: Iterable[Any]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(object)"


def _schema_errors(errors: Iterable[jsonschema.ValidationError]) -> Iterator[tuple[str, str]]:
    for error in sorted(errors, key=lambda e: [str(p) for p in e.absolute_path]):
        where = list(error.absolute_path)
        schema = cast("Mapping[str, Any]", error.schema)  # a keyword's error: its schema is an object
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            allowed = set(schema.get("properties", {}))
            for key in sorted(set(error.instance) - allowed):
                yield _dotted([*where, key]), "unknown field"
        elif error.validator == "anyOf" and schema.get("x-kubernetes-int-or-string"):
            yield _dotted(where), f"must be an integer or a string, got {error.instance!r}"
        else:
            message = " ".join(error.message.split())
            yield _dotted(where), message if len(message) <= 200 else message[:197] + "..."


def _metadata_problems(kind: str, meta: dict) -> list[tuple[str, str]]:
    name, generate = meta.get("name"), meta.get("generateName")
    found = []
    if isinstance(name, str) and name:
        if problem := name_problem(kind, name):
            found.append(("metadata.name", problem))
    elif isinstance(generate, str) and generate:
        if problem := name_problem(kind, generate, generated=True):
            found.append(("metadata.generateName", problem))
    else:
        found.append(("metadata.name", "missing (set name or generateName)"))
    for key, value in (meta.get("labels") or {}).items():
        prefix, _, label = str(key).rpartition("/")
        if len(label) > LABEL_LIMIT or not LABEL_NAME.match(label) or (prefix and not DNS1123_SUBDOMAIN.match(prefix)):
            found.append((f"metadata.labels.{key}", "not a valid label key"))
        if not isinstance(value, str) or len(value) > LABEL_LIMIT or (value and not LABEL_NAME.match(value)):
            found.append((f"metadata.labels.{key}", f"{value!r} is not a valid label value"))
    return found


def _operator_problems(obj: dict, kind: str) -> list[tuple[str, str]]:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [] if kind not in NAME_LIMITS else [("spec", "missing")]
    if kind == "RayCluster":
        return _cluster_rules(spec, "spec")
    if kind == "RayJob":
        return _job_rules(spec, "spec")
    if kind == "RayCronJob":
        found = _schedule_rules(spec, "spec")
        if isinstance(spec.get("jobTemplate"), dict):
            found += _job_rules(spec["jobTemplate"], "spec.jobTemplate")
        return found
    if kind == "CronJob":
        return _schedule_rules(spec, "spec")
    return []


def _schedule_rules(spec: dict, path: str) -> list[tuple[str, str]]:
    found = []
    if isinstance(spec.get("schedule"), str) and (problem := cron_problem(spec["schedule"])):
        found.append((f"{path}.schedule", problem))
    if isinstance(spec.get("timeZone"), str) and (problem := time_zone_problem(spec["timeZone"])):
        found.append((f"{path}.timeZone", problem))
    return found


def _job_rules(spec: dict, path: str) -> list[tuple[str, str]]:
    """The RayJob rules KubeRay enforces in code (ray-operator/controllers/ray/utils/validation.go)."""
    found = []
    shutdown = spec.get("shutdownAfterJobFinishes") is True
    selector = spec.get("clusterSelector") or {}
    mode = spec.get("submissionMode", "K8sJobMode")
    backoff = spec.get("backoffLimit")
    if (spec.get("ttlSecondsAfterFinished") or 0) > 0 and not shutdown:
        found.append((f"{path}.ttlSecondsAfterFinished", "needs shutdownAfterJobFinishes: true"))
    if (spec.get("ttlSecondsAfterFinished") or 0) < 0:
        found.append((f"{path}.ttlSecondsAfterFinished", "must not be negative"))
    if spec.get("suspend") and not shutdown:
        found.append((f"{path}.suspend", "a RayJob can be suspended only with shutdownAfterJobFinishes: true"))
    if mode not in ("K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode"):
        message = f"{mode!r} is not K8sJobMode, HTTPMode, InteractiveMode or SidecarMode"
        found.append((f"{path}.submissionMode", message))
    if selector:
        if not selector.get("ray.io/cluster"):
            found.append((f"{path}.clusterSelector", "needs ray.io/cluster: <RayCluster name>"))
        if spec.get("suspend"):
            found.append((f"{path}.suspend", "not supported with clusterSelector"))
        if isinstance(backoff, int) and backoff > 0:
            found.append((f"{path}.backoffLimit", "must be 0 with clusterSelector"))
        if mode == "SidecarMode":
            found.append((f"{path}.submissionMode", "SidecarMode does not support clusterSelector"))
    elif not isinstance(spec.get("rayClusterSpec"), dict):
        found.append((path, "needs rayClusterSpec or clusterSelector"))
    if isinstance(backoff, int) and backoff < 0:
        found.append((f"{path}.backoffLimit", "must not be negative"))
    if mode == "InteractiveMode" and isinstance(backoff, int) and backoff > 0:
        found.append((f"{path}.backoffLimit", "must be 0 in InteractiveMode"))
    if mode == "SidecarMode" and "submitterPodTemplate" in spec:
        found.append((f"{path}.submitterPodTemplate", "not supported in SidecarMode"))
    for key in ("activeDeadlineSeconds", "preRunningDeadlineSeconds"):
        if isinstance(spec.get(key), int) and spec[key] <= 0:
            found.append((f"{path}.{key}", "must be positive"))
    if "runtimeEnvYAML" in spec:
        try:
            runtime_env = yaml_text.load(spec["runtimeEnvYAML"] or "{}")
        except yaml.YAMLError:
            runtime_env = None
        if not isinstance(runtime_env, dict):
            found.append((f"{path}.runtimeEnvYAML", "must be a YAML mapping"))
    if mode == "K8sJobMode" and not isinstance(spec.get("submitterPodTemplate"), dict):
        message = "missing: KubeRay's default submitter pod has no security context"
        found.append((f"{path}.submitterPodTemplate", message))
    if isinstance(spec.get("rayClusterSpec"), dict):
        found += _cluster_rules(spec["rayClusterSpec"], f"{path}.rayClusterSpec")
    return found


def _cluster_rules(spec: dict, path: str) -> list[tuple[str, str]]:
    found = []
    head = spec.get("headGroupSpec") or {}
    if not ((head.get("template") or {}).get("spec") or {}).get("containers"):
        found.append((f"{path}.headGroupSpec.template.spec.containers", "needs at least one container"))
    groups = spec.get("workerGroupSpecs") or []
    names = [group.get("groupName") for group in groups if isinstance(group, dict)]
    for index, group in enumerate(groups):
        if not isinstance(group, dict):
            continue
        where = f"{path}.workerGroupSpecs[{index}]"
        low, high = group.get("minReplicas"), group.get("maxReplicas")
        for key, value in (("minReplicas", low), ("maxReplicas", high)):
            if isinstance(value, int) and value < 0:
                found.append((f"{where}.{key}", "must not be negative"))
        if isinstance(low, int) and isinstance(high, int) and low > high:
            found.append((f"{where}.minReplicas", f"{low} is greater than maxReplicas {high}"))
        if names.count(group.get("groupName")) > 1:
            found.append((f"{where}.groupName", f"{group.get('groupName')!r} is used by more than one worker group"))
        if _resources_twice(group.get("rayStartParams"), group.get("resources")):
            found.append((f"{where}.resources", "set resources in rayStartParams or in resources, not both"))
        if "labels" in (group.get("rayStartParams") or {}):
            found.append((f"{where}.rayStartParams.labels", "not supported: use the group's labels field"))
    if _resources_twice(head.get("rayStartParams"), head.get("resources")):
        found.append((f"{path}.headGroupSpec.resources", "set resources in rayStartParams or in resources, not both"))
    if (spec.get("authOptions") or {}).get("mode") == "token":
        version = str(spec.get("rayVersion") or "")
        if not re.match(r"^\d+\.\d+\.\d+", version):
            found.append((f"{path}.rayVersion", f"token authentication needs rayVersion (>= {TOKEN_AUTH_RAY_VERSION})"))
        elif _version_tuple(version) < _version_tuple(TOKEN_AUTH_RAY_VERSION):
            message = f"token authentication needs Ray >= {TOKEN_AUTH_RAY_VERSION}, got {version}"
            found.append((f"{path}.rayVersion", message))
    if spec.get("enableInTreeAutoscaling"):
        context = (spec.get("autoscalerOptions") or {}).get("securityContext") or {}
        found += [
            (f"{path}.autoscalerOptions.securityContext.{key}", message)
            for key, message in container_context_problems(context)
        ]
    return found


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version)[:3])


def _resources_twice(params: Any, resources: Any) -> bool:
    params = params if isinstance(params, dict) else {}
    return bool(resources) and any(params.get(key) for key in ("num-cpus", "num-gpus", "memory", "resources"))



def _configmap_content_problems(data: dict, source: str, label: str, kube_version: str) -> list[Problem]:
    """Sweep specs and manifests carried in a ConfigMap are checked like files of their own."""
    problems = []
    for key, text in data.items():
        if not isinstance(text, str):
            continue
        if key == SPEC_KEY:
            try:
                parse_spec(text, f"data.{key}")
            except SessrecError as exc:
                problems.append(Problem(source, label, f"data.{key}", str(exc)))
        elif key.endswith((".yaml", ".yml")):
            try:
                documents = [doc for doc in yaml_text.load_all(text) if doc is not None]
            except yaml.YAMLError:
                continue  # YAML configuration of some other program, not ours to judge
            if documents and all(isinstance(doc, dict) and "apiVersion" in doc and "kind" in doc for doc in documents):
                for index, doc in enumerate(documents):
                    problems += validate_object(doc, f"{source} ({label} data.{key})", kube_version, index)
    return problems

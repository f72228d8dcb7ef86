"""The rules the KubeRay operator enforces in code rather than in its CRDs' schemas (RayJob,
RayCronJob, RayCluster, RayService; ray-operator/controllers/ray/utils/validation.go), the
metadata rules of the API server, and the pods KubeRay makes that an object does not spell out.

Each rule looks only at fields of the type the schema wants (``_int``, ``_map``, ``_list``): the
schema reports the others, and bad input never crashes a rule. Each yields (field, problem) pairs
that ``sessrec.k8s.validate`` turns into its problems."""

from __future__ import annotations

import re
from typing import Any

import yaml

from sessrec import yaml_text
from sessrec.k8s.defaults import DNS1123_SUBDOMAIN, LABEL_LIMIT, LABEL_NAME, NAME_LIMITS, TOKEN_AUTH_RAY_VERSION
from sessrec.k8s.policy import container_context_problems
from sessrec.k8s.rules import cron_problem, name_problem, time_zone_problem


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _map(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def metadata_problems(kind: str, meta: dict) -> list[tuple[str, str]]:
    """(field, problem) pairs of an object's name (or generateName) and labels."""
    name, generate = meta.get("name"), meta.get("generateName")
    found = []
    if isinstance(name, str) and name:
        if problem := name_problem(kind, name):
            found.append(("metadata.name", problem))
    elif isinstance(generate, str) and generate:
        if problem := name_problem(kind, generate, generated=True):
            found.append(("metadata.generateName", problem))
    elif "name" not in meta and "generateName" not in meta:
        found.append(("metadata.name", "missing (set name or generateName)"))
    for key, value in _map(meta.get("labels")).items():
        prefix, _, label = str(key).rpartition("/")
        if len(label) > LABEL_LIMIT or not LABEL_NAME.match(label) or (prefix and not DNS1123_SUBDOMAIN.match(prefix)):
            found.append((f"metadata.labels.{key}", "not a valid label key"))
        if not isinstance(value, str) or len(value) > LABEL_LIMIT or (value and not LABEL_NAME.match(value)):
            found.append((f"metadata.labels.{key}", f"{value!r} is not a valid label value"))
    return found


def operator_problems(obj: dict, kind: str) -> list[tuple[str, str]]:
    """(field, problem) pairs of the rules the operator applies to a ``kind`` object's spec."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [] if kind not in NAME_LIMITS or "spec" in obj else [("spec", "missing")]
    if kind == "RayCluster":
        return _cluster_rules(spec, "spec")
    if kind == "RayJob":
        return _job_rules(spec, "spec")
    if kind == "RayService" and isinstance(spec.get("rayClusterConfig"), dict):
        return _cluster_rules(spec["rayClusterConfig"], "spec.rayClusterConfig")
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
    """The RayJob rules KubeRay enforces in code (ray-operator/controllers/ray/utils/validation.go).
    Each looks only at fields of the type the schema wants: the schema reports the others."""
    found = []
    shutdown = spec.get("shutdownAfterJobFinishes") is True
    selector = _map(spec.get("clusterSelector"))
    mode = spec.get("submissionMode", "K8sJobMode")
    backoff = _int(spec.get("backoffLimit"))
    ttl = _int(spec.get("ttlSecondsAfterFinished"))
    if ttl is not None and ttl > 0 and not shutdown:
        found.append((f"{path}.ttlSecondsAfterFinished", "needs shutdownAfterJobFinishes: true"))
    if ttl is not None and ttl < 0:
        found.append((f"{path}.ttlSecondsAfterFinished", "must not be negative"))
    if spec.get("suspend") is True and not shutdown:
        found.append((f"{path}.suspend", "a RayJob can be suspended only with shutdownAfterJobFinishes: true"))
    if isinstance(mode, str) and mode not in ("K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode"):
        message = f"{mode!r} is not K8sJobMode, HTTPMode, InteractiveMode or SidecarMode"
        found.append((f"{path}.submissionMode", message))
    if selector:
        if not selector.get("ray.io/cluster"):
            found.append((f"{path}.clusterSelector", "needs ray.io/cluster: <RayCluster name>"))
        if spec.get("suspend") is True:
            found.append((f"{path}.suspend", "not supported with clusterSelector"))
        if backoff is not None and backoff > 0:
            found.append((f"{path}.backoffLimit", "must be 0 with clusterSelector"))
        if mode == "SidecarMode":
            found.append((f"{path}.submissionMode", "SidecarMode does not support clusterSelector"))
    elif not isinstance(spec.get("rayClusterSpec"), dict):
        found.append((path, "needs rayClusterSpec or clusterSelector"))
    if backoff is not None and backoff < 0:
        found.append((f"{path}.backoffLimit", "must not be negative"))
    if mode == "InteractiveMode" and backoff is not None and backoff > 0:
        found.append((f"{path}.backoffLimit", "must be 0 in InteractiveMode"))
    if mode == "SidecarMode" and "submitterPodTemplate" in spec:
        found.append((f"{path}.submitterPodTemplate", "not supported in SidecarMode"))
    for key in ("activeDeadlineSeconds", "preRunningDeadlineSeconds"):
        value = _int(spec.get(key))
        if value is not None and value <= 0:
            found.append((f"{path}.{key}", "must be positive"))
    if "runtimeEnvYAML" in spec and (spec["runtimeEnvYAML"] is None or isinstance(spec["runtimeEnvYAML"], str)):
        try:
            runtime_env = yaml_text.load(spec["runtimeEnvYAML"] or "{}")
        except yaml.YAMLError:
            runtime_env = None
        if not isinstance(runtime_env, dict):
            found.append((f"{path}.runtimeEnvYAML", "must be a YAML mapping"))
    if isinstance(spec.get("rayClusterSpec"), dict):
        found += _cluster_rules(spec["rayClusterSpec"], f"{path}.rayClusterSpec")
    return found


def _cluster_rules(spec: dict, path: str) -> list[tuple[str, str]]:
    found = []
    head = _map(spec.get("headGroupSpec"))
    if not _list(_map(_map(head.get("template")).get("spec")).get("containers")):
        found.append((f"{path}.headGroupSpec.template.spec.containers", "needs at least one container"))
    groups = _list(spec.get("workerGroupSpecs"))
    names = [group.get("groupName") for group in groups if isinstance(group, dict)]
    for index, group in enumerate(groups):
        if not isinstance(group, dict):
            continue
        where = f"{path}.workerGroupSpecs[{index}]"
        low, high = _int(group.get("minReplicas")), _int(group.get("maxReplicas"))
        for key, value in (("minReplicas", low), ("maxReplicas", high)):
            if value is not None and value < 0:
                found.append((f"{where}.{key}", "must not be negative"))
        if low is not None and high is not None and low > high:
            found.append((f"{where}.minReplicas", f"{low} is greater than maxReplicas {high}"))
        if isinstance(group.get("groupName"), str) and names.count(group.get("groupName")) > 1:
            found.append((f"{where}.groupName", f"{group.get('groupName')!r} is used by more than one worker group"))
        if _resources_twice(group.get("rayStartParams"), group.get("resources")):
            found.append((f"{where}.resources", "set resources in rayStartParams or in resources, not both"))
        if "labels" in _map(group.get("rayStartParams")):
            found.append((f"{where}.rayStartParams.labels", "not supported: use the group's labels field"))
    if _resources_twice(head.get("rayStartParams"), head.get("resources")):
        found.append((f"{path}.headGroupSpec.resources", "set resources in rayStartParams or in resources, not both"))
    if _map(spec.get("authOptions")).get("mode") == "token":
        version = spec.get("rayVersion")
        version = version if isinstance(version, str) else ""
        if not re.match(r"^\d+\.\d+\.\d+", version):
            found.append((f"{path}.rayVersion", f"token authentication needs rayVersion (>= {TOKEN_AUTH_RAY_VERSION})"))
        elif _version_tuple(version) < _version_tuple(TOKEN_AUTH_RAY_VERSION):
            message = f"token authentication needs Ray >= {TOKEN_AUTH_RAY_VERSION}, got {version}"
            found.append((f"{path}.rayVersion", message))
    return found


def implicit_pods_policy(obj: dict, kind: str, level: str) -> list[tuple[str, str]]:
    """Pods KubeRay makes that the object does not spell out: the autoscaler sidecar of the head pod
    (autoscalerOptions.securityContext) and a RayJob's default submitter pod (no security context)."""
    spec = _map(obj.get("spec"))
    jobs = {"RayJob": ("spec", spec), "RayCronJob": ("spec.jobTemplate", spec.get("jobTemplate"))}
    found = []
    if kind in jobs and level == "restricted":
        path, job = jobs[kind]
        job = _map(job)
        if job.get("submissionMode", "K8sJobMode") == "K8sJobMode" and not isinstance(
            job.get("submitterPodTemplate"), dict
        ):
            found.append(
                (f"{path}.submitterPodTemplate", "missing: KubeRay's default submitter pod has no security context")
            )
    clusters: dict[str, list[tuple[str, Any]]] = {
        "RayCluster": [("spec", spec)],
        "RayService": [("spec.rayClusterConfig", spec.get("rayClusterConfig"))],
        "RayJob": [("spec.rayClusterSpec", spec.get("rayClusterSpec"))],
        "RayCronJob": [("spec.jobTemplate.rayClusterSpec", _map(spec.get("jobTemplate")).get("rayClusterSpec"))],
    }
    for path, cluster in clusters.get(kind, []):
        cluster = _map(cluster)
        if cluster.get("enableInTreeAutoscaling") is True and level != "privileged":
            context = _map(_map(cluster.get("autoscalerOptions")).get("securityContext"))
            found += [
                (f"{path}.autoscalerOptions.securityContext.{key}", message)
                for key, message in container_context_problems(context, level)
            ]
    return found


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version)[:3])


def _resources_twice(params: Any, resources: Any) -> bool:
    params = _map(params)
    return bool(resources) and any(params.get(key) for key in ("num-cpus", "num-gpus", "memory", "resources"))

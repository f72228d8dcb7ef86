"""Pod policy: every pod of an object must meet the "restricted" Pod Security Standard (with an
explicit non-root uid), and its containers' resources must be ones the API server accepts."""

from __future__ import annotations

from typing import Any

from sessrec.k8s.rules import quantity_value


def pod_specs(obj: dict, kind: str) -> list[tuple[str, dict]]:
    """Every pod spec in the object, with its field path."""
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}

    def at(node: Any, *keys: str | int) -> Any:
        for key in keys:
            if isinstance(key, int):
                node = node[key] if isinstance(node, list) and len(node) > key else None
            else:
                node = node.get(key) if isinstance(node, dict) else None
        return node

    def cluster(node: Any, path: str) -> list[tuple[str, Any]]:
        pods = [(f"{path}.headGroupSpec.template.spec", at(node, "headGroupSpec", "template", "spec"))]
        for index, group in enumerate(at(node, "workerGroupSpecs") or []):
            pods.append((f"{path}.workerGroupSpecs[{index}].template.spec", at(group, "template", "spec")))
        return pods

    def job(node: Any, path: str) -> list[tuple[str, Any]]:
        pods = [(f"{path}.submitterPodTemplate.spec", at(node, "submitterPodTemplate", "spec"))]
        return pods + cluster(at(node, "rayClusterSpec"), f"{path}.rayClusterSpec")

    found: list[tuple[str, Any]]
    if kind == "Pod":
        found = [("spec", spec)]
    elif kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        found = [("spec.template.spec", at(spec, "template", "spec"))]
    elif kind == "CronJob":
        found = [("spec.jobTemplate.spec.template.spec", at(spec, "jobTemplate", "spec", "template", "spec"))]
    elif kind == "RayCluster":
        found = cluster(spec, "spec")
    elif kind == "RayJob":
        found = job(spec, "spec")
    elif kind == "RayCronJob":
        found = job(at(spec, "jobTemplate"), "spec.jobTemplate")
    else:
        found = []
    return [(path, pod) for path, pod in found if isinstance(pod, dict)]


_EITHER = "(here or in the pod's securityContext)"


def pod_security_problems(pod: dict, path: str) -> list[tuple[str, str]]:
    """The "restricted" Pod Security Standard, plus an explicit non-root uid."""
    found = []
    pod_context = pod.get("securityContext") or {}
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            found.append((f"{path}.{key}", "must not be true"))
    for index, volume in enumerate(pod.get("volumes") or []):
        if isinstance(volume, dict) and "hostPath" in volume:
            found.append((f"{path}.volumes[{index}].hostPath", "host paths are not allowed"))
    for group in ("initContainers", "containers", "ephemeralContainers"):
        for index, container in enumerate(pod.get(group) or []):
            if not isinstance(container, dict):
                continue
            where = f"{path}.{group}[{index}].securityContext"
            # The container's setting wins over the pod's.
            context = {**pod_context, **(container.get("securityContext") or {})}
            if context.get("runAsNonRoot") is not True:
                found.append((f"{where}.runAsNonRoot", f"must be true {_EITHER}"))
            uid = context.get("runAsUser")
            if not isinstance(uid, int) or uid == 0:
                found.append((f"{where}.runAsUser", f"must be a non-zero uid {_EITHER}"))
            if (context.get("seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost"):
                found.append((f"{where}.seccompProfile.type", f"must be RuntimeDefault or Localhost {_EITHER}"))
            found += [(f"{where}.{key}", message) for key, message in container_context_problems(context)]
    return found

def pod_resources_problems(pod: dict, path: str) -> list[tuple[str, str]]:
    """What the API server refuses (a request above its limit) or warns of and cannot run (a
    fraction of a byte)."""
    found = []
    for group in ("initContainers", "containers"):
        for index, container in enumerate(pod.get(group) or []):
            resources = container.get("resources") if isinstance(container, dict) else None
            if not isinstance(resources, dict):
                continue
            where = f"{path}.{group}[{index}].resources"
            requests, limits = (_mapping(resources.get(key)) for key in ("requests", "limits"))
            for name, request in requests.items():
                wanted, limit = quantity_value(request), quantity_value(limits.get(name))
                if wanted is not None and limit is not None and wanted > limit:
                    message = f"{request} exceeds limits.{name} ({limits[name]}): the API server refuses the pod"
                    found.append((f"{where}.requests.{name}", message))
            for kind, values in (("requests", requests), ("limits", limits)):
                for name in ("memory", "ephemeral-storage"):
                    value = values.get(name)
                    amount = quantity_value(value)
                    if amount is not None and (amount.denominator != 1 or str(value).endswith("m")):
                        message = f"{value} is {float(amount):g} bytes: the m suffix is milli (Mi: mebibytes)"
                        found.append((f"{where}.{kind}.{name}", message))
    return found


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def container_context_problems(context: dict) -> list[tuple[str, str]]:
    found = []
    if context.get("allowPrivilegeEscalation") is not False:
        found.append(("allowPrivilegeEscalation", "must be false"))
    if context.get("privileged"):
        found.append(("privileged", "must not be true"))
    capabilities = context.get("capabilities") or {}
    if "ALL" not in (capabilities.get("drop") or []):
        found.append(("capabilities.drop", "must include ALL"))
    if set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}:
        found.append(("capabilities.add", "may only add NET_BIND_SERVICE"))
    return found

"""Pod policy: the Pod Security Standards (the levels of Kubernetes' Pod Security Admission:
privileged, baseline, restricted) and container resources the API server accepts.

Pod security is a policy a namespace chooses, not validity: ``pod_security_problems`` reports the
checks of one level (``restricted`` includes ``baseline``). sessrec renders pods that meet
``restricted``. Every function here is type-safe: a field of the wrong type (which the schema
reports) is skipped, never a crash.
"""

from __future__ import annotations

from typing import Any

from sessrec.k8s.rules import quantity_value

#: Pod Security Admission's levels, least to most restrictive.
LEVELS = ("privileged", "baseline", "restricted")
#: Capabilities a baseline pod may add (PSA "Capabilities": the container runtimes' default set).
BASELINE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)
#: Sysctls a baseline pod may set ("Sysctls": the namespaced, safe set).
SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
    }
)
SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"})
#: Volume types a restricted pod may use ("Volume Types").
RESTRICTED_VOLUMES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
CONTAINER_GROUPS = ("initContainers", "containers", "ephemeralContainers")


def _map(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def pod_specs(obj: dict, kind: str) -> list[tuple[str, dict]]:
    """Every pod spec in the object, with its field path."""
    spec = _map(obj.get("spec"))

    def at(node: Any, *keys: str | int) -> Any:
        for key in keys:
            if isinstance(key, int):
                node = node[key] if isinstance(node, list) and len(node) > key else None
            else:
                node = node.get(key) if isinstance(node, dict) else None
        return node

    def cluster(node: Any, path: str) -> list[tuple[str, Any]]:
        pods = [(f"{path}.headGroupSpec.template.spec", at(node, "headGroupSpec", "template", "spec"))]
        for index, group in enumerate(_list(at(node, "workerGroupSpecs"))):
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
    elif kind == "RayService":
        found = cluster(at(spec, "rayClusterConfig"), "spec.rayClusterConfig")
    else:
        found = []
    return [(path, pod) for path, pod in found if isinstance(pod, dict)]


_EITHER = "(here or in the pod's securityContext)"


def pod_security_problems(pod: dict, path: str, level: str = "restricted") -> list[tuple[str, str]]:
    """The checks of the Pod Security Standard ``level`` that ``pod`` fails, as (field, message)."""
    if level not in LEVELS:
        raise ValueError(f"unknown pod security level {level!r}: one of {', '.join(LEVELS)}")
    if level == "privileged":
        return []
    found = []
    pod_context = _map(pod.get("securityContext"))
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key) is True:
            found.append((f"{path}.{key}", "must not be true"))
    for index, volume in enumerate(_list(pod.get("volumes"))):
        volume = _map(volume)
        if "hostPath" in volume:
            found.append((f"{path}.volumes[{index}].hostPath", "host paths are not allowed"))
        elif level == "restricted":
            for key in sorted(set(volume) - RESTRICTED_VOLUMES - {"name"}):
                found.append((f"{path}.volumes[{index}].{key}", f"{key} volumes are not allowed"))
    for index, sysctl in enumerate(_list(pod_context.get("sysctls"))):
        name = _map(sysctl).get("name")
        if isinstance(name, str) and name not in SAFE_SYSCTLS:
            found.append((f"{path}.securityContext.sysctls[{index}].name", f"{name} is not a safe sysctl"))
    found += [(f"{path}.securityContext.{key}", message) for key, message in _baseline_context(pod_context)]
    for group in CONTAINER_GROUPS:
        for index, container in enumerate(_list(pod.get(group))):
            if not isinstance(container, dict):
                continue
            where = f"{path}.{group}[{index}]"
            for port_index, port in enumerate(_list(container.get("ports"))):
                if _map(port).get("hostPort") not in (None, 0):
                    found.append((f"{where}.ports[{port_index}].hostPort", "host ports are not allowed"))
            own = _map(container.get("securityContext"))
            found += [
                (f"{where}.securityContext.{key}", message)
                for key, message in container_context_problems(own, "baseline")
            ]
            if level == "restricted":
                # The container's setting wins over the pod's.
                context = {**pod_context, **own}
                if context.get("runAsNonRoot") is not True:
                    found.append((f"{where}.securityContext.runAsNonRoot", f"must be true {_EITHER}"))
                if context.get("runAsUser") == 0:
                    found.append((f"{where}.securityContext.runAsUser", f"must be a non-zero uid {_EITHER}"))
                if _map(context.get("seccompProfile")).get("type") not in ("RuntimeDefault", "Localhost"):
                    found.append(
                        (
                            f"{where}.securityContext.seccompProfile.type",
                            f"must be RuntimeDefault or Localhost {_EITHER}",
                        )
                    )
                found += [
                    (f"{where}.securityContext.{key}", message)
                    for key, message in container_context_problems(own, "restricted", baseline=False)
                ]
    if level == "restricted" and pod_context.get("runAsUser") == 0:
        found.append((f"{path}.securityContext.runAsUser", "must be a non-zero uid"))
    return found


def _baseline_context(context: dict) -> list[tuple[str, str]]:
    """Baseline checks that apply to a pod's and a container's securityContext alike."""
    found = []
    if _map(context.get("windowsOptions")).get("hostProcess") is True:
        found.append(("windowsOptions.hostProcess", "must not be true"))
    if _map(context.get("seccompProfile")).get("type") == "Unconfined":
        found.append(("seccompProfile.type", "must not be Unconfined"))
    if _map(context.get("appArmorProfile")).get("type") == "Unconfined":
        found.append(("appArmorProfile.type", "must not be Unconfined"))
    selinux = _map(context.get("seLinuxOptions"))
    if selinux.get("type", "") not in SELINUX_TYPES:
        found.append(("seLinuxOptions.type", f"{selinux.get('type')!r} is not a container SELinux type"))
    for key in ("user", "role"):
        if selinux.get(key):
            found.append((f"seLinuxOptions.{key}", "must not be set"))
    return found


def container_context_problems(
    context: dict, level: str = "restricted", baseline: bool = True
) -> list[tuple[str, str]]:
    """A container securityContext's problems at ``level`` (without the baseline ones when not ``baseline``)."""
    found = []
    capabilities = _map(context.get("capabilities"))
    added = {c for c in _list(capabilities.get("add")) if isinstance(c, str)}
    if baseline and level in ("baseline", "restricted"):
        if context.get("privileged") is True:
            found.append(("privileged", "must not be true"))
        if added - BASELINE_CAPABILITIES:
            found.append(("capabilities.add", f"may not add {', '.join(sorted(added - BASELINE_CAPABILITIES))}"))
        if context.get("procMount") not in (None, "Default"):
            found.append(("procMount", "must be Default"))
        found += _baseline_context(context)
    if level == "restricted":
        if context.get("allowPrivilegeEscalation") is not False:
            found.append(("allowPrivilegeEscalation", "must be false"))
        if "ALL" not in _list(capabilities.get("drop")):
            found.append(("capabilities.drop", "must include ALL"))
        if added - {"NET_BIND_SERVICE"} and not (added - BASELINE_CAPABILITIES):
            found.append(("capabilities.add", "may only add NET_BIND_SERVICE"))
    return found


def pod_resources_problems(pod: dict, path: str) -> list[tuple[str, str]]:
    """What the API server refuses (a request above its limit) or warns of and cannot run (a
    fraction of a byte)."""
    found = []
    for group in ("initContainers", "containers"):
        for index, container in enumerate(_list(pod.get(group))):
            resources = container.get("resources") if isinstance(container, dict) else None
            if not isinstance(resources, dict):
                continue
            where = f"{path}.{group}[{index}].resources"
            requests, limits = (_map(resources.get(key)) for key in ("requests", "limits"))
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

"""Kubernetes manifests for sweeps: render KubeRay objects and validate manifests offline.

This module is the reference definition of sessrec's Kubernetes objects. ``cluster/base`` and
``jobs/`` hold its rendered output (a test re-renders them), and the Helm chart in
``helm/sessrec`` is tested to render the same RayCluster and RayJob specs for equivalent values.

How a sweep reaches the cluster: the spec lives in a ConfigMap that is mounted into the RayJob
*submitter* pod at ``/etc/sessrec``; the RayJob's runtime environment names that folder as its
``working_dir``, so ``ray job submit`` uploads it and the driver finds ``sweep.yaml`` in its
working directory. The same mechanism works for an ephemeral cluster and for a long-lived one
picked by ``clusterSelector`` (a long-lived head could not mount a ConfigMap created later),
and each submission carries the spec as it was when the job started.

Validation covers what an API server and the KubeRay operator would refuse: ray.io objects are
checked against the CRDs' ``openAPIV3Schema`` made strict (unknown fields are errors), the
operator's own rules (name lengths, TTL needs shutdown, replica bounds, cron syntax) are
checked here, built-in kinds go through ``kubernetes-validate``, and every pod must meet the
"restricted" pod security rules.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import os
import re
import shlex
import sys
import zoneinfo
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import jsonschema
import yaml

from sessrec import __version__, layout, yaml_text
from sessrec.errors import SessrecError
from sessrec.spec import BUILTIN_SPECS, SWEEP_SPEC_SCHEMA, parse_spec, read_spec

# --------------------------------------------------------------------------------------------
# Defaults: the Helm chart's values.yaml carries the same values (a test compares renders).

#: Ray in the image (Dockerfile BASE_IMAGE); KubeRay needs it, e.g. token auth wants >= 2.52.
RAY_VERSION = "2.60.0"
DEFAULT_IMAGE = f"sessrec:{__version__}"
KUBECTL_IMAGE = "registry.k8s.io/kubectl:v1.32.4"
DEFAULT_SCHEDULE = "0 2 * * *"
DEFAULT_S3_CONFIG = "sessrec-s3"
DEFAULT_S3_SECRET = "sessrec-s3-credentials"
#: Kubernetes version whose built-in schemas `validate` uses: the chart's minimum (kubeVersion).
KUBE_VERSION = "1.29"

SPEC_DIR = "/etc/sessrec"
SPEC_KEY = "sweep.yaml"
RAYJOB_KEY = "rayjob.yaml"
#: The in-cluster command is the laptop command; the spec path is relative to the job's working_dir.
ENTRYPOINT = f"sessrec tune run {SPEC_KEY} --address auto"
#: ConfigMap volumes hold `..data` and timestamped folders besides the keys; upload only the keys.
RUNTIME_ENV_YAML = f'working_dir: {SPEC_DIR}\nexcludes: ["..*"]\n'

RAY_UID, RAY_GID = 1000, 100  # the rayproject/ray image's `ray` user
KUBECTL_UID = 65532  # any non-root uid: the kubectl image needs no home or files of its own

HEAD_RESOURCES = {"requests": {"cpu": "2", "memory": "8Gi"}, "limits": {"cpu": "2", "memory": "8Gi"}}
WORKER_RESOURCES = {"requests": {"cpu": "4", "memory": "8Gi"}, "limits": {"cpu": "4", "memory": "8Gi"}}
AUTOSCALER_RESOURCES = {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}}
SUBMITTER_RESOURCES = {"requests": {"cpu": "200m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
KUBECTL_RESOURCES = {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "200m", "memory": "128Mi"}}
SHM_SIZE = "2Gi"
WORKER_GROUP = "cpu"
WORKER_MIN, WORKER_MAX = 0, 8
AUTOSCALER_IDLE_SECONDS = 60
JOB_TTL_SECONDS = 600
JOB_DEADLINE_SECONDS = 86400
JOB_BACKOFF_LIMIT = 1  # one retry on a fresh cluster, e.g. after a lost head node

#: KubeRay name limits (ray-operator/controllers/ray/utils/constant.go) and the API's CronJob limit.
NAME_LIMITS = {"RayCluster": 53, "RayJob": 47, "RayService": 47, "RayCronJob": 36, "CronJob": 52}
GENERATE_NAME_SUFFIX = 5  # characters the API server appends to metadata.generateName

KINDS = ("rayjob", "raycronjob", "cronjob", "raycluster")

_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
#: A container image reference as registries parse it (distribution/reference): an optional
#: registry host and port, a lower-case path, an optional tag and an optional digest.
IMAGE_REFERENCE = re.compile(
    r"^((?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?\.)*[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?::[0-9]+)?/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$"
)
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")

POD_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": RAY_UID,
    "runAsGroup": RAY_GID,
    "fsGroup": RAY_GID,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


# --------------------------------------------------------------------------------------------
# Rendering


@dataclass(frozen=True)
class RenderOptions:
    """What `sessrec k8s render` may vary; everything else is the defaults above."""

    kind: str
    name: str | None = None
    image: str = DEFAULT_IMAGE
    sweep_id: str | None = None
    dataset: str | None = None
    cluster_selector: Mapping[str, str] = field(default_factory=dict)
    schedule: str | None = None
    time_zone: str | None = None
    s3_config: str = DEFAULT_S3_CONFIG
    s3_secret: str | None = DEFAULT_S3_SECRET


def render(spec_ref: str | None, options: RenderOptions) -> str:
    """The manifests of ``options.kind`` as multi-document YAML, ready for ``kubectl apply -f``."""
    objects = render_objects(spec_ref, options)
    note = ""
    if options.kind == "raycronjob":
        note = (
            "# RayCronJob needs KubeRay >= 1.6 with the operator's feature gate RayCronJob=true (alpha,\n"
            "# off by default; timeZone needs >= 1.7). Without it, render --kind cronjob instead.\n"
        )
    return note + dump_yaml(objects)


def render_objects(spec_ref: str | None, options: RenderOptions) -> list[dict[str, Any]]:
    if options.kind not in KINDS:
        raise SessrecError(f"unknown kind {options.kind!r}: choose one of {', '.join(KINDS)}")
    if options.kind == "raycluster":
        if spec_ref is not None or options.sweep_id or options.cluster_selector or options.schedule or options.time_zone:
            raise SessrecError("--kind raycluster takes no SPEC, --sweep-id, --cluster-selector, --schedule or --time-zone")
        name = options.name or "sessrec"
        _check_name("RayCluster", name)
        _check_references(options)
        return [raycluster(name, options)]
    if spec_ref is None:
        raise SessrecError(f"--kind {options.kind} needs a SPEC: a spec file or one of {', '.join(BUILTIN_SPECS)}")
    text, spec = read_spec(spec_ref)
    if not (options.dataset or spec.dataset):  # the job's `tune run` would fail on the cluster
        raise SessrecError(f"{spec_ref}: the spec names no dataset: set 'dataset' in it or pass --dataset "
                           "(a dataset in the storage, or an s3:// sessions file)")
    name = options.name or f"sessrec-{spec.name}"
    _check_options(name, options)
    worker_cpus = math.ceil(quantity_value(WORKER_RESOURCES["limits"]["cpu"]))  # KubeRay gives Ray a worker's CPU limit, rounded up
    if not options.cluster_selector and spec.cpus_per_trial > worker_cpus:
        raise SessrecError(f"resources.cpus_per_trial is {spec.cpus_per_trial}, but a worker has {worker_cpus} CPUs: "
                           "no trial could start (the autoscaler can add workers, not bigger ones)")
    sweep = sweep_configmap(name, spec.name, text)
    if options.kind == "rayjob":
        return [sweep, rayjob(name, spec.name, options)]
    if options.kind == "raycronjob":
        return [sweep, raycronjob(name, spec.name, options)]
    return [sweep, *cronjob_objects(name, spec.name, options)]


def _check_references(options: RenderOptions) -> None:
    """What the pods refer to: an image, and the ConfigMap and Secret of the S3 settings."""
    if not IMAGE_REFERENCE.match(options.image):
        raise SessrecError(f"--image {options.image!r}: give an image reference, e.g. {DEFAULT_IMAGE} or REGISTRY/PATH:TAG@sha256:DIGEST")
    for flag, ref in (("--s3-config", options.s3_config), ("--s3-secret", options.s3_secret)):
        if ref is not None and (len(ref) > 253 or not _DNS1123_SUBDOMAIN.match(ref)):
            raise SessrecError(f"{flag} {ref!r}: not a Kubernetes object name (lower-case letters, digits, '-' and '.')")


def _check_options(name: str, options: RenderOptions) -> None:
    kind = {"rayjob": "RayJob", "raycronjob": "RayCronJob", "cronjob": "CronJob"}[options.kind]
    _check_name(kind, name)
    _check_references(options)
    # The CronJob creates RayJobs named <name>-<5 random characters>.
    if options.kind == "cronjob" and (problem := name_problem("RayJob", f"{name}-", generated=True)):
        raise SessrecError(f"CronJob name {name!r}: the RayJob names it generates {problem}")
    if options.sweep_id is not None:
        if options.kind != "rayjob":
            raise SessrecError("--sweep-id is for --kind rayjob only: each scheduled run must write its own sweep")
        layout.check_name(options.sweep_id, "sweep id")
    if options.dataset is not None and not options.dataset.startswith("s3://"):
        if layout.is_file_ref(options.dataset):
            raise SessrecError(f"--dataset {options.dataset!r}: the cluster reads a dataset in the storage, or an s3:// sessions file")
        layout.check_name(options.dataset, "dataset name")
    if options.cluster_selector:
        cluster = options.cluster_selector.get("ray.io/cluster")
        if not cluster:
            raise SessrecError("--cluster-selector needs ray.io/cluster=<RayCluster name> (KubeRay selects the cluster by it)")
        if problem := name_problem("RayCluster", cluster):
            raise SessrecError(f"--cluster-selector ray.io/cluster={cluster}: no RayCluster can have that name: it {problem}")
    if options.kind == "rayjob" and (options.schedule or options.time_zone):
        raise SessrecError("--schedule and --time-zone are for --kind raycronjob or cronjob")
    if options.schedule is not None and (problem := cron_problem(options.schedule)):
        raise SessrecError(f"--schedule {options.schedule!r}: {problem}")
    if options.time_zone is not None and (problem := time_zone_problem(options.time_zone)):
        raise SessrecError(f"--time-zone {options.time_zone!r}: {problem}")


def _check_name(kind: str, name: str) -> None:
    if problem := name_problem(kind, name):
        raise SessrecError(f"{kind} name {name!r}: {problem}")


def _labels(name: str, component: str, sweep: str | None = None) -> dict[str, str]:
    labels = {
        "app.kubernetes.io/name": "sessrec",
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/version": __version__,
    }
    if sweep:
        labels["sessrec.io/sweep"] = sweep
    return labels


def _pod_labels(instance: str, component: str) -> dict[str, str]:
    """Pod template labels: the chart's selector labels plus the component, so both render alike."""
    return {"app.kubernetes.io/name": "sessrec", "app.kubernetes.io/instance": instance, "app.kubernetes.io/component": component}


def _env_from(s3_config: str, s3_secret: str | None) -> list[dict[str, Any]]:
    env_from: list[dict[str, Any]] = [{"configMapRef": {"name": s3_config}}]
    if s3_secret:
        env_from.append({"secretRef": {"name": s3_secret}})
    return env_from


def _ray_pod(instance: str, component: str, image: str, resources: dict, env_from: list, api_access: bool) -> dict[str, Any]:
    container = {
        "name": component,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "envFrom": env_from,
        "resources": copy.deepcopy(resources),
        "securityContext": copy.deepcopy(CONTAINER_SECURITY),
        # Ray's object store lives in /dev/shm, which is 64 MiB in a container by default.
        "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}],
    }
    spec: dict[str, Any] = {}
    if not api_access:
        spec["automountServiceAccountToken"] = False
    spec.update(
        securityContext=copy.deepcopy(POD_SECURITY),
        containers=[container],
        volumes=[{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": SHM_SIZE}}],
    )
    return {"metadata": {"labels": _pod_labels(instance, component)}, "spec": spec}


def raycluster_spec(instance: str, image: str, s3_config: str, s3_secret: str | None) -> dict[str, Any]:
    """The RayCluster spec shared by the long-lived cluster and every RayJob's ephemeral one."""
    env_from = _env_from(s3_config, s3_secret)
    return {
        "rayVersion": RAY_VERSION,
        "enableInTreeAutoscaling": True,
        "autoscalerOptions": {
            "upscalingMode": "Default",
            "idleTimeoutSeconds": AUTOSCALER_IDLE_SECONDS,
            "resources": copy.deepcopy(AUTOSCALER_RESOURCES),
            "securityContext": copy.deepcopy(CONTAINER_SECURITY),
        },
        # KubeRay creates a Secret with a random token and injects RAY_AUTH_TOKEN everywhere.
        "authOptions": {"mode": "token"},
        "headGroupSpec": {
            # No trials on the head: it runs GCS, the dashboard and the Tune driver.
            "rayStartParams": {"num-cpus": "0"},
            # The head keeps its service account token: the autoscaler sidecar calls the API.
            "template": _ray_pod(instance, "ray-head", image, HEAD_RESOURCES, env_from, api_access=True),
        },
        "workerGroupSpecs": [
            {
                "groupName": WORKER_GROUP,
                "replicas": WORKER_MIN,
                "minReplicas": WORKER_MIN,
                "maxReplicas": WORKER_MAX,
                "rayStartParams": {},
                "template": _ray_pod(instance, "ray-worker", image, WORKER_RESOURCES, env_from, api_access=False),
            }
        ],
    }


def raycluster(name: str, options: RenderOptions) -> dict[str, Any]:
    spec = raycluster_spec(name, options.image, options.s3_config, options.s3_secret)
    # An update of the pod templates (a new image, say) replaces every pod. Without it KubeRay
    # keeps the running head and workers as they are while new workers get the new template: a
    # head and workers of different images. (Not on a RayJob's cluster: KubeRay refuses it there.)
    spec["upgradeStrategy"] = {"type": "Recreate"}
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": {"name": name, "labels": _labels(name, "ray-cluster")},
        "spec": spec,
    }


def sweep_configmap(name: str, sweep: str, text: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{name}-sweep", "labels": _labels(name, "sweep-spec", sweep)},
        "data": {SPEC_KEY: text},
    }


def _submitter_template(name: str, image: str) -> dict[str, Any]:
    # Set explicitly because KubeRay's default submitter pod has no security context. No command:
    # KubeRay fills in `ray job submit ... -- <entrypoint>`, which uploads the mounted spec.
    return {
        "metadata": {"labels": _pod_labels(name, "rayjob-submitter")},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "securityContext": copy.deepcopy(POD_SECURITY),
            "containers": [
                {
                    "name": "submitter",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "resources": copy.deepcopy(SUBMITTER_RESOURCES),
                    "securityContext": copy.deepcopy(CONTAINER_SECURITY),
                    "volumeMounts": [{"name": "sweep", "mountPath": SPEC_DIR, "readOnly": True}],
                }
            ],
            "volumes": [{"name": "sweep", "configMap": {"name": f"{name}-sweep"}}],
        },
    }


def rayjob_spec(name: str, options: RenderOptions, sweep_id: str | None) -> dict[str, Any]:
    """One sweep as a RayJob spec: on a new cluster, or on the one ``cluster_selector`` picks."""
    spec: dict[str, Any] = {
        # A fixed id: a retry (backoffLimit) runs this again and continues the sweep the last attempt began.
        "entrypoint": ENTRYPOINT + (f" --dataset {shlex.quote(options.dataset)}" if options.dataset else "")
        + (f" --sweep-id {sweep_id} --resume-existing" if sweep_id else ""),
        "runtimeEnvYAML": RUNTIME_ENV_YAML,
        "submissionMode": "K8sJobMode",
        "activeDeadlineSeconds": JOB_DEADLINE_SECONDS,
        "submitterPodTemplate": _submitter_template(name, options.image),
    }
    if options.cluster_selector:
        # A shared cluster is never shut down by a job, and KubeRay refuses retries on it.
        spec["clusterSelector"] = dict(options.cluster_selector)
    else:
        spec.update(
            shutdownAfterJobFinishes=True,
            ttlSecondsAfterFinished=JOB_TTL_SECONDS,
            backoffLimit=JOB_BACKOFF_LIMIT,
            rayClusterSpec=raycluster_spec(name, options.image, options.s3_config, options.s3_secret),
        )
    return spec


def rayjob(name: str, sweep: str, options: RenderOptions) -> dict[str, Any]:
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": {"name": name, "labels": _labels(name, "sweep", sweep)},
        "spec": rayjob_spec(name, options, options.sweep_id),
    }


def raycronjob(name: str, sweep: str, options: RenderOptions) -> dict[str, Any]:
    spec: dict[str, Any] = {"schedule": options.schedule or DEFAULT_SCHEDULE}
    if options.time_zone:
        spec["timeZone"] = options.time_zone
    # No sweep id: every run generates its own (<spec name>-<UTC time>), so runs never collide.
    spec["jobTemplate"] = rayjob_spec(name, options, None)
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayCronJob",
        "metadata": {"name": name, "labels": _labels(name, "sweep-schedule", sweep)},
        "spec": spec,
    }


def cronjob_objects(name: str, sweep: str, options: RenderOptions) -> list[dict[str, Any]]:
    """For operators without the RayCronJob gate: a CronJob whose pod creates one RayJob per run.

    The RayJob manifest sits in a ConfigMap with ``generateName``; ``kubectl create`` (not
    ``apply``, which needs a fixed name) gives each run a unique RayJob. The pod's service
    account may only create RayJobs.
    """
    scheduler = f"{name}-scheduler"
    labels = _labels(name, "sweep-schedule", sweep)
    job = {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": {"generateName": f"{name}-", "labels": _labels(name, "sweep", sweep)},
        "spec": rayjob_spec(name, options, None),
    }
    spec: dict[str, Any] = {"schedule": options.schedule or DEFAULT_SCHEDULE}
    if options.time_zone:
        spec["timeZone"] = options.time_zone
    spec.update(
        # Forbid: a run that has not created its RayJob yet is never doubled by the next one.
        concurrencyPolicy="Forbid",
        startingDeadlineSeconds=3600,
        successfulJobsHistoryLimit=3,
        failedJobsHistoryLimit=3,
        jobTemplate={
            "spec": {
                "backoffLimit": 2,
                "activeDeadlineSeconds": 600,
                "ttlSecondsAfterFinished": 86400,
                "template": {
                    "metadata": {"labels": _pod_labels(name, "sweep-schedule")},
                    "spec": {
                        "serviceAccountName": scheduler,
                        "restartPolicy": "Never",
                        "securityContext": {
                            "runAsNonRoot": True,
                            "runAsUser": KUBECTL_UID,
                            "runAsGroup": KUBECTL_UID,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "containers": [
                            {
                                "name": "create-rayjob",
                                "image": KUBECTL_IMAGE,
                                "imagePullPolicy": "IfNotPresent",
                                "command": ["kubectl"],
                                "args": [
                                    "create",
                                    "--namespace=$(POD_NAMESPACE)",
                                    "--filename",
                                    f"{SPEC_DIR}/{RAYJOB_KEY}",
                                    "--output",
                                    "name",
                                ],
                                "env": [
                                    {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                                    {"name": "HOME", "value": "/tmp"},  # kubectl's discovery cache
                                ],
                                "resources": copy.deepcopy(KUBECTL_RESOURCES),
                                "securityContext": {**copy.deepcopy(CONTAINER_SECURITY), "readOnlyRootFilesystem": True},
                                "volumeMounts": [
                                    {"name": "rayjob", "mountPath": SPEC_DIR, "readOnly": True},
                                    {"name": "tmp", "mountPath": "/tmp"},
                                ],
                            }
                        ],
                        "volumes": [
                            {"name": "rayjob", "configMap": {"name": f"{name}-rayjob"}},
                            {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
                        ],
                    },
                },
            }
        },
    )
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": scheduler, "labels": labels}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": scheduler, "labels": labels},
            "rules": [{"apiGroups": ["ray.io"], "resources": ["rayjobs"], "verbs": ["create"]}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": scheduler, "labels": labels},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": scheduler},
            "subjects": [{"kind": "ServiceAccount", "name": scheduler}],
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"{name}-rayjob", "labels": labels},
            "data": {RAYJOB_KEY: dump_yaml([job], explicit_start=False)},
        },
        {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name, "labels": labels}, "spec": spec},
    ]


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line strings, kubectl-style indented lists, no anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> Any:
        return super().increase_indent(flow, False)


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|" if "\n" in data else None)


_Dumper.add_representer(str, _represent_str)


def dump_yaml(objects: Iterable[Any], explicit_start: bool = True) -> str:
    return yaml.dump_all(
        objects, Dumper=_Dumper, sort_keys=False, default_flow_style=False, explicit_start=explicit_start, width=10_000
    )


# --------------------------------------------------------------------------------------------
# Rules shared by rendering and validation


def name_problem(kind: str, name: str, generated: bool = False) -> str | None:
    """Why ``name`` cannot name a ``kind`` (``generated``: it is a generateName prefix), or None."""
    limit = NAME_LIMITS.get(kind, 253)
    length = len(name) + (GENERATE_NAME_SUFFIX if generated else 0)
    if length > limit:
        extra = f" with the {GENERATE_NAME_SUFFIX} generated characters" if generated else ""
        return f"is {length} characters{extra}; at most {limit} are allowed"
    stem = name.rstrip("-") if generated else name
    if kind in NAME_LIMITS and kind != "CronJob":
        if not _DNS1035.match(stem):
            return "must be a DNS-1035 label: lower-case letters, digits and '-', starting with a letter"
    elif not _DNS1123_SUBDOMAIN.match(stem):
        return "must be a DNS-1123 subdomain: lower-case letters, digits, '-' and '.'"
    return None


_CRON_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")),
    ("day of week", 0, 6, ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")),
)
_CRON_DESCRIPTORS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
_GO_DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$")


def cron_problem(expr: str) -> str | None:
    """Why ``expr`` is not a standard cron schedule as KubeRay and Kubernetes parse it (robfig/cron), or None."""
    if "TZ" in expr:
        return "put the time zone in timeZone, not CRON_TZ/TZ in the schedule"
    expr = expr.strip()
    if expr.startswith("@"):
        if expr in _CRON_DESCRIPTORS or (expr.startswith("@every ") and _GO_DURATION.match(expr[7:].strip())):
            return None
        return f"unknown descriptor {expr.split()[0]!r}"
    fields = expr.split()
    if len(fields) != 5:
        return f"needs 5 fields (minute hour day-of-month month day-of-week), got {len(fields)}"
    for text, (label, low, high, names) in zip(fields, _CRON_FIELDS, strict=True):
        for part in text.split(","):
            span, _, step = part.partition("/")
            if step and (not step.isdigit() or int(step) == 0):
                return f"{label}: bad step {step!r}"
            if span in ("*", "?"):
                continue
            bounds = [_cron_value(v, low, high, names) for v in span.split("-", 1)]
            if None in bounds:
                return f"{label}: {part!r} is not a value or range within {low}-{high}"
            if len(bounds) == 2 and bounds[0] > bounds[1]:  # type: ignore[operator]
                return f"{label}: range {span!r} runs backwards"
    return None


def cron_pattern() -> str:
    """A regular expression (RE2 and ECMAScript alike, for the chart's values schema) that accepts
    what ``cron_problem`` accepts, from the same field table; ranges that run backwards are the
    one thing it lets through."""
    def value(low: int, high: int, names: tuple[str, ...]) -> str:
        spelled = ["".join(f"[{c.upper()}{c.lower()}]" for c in name) for name in names]
        return "(" + "|".join(["0*(" + "|".join(str(n) for n in range(high, low - 1, -1)) + ")", *spelled]) + ")"

    def field(low: int, high: int, names: tuple[str, ...]) -> str:
        part = rf"([*?]|{value(low, high, names)}(-{value(low, high, names)})?)(/0*[1-9][0-9]*)?"
        return f"{part}(,{part})*"

    fields = r"\s+".join(field(low, high, names) for _, low, high, names in _CRON_FIELDS)
    descriptors = "|".join(sorted(d[1:] for d in _CRON_DESCRIPTORS))
    return rf"^\s*(@({descriptors})|@every \s*{_GO_DURATION.pattern[1:-1]}|{fields})\s*$"


def _cron_value(text: str, low: int, high: int, names: tuple[str, ...]) -> int | None:
    if text.upper() in names:
        return names.index(text.upper()) + low
    if text.isdigit() and low <= int(text) <= high:
        return int(text)
    return None


def time_zone_problem(name: str) -> str | None:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return "not an IANA time zone (e.g. Europe/Berlin, UTC)"
    return None


# --------------------------------------------------------------------------------------------
# Validation


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
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "k8s" / "crds"


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
            return jsonschema.Draft7Validator(strict_schema(entry["schema"]["openAPIV3Schema"]), format_checker=_FORMATS)
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
    if "properties" in out and "additionalProperties" not in out and not out.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def validate_files(paths: Iterable[str], kube_version: str = KUBE_VERSION) -> tuple[int, list[Problem]]:
    """Validate manifest files ("-": standard input); returns (objects checked, problems)."""
    count, problems = 0, []
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
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    label = f"{kind}/{meta.get('name') or meta.get('generateName') or f'(document {index + 1})'}"
    found: list[tuple[str, str]] = []
    group, _, version = obj["apiVersion"].rpartition("/")
    if group == "ray.io":
        found += _crd_problems(obj, kind, version)
    else:
        found += _builtin_problems(obj, kube_version)
    found += _metadata_problems(kind, meta)
    found += _operator_problems(obj, kind)
    for path, pod in _pod_specs(obj, kind):
        found += _pod_security_problems(pod, path)
        found += _pod_resources_problems(pod, path)
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
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            allowed = set(error.schema.get("properties", {}))
            for key in sorted(set(error.instance) - allowed):
                yield _dotted([*where, key]), "unknown field"
        elif error.validator == "anyOf" and error.schema.get("x-kubernetes-int-or-string"):
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
        if len(label) > 63 or not _LABEL_NAME.match(label) or (prefix and not _DNS1123_SUBDOMAIN.match(prefix)):
            found.append((f"metadata.labels.{key}", "not a valid label key"))
        if not isinstance(value, str) or len(value) > 63 or (value and not _LABEL_NAME.match(value)):
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
        found.append((f"{path}.submissionMode", f"{mode!r} is not K8sJobMode, HTTPMode, InteractiveMode or SidecarMode"))
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
        found.append((f"{path}.submitterPodTemplate", "missing: KubeRay's default submitter pod has no security context"))
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
            found.append((f"{path}.rayVersion", "token authentication needs rayVersion (>= 2.52.0)"))
        elif tuple(int(p) for p in re.findall(r"\d+", version)[:3]) < (2, 52, 0):
            found.append((f"{path}.rayVersion", f"token authentication needs Ray >= 2.52.0, got {version}"))
    if spec.get("enableInTreeAutoscaling"):
        context = (spec.get("autoscalerOptions") or {}).get("securityContext") or {}
        found += [
            (f"{path}.autoscalerOptions.securityContext.{key}", message)
            for key, message in _container_context_problems(context)
        ]
    return found


def _resources_twice(params: Any, resources: Any) -> bool:
    params = params if isinstance(params, dict) else {}
    return bool(resources) and any(params.get(key) for key in ("num-cpus", "num-gpus", "memory", "resources"))


def _pod_specs(obj: dict, kind: str) -> list[tuple[str, dict]]:
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


def _pod_security_problems(pod: dict, path: str) -> list[tuple[str, str]]:
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
            found += [(f"{where}.{key}", message) for key, message in _container_context_problems(context)]
    return found


_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_QUANTITY_SCALE = {"": 1, "m": Fraction(1, 1000), **{s: 1000**i for i, s in enumerate("kMGTPE", 1)},
                   **{f"{s}i": 1024**i for i, s in enumerate("KMGTPE", 1)}}


def quantity_value(quantity: Any) -> Fraction | None:
    """A resource quantity ("500m", "1.5Gi", 4) as an exact number; None for what is not one (the
    schema names that)."""
    if isinstance(quantity, (int, float)) and not isinstance(quantity, bool):
        return Fraction(quantity)
    match = _QUANTITY.match(quantity) if isinstance(quantity, str) else None
    return Fraction(match.group(1)) * _QUANTITY_SCALE[match.group(2) or ""] if match else None


def _pod_resources_problems(pod: dict, path: str) -> list[tuple[str, str]]:
    """What the API server refuses (a request above its limit) or warns of and cannot run (a
    fraction of a byte)."""
    found = []
    for group in ("initContainers", "containers"):
        for index, container in enumerate(pod.get(group) or []):
            resources = container.get("resources") if isinstance(container, dict) else None
            if not isinstance(resources, dict):
                continue
            where = f"{path}.{group}[{index}].resources"
            requests, limits = (resources.get(key) if isinstance(resources.get(key), dict) else {} for key in ("requests", "limits"))
            for name, request in requests.items():
                wanted, limit = quantity_value(request), quantity_value(limits.get(name))
                if wanted is not None and limit is not None and wanted > limit:
                    found.append((f"{where}.requests.{name}", f"{request} exceeds limits.{name} ({limits[name]}): the API server refuses the pod"))
            for kind, values in (("requests", requests), ("limits", limits)):
                for name in ("memory", "ephemeral-storage"):
                    value = values.get(name)
                    amount = quantity_value(value)
                    if amount is not None and (amount.denominator != 1 or str(value).endswith("m")):
                        found.append((f"{where}.{kind}.{name}", f"{value} is {float(amount):g} bytes: the m suffix is milli (Mi: mebibytes)"))
    return found


def _container_context_problems(context: dict) -> list[tuple[str, str]]:
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


# --------------------------------------------------------------------------------------------
# The Helm chart's values schema embeds the sweep spec schema, the cron and the image patterns


def chart_sweep_schema() -> dict[str, Any]:
    """SWEEP_SPEC_SCHEMA as a sub-schema: `$schema` belongs only at a schema document's root."""
    return {key: value for key, value in SWEEP_SPEC_SCHEMA.items() if key != "$schema"}


def chart_schema_parts() -> dict[tuple[str, ...], Any]:
    """What the chart's values.schema.json takes from sessrec's own definitions, by where it goes."""
    return {
        ("properties", "sweep"): chart_sweep_schema(),
        ("properties", "schedule", "properties", "cron", "pattern"): cron_pattern(),
        ("definitions", "image", "pattern"): IMAGE_REFERENCE.pattern,
    }


def sync_chart_schema(chart_dir: Path, check: bool) -> bool:
    """Make the parts of values.schema.json that sessrec defines (``chart_schema_parts``) equal
    their definitions; returns whether they already were. With ``check``, nothing is written."""
    path = chart_dir / "values.schema.json"
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SessrecError(f"cannot read {path}: {exc}") from None
    if not isinstance(schema, dict) or not isinstance(schema.get("properties", {}), dict):
        raise SessrecError(f"{path} is not a JSON Schema of the chart's values (an object with 'properties')")
    current = True
    for where, wanted in chart_schema_parts().items():
        node = schema
        for key in where[:-1]:
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        if node.get(where[-1]) != wanted:
            current = False
            node[where[-1]] = wanted
    if not current and not check:
        path.write_text(json.dumps(schema, indent=2) + "\n", encoding="utf-8")
    return current

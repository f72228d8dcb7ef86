"""Render sessrec's KubeRay objects for sweeps: the RayCluster, the RayJob and the RayCronJob, with
the ConfigMap that carries the sweep spec; and the building blocks that ``rayservice`` and
``cronjob`` (the CronJob fallback) build on too: ``RenderOptions``, labels, the pod and cluster
specs, the checks of names, options and references, ``dump_yaml``. The entry point for every
kind is ``manifests``.

How a sweep reaches the cluster: the spec lives in a ConfigMap that is mounted into the RayJob
*submitter* pod at ``/etc/sessrec``; the RayJob's runtime environment names that folder as its
``working_dir``, so ``ray job submit`` uploads it and the driver finds ``sweep.yaml`` in its
working directory. The same mechanism works for an ephemeral cluster and for a long-lived one
picked by ``clusterSelector`` (a long-lived head could not mount a ConfigMap created later),
and each submission carries the spec as it was when the job started.

Over 400 lines: the cluster and job builders are long literal dictionaries that share the pod
blocks and read best next to them.
"""

from __future__ import annotations

import copy
import math
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from sessrec import __version__, layout
from sessrec.errors import SessrecError
from sessrec.k8s.defaults import (
    AUTOSCALER_IDLE_SECONDS,
    AUTOSCALER_RESOURCES,
    CONTAINER_SECURITY,
    DEFAULT_IMAGE,
    DEFAULT_S3_CONFIG,
    DEFAULT_S3_SECRET,
    DEFAULT_SCHEDULE,
    DNS1123_SUBDOMAIN,
    ENTRYPOINT,
    HEAD_RESOURCES,
    JOB_BACKOFF_LIMIT,
    JOB_DEADLINE_SECONDS,
    JOB_TTL_SECONDS,
    POD_SECURITY,
    PROMOTE_COMMAND,
    PROMOTE_IF_BETTER,
    RAY_VERSION,
    RUNTIME_ENV_YAML,
    SERVE_REPLICA_CPUS,
    SERVE_REPLICA_MEMORY,
    SHM_SIZE,
    SPEC_DIR,
    SPEC_KEY,
    SUBDOMAIN_LIMIT,
    SUBMITTER_RESOURCES,
    SWEEP_ID_STAMP,
    SWEEP_ID_VARIABLE,
    WORKER_GROUP,
    WORKER_MAX,
    WORKER_MIN,
    WORKER_RESOURCES,
)
from sessrec.k8s.rules import IMAGE_REFERENCE, cron_problem, name_problem, quantity_value, time_zone_problem
from sessrec.spec import SweepSpec, read_spec
from sessrec.sweep.records import sweep_id_prefix


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
    # --kind rayservice: the model served, a fixed replica count or an autoscaling range.
    model: str | None = None
    replicas: int | None = None
    min_replicas: int | None = None
    max_replicas: int | None = None
    target_ongoing_requests: float | None = None
    replica_cpus: float = SERVE_REPLICA_CPUS
    replica_memory: str = SERVE_REPLICA_MEMORY
    # The jobs: end with `sessrec results promote <the sweep> --name PROMOTE [--if-better]`.
    promote: str | None = None
    promote_if_better: bool = PROMOTE_IF_BETTER


def worker_cpus() -> int:
    """The CPUs Ray sees on a sessrec worker: KubeRay gives Ray its CPU limit, rounded up."""
    worker_cpu = quantity_value(WORKER_RESOURCES["limits"]["cpu"])
    assert worker_cpu is not None  # a constant of defaults.py
    return math.ceil(worker_cpu)


def order_warning(spec: SweepSpec) -> str | None:
    """`tune run`'s warning for an ordered ASHA grid (SweepSpec.order_warning), for the trials that
    run at once on sessrec's cluster at its largest (WORKER_MAX workers)."""
    return spec.order_warning(spec.parallel_trials(WORKER_MAX * worker_cpus()))


def notices(spec_ref: str | None, options: RenderOptions) -> list[str]:
    """What `render` prints on stderr: the objects it expects and does not create, and the spec's warning."""
    secret = f" and Secret {options.s3_secret} (AWS credentials)" if options.s3_secret else ""
    lines = [
        f"note: expects ConfigMap {options.s3_config} (SESSREC_STORAGE, AWS_* settings){secret} "
        "in the namespace; render does not create them"
    ]
    if spec_ref is not None and options.kind != "raycluster":
        if warning := order_warning(read_spec(spec_ref)[1]):
            lines.append(f"warning: {warning}")
    return lines


def check_references(options: RenderOptions) -> None:
    """What the pods refer to: an image, and the ConfigMap and Secret of the S3 settings."""
    if not IMAGE_REFERENCE.match(options.image):
        raise SessrecError(
            f"--image {options.image!r}: give an image reference, "
            f"e.g. {DEFAULT_IMAGE} or REGISTRY/PATH:TAG@sha256:DIGEST"
        )
    for flag, ref in (("--s3-config", options.s3_config), ("--s3-secret", options.s3_secret)):
        if ref is not None and (len(ref) > SUBDOMAIN_LIMIT or not DNS1123_SUBDOMAIN.match(ref)):
            raise SessrecError(
                f"{flag} {ref!r}: not a Kubernetes object name (lower-case letters, digits, '-' and '.')"
            )


def check_options(name: str, options: RenderOptions) -> None:
    """The options of a sweep's job kind (rayjob, raycronjob, cronjob) named NAME: its name, the
    references, the schedule and the promotion; else a one-line ``SessrecError``."""
    kind = {"rayjob": "RayJob", "raycronjob": "RayCronJob", "cronjob": "CronJob"}[options.kind]
    check_object_name(kind, name)
    check_references(options)
    # The CronJob creates RayJobs named <name>-<5 random characters>.
    if options.kind == "cronjob" and (problem := name_problem("RayJob", f"{name}-", generated=True)):
        raise SessrecError(f"CronJob name {name!r}: the RayJob names it generates {problem}")
    if options.sweep_id is not None:
        if options.kind != "rayjob":
            raise SessrecError("--sweep-id is for --kind rayjob only: each scheduled run must write its own sweep")
        layout.check_name(options.sweep_id, "sweep id")
    if options.dataset is not None and not options.dataset.startswith("s3://"):
        if layout.is_file_ref(options.dataset):
            raise SessrecError(
                f"--dataset {options.dataset!r}: the cluster reads a dataset in the storage, or an s3:// sessions file"
            )
        layout.check_name(options.dataset, "dataset name")
    if options.cluster_selector:
        cluster = options.cluster_selector.get("ray.io/cluster")
        if not cluster:
            raise SessrecError(
                "--cluster-selector needs ray.io/cluster=<RayCluster name> (KubeRay selects the cluster by it)"
            )
        if problem := name_problem("RayCluster", cluster):
            raise SessrecError(
                f"--cluster-selector ray.io/cluster={cluster}: no RayCluster can have that name: it {problem}"
            )
    if options.kind == "rayjob" and (options.schedule or options.time_zone):
        raise SessrecError("--schedule and --time-zone are for --kind raycronjob or cronjob")
    _check_promote(options)
    if options.schedule is not None and (problem := cron_problem(options.schedule)):
        raise SessrecError(f"--schedule {options.schedule!r}: {problem}")
    if options.time_zone is not None and (problem := time_zone_problem(options.time_zone)):
        raise SessrecError(f"--time-zone {options.time_zone!r}: {problem}")


def promotes(options: RenderOptions) -> bool:
    """Whether any promotion option was given (``--promote`` or a non-default threshold)."""
    return options.promote is not None or options.promote_if_better != PROMOTE_IF_BETTER


def _check_promote(options: RenderOptions) -> None:
    if options.promote is None:
        if options.promote_if_better != PROMOTE_IF_BETTER:
            raise SessrecError("--promote-always needs --promote NAME (the model the sweep's best becomes)")
        return
    # The name goes into a shell command: only names that need no quoting pass.
    if not layout.NAME_PATTERN.match(options.promote) or len(options.promote) > layout.MAX_NAME_LENGTH:
        raise SessrecError(
            f"--promote {options.promote!r}: not a model name: lower-case letters, digits and '-', "
            f"starting with a letter, at most {layout.MAX_NAME_LENGTH} characters"
        )


def entrypoint(options: RenderOptions, sweep: str, sweep_id: str | None) -> str:
    """The RayJob's command: `tune run` of the mounted spec, with a fixed ``sweep_id`` (a retry then
    continues that sweep) or none (``tune run`` makes one); with ``options.promote``, followed by
    ``results promote`` of that same sweep, in one shell script.

    KubeRay puts the entrypoint, as it stands, into the submitter's bash command line ``ray job
    submit ... -- <entrypoint>``; Ray joins the words it gets (shlex.join) and runs them with
    /bin/sh on the head. A ``&&`` would therefore split the submitter's command, so the script is
    one quoted word of ``bash -c``: the id is made (or set) once, on the head, and both commands use it.
    """
    run = ENTRYPOINT + (f" --dataset {shlex.quote(options.dataset)}" if options.dataset else "")
    resume = " --resume-existing" if sweep_id else ""
    if options.promote is None:
        return run + (f" --sweep-id {sweep_id}{resume}" if sweep_id else "")
    variable = f'"${SWEEP_ID_VARIABLE}"'
    script = (
        f"{SWEEP_ID_VARIABLE}={sweep_id or f'{sweep_id_prefix(sweep)}-{SWEEP_ID_STAMP}'}"
        f" && {run} --sweep-id {variable}{resume}"
        f" && {PROMOTE_COMMAND} {variable} --name {options.promote}"
        + (" --if-better" if options.promote_if_better else "")
    )
    return f"bash -c {shlex.quote(script)}"


def check_object_name(kind: str, name: str) -> None:
    """A Kubernetes object's name that its kind accepts; else a one-line ``SessrecError``."""
    if problem := name_problem(kind, name):
        raise SessrecError(f"{kind} name {name!r}: {problem}")


def object_labels(name: str, component: str, sweep: str | None = None) -> dict[str, str]:
    """The recommended ``app.kubernetes.io`` labels of an object named NAME, plus its sweep's."""
    labels = {
        "app.kubernetes.io/name": "sessrec",
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/version": __version__,
    }
    if sweep:
        labels["sessrec.io/sweep"] = sweep
    return labels


def pod_labels(instance: str, component: str) -> dict[str, str]:
    """Pod template labels: the chart's selector labels plus the component, so both render alike."""
    return {
        "app.kubernetes.io/name": "sessrec",
        "app.kubernetes.io/instance": instance,
        "app.kubernetes.io/component": component,
    }


def _env_from(s3_config: str, s3_secret: str | None) -> list[dict[str, Any]]:
    env_from: list[dict[str, Any]] = [{"configMapRef": {"name": s3_config}}]
    if s3_secret:
        env_from.append({"secretRef": {"name": s3_secret}})
    return env_from


def _ray_pod(
    instance: str, component: str, image: str, resources: dict, env_from: list, api_access: bool
) -> dict[str, Any]:
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
    return {"metadata": {"labels": pod_labels(instance, component)}, "spec": spec}


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
        "metadata": {"name": name, "labels": object_labels(name, "ray-cluster")},
        "spec": spec,
    }


def sweep_configmap(name: str, sweep: str, text: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{name}-sweep", "labels": object_labels(name, "sweep-spec", sweep)},
        "data": {SPEC_KEY: text},
    }


def _submitter_template(name: str, image: str) -> dict[str, Any]:
    # Set explicitly because KubeRay's default submitter pod has no security context. No command:
    # KubeRay fills in `ray job submit ... -- <entrypoint>`, which uploads the mounted spec.
    return {
        "metadata": {"labels": pod_labels(name, "rayjob-submitter")},
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


def rayjob_spec(name: str, sweep: str, options: RenderOptions, sweep_id: str | None) -> dict[str, Any]:
    """One sweep as a RayJob spec: on a new cluster, or on the one ``cluster_selector`` picks."""
    spec: dict[str, Any] = {
        # A fixed id: a retry (backoffLimit) runs this again and continues the sweep the last attempt began.
        "entrypoint": entrypoint(options, sweep, sweep_id),
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
        "metadata": {"name": name, "labels": object_labels(name, "sweep", sweep)},
        "spec": rayjob_spec(name, sweep, options, options.sweep_id),
    }


def raycronjob(name: str, sweep: str, options: RenderOptions) -> dict[str, Any]:
    spec: dict[str, Any] = {"schedule": options.schedule or DEFAULT_SCHEDULE}
    if options.time_zone:
        spec["timeZone"] = options.time_zone
    # No sweep id: every run generates its own (<spec name>-<UTC time>), so runs never collide.
    spec["jobTemplate"] = rayjob_spec(name, sweep, options, None)
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayCronJob",
        "metadata": {"name": name, "labels": object_labels(name, "sweep-schedule", sweep)},
        "spec": spec,
    }


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

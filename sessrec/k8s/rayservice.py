"""Render ``sessrec serve`` as a KubeRay RayService.

The checks of the serve options (``--model``, the replicas or the autoscaling range, each
replica's resources), Ray Serve's config (``serveConfigV2``) and the RayService, whose cluster is
render.py's RayCluster spec. It imports render.py and is imported by manifests.py, the entry point
that dispatches on the kind.
"""

from __future__ import annotations

import math
from typing import Any

from sessrec import layout
from sessrec.errors import SessrecError
from sessrec.k8s.defaults import (
    SERVE_APP,
    SERVE_DEPLOYMENT,
    SERVE_IMPORT_PATH,
    SERVE_MIN_REPLICAS,
    SERVE_PORT,
    SERVE_REPLICA_CPUS,
    SERVE_REPLICA_MEMORY,
    SERVE_REPLICAS,
    SERVE_TARGET_ONGOING_REQUESTS,
)
from sessrec.k8s.render import (
    RenderOptions,
    check_object_name,
    check_references,
    dump_yaml,
    object_labels,
    promotes,
    raycluster_spec,
)
from sessrec.k8s.rules import quantity_value


def serve_options_given(options: RenderOptions) -> bool:
    """Whether any option of the RayService (the model, replicas, autoscaling, a replica's
    resources) differs from its default: those options belong to ``kind: rayservice`` alone."""
    return (
        options.model is not None
        or options.replicas is not None
        or options.min_replicas is not None
        or options.max_replicas is not None
        or options.target_ongoing_requests is not None
        or options.replica_cpus != SERVE_REPLICA_CPUS
        or options.replica_memory != SERVE_REPLICA_MEMORY
    )


def _check_serve_options(options: RenderOptions) -> None:
    model = options.model
    if not model:
        raise SessrecError(
            "--kind rayservice needs --model: a model name in the storage, a sweep id (its best model) "
            "or an s3:// model folder"
        )
    if not model.startswith("s3://"):
        if layout.is_file_ref(model):
            raise SessrecError(f"--model {model!r}: the cluster reads a model in the storage, or an s3:// folder")
        layout.check_name(model, "model name or sweep id")
    autoscaled = options.min_replicas is not None or options.max_replicas is not None
    if autoscaled and options.replicas is not None:
        raise SessrecError("give --replicas (a fixed count) or --min-replicas/--max-replicas (autoscaling), not both")
    if options.min_replicas is not None and options.max_replicas is None:
        raise SessrecError("--min-replicas needs --max-replicas (the autoscaling range)")
    if options.target_ongoing_requests is not None and not autoscaled:
        raise SessrecError("--target-ongoing-requests is for autoscaling: give --max-replicas too")
    for flag, value, least in (
        ("--replicas", options.replicas, 1),
        ("--min-replicas", options.min_replicas, 0),
        ("--max-replicas", options.max_replicas, 1),
    ):
        if value is not None and value < least:
            raise SessrecError(f"{flag} {value}: at least {least}")
    low = SERVE_MIN_REPLICAS if options.min_replicas is None else options.min_replicas
    if options.max_replicas is not None and low > options.max_replicas:
        raise SessrecError(f"--min-replicas ({low}) must not exceed --max-replicas ({options.max_replicas})")
    if options.target_ongoing_requests is not None and not options.target_ongoing_requests > 0:
        raise SessrecError(f"--target-ongoing-requests {options.target_ongoing_requests}: must be above 0")
    if not (options.replica_cpus >= 0 and math.isfinite(options.replica_cpus)):
        raise SessrecError(f"--replica-cpus {options.replica_cpus}: a number of CPUs, 0 or more")
    memory = quantity_value(options.replica_memory)
    if memory is None or options.replica_memory.endswith("m") or memory < 1:
        raise SessrecError(f"--replica-memory {options.replica_memory!r}: a memory quantity, e.g. 2Gi or 512Mi")


def _number(value: float) -> int | float:
    """1.0 as 1, as Helm prints it (the serve config of the chart and of render read alike)."""
    return int(value) if float(value).is_integer() else float(value)


def serve_config(options: RenderOptions) -> dict[str, Any]:
    """Ray Serve's config (RayService ``serveConfigV2``): ``sessrec serve``'s deployment, imported
    by path, with the replicas or the autoscaling range and each replica's resources."""
    memory = quantity_value(options.replica_memory)
    assert memory is not None  # _check_serve_options
    deployment: dict[str, Any] = {"name": SERVE_DEPLOYMENT}
    if options.max_replicas is not None:
        deployment["num_replicas"] = "auto"
        deployment["autoscaling_config"] = {
            "min_replicas": SERVE_MIN_REPLICAS if options.min_replicas is None else options.min_replicas,
            "max_replicas": options.max_replicas,
            "target_ongoing_requests": _number(
                SERVE_TARGET_ONGOING_REQUESTS
                if options.target_ongoing_requests is None
                else options.target_ongoing_requests
            ),
        }
    else:
        deployment["num_replicas"] = SERVE_REPLICAS if options.replicas is None else options.replicas
    # Resources Ray reserves per replica: the head has no CPUs for them, so the autoscaler adds workers.
    deployment["ray_actor_options"] = {"num_cpus": _number(options.replica_cpus), "memory": math.ceil(memory)}
    return {
        "http_options": {"host": "0.0.0.0", "port": SERVE_PORT},
        "applications": [
            {
                "name": SERVE_APP,
                "route_prefix": "/",
                "import_path": SERVE_IMPORT_PATH,
                "args": {"model": options.model},
                "deployments": [deployment],
            }
        ],
    }


def rayservice_for(spec_ref: str | None, options: RenderOptions) -> dict[str, Any]:
    if spec_ref is not None or options.sweep_id or options.dataset or options.cluster_selector or promotes(options):
        raise SessrecError("--kind rayservice takes no SPEC, --sweep-id, --dataset, --cluster-selector or --promote")
    if options.schedule or options.time_zone:
        raise SessrecError("--schedule and --time-zone are for --kind raycronjob or cronjob")
    _check_serve_options(options)
    name = options.name or "sessrec-serve"
    check_object_name("RayService", name)
    check_references(options)
    return rayservice(name, options)


def rayservice(name: str, options: RenderOptions) -> dict[str, Any]:
    """``sessrec serve`` on KubeRay: the RayCluster's head and workers (same image, S3 settings and
    credentials as the sweeps), running the Serve config; each replica reloads the model when its
    completion file changes (a promotion), so a new model needs no new RayService."""
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": {"name": name, "labels": object_labels(name, "serve")},
        "spec": {
            "serveConfigV2": dump_yaml([serve_config(options)], explicit_start=False),
            "rayClusterConfig": raycluster_spec(name, options.image, options.s3_config, options.s3_secret),
        },
    }

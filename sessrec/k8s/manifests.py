"""The entry point of ``sessrec k8s render``: the manifests of a kind, as objects or as YAML.

``render_objects`` checks the kind and dispatches: the RayService to ``rayservice``, every other
kind to ``sweep_objects`` (after refusing the serve options), which checks the spec and the
options and builds them with ``render`` (and ``cronjob``, the CronJob fallback).
"""

from __future__ import annotations

from typing import Any

from sessrec.errors import SessrecError
from sessrec.k8s.cronjob import cronjob_objects
from sessrec.k8s.defaults import KINDS
from sessrec.k8s.rayservice import rayservice_for, serve_options_given
from sessrec.k8s.render import (
    RenderOptions,
    check_object_name,
    check_options,
    check_references,
    dump_yaml,
    promotes,
    raycluster,
    raycronjob,
    rayjob,
    sweep_configmap,
    worker_cpus,
)
from sessrec.spec import BUILTIN_SPECS, read_spec


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
    """The objects of ``options.kind``, the manifests that ``render`` writes as YAML."""
    if options.kind not in KINDS:
        raise SessrecError(f"unknown kind {options.kind!r}: choose one of {', '.join(KINDS)}")
    if options.kind == "rayservice":
        return [rayservice_for(spec_ref, options)]
    if serve_options_given(options):
        raise SessrecError(
            "--model, --replicas, --min-replicas, --max-replicas, --target-ongoing-requests, --replica-cpus "
            "and --replica-memory are for --kind rayservice"
        )
    return sweep_objects(spec_ref, options)


def sweep_objects(spec_ref: str | None, options: RenderOptions) -> list[dict[str, Any]]:
    """The objects of every kind but rayservice: a sweep's job (rayjob, raycronjob, cronjob) with
    its spec's ConfigMap, or the long-lived RayCluster (raycluster). Reached through
    ``render_objects``, which checks the kind and refuses the serve options first."""
    if options.kind == "raycluster":
        if (
            spec_ref is not None
            or options.sweep_id
            or options.cluster_selector
            or options.schedule
            or options.time_zone
            or promotes(options)
        ):
            raise SessrecError(
                "--kind raycluster takes no SPEC, --sweep-id, --cluster-selector, --schedule, --time-zone or --promote"
            )
        name = options.name or "sessrec"
        check_object_name("RayCluster", name)
        check_references(options)
        return [raycluster(name, options)]
    if spec_ref is None:
        raise SessrecError(f"--kind {options.kind} needs a SPEC: a spec file or one of {', '.join(BUILTIN_SPECS)}")
    text, spec = read_spec(spec_ref)
    if not (options.dataset or spec.dataset):  # the job's `tune run` would fail on the cluster
        raise SessrecError(
            f"{spec_ref}: the spec names no dataset: set 'dataset' in it or pass --dataset "
            "(a dataset in the storage, or an s3:// sessions file)"
        )
    name = options.name or f"sessrec-{spec.name}"
    check_options(name, options)
    cpus = worker_cpus()
    if not options.cluster_selector and spec.cpus_per_trial > cpus:
        raise SessrecError(
            f"resources.cpus_per_trial is {spec.cpus_per_trial}, but a worker has {cpus} CPUs: "
            "no trial could start (the autoscaler can add workers, not bigger ones)"
        )
    sweep = sweep_configmap(name, spec.name, text)
    if options.kind == "rayjob":
        return [sweep, rayjob(name, spec.name, options)]
    if options.kind == "raycronjob":
        return [sweep, raycronjob(name, spec.name, options)]
    return [sweep, *cronjob_objects(name, spec.name, options)]

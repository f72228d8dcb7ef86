"""`sessrec k8s`: render KubeRay manifests for a sweep and validate manifests offline."""

from __future__ import annotations

import dataclasses
import shlex
from enum import Enum
from typing import TYPE_CHECKING, Annotated

import typer

from sessrec.cli.common import JsonOption, emit
from sessrec.cli.names import BUILTIN_SPECS
from sessrec.errors import SessrecError
from sessrec.k8s import defaults, policy

if TYPE_CHECKING:
    from sessrec.k8s import manifests
    from sessrec.k8s import render as rendering
    from sessrec.k8s import validate as validation
else:  # loaded on first use: `sessrec k8s --help` stays fast
    from sessrec.cli.lazy import lazy_module

    manifests = lazy_module("sessrec.k8s.manifests")
    rendering = lazy_module("sessrec.k8s.render")
    validation = lazy_module("sessrec.k8s.validate")

app = typer.Typer(help="Render and validate KubeRay manifests for sweeps.", no_args_is_help=True)
Kind = Enum("Kind", {kind: kind for kind in defaults.KINDS}, type=str)  # type: ignore[misc]


def _selector(pairs: list[str]) -> dict[str, str]:
    selector = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key or not value:
            raise SessrecError(f"--cluster-selector {pair!r}: expected KEY=VALUE, e.g. ray.io/cluster=sessrec")
        selector[key] = value
    return selector


@app.command()
def render(
    spec: Annotated[
        str | None,
        typer.Argument(
            metavar="SPEC",
            help=f"Sweep spec file or built-in ({', '.join(BUILTIN_SPECS)}); not for raycluster or rayservice.",
        ),
    ] = None,
    kind: Annotated[Kind, typer.Option(help="What to render.")] = Kind["rayjob"],
    image: Annotated[str, typer.Option(help="The sessrec image.")] = defaults.DEFAULT_IMAGE,
    name: Annotated[
        str | None, typer.Option(help="Object name (default: sessrec-<spec name>; 'sessrec' for raycluster).")
    ] = None,
    schedule: Annotated[
        str | None,
        typer.Option(help=f"Cron schedule of raycronjob/cronjob (default '{defaults.DEFAULT_SCHEDULE}')."),
    ] = None,
    time_zone: Annotated[
        str | None, typer.Option(help="IANA time zone of the schedule (default: the controller's).")
    ] = None,
    cluster_selector: Annotated[
        list[str] | None,
        typer.Option(metavar="KEY=VAL", help="Run on an existing RayCluster: ray.io/cluster=NAME (repeatable)."),
    ] = None,
    sweep_id: Annotated[
        str | None, typer.Option(help="Fixed sweep id of a one-off rayjob (default: generated at run time).")
    ] = None,
    dataset: Annotated[
        str | None, typer.Option(help="Dataset name in the storage or s3:// sessions URI (overrides the spec's).")
    ] = None,
    s3_config: Annotated[
        str, typer.Option(help="ConfigMap with SESSREC_STORAGE and AWS_* settings.")
    ] = defaults.DEFAULT_S3_CONFIG,
    s3_secret: Annotated[
        str, typer.Option(help="Secret with AWS credentials ('' for none, e.g. with IRSA).")
    ] = defaults.DEFAULT_S3_SECRET,
    model: Annotated[
        str | None,
        typer.Option(help="rayservice: the model served (a model name, sweep id or s3:// folder), as `sessrec serve`."),
    ] = None,
    replicas: Annotated[
        int | None, typer.Option(help=f"rayservice: a fixed number of replicas (default {defaults.SERVE_REPLICAS}).")
    ] = None,
    min_replicas: Annotated[
        int | None,
        typer.Option(help=f"rayservice autoscaling: the fewest replicas (default {defaults.SERVE_MIN_REPLICAS})."),
    ] = None,
    max_replicas: Annotated[
        int | None, typer.Option(help="rayservice autoscaling: the most replicas (turns autoscaling on).")
    ] = None,
    target_ongoing_requests: Annotated[
        float | None,
        typer.Option(
            help=f"rayservice autoscaling: requests in flight per replica "
            f"(default {defaults.SERVE_TARGET_ONGOING_REQUESTS})."
        ),
    ] = None,
    replica_cpus: Annotated[
        float, typer.Option(help="rayservice: CPUs each replica reserves in Ray.")
    ] = defaults.SERVE_REPLICA_CPUS,
    replica_memory: Annotated[
        str, typer.Option(help="rayservice: memory each replica reserves in Ray (e.g. 2Gi).")
    ] = defaults.SERVE_REPLICA_MEMORY,
    promote: Annotated[
        str | None,
        typer.Option(
            metavar="NAME",
            help="Jobs: end with `sessrec results promote <the sweep> --name NAME --if-better` "
            "(its best model becomes models/NAME when it beats the current one).",
        ),
    ] = None,
    promote_always: Annotated[
        bool, typer.Option("--promote-always", help="With --promote: promote without --if-better.")
    ] = False,
) -> None:
    """Print the manifests that run SPEC on KubeRay (pipe them to `kubectl apply -f -`)."""
    options = rendering.RenderOptions(
        kind=kind.value,
        name=name,
        image=image,
        sweep_id=sweep_id,
        dataset=dataset,
        cluster_selector=_selector(cluster_selector or []),
        schedule=schedule,
        time_zone=time_zone,
        s3_config=s3_config,
        s3_secret=s3_secret or None,
        model=model,
        replicas=replicas,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        target_ongoing_requests=target_ongoing_requests,
        replica_cpus=replica_cpus,
        replica_memory=replica_memory,
        promote=promote,
        promote_if_better=defaults.PROMOTE_IF_BETTER and not promote_always,
    )
    text = manifests.render(spec, options)
    # Provenance: the files in jobs/ and cluster/ are this output; a test re-runs the line.
    argv = ["sessrec", "k8s", "render", *([spec] if spec else []), "--kind", kind.value]
    for flag, value, default in (
        ("--name", name, None),
        ("--image", image, defaults.DEFAULT_IMAGE),
        ("--schedule", schedule, None),
        ("--time-zone", time_zone, None),
        ("--sweep-id", sweep_id, None),
        ("--dataset", dataset, None),
        ("--s3-config", s3_config, defaults.DEFAULT_S3_CONFIG),
        ("--s3-secret", s3_secret, defaults.DEFAULT_S3_SECRET),
        ("--model", model, None),
        ("--replicas", replicas, None),
        ("--min-replicas", min_replicas, None),
        ("--max-replicas", max_replicas, None),
        ("--target-ongoing-requests", target_ongoing_requests, None),
        ("--replica-cpus", replica_cpus, defaults.SERVE_REPLICA_CPUS),
        ("--replica-memory", replica_memory, defaults.SERVE_REPLICA_MEMORY),
        ("--promote", promote, None),
    ):
        if value != default:
            argv += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    for pair in cluster_selector or []:
        argv += ["--cluster-selector", pair]
    if promote_always:
        argv.append("--promote-always")
    typer.echo(f"# Rendered by: {shlex.join(argv)}\n{text}", nl=False)
    for line in rendering.notices(spec, options):
        typer.echo(line, err=True)


Policy = Enum("Policy", {level: level for level in policy.LEVELS}, type=str)  # type: ignore[misc]


@app.command()
def validate(
    files: Annotated[list[str], typer.Argument(help="Manifest files ('-' reads standard input).")],
    crd_dir: Annotated[
        str | None,
        typer.Option(
            metavar="DIR",
            help="Folder with KubeRay's CRDs (the kuberay-operator chart's crds/, or "
            "`kubectl get crd ... -o yaml` output); default $SESSREC_CRD_DIR.",
        ),
    ] = None,
    from_cluster: Annotated[
        bool, typer.Option(help="Read KubeRay's CRDs from the cluster of the current kubeconfig context.")
    ] = False,
    policy_level: Annotated[
        Policy, typer.Option("--policy", help="Pod Security Standard level the pods must meet (policy findings).")
    ] = Policy["restricted"],
    kube_version: Annotated[
        str | None,
        typer.Option(help="Kubernetes version of the built-in schemas (default: the newest kubernetes-validate has)."),
    ] = None,
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """Check manifests offline: ray.io objects against KubeRay's CRDs (strict) and operator rules, built-in
    kinds against Kubernetes' schemas (errors), every pod against a Pod Security Standard (policy), and
    sweep specs in ConfigMaps as `tune run` would (warnings)."""
    if crd_dir and from_cluster:
        raise SessrecError("give --crd-dir or --from-cluster, not both")
    crds = (
        validation.CrdStore.from_cluster()
        if from_cluster
        else (validation.CrdStore.from_dir(crd_dir) if crd_dir else None)
    )
    checks = validation.Checks(kube_version=kube_version, policy=policy_level.value, crds=crds)
    count, problems = validation.validate_files(files, checks)
    if not count and not problems:  # as `kubectl apply` says of an empty file
        raise SessrecError(f"no objects in {', '.join(files)}")
    failing = [problem for problem in problems if problem.level != "warning"]
    at_fault = len({(problem.source, problem.obj) for problem in failing})
    if as_json:
        emit(
            {
                "files": len(files),
                "objects": count,
                "objects_with_problems": at_fault,
                "policy": checks.policy,
                "problems": [dataclasses.asdict(problem) for problem in problems],
            },
            as_json,
        )
    else:
        for problem in problems:
            typer.echo(str(problem), err=True)
    if failing:
        errors = sum(problem.level == "error" for problem in failing)
        parts = [_count(errors, "error")] if errors else []
        if len(failing) > errors:
            parts.append(f"{_count(len(failing) - errors, 'policy finding')} ({checks.policy})")
        # A file that is not YAML at all has no objects to be at fault.
        where = f" in {at_fault} of {_count(count, 'object')}" if at_fault <= count else ""
        raise SessrecError(f"{' and '.join(parts)}{where}")
    if not as_json:
        warned = len(problems)
        typer.echo(
            f"ok: {_count(count, 'object')} in {_count(len(files), 'file')}"
            + (f" ({_count(warned, 'warning')})" if warned else "")
            + f", policy {checks.policy}"
        )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"

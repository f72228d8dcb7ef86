"""The entry point of ``sessrec k8s render``: the manifests of a kind, as objects or as YAML.

``render_objects`` checks the kind and dispatches: the RayService to ``rayservice``, every other
kind to ``render``'s sweep and cluster builders (which refuse the serve options here first).
"""

from __future__ import annotations

from typing import Any

from sessrec.errors import SessrecError
from sessrec.k8s.defaults import KINDS
from sessrec.k8s.rayservice import rayservice_for, serve_options_given
from sessrec.k8s.render import RenderOptions, dump_yaml, sweep_objects


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

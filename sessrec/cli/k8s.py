"""`sessrec k8s`: render and validate Kubernetes manifests (filled in by the Kubernetes work)."""

import typer

app = typer.Typer(help="Render and validate KubeRay manifests for sweeps.", no_args_is_help=True)

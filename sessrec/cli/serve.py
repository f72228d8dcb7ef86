"""`sessrec serve`: a stored recommender over HTTP (Ray Serve on an embedded Ray); see sessrec.serving."""

from __future__ import annotations

import sys
from enum import Enum
from typing import Annotated

import typer

from sessrec.cli.common import settings
from sessrec.cli.names import DEFAULT_RELOAD_INTERVAL_S, SERVE_PORT

Ingress = Enum("Ingress", {mode: mode for mode in ("auto", "direct", "proxy")}, type=str)  # type: ignore[misc]


def serve(
    ctx: typer.Context,
    model: Annotated[
        str, typer.Argument(help="A model name in storage, a sweep id (its best model) or a model folder URI.")
    ],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="HTTP port (outside Ray's 10002-19999).")] = SERVE_PORT,
    replicas: Annotated[
        int, typer.Option(min=1, max=64, help="Serve replicas, each with its own copy of the model.")
    ] = 1,
    reload_interval: Annotated[
        float, typer.Option(min=0, help="Seconds between checks for a new version of the model in storage (0: never).")
    ] = DEFAULT_RELOAD_INTERVAL_S,
    ingress: Annotated[
        Ingress,
        typer.Option(
            help="direct: the replica answers on the port itself (fastest; one replica); proxy: Ray Serve's "
            "HTTP proxy answers and balances the replicas; auto: direct for one replica, else proxy."
        ),
    ] = Ingress["auto"],
) -> None:
    """Serve a recommender over HTTP: POST /recommend, POST /recommend/batch, GET /healthz, GET /model.
    A new version stored under the same name is loaded and swapped in without dropping a request.
    Ctrl-C stops the server."""
    from sessrec import serving  # Ray is imported only once serving starts
    from sessrec.sweep.ray_start import supervise

    root = settings(ctx).storage
    supervise()  # run again where Ray ends the process as its embedded Ray starts
    mode = serving.choose_ingress(ingress.value, replicas)
    via = "the replica answers directly" if mode == "direct" else f"Ray Serve's proxy, {replicas} replica(s)"

    def ready() -> None:
        print(
            f"serving {model} on http://{host}:{port} ({via}; POST /recommend, /recommend/batch; GET /healthz, /model)",
            file=sys.stderr,
            flush=True,
        )

    serving.serve_forever(model, root, host, port, replicas, reload_interval, on_ready=ready, ingress=mode)

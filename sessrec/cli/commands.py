"""The ``sessrec`` Typer app: one sub-app per noun. Each command parses its options, calls one
function of the package and prints; ``sessrec.cli.main`` turns errors into one line on stderr."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from sessrec.settings import Settings

app = typer.Typer(
    name="sessrec",
    help="Tune session-based (prod2vec) recommenders: prepare sessions, train, sweep with Ray Tune, run on Kubernetes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def root(
    ctx: typer.Context,
    storage: Annotated[
        Optional[str],
        typer.Option(help="Storage root: a local folder or s3://bucket/prefix (env SESSREC_STORAGE; default ./sessrec-data)."),
    ] = None,
) -> None:
    ctx.obj = Settings.load(storage=storage)


def _register() -> None:
    from sessrec.cli import data, k8s, model, results, tune
    from sessrec.cli import submit, jobs

    app.add_typer(data.app, name="data")
    app.command()(model.baseline)
    app.command()(model.train)
    app.command()(model.fit)
    app.command()(model.recommend)
    app.add_typer(tune.app, name="tune")
    app.add_typer(results.app, name="results")
    app.command()(results.report)
    app.add_typer(k8s.app, name="k8s")
    app.add_typer(submit.app, name="submit")
    app.add_typer(jobs.app, name="jobs")
    from sessrec.cli import serve as serve_cli

    app.command()(serve_cli.serve)


_register()

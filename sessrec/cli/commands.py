"""The ``sessrec`` Typer app: one sub-app per noun. Each command parses its options, calls one
function of the package and prints; ``sessrec.cli.main`` turns errors into one line on stderr."""

from __future__ import annotations

from typing import Annotated

import typer

from sessrec import __version__
from sessrec.cli.help_format import SessrecGroup
from sessrec.settings import Settings

app = typer.Typer(
    name="sessrec",
    cls=SessrecGroup,
    help="Tune session-based (prod2vec) recommenders: prepare sessions, train, sweep with Ray Tune, run on Kubernetes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"sessrec {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    storage: Annotated[
        str | None,
        typer.Option(
            help="Storage root: a local folder or s3://bucket/prefix (env SESSREC_STORAGE; default ./sessrec-data)."
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print sessrec's version and exit."),
    ] = False,
) -> None:
    ctx.obj = Settings.load(storage=storage)


def _register() -> None:
    from sessrec.cli import data, jobs, k8s, model, results, submit, tune

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

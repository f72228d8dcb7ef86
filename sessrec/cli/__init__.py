"""The ``sessrec`` command: one Typer app, one sub-app per noun. Each command parses its
options, calls one function of the package and prints; errors become one line on stderr."""

from __future__ import annotations

import os
import signal
import sys

from typing import Annotated, Optional

import typer

from sessrec.errors import SessrecError
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
    app.command()(model.recommend)
    app.add_typer(tune.app, name="tune")
    app.add_typer(results.app, name="results")
    app.command()(results.report)
    app.add_typer(k8s.app, name="k8s")
    app.add_typer(submit.app, name="submit")
    app.add_typer(jobs.app, name="jobs")


_register()


def _stop_like_ctrl_c(signum: int, frame: object) -> None:
    # SIGTERM (docker stop, kubectl delete, a job stop) takes the Ctrl-C path: Ray Tune saves
    # its state and stops, other commands end before their atomic writes.
    os.kill(os.getpid(), signal.SIGINT)


def main() -> None:
    signal.signal(signal.SIGTERM, _stop_like_ctrl_c)
    try:
        result = app(standalone_mode=False)
    except typer.exceptions.TyperException as exc:  # usage errors: bad or missing options
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        typer.echo(f"error: {exc.format_message()}{hint}", err=True)
        sys.exit(getattr(exc, "exit_code", 2))
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("error: interrupted", err=True)
        sys.exit(130)
    except SessrecError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except Exception as exc:  # a bug, not bad input: still one line unless asked for more
        if os.environ.get("SESSREC_DEBUG"):
            raise
        first_line = (str(exc).splitlines() or [""])[0]
        typer.echo(f"error: unexpected {type(exc).__name__}: {first_line} (set SESSREC_DEBUG=1 for details)", err=True)
        sys.exit(2)
    sys.exit(result if isinstance(result, int) else 0)

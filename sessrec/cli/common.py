"""What every command shares: settings from the root options, JSON or human output, progress."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from sessrec.settings import Settings

JsonOption = typer.Option("--json", help="Print machine-readable JSON instead of text.")
stderr = Console(stderr=True)


def settings(ctx: typer.Context) -> Settings:
    return ctx.find_root().obj


def emit(data: Any, as_json: bool, human: Callable[[Any], str] | None = None) -> None:
    if as_json or human is None:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))
    else:
        typer.echo(human(data))


def percent(value: float) -> str:
    return f"{100 * value:.2f} %"


def value_text(value: Any) -> str:
    """A config value for people: a float sampled at random (alpha 0.031274...) to four significant digits."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def best_text(d: dict) -> str:
    """A sweep's best result (``results.best``) for people."""
    v, t = d["validation"], d["test"]
    cfg = "\n".join(f"  {k:<12} {value_text(val)}" for k, val in d["config"].items())
    return (
        f"sweep {d['sweep_id']} ({d['status']}), best trial {d['trial_id']} after {d['epochs']} epochs\n{cfg}\n"
        f"validation  R@{v['k']} {percent(v['recall_at_k'])}  MRR@{v['k']} {percent(v['mrr_at_k'])}\n"
        f"test        R@{t['k']} {percent(t['recall_at_k'])}  MRR@{t['k']} {percent(t['mrr_at_k'])}"
    )


#: Seconds between progress lines when stderr is not a terminal (a log file, a pipe, a job's log).
PROGRESS_LINE_EVERY_S = 30.0


@contextmanager
def progress(description: str, total: int | None, enabled: bool = True) -> Iterator[Callable[..., None]]:
    """A progress bar on stderr (so --json output stays clean); yields an ``advance(status=...)``.
    Off a terminal, a plain line now and then and at the last step instead of a bar."""
    if not enabled:
        yield lambda *args, **kwargs: None
        return
    if not sys.stderr.isatty():
        started, done, last_line = time.monotonic(), 0, 0.0

        def line(steps: int = 1, status: str = "") -> None:
            nonlocal done, last_line
            done += steps
            now = time.monotonic()
            if done == total or now - last_line >= PROGRESS_LINE_EVERY_S:
                last_line = now
                of_total = f"/{total}" if total else ""
                sys.stderr.write(
                    f"{description} {done}{of_total}, {now - started:.0f} s{' | ' + status if status else ''}\n"
                )
                sys.stderr.flush()

        yield line
        return
    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
    ]
    with Progress(*columns, console=stderr, transient=False) as bar:
        task = bar.add_task(description, total=total, status="")

        def advance(steps: int = 1, status: str = "") -> None:
            bar.update(task, advance=steps, status=status)

        yield advance

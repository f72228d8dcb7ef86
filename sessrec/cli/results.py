"""`sessrec results`: read sweeps from storage (local or S3): list, show, best, fetch."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from sessrec import results
from sessrec.cli.common import JsonOption, best_text, emit, settings, value_text

app = typer.Typer(help="Read sweep results from storage.", no_args_is_help=True)
SweepArgument = typer.Argument(help="Sweep id.")


@app.command("list")
def list_(ctx: typer.Context, as_json: Annotated[bool, JsonOption] = False) -> None:
    """Sweeps in storage, newest first, with status and best metric (a damaged manifest: 'damaged')."""
    rows = results.list_sweeps(settings(ctx).storage)

    def human(rows: list[dict]) -> str:
        if not rows:
            return "no sweeps"
        lines = [f"{'sweep':<40} {'status':<10} {'trials':>6} {'best':>8}  started"]
        for r in rows:
            best = "-" if r["best"] is None else f"{r['best']:.4f}"
            trials = "-" if r["trials"] is None else r["trials"]
            lines.append(f"{r['sweep_id']:<40} {r['status'] or '-':<10} {trials:>6} {best:>8}  {r['started'] or r['problem'] or '-'}")
        return "\n".join(lines)

    emit(rows, as_json, human)


@app.command()
def show(ctx: typer.Context, sweep_id: Annotated[str, SweepArgument], as_json: Annotated[bool, JsonOption] = False) -> None:
    """A sweep's manifest and its ten best trials."""
    data = results.show(settings(ctx).storage, sweep_id)

    def human(d: dict) -> str:
        m = d["manifest"]
        lines = [f"{k:<16} {v}" for k, v in m.items() if not isinstance(v, dict)]
        lines += [f"{k:<16} {', '.join(f'{a}={b}' for a, b in v.items())}" for k, v in m.items() if isinstance(v, dict)]
        if d["trials_from"] == "checkpoints":  # no run has finished: unfinished trials may still go on
            lines.append("trials           as their checkpoints record them (no run has finished: 'unfinished' "
                         "trials were stopped early or cut short)")
        for t in d["top_trials"]:
            cfg = " ".join(f"{k[7:]}={value_text(v)}" for k, v in t.items() if k.startswith("config."))
            metric = next(k for k in t if k.startswith("last_"))
            lines.append(f"  {t['trial_id']:<14} {t['state']:<14} {t['epochs_run']:>4} ep  {t[metric]:.4f}  {cfg}")
        return "\n".join(lines)

    emit(data, as_json, human)


@app.command()
def best(ctx: typer.Context, sweep_id: Annotated[str, SweepArgument], as_json: Annotated[bool, JsonOption] = False) -> None:
    """The best config with its validation and test metrics."""
    emit(results.best(settings(ctx).storage, sweep_id), as_json, best_text)


@app.command()
def fetch(
    ctx: typer.Context,
    sweep_id: Annotated[str, SweepArgument],
    to: Annotated[str, typer.Option(help="Local folder for the best embeddings, config and metrics.")],
    overwrite: Annotated[bool, typer.Option(help="Replace files already in the --to folder.")] = False,
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """Download the best embeddings (Parquet and word2vec text), config and metrics."""
    files, left_out = results.fetch(settings(ctx).storage, sweep_id, to, overwrite)
    if left_out:
        typer.echo(f"warning: {left_out}", err=True)
    emit(files, as_json, lambda f: "\n".join(f))


def report(
    ctx: typer.Context,
    sweep_id: Annotated[str, SweepArgument],
    to: Annotated[Optional[str], typer.Option(help="Also write the report to this local folder.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace files already in the --to folder.")] = False,
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """Heatmaps, learning curves, ASHA's stopping picture and one self-contained HTML page
    (in the sweep's report/ folder, rebuilt each time, and in --to)."""
    files = results.write_report(settings(ctx).storage, sweep_id, to, overwrite)
    emit(files, as_json, lambda f: "\n".join(f))

"""`sessrec results`: sweeps in storage (local or S3): list, show, best, fetch, promote, delete, prune."""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from sessrec import promotion, results
else:  # loaded on first use: `sessrec results --help` stays fast
    from sessrec.cli.lazy import lazy_module

    promotion = lazy_module("sessrec.promotion")
    results = lazy_module("sessrec.results")
from sessrec.cli.common import JsonOption, best_text, emit, percent, settings, value_text
from sessrec.errors import SessrecError

app = typer.Typer(help="Read sweep results from storage.", no_args_is_help=True)
SweepArgument = typer.Argument(help="Sweep id.")


@app.command("list")
def list_(ctx: typer.Context, as_json: Annotated[bool, JsonOption] = False) -> None:
    """Sweeps in storage, newest first, with status and best validation metric (a damaged manifest: 'damaged')."""
    root = settings(ctx).storage
    data = {"storage": root, "sweeps": results.list_sweeps(root)}

    def human(d: dict) -> str:
        rows = d["sweeps"]
        if not rows:
            return f"no sweeps in {d['storage']}"
        lines = [f"sweeps in {d['storage']}", f"{'sweep':<40} {'status':<10} {'trials':>6} {'best (val)':>10}  started"]
        for r in rows:
            best = "-" if r["best"] is None else percent(r["best"])
            trials = "-" if r["trials"] is None else r["trials"]
            when = r["started"] or r["problem"] or "-"
            lines.append(f"{r['sweep_id']:<40} {r['status'] or '-':<10} {trials:>6} {best:>10}  {when}")
        return "\n".join(lines)

    emit(data, as_json, human)


@app.command()
def show(
    ctx: typer.Context,
    sweep_id: Annotated[str, SweepArgument],
    all_trials: Annotated[bool, typer.Option("--all", help="Every trial, not the ten best.")] = False,
    fmt: Annotated[str, typer.Option("--format", help="'text' (default) or 'csv': the trials, one row each.")] = "text",
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """A sweep's manifest and its ten best trials (--all: every trial), best first."""
    if fmt not in ("text", "csv"):
        raise SessrecError(f"--format must be text or csv, got {fmt!r}")
    if fmt == "csv" and as_json:
        raise SessrecError("give --format csv or --json, not both")
    data = results.show(settings(ctx).storage, sweep_id, None if all_trials else 10)
    if fmt == "csv":
        typer.echo(_trials_csv(data["top_trials"]), nl=False)
        return

    def human(d: dict) -> str:
        m = d["manifest"]
        lines = [f"{k:<16} {v}" for k, v in m.items() if not isinstance(v, dict)]
        for key, value in m.items():
            if isinstance(value, dict):
                lines.append(f"{key:<16} {', '.join(f'{a}={_cell(a, b)}' for a, b in value.items())}")
        if d["trials_from"] == "checkpoints":  # no run has finished: unfinished trials may still go on
            lines.append(
                "trials           as their checkpoints record them (no run has finished: 'unfinished' "
                "trials were stopped early or cut short)"
            )
        metric = d["metric"]
        if d["top_trials"]:
            lines.append(f"trials, best first by validation {metric}:")
        for t in d["top_trials"]:
            cfg = " ".join(f"{k}={value_text(v)}" for k, v in t["config"].items())
            value = t["validation"].get(metric)
            shown = "-" if value is None else percent(value)
            lines.append(f"  {t['trial_id']:<14} {t['status']:<14} {t['epochs']:>4} ep  {shown:>8}  {cfg}")
        return "\n".join(lines)

    emit(data, as_json, human)


def _cell(key: str, value: Any) -> str:
    """A manifest value for people: a metric as a percentage."""
    return percent(value) if key in ("recall_at_k", "mrr_at_k") and isinstance(value, float) else str(value)


def _trials_csv(trials: list[dict[str, Any]]) -> str:
    """Trials (``results.trial_json``) as CSV: one row each, the config's parameters as columns."""
    params = list(dict.fromkeys(name for t in trials for name in t["config"]))
    sink = io.StringIO()
    writer = csv.writer(sink, lineterminator="\n")
    writer.writerow(["trial_id", "point", "status", "epochs", "val_recall_at_k", "val_mrr_at_k", *params])
    for t in trials:
        v = t["validation"]
        writer.writerow(
            [
                t["trial_id"],
                t["point"],
                t["status"],
                t["epochs"],
                v["recall_at_k"],
                v["mrr_at_k"],
                *(t["config"].get(name) for name in params),
            ]
        )
    return sink.getvalue()


@app.command()
def best(
    ctx: typer.Context, sweep_id: Annotated[str, SweepArgument], as_json: Annotated[bool, JsonOption] = False
) -> None:
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
    to: Annotated[str | None, typer.Option(help="Also write the report to this local folder.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace files already in the --to folder.")] = False,
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """Heatmaps, learning curves, ASHA's stopping picture and one self-contained HTML page
    (in the sweep's report/ folder, rebuilt each time, and in --to)."""
    files = results.write_report(settings(ctx).storage, sweep_id, to, overwrite)
    emit(files, as_json, lambda f: "\n".join(f))


NameOption = typer.Option("--name", help="Model name under the storage root (models/NAME).")
YesOption = typer.Option("--yes", help="Delete without asking (required: sessrec asks no questions).")
ForceOption = typer.Option("--force", help="Also while the sweep is marked running (its driver is gone) or resumable.")


@app.command()
def promote(
    ctx: typer.Context,
    sweep_id: Annotated[str, SweepArgument],
    name: Annotated[str, NameOption],
    if_better: Annotated[
        bool,
        typer.Option(
            "--if-better",
            help="Only if its validation metric beats the current model's (same dataset and split); a tie keeps it.",
        ),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Replace a current model evaluated on another dataset, split, K or mode.")
    ] = False,
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """Copy the sweep's best model to models/NAME with its provenance ('recommend --model/--embeddings NAME',
    'serve NAME' reloads it). Exit 0 whether promoted or kept; the decision is recorded."""
    emit(promotion.promote(settings(ctx).storage, sweep_id, name, if_better, force), as_json, _promotion_text)


def _promotion_text(d: dict[str, Any]) -> str:
    new, current, metric = d["new"], d["current"], d["metric"]
    figure = lambda f: "-" if f is None else percent(f)  # noqa: E731
    label = f"validation {metric}"
    if d["decision"] == "kept":
        return (
            f"kept the current model {d['model']}: {label} {figure(current['validation'])} "
            f"≥ {figure(new['validation'])} of sweep {d['sweep_id']}"
        )
    text = (
        f"promoted sweep {d['sweep_id']}'s best (trial {new['trial_id']}) as model {d['model']}: "
        f"{label} {figure(new['validation'])}"
    )
    if current is None:
        text += " (no model of that name before)"
    elif d["not_comparable"]:
        text += f" (replaced, --force: the current model was evaluated on {d['not_comparable']})"
    else:
        sign = ">" if d["if_better"] else "vs"
        text += f" {sign} {figure(current['validation'])} of the current model"
    return f"{text}; test {metric} {figure(new['test'])}\nsaved to {d['uri']}"


@app.command()
def delete(
    ctx: typer.Context,
    sweep_id: Annotated[str, SweepArgument],
    yes: Annotated[bool, YesOption] = False,
    force: Annotated[bool, ForceOption] = False,
    prune_checkpoints: Annotated[
        bool,
        typer.Option(
            "--prune-checkpoints",
            help=(
                "Remove only Tune's checkpoints (tune/) and the word2vec cache (word2vec/); "
                "keep manifest, spec, trials, best, report."
            ),
        ),
    ] = False,
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """Remove a sweep's folder from storage (refused while it runs; needs --yes)."""
    root = settings(ctx).storage
    # Never a prompt (a CronJob, a pipe): without --yes it is refused in one line, naming what would go.
    removal = results.prune if prune_checkpoints else results.delete
    done = removal(root, sweep_id, yes, force)
    emit(done, as_json, _removal_text)


@app.command()
def prune(
    ctx: typer.Context,
    sweep_id: Annotated[str, SweepArgument],
    yes: Annotated[bool, YesOption] = False,
    force: Annotated[bool, ForceOption] = False,
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """Remove a completed sweep's Tune checkpoints and word2vec cache; keep its manifest, spec, trials table,
    best and report."""
    emit(results.prune(settings(ctx).storage, sweep_id, yes, force), as_json, _removal_text)


def _removal_text(d: dict[str, Any]) -> str:
    what = "sweep" if d["action"] == "deleted" else "checkpoints of sweep"
    freed = results.size_text(d["bytes_freed"])
    return f"{d['action']} {what} {d['sweep_id']} in {d['storage']}: {d['files']} files, {freed} freed"

"""`sessrec tune`: run a sweep on embedded or existing Ray, resume it, or preview its cost."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Annotated, Any

import typer

from sessrec.cli.common import JsonOption, emit, percent, settings
from sessrec.cli.names import BUILTIN_SPECS
from sessrec.errors import SessrecError

app = typer.Typer(help="Hyperparameter sweeps with Ray Tune and ASHA.", no_args_is_help=True)

# Ray may be told of more CPUs than the machine has (trials then share them), but a raylet told of
# billions never starts: it times out after half a minute.
NumCpusOption = typer.Option(min=1, max=1024, help="CPUs of the embedded local Ray (default: all).")

SetOption = typer.Option(
    "--set",
    metavar="PATH=VALUE",
    help="Override a spec field, repeatable: --set scheduler.max_t=10 --set space.window=[3,7] (VALUE is YAML).",
)

_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600}


def parse_duration(text: str, option: str) -> float:
    """Seconds of ``90``, ``90s``, ``20m``, ``1.5h``."""
    value = text.strip().lower()
    unit = _DURATION_UNITS.get(value[-1:], None)
    number = value[:-1] if unit else value
    try:
        seconds = float(number) * (unit or 1)
    except ValueError:
        raise SessrecError(f"{option} {text!r}: expected a duration such as 90s, 20m or 2h") from None
    if not 0 < seconds < 10 * 365 * 86400:  # also refuses nan and inf
        raise SessrecError(f"{option} {text!r}: must be more than 0 s")
    return seconds


AddressOption = typer.Option(
    "--address", help="Ray cluster to join ('auto', HOST:PORT); default: an embedded local Ray (env RAY_ADDRESS)."
)

MlflowOption = typer.Option(
    "--mlflow",
    metavar="URI",
    help="Log every trial as an MLflow run, and the best one's model, to this tracker "
    "(env MLFLOW_TRACKING_URI or the settings file).",
)


def _tracked(request: Any, uri: str | None, sweep_id: str, experiment: str | None) -> tuple[Any, Any]:
    """The request with MLflow tracking's Tune callback where a tracker is set, and the tracker."""
    if not uri:
        return request, None
    from dataclasses import replace

    from sessrec import tracking

    tracking.check_available()
    tracker = tracking.Tracker(uri, request.root, sweep_id, experiment)
    return replace(request, sweep_id=sweep_id, callbacks=(*request.callbacks, tracker.callback())), tracker


def _summary(manifest: dict, root: str | None = None) -> str:
    from sessrec.core.metrics import metric_label

    trials = manifest.get("trials", {})
    best = manifest.get("best", {})
    metric = manifest.get("metric", "recall_at_k")
    label = metric_label(metric, manifest.get("k"))
    test = ""
    if root is not None and best:
        from sessrec import results

        try:
            test = f", test {label} {percent(results.best(root, manifest['sweep_id'])['test'][metric])}"
        except (SessrecError, KeyError, TypeError):
            pass  # the summary's other lines still stand
    value = best.get(metric)
    return (
        f"sweep {manifest['sweep_id']}: {manifest['status']}, {trials.get('total', 0)} trials "
        f"({trials.get('completed', 0)} completed, {trials.get('stopped_early', 0)} stopped early, "
        f"{trials.get('errored', 0)} errored)\n"
        f"best trial {best.get('trial_id', '-')}: validation {label} {'-' if value is None else percent(value)}{test}\n"
        f"results: sessrec results best {manifest['sweep_id']}"
    )


@app.command()
def run(
    ctx: typer.Context,
    spec_ref: Annotated[
        str, typer.Argument(metavar="SPEC", help=f"Sweep spec file, or a built-in: {', '.join(BUILTIN_SPECS)}.")
    ],
    dataset: Annotated[str | None, typer.Option(help="Dataset name or sessions URI (overrides the spec).")] = None,
    sweep_id: Annotated[str | None, typer.Option(help="Id of the sweep (default: NAME-DATE-TIME-RANDOM).")] = None,
    address: Annotated[str | None, AddressOption] = None,
    num_cpus: Annotated[int | None, NumCpusOption] = None,
    num_samples: Annotated[int | None, typer.Option(help="Override search.num_samples.")] = None,
    dry_run: Annotated[
        bool, typer.Option(help="Print trial and epoch counts and a time estimate, run nothing.")
    ] = False,
    resume_existing: Annotated[
        bool,
        typer.Option(
            help="If --sweep-id is already in storage with this spec and dataset, continue it (a job's retry) "
            "instead of refusing."
        ),
    ] = False,
    verbose: Annotated[bool, typer.Option(help="Show Ray's own logs and trial table.")] = False,
    mlflow: Annotated[str | None, MlflowOption] = None,
    overrides: Annotated[list[str] | None, SetOption] = None,
    time_budget: Annotated[
        str | None,
        typer.Option(
            metavar="DURATION",
            help="End the sweep after this wall time (90s, 20m, 2h): completed, with the best so far.",
        ),
    ] = None,
    stop_at: Annotated[
        float | None,
        typer.Option(help="End the sweep once a trial's validation metric (the spec's) reaches this goal, e.g. 0.30."),
    ] = None,
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """Run a sweep: ASHA over word2vec configs, validation metrics every epoch, results to storage."""
    if resume_existing and not sweep_id:
        raise SessrecError("--resume-existing needs --sweep-id: a generated id is new on every run")
    time_budget_s = None if time_budget is None else parse_duration(time_budget, "--time-budget")
    config = settings(ctx)
    if not dry_run and not (address or config.ray_address):
        from sessrec.sweep.ray_start import supervise

        supervise()  # run again where Ray ends the process as its embedded Ray starts
    from sessrec.pipeline import load_dataset
    from sessrec.spec import load_spec
    from sessrec.sweep.estimate import dry_run as estimate_run
    from sessrec.sweep.request import SweepRequest, check_trials_fit, preflight

    spec = load_spec(spec_ref, num_samples, overrides)
    request = SweepRequest(
        config.storage,
        sweep_id,
        dataset,
        address or config.ray_address,
        num_cpus,
        verbose,
        live=sys.stderr.isatty() and not verbose,
        resume_existing=resume_existing,
        time_budget_s=time_budget_s,
        stop_at=stop_at,
    )
    if dry_run:  # refuses what the run would refuse before it trains
        data = load_dataset(preflight(spec, request), config.storage)
        cpus = num_cpus or os.cpu_count() or 1
        if request.address is None:
            check_trials_fit(spec, cpus)
        estimate = estimate_run(spec, data, cpus, embedded=request.address is None)
        if estimate["warning"]:
            typer.echo(f"warning: {estimate['warning']}", err=True)
        emit(estimate, as_json, _estimate_text)
        return
    from sessrec.sweep.records import new_sweep_id

    uri = mlflow or config.mlflow_tracking_uri
    request, tracker = (
        _tracked(request, uri, request.sweep_id or new_sweep_id(spec), spec.name) if uri else (request, None)
    )
    from sessrec.sweep import cluster, driver  # Ray Tune: imported by the commands that run it

    # Ray prints cluster events (e.g. a node that died) to stdout; keep stdout for our result.
    with contextlib.redirect_stdout(sys.stderr):
        try:
            manifest = driver.start(spec, request)
        finally:
            cluster.disconnect()
        if tracker is not None:
            tracker.log_best(manifest)
    emit(manifest, as_json, lambda m: _summary(m, config.storage))


def _estimate_text(e: dict) -> str:
    low, high = e.get("estimated_wall_seconds_range", (e["estimated_wall_seconds"],) * 2)
    return (
        f"trials                 {e['trials']:,}\n"
        + (
            f"  without word2vec     {e['trials_without_word2vec']:,} (count parts fitted once, no epochs)\n"
            if e.get("trials_without_word2vec")
            else ""
        )
        + f"epochs, worst case     {e['epochs_worst_case']:,.0f}\n"
        f"epochs, ASHA expected  {e['epochs_expected_with_asha']:,.0f}\n"
        f"one epoch (measured)   {e['measured_epoch_seconds']:.3f} s\n"
        f"parallel trials        {e['parallel_trials']}\n"
        f"estimated wall time    {_duration(e['estimated_wall_seconds'])} of training and evaluation "
        f"(all epochs: {_duration(e['estimated_wall_seconds_worst_case'])})\n"
        f"likely range           {_duration(low)} to {_duration(high)} in all, "
        "Ray's start-up and Tune's overheads included\n"
        "                       (an estimate from the measured epochs' spread, not a bound: a busy machine runs slower)"
    )


def _duration(seconds: float) -> str:
    # Training and evaluation only: seconds are fine enough.
    if seconds < 1:
        return "under 1 s"
    return f"{seconds:,.0f} s" if seconds < 60 else f"{seconds / 60:,.1f} min"


@app.command()
def resume(
    ctx: typer.Context,
    sweep_id: Annotated[str, typer.Argument(help="Id of the interrupted sweep.")],
    address: Annotated[str | None, AddressOption] = None,
    num_cpus: Annotated[int | None, NumCpusOption] = None,
    verbose: Annotated[bool, typer.Option(help="Show Ray's own logs and trial table.")] = False,
    mlflow: Annotated[str | None, MlflowOption] = None,
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """Continue an interrupted sweep from storage; finished trials are not run again."""
    from sessrec.sweep.request import SweepRequest

    config = settings(ctx)
    if not (address or config.ray_address):
        from sessrec.sweep.ray_start import supervise

        supervise()  # run again where Ray ends the process as its embedded Ray starts
    request = SweepRequest(
        config.storage,
        sweep_id,
        address=address or config.ray_address,
        num_cpus=num_cpus,
        verbose=verbose,
        live=sys.stderr.isatty() and not verbose,
    )
    request, tracker = _tracked(request, mlflow or config.mlflow_tracking_uri, sweep_id, None)
    from sessrec.sweep import cluster, driver  # Ray Tune: imported by the commands that run it

    with contextlib.redirect_stdout(sys.stderr):
        try:
            manifest = driver.resume(request)
        finally:
            cluster.disconnect()
        if tracker is not None:
            tracker.log_best(manifest)
    emit(manifest, as_json, lambda m: _summary(m, config.storage))

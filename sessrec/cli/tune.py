"""`sessrec tune`: run a sweep on embedded or existing Ray, resume it, or preview its cost."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Annotated, Optional

import typer

from sessrec import tuning
from sessrec.cli.common import JsonOption, emit, settings
from sessrec.core.metrics import metric_label
from sessrec.errors import SessrecError
from sessrec.pipeline import load_dataset
from sessrec.spec import BUILTIN_SPECS, SweepSpec, read_spec

app = typer.Typer(help="Hyperparameter sweeps with Ray Tune and ASHA.", no_args_is_help=True)

# Ray may be told of more CPUs than the machine has (trials then share them), but a raylet told of
# billions never starts: it times out after half a minute.
NumCpusOption = typer.Option(min=1, max=1024, help="CPUs of the embedded local Ray (default: all).")

AddressOption = typer.Option(
    "--address", help="Ray cluster to join ('auto', HOST:PORT); default: an embedded local Ray (env RAY_ADDRESS)."
)


def load_spec(ref: str, num_samples: int | None = None) -> SweepSpec:
    """A spec file or built-in spec, with the command line's overrides."""
    spec = read_spec(ref)[1]
    if num_samples is not None:
        spec = SweepSpec.from_dict(dict(spec.raw, search={**spec.raw["search"], "num_samples": num_samples}))
    return spec


def _summary(manifest: dict) -> str:
    trials = manifest.get("trials", {})
    best = manifest.get("best", {})
    metric = manifest.get("metric", "recall_at_k")
    return (
        f"sweep {manifest['sweep_id']}: {manifest['status']}, {trials.get('total', 0)} trials "
        f"({trials.get('completed', 0)} completed, {trials.get('stopped_early', 0)} stopped early, "
        f"{trials.get('errored', 0)} errored)\n"
        f"best trial {best.get('trial_id', '-')}: {metric_label(metric, manifest.get('k'))} {best.get(metric, float('nan')):.4f}\n"
        f"results: sessrec results best {manifest['sweep_id']}"
    )


@app.command()
def run(
    ctx: typer.Context,
    spec_ref: Annotated[str, typer.Argument(metavar="SPEC", help=f"Sweep spec file, or a built-in: {', '.join(BUILTIN_SPECS)}.")],
    dataset: Annotated[Optional[str], typer.Option(help="Dataset name or sessions URI (overrides the spec).")] = None,
    sweep_id: Annotated[Optional[str], typer.Option(help="Id of the sweep (default: NAME-DATE-TIME-RANDOM).")] = None,
    address: Annotated[Optional[str], AddressOption] = None,
    num_cpus: Annotated[Optional[int], NumCpusOption] = None,
    num_samples: Annotated[Optional[int], typer.Option(help="Override search.num_samples.")] = None,
    dry_run: Annotated[bool, typer.Option(help="Print trial and epoch counts and a time estimate, run nothing.")] = False,
    resume_existing: Annotated[bool, typer.Option(
        help="If --sweep-id is already in storage with this spec and dataset, continue it (a job's retry) instead of refusing."
    )] = False,
    verbose: Annotated[bool, typer.Option(help="Show Ray's own logs and trial table.")] = False,
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """Run a sweep: ASHA over word2vec configs, validation metrics every epoch, results to storage."""
    if resume_existing and not sweep_id:
        raise SessrecError("--resume-existing needs --sweep-id: a generated id is new on every run")
    spec = load_spec(spec_ref, num_samples)
    config = settings(ctx)
    address = address or config.ray_address
    if dry_run:  # refuses what the run would refuse before it trains
        tuning.check_sweep_id(config.storage, sweep_id, resume_existing)
        data = load_dataset(dataset or spec.dataset or _missing_dataset(), config.storage)
        cpus = num_cpus or os.cpu_count() or 1
        if address is None:
            tuning.check_trials_fit(spec, cpus)
        estimate = tuning.dry_run(spec, data, cpus)
        if estimate["warning"]:
            typer.echo(f"warning: {estimate['warning']}", err=True)
        emit(estimate, as_json, _estimate_text)
        return
    # Ray prints cluster events (e.g. a node that died) to stdout; keep stdout for our result.
    with contextlib.redirect_stdout(sys.stderr):
        try:
            manifest = tuning.run_sweep(
                spec, config.storage, sweep_id, dataset, address, num_cpus, verbose, live=sys.stderr.isatty() and not verbose,
                resume_existing=resume_existing,
            )
        finally:
            tuning.disconnect()
    emit(manifest, as_json, _summary)


def _missing_dataset() -> str:
    raise SessrecError("no dataset: set 'dataset' in the spec or pass --dataset")


def _estimate_text(e: dict) -> str:
    return (
        f"trials                 {e['trials']:,}\n"
        f"epochs, worst case     {e['epochs_worst_case']:,.0f}\n"
        f"epochs, ASHA expected  {e['epochs_expected_with_asha']:,.0f}\n"
        f"one epoch (measured)   {e['measured_epoch_seconds']:.3f} s\n"
        f"parallel trials        {e['parallel_trials']}\n"
        f"estimated wall time    {_duration(e['estimated_wall_seconds'])} "
        f"(worst case {_duration(e['estimated_wall_seconds_worst_case'])}) of training and evaluation,\n"
        f"                       plus Ray's start-up (seconds on an embedded Ray)"
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
    address: Annotated[Optional[str], AddressOption] = None,
    num_cpus: Annotated[Optional[int], NumCpusOption] = None,
    verbose: Annotated[bool, typer.Option(help="Show Ray's own logs and trial table.")] = False,
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """Continue an interrupted sweep from storage; finished trials are not run again."""
    config = settings(ctx)
    with contextlib.redirect_stdout(sys.stderr):
        try:
            manifest = tuning.resume_sweep(
                config.storage, sweep_id, address or config.ray_address, num_cpus, verbose, live=sys.stderr.isatty() and not verbose
            )
        finally:
            tuning.disconnect()
    emit(manifest, as_json, _summary)

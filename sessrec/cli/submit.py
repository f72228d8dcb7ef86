"""`sessrec submit`: run a sweep on a remote Ray cluster through the Jobs API; results land in
the S3 storage root, where `sessrec results` reads them back."""

from __future__ import annotations

import sys
from typing import IO, TYPE_CHECKING, Annotated, Any

import typer

from sessrec.cli.common import JsonOption, best_text, emit, settings
from sessrec.cli.names import BUILTIN_SPECS
from sessrec.cli.tune import SetOption
from sessrec.errors import SessrecError

if TYPE_CHECKING:
    from sessrec import jobs_client, results
else:  # loaded on first use: `sessrec submit --help` stays fast
    from sessrec.cli.lazy import lazy_module

    jobs_client = lazy_module("sessrec.jobs_client")
    results = lazy_module("sessrec.results")

app = typer.Typer(
    help="Run sweeps on a remote Ray cluster (Ray Jobs API); results go to S3 storage.", no_args_is_help=True
)

AddressOption = typer.Option(
    "--address", help="The Ray dashboard's address, http://HOST:8265 (env RAY_ADDRESS or the settings file)."
)

ShipCodeOption = typer.Option(help="Send the local sessrec package along (dev clusters whose image lacks it).")
ForwardOption = typer.Option(
    help="Pass your AWS_* variables to the job (visible in the Ray dashboard!); default: the cluster's own."
)
WaitOption = typer.Option(help="Follow the job's log until it ends, then print the best config.")
MlflowOption = typer.Option(
    "--mlflow", metavar="URI", help="The job logs the sweep to this MLflow tracker (one the cluster reaches)."
)


def client_for(ctx: typer.Context, address: str | None) -> jobs_client.JobsClient:
    """A Jobs API client for --address (else RAY_ADDRESS / settings file) with the Ray token."""
    config = settings(ctx)
    return jobs_client.JobsClient(address or config.ray_address, config.auth_token())


def warn(text: str) -> None:
    """Print ``warning: TEXT`` on stderr."""
    typer.echo(f"warning: {text}", err=True)


@app.command()
def tune(
    ctx: typer.Context,
    spec_ref: Annotated[
        str, typer.Argument(metavar="SPEC", help=f"Sweep spec file, or a built-in: {', '.join(BUILTIN_SPECS)}.")
    ],
    address: Annotated[str | None, AddressOption] = None,
    dataset: Annotated[
        str | None, typer.Option(help="Dataset name in storage or s3:// sessions URI (overrides the spec).")
    ] = None,
    sweep_id: Annotated[
        str | None, typer.Option(help="Id of the sweep (default: NAME-DATE-TIME-RANDOM); the job id is sessrec-ID.")
    ] = None,
    upload: Annotated[
        str | None,
        typer.Option(metavar="FILE", help="First upload this local sessions file (Parquet or JSONL) as the dataset."),
    ] = None,
    ship_code: Annotated[bool, ShipCodeOption] = False,
    forward_s3_env: Annotated[bool, ForwardOption] = False,
    wait: Annotated[bool, WaitOption] = False,
    mlflow: Annotated[str | None, MlflowOption] = None,
    overrides: Annotated[list[str] | None, SetOption] = None,
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """Submit a sweep as a Ray job: the same `tune run` as on a laptop, on the cluster."""
    root = jobs_client.require_s3_root(settings(ctx).storage)
    from sessrec.spec import load_spec

    spec = load_spec(spec_ref, overrides=overrides)  # the job runs the spec as overridden (spec.to_yaml)
    client, forward = _client_and_env(ctx, address, forward_s3_env)
    submitted = jobs_client.submit_tune(client, spec, root, sweep_id, dataset, upload, ship_code, forward, mlflow)
    _report(client, submitted, root, wait, as_json)


@app.command()
def resume(
    ctx: typer.Context,
    sweep_id: Annotated[str, typer.Argument(help="Id of a stopped, interrupted or failed sweep in the S3 storage.")],
    address: Annotated[str | None, AddressOption] = None,
    ship_code: Annotated[bool, ShipCodeOption] = False,
    forward_s3_env: Annotated[bool, ForwardOption] = False,
    wait: Annotated[bool, WaitOption] = False,
    mlflow: Annotated[str | None, MlflowOption] = None,
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """Continue a sweep on the cluster (after 'jobs stop', a lost driver or head): 'tune resume' as a Ray job."""
    root = jobs_client.require_s3_root(settings(ctx).storage)
    client, forward = _client_and_env(ctx, address, forward_s3_env)
    submitted = jobs_client.submit_resume(client, root, sweep_id, ship_code, forward, mlflow)
    _report(client, submitted, root, wait, as_json)


def _client_and_env(
    ctx: typer.Context, address: str | None, forward_s3_env: bool
) -> tuple[jobs_client.JobsClient, dict[str, str] | None]:
    forward = jobs_client.forwardable_aws_env() if forward_s3_env else None
    client = client_for(ctx, address)
    if forward:
        warn(
            f"--forward-s3-env puts {', '.join(sorted(forward))} into the job's runtime_env: "
            "anyone who can open the Ray dashboard or the Jobs API can read them"
        )
    return client, forward


def _report(client: jobs_client.JobsClient, submitted: dict, root: str, wait: bool, as_json: bool) -> None:
    """What was submitted; with --wait, the job's log as it runs, then the sweep's best."""
    if not wait:
        emit(submitted, as_json, _submitted_text)
        return
    if not as_json:
        typer.echo(_submitted_text(submitted))
    job_id, sweep = submitted["job_id"], submitted["sweep_id"]
    job = follow(client, job_id, sys.stderr)
    if str(job.status) != "SUCCEEDED":
        fail(client, job, sweep, root)
    best = results.best(root, sweep)
    emit({**submitted, "status": str(job.status), "best": best}, as_json, lambda d: best_text(d["best"]))


def follow(client: jobs_client.JobsClient, job_id: str, stream: IO[str]) -> Any:
    """Write the job's log to ``stream`` as it grows until the job ends; returns its final details.
    Ctrl-C stops only the following (a KeyboardInterrupt saying how to go on): the job goes on."""

    def write(chunk: str) -> None:
        stream.write(chunk)
        stream.flush()

    try:
        return client.follow(job_id, write)
    except KeyboardInterrupt:  # exit 130, as for every command; the job itself goes on
        raise KeyboardInterrupt(
            f"stopped following; job {job_id} goes on: 'sessrec jobs logs {job_id} --follow', "
            f"'sessrec jobs stop {job_id}'"
        ) from None


def fail(client: jobs_client.JobsClient, job: Any, sweep_id: str | None, root: str | None) -> None:
    """A job that ended without success: mark its sweep, raise its reason as one line."""
    logs = client.logs(job.submission_id)
    if sweep_id and root:
        try:
            jobs_client.settle_manifest(root, sweep_id, str(job.status).lower(), jobs_client.failure_reason(job, logs))
        except SessrecError:
            pass  # no access to the storage from here: the job's status says it all
    raise SessrecError(jobs_client.failure_reason(job, logs))


def _submitted_text(d: dict) -> str:
    run = f", run {d['run']}" if d.get("run") else ""
    lines = [f"submitted job {d['job_id']} (sweep {d['sweep_id']}{run}) to {d['address']}"]
    if d.get("uploaded"):
        up = d["uploaded"]
        lines.append(
            f"dataset   {d['dataset']} ({'uploaded' if up['new'] else 'already in storage'}, "
            f"sha256 {up['sha256'][:12]})"
        )
    lines.append(f"follow    sessrec jobs logs {d['job_id']} --follow")
    lines.append(f"results   sessrec results best {d['sweep_id']}")
    return "\n".join(lines)

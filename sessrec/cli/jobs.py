"""`sessrec jobs`: sessrec's jobs on a Ray cluster (Jobs API): list, status, logs, stop.
JOB is a job id or the id of the sweep it runs."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from sessrec import layout, storage

if TYPE_CHECKING:
    from sessrec import jobs_client
else:  # loaded on first use: `sessrec jobs --help` stays fast
    from sessrec.cli.lazy import lazy_module

    jobs_client = lazy_module("sessrec.jobs_client")
from sessrec.cli.common import JsonOption, emit
from sessrec.cli.submit import AddressOption, client_for, fail, follow
from sessrec.errors import SessrecError

app = typer.Typer(help="The sweeps' jobs on a Ray cluster: list, status, logs, stop.", no_args_is_help=True)
JobArgument = typer.Argument(metavar="JOB", help="Job id, or the sweep id of a submitted sweep.")


@app.command("list")
def list_(
    ctx: typer.Context,
    address: Annotated[str | None, AddressOption] = None,
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """The sweeps' jobs on the cluster, newest first."""
    rows = client_for(ctx, address).list()

    def human(rows: list[dict]) -> str:
        if not rows:
            return "no sessrec jobs"
        lines = [f"{'job':<48} {'status':<10} {'sweep':<40} started"]
        lines += [f"{r['job_id']:<48} {r['status']:<10} {r['sweep_id'] or '-':<40} {r['started'] or '-'}" for r in rows]
        return "\n".join(lines)

    emit(rows, as_json, human)


@app.command()
def status(
    ctx: typer.Context,
    job: Annotated[str, JobArgument],
    address: Annotated[str | None, AddressOption] = None,
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """Status of one job: state, sweep, times, Ray's message."""
    data = jobs_client.describe(client_for(ctx, address).resolve(job))
    emit(data, as_json, lambda d: "\n".join(f"{k:<9} {'-' if v is None else v}" for k, v in d.items()))


@app.command()
def logs(
    ctx: typer.Context,
    job: Annotated[str, JobArgument],
    follow_: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing until the job ends.")] = False,
    address: Annotated[str | None, AddressOption] = None,
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """The job's log (the driver's stdout and stderr)."""
    client = client_for(ctx, address)
    info = client.resolve(job)
    job_id = info.submission_id
    if follow_:
        info = client.wait(job_id) if as_json else follow(client, job_id, sys.stdout)
        if as_json:
            emit({"job_id": job_id, "status": str(info.status), "logs": client.logs(job_id)}, True)
        if str(info.status) != "SUCCEEDED":
            metadata = info.metadata or {}
            fail(client, info, metadata.get("sweep_id"), metadata.get("storage"))
        return
    text = client.logs(job_id)
    if as_json:
        emit({"job_id": job_id, "status": str(info.status), "logs": text}, True)
    else:
        typer.echo(text, nl=not text.endswith("\n"))


@app.command()
def stop(
    ctx: typer.Context,
    job: Annotated[str, JobArgument],
    address: Annotated[str | None, AddressOption] = None,
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """Stop a job; its sweep's partial results (manifest, checkpoints) stay in storage."""
    client = client_for(ctx, address)
    info = client.resolve(job)
    job_id = info.submission_id
    was_running = client.stop(job_id)
    info = client.wait(job_id, timeout=jobs_client.STOP_GRACE_S + 30)
    metadata = info.metadata or {}
    sweep_id, root = metadata.get("sweep_id"), metadata.get("storage")
    marked, stored = False, None
    if was_running and sweep_id and root and str(info.status) in jobs_client.TERMINAL:
        try:
            marked = jobs_client.settle_manifest(
                root, sweep_id, "stopped", f"job {job_id} stopped with 'sessrec jobs stop'"
            )
            stored = storage.exists(storage.join(layout.sweep_dir(root, sweep_id), layout.SPEC_FILE))
        except SessrecError:
            pass  # no access to the storage from here: the sweep's manifest keeps saying 'running'
    data = {
        "job_id": job_id,
        "sweep_id": sweep_id,
        "was_running": was_running,
        "status": str(info.status),
        "sweep_marked_stopped": marked,
        "sweep_stored": stored,
    }

    def human(d: dict) -> str:
        if not d["was_running"]:
            return f"job {d['job_id']} was not running ({d['status']})"
        if d["status"] not in jobs_client.TERMINAL:
            return (
                f"asked job {d['job_id']} to stop; it is still {d['status']} (see 'sessrec jobs status {d['job_id']}')"
            )
        text = f"stopped job {d['job_id']} ({d['status']})"
        if d["sweep_id"] and d["sweep_stored"] is False:
            text += (
                f"\nsweep {d['sweep_id']} had not begun: nothing of it is stored "
                "(submit it again under another --sweep-id)"
            )
        elif d["sweep_id"]:
            text += (
                f"\npartial results stay in storage: sessrec results show {d['sweep_id']}; "
                f"continue it: sessrec submit resume {d['sweep_id']}"
            )
        return text

    emit(data, as_json, human)

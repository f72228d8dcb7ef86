"""Sweeps in storage, local or S3 alike: list, show, best, fetch; and what removes what a sweep
left: delete it, prune its checkpoints. Promoting its best to a model is ``sessrec.promotion``."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from sessrec import formats, layout, outputs, storage
from sessrec.core.embeddings import word2vec_text_problem
from sessrec.errors import NotFoundError, SessrecError
from sessrec.sweep.checkpoints import checkpointed_trials
from sessrec.sweep.records import Lease, Status, SweepPaths, SweepRecord
from sessrec.sweep.trials import (
    CONFIG_PREFIX,
    EPOCHS_RUN,
    LAST_MRR,
    LAST_RECALL,
    POINT,
    STATE,
    TRIAL_ID,
    TrialsTable,
    TrialState,
    last_column,
)


def sweep_manifest(root: str, sweep_id: str) -> dict[str, Any]:
    """The sweep's manifest; a sweep not in ``root`` is a ``NotFoundError`` naming both."""
    try:
        return SweepRecord.read(SweepPaths(root, sweep_id)).manifest
    except NotFoundError:
        raise NotFoundError(f"no sweep {sweep_id!r} in {root}") from None


def list_sweeps(root: str) -> list[dict[str, Any]]:
    """The sweeps under ``root``, newest first (``results list`` prints them with the root it read)."""
    rows = []
    for sweep_id in storage.list_children(storage.join(root, layout.SWEEPS)):
        if not layout.NAME_PATTERN.match(sweep_id):
            continue
        try:
            manifest = sweep_manifest(root, sweep_id)
        except NotFoundError:
            continue  # a folder without a manifest is not a sweep (yet)
        except SessrecError as exc:  # listed, so that a damaged sweep is seen, not lost from view
            manifest = {"status": Status.DAMAGED.value, "problem": str(exc)}
        metric = manifest.get("metric", "recall_at_k")
        rows.append(
            {
                "sweep_id": sweep_id,
                "name": manifest.get("name"),
                "status": manifest.get("status"),
                "started": manifest.get("started"),
                "finished": manifest.get("finished"),
                "trials": manifest.get("trials", {}).get("total"),  # None until a run has finished
                "metric": metric,
                "best": manifest.get("best", {}).get(metric),
                "problem": manifest.get("problem"),  # why a sweep is listed as damaged
            }
        )
    return sorted(rows, key=lambda r: r["started"] or "", reverse=True)


def trials(root: str, sweep_id: str) -> pd.DataFrame:
    uri = storage.join(layout.sweep_dir(root, sweep_id), layout.TRIALS_FILE)
    try:
        data = storage.read_bytes(uri)
    except NotFoundError:
        sweep_manifest(root, sweep_id)
        raise NotFoundError(
            f"sweep {sweep_id!r} has no trials table yet "
            f"(still running, or interrupted: 'sessrec tune resume {sweep_id}')"
        ) from None
    return TrialsTable.from_parquet(data, uri).frame


def _trials_of(root: str, sweep_id: str, manifest: dict[str, Any]) -> tuple[pd.DataFrame, str]:
    """The trials table of a finished run, else (interrupted, stopped, still running) the
    trials as their checkpoints record them; and which of the two it is."""
    if manifest.get("trials"):
        return trials(root, sweep_id), "trials table"
    return checkpointed_trials(root, sweep_id), "checkpoints"


def _plain(value: Any) -> Any:
    """A table cell as JSON has it: NaN (a missing value) as None, NumPy scalars as Python's."""
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        value = value.item()
    return None if isinstance(value, float) and value != value else value


def trial_json(row: dict[str, Any]) -> dict[str, Any]:
    """One trial, in the one JSON shape of ``results show`` and ``results best``: its status, the
    epochs it trained, its final validation metrics (fractions) and its config, nested."""
    return {
        "trial_id": row[TRIAL_ID],
        "point": _plain(row.get(POINT)),
        "status": row[STATE],
        "epochs": _plain(row[EPOCHS_RUN]),
        "validation": {"recall_at_k": _plain(row.get(LAST_RECALL)), "mrr_at_k": _plain(row.get(LAST_MRR))},
        "config": {k[len(CONFIG_PREFIX) :]: _plain(v) for k, v in row.items() if k.startswith(CONFIG_PREFIX)},
    }


def show(root: str, sweep_id: str, limit: int | None = 10) -> dict[str, Any]:
    """A sweep's manifest and its ``limit`` best trials (None: all of them), best first: from the
    trials table of a finished run, else (interrupted, stopped, still running) from the trials'
    checkpoints."""
    manifest = sweep_manifest(root, sweep_id)
    table, source = _trials_of(root, sweep_id, manifest)
    top: list[dict[str, Any]] = []
    if len(table):
        metric = last_column(manifest.get("metric", "recall_at_k"))
        ordered = table.sort_values(metric, ascending=False, na_position="last", kind="stable")
        top = [trial_json(row) for row in (ordered if limit is None else ordered.head(limit)).to_dict("records")]
    return {
        "manifest": manifest,
        "metric": manifest.get("metric", "recall_at_k"),
        "trials_from": source,
        "top_trials": top,
    }


def best(root: str, sweep_id: str) -> dict[str, Any]:
    manifest = sweep_manifest(root, sweep_id)
    folder = layout.sweep_dir(root, sweep_id)
    config_uri, metrics_uri = (
        storage.join(folder, layout.BEST_DIR, name) for name in (layout.CONFIG_FILE, layout.METRICS_FILE)
    )
    try:
        config = formats.from_json(storage.read_bytes(config_uri), config_uri)
        metrics = formats.from_json(storage.read_bytes(metrics_uri), metrics_uri)
    except NotFoundError:
        raise NotFoundError(f"sweep {sweep_id!r} has no best result yet (status: {manifest.get('status')})") from None
    summary = {
        "sweep_id": sweep_id,
        "status": manifest.get("status"),
        "dataset": manifest["dataset"],
        "split": manifest.get("split"),
        "metric": manifest["metric"],
        "config": config,
        **metrics,
    }
    summary["trial"] = _best_trial(root, sweep_id, summary)
    return summary


def _best_trial(root: str, sweep_id: str, summary: dict[str, Any]) -> dict[str, Any]:
    """The best trial in the shape of ``results show``'s trials (from the trials table where it is
    there; else from the best's own files)."""
    try:
        table = trials(root, sweep_id)
        rows = table[table[TRIAL_ID] == summary.get("trial_id")].to_dict("records")
    except SessrecError:
        rows = []
    if rows:
        return trial_json(rows[0])
    config, epochs = summary["config"], summary.get("epochs")
    finished = isinstance(epochs, int) and epochs >= int(config.get("epochs", epochs))
    validation = summary.get("validation") or {}
    return {
        "trial_id": summary.get("trial_id"),
        "point": None,
        "status": (TrialState.COMPLETED if finished else TrialState.STOPPED_EARLY).value,
        "epochs": epochs,
        "validation": {"recall_at_k": validation.get("recall_at_k"), "mrr_at_k": validation.get("mrr_at_k")},
        "config": config,
    }


def write_report(root: str, sweep_id: str, to: str | None = None, overwrite: bool = False) -> list[str]:
    """Build the sweep's plots and HTML page into ``<sweep>/report/`` (rebuilt from the sweep's
    results each time) and into ``to``, if given (its files replaced only with ``overwrite``)."""
    from sessrec.report import build_report, log_scale_params

    manifest = sweep_manifest(root, sweep_id)
    table, _ = _trials_of(root, sweep_id, manifest)
    try:
        best_metrics = {k: v for k, v in best(root, sweep_id).items() if k not in ("config", "trial")}
    except NotFoundError:
        best_metrics = None  # every trial errored: the report still shows what happened
    spec_text = storage.read_text(SweepPaths(root, sweep_id).file(layout.SPEC_FILE))
    files = build_report(table, manifest, best_metrics, log_params=log_scale_params(spec_text))
    if to is not None:
        _refuse_to_replace(to, files, overwrite)
    folders = [storage.join(layout.sweep_dir(root, sweep_id), layout.REPORT_DIR)] + ([to] if to is not None else [])
    # index.html last in each folder: the page appears once its plots are there.
    return outputs.write_all(
        {storage.join(folder, name): content for folder in folders for name, content in files.items()}
    )


def fetch(root: str, sweep_id: str, to: str, overwrite: bool = False) -> tuple[list[str], str | None]:
    """Copy the best config, metrics and embeddings (Parquet, and word2vec text when the item
    ids allow it) to ``to`` (files already there replaced only with ``overwrite``); returns the
    files written and why the text format was left out, if it was."""
    summary = best(root, sweep_id)
    source = storage.join(layout.sweep_dir(root, sweep_id), layout.BEST_DIR)
    from sessrec import recommenders_store

    uri = storage.join(source, layout.EMBEDDINGS_FILE)
    target = Path(to)
    files: dict[str, bytes] = {}
    left_out = None
    try:
        data = storage.read_bytes(uri)
    except NotFoundError:
        data = None  # a best recommender without a word2vec part has no embeddings
    if data is not None:
        embeddings = formats.embeddings_from_parquet(data, uri)
        files[layout.EMBEDDINGS_FILE] = data
        left_out = word2vec_text_problem(embeddings.keys.tolist())
        if left_out is None:
            files[layout.EMBEDDINGS_TEXT_FILE] = embeddings.to_word2vec_text().encode("utf-8")
    # A session sweep's best is also a stored recommender (recommender.npz + recommender.json).
    files.update(recommenders_store.files_in(source))
    files[layout.CONFIG_FILE] = formats.to_json(summary["config"])
    files[layout.METRICS_FILE] = formats.to_json({k: v for k, v in summary.items() if k not in ("config", "trial")})
    _refuse_to_replace(to, files, overwrite)
    written = outputs.write_all({str(target / name): content for name, content in files.items()})
    return written, None if left_out is None else f"{layout.EMBEDDINGS_TEXT_FILE} left out: {left_out}"


def _refuse_to_replace(folder: str, names: Iterable[str], overwrite: bool) -> None:
    """A copy never replaces what the user already has in its folder unless told to: checked
    before anything is written, so a refused command changes nothing."""
    if not folder.strip():
        raise SessrecError("--to needs a folder")
    if not storage.is_s3(folder):
        if Path(folder).is_file():
            raise SessrecError(f"--to {folder}: a file, not a folder")
        if Path(folder).exists() and not Path(folder).is_dir():  # /dev/null, a FIFO: before any write
            raise SessrecError(f"--to {folder}: not a folder")
        # Checked even with --overwrite: a folder in a file's place would stop the copy half-way.
        folders = [name for name in names if (Path(folder) / name).is_dir()]
        if folders:
            raise SessrecError(f"{folder}/{folders[0]} is a folder; sessrec replaces files only: move it away first")
    present = [] if overwrite else [name for name in names if storage.exists(storage.join(folder, name))]
    if present:
        shown = ", ".join(present[:3]) + (f" and {len(present) - 3} more" if len(present) > 3 else "")
        raise SessrecError(f"{folder} already has {shown}; pass --overwrite to replace them")


# -- delete, prune ---------------------------------------------------------------------------------


def size_text(size: int) -> str:
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor:
            return f"{size:,} bytes ({size / factor:.1f} {unit})"
    return f"{size:,} bytes"


def _sweep_files(root: str, sweep_id: str) -> list[tuple[str, int]]:
    return list(storage.walk_file_sizes(layout.sweep_dir(root, sweep_id)))


def running_reason(root: str, sweep_id: str, manifest: dict[str, Any]) -> str | None:
    """Why a sweep counts as running (None: it does not): its manifest says so, or a fresh lease."""
    # A fresh lease means a driver runs the sweep now, whatever the manifest says.
    if (holder := Lease.held_by(SweepPaths(root, sweep_id))) is not None:
        return f"its lease is held by {holder}"
    if manifest.get("status") == Status.RUNNING.value:
        return "its manifest says running"
    return None


def delete(root: str, sweep_id: str, yes: bool = False, force: bool = False) -> dict[str, Any]:
    """Remove a sweep's folder: refused while it runs (unless ``force``) and without ``yes``. The
    manifest goes first (the sweep leaves ``results list`` at once), its spec (its id's claim) last."""
    folder = layout.sweep_dir(root, sweep_id)
    files = _sweep_files(root, sweep_id)
    if not files:
        raise NotFoundError(f"no sweep {sweep_id!r} in {root}")
    try:
        manifest = sweep_manifest(root, sweep_id)
    except NotFoundError:
        manifest = {"status": Status.RUNNING.value}  # claimed, its first manifest not yet written
    except SessrecError:
        manifest = {"status": Status.DAMAGED.value}
    reason = running_reason(root, sweep_id, manifest)
    if reason is not None and not force:
        raise SessrecError(
            f"sweep {sweep_id!r} is running ({reason}); stop it first, or pass --force if its driver is gone"
        )
    total = sum(size for _, size in files)
    if not yes:
        raise SessrecError(
            f"deleting sweep {sweep_id!r} removes {len(files)} files, {size_text(total)}, "
            f"from {root}; pass --yes to delete it"
        )
    outputs.WRITING.set()  # an interrupt lets the removal finish
    names = [path for path, _ in files]
    first = [n for n in names if n == layout.MANIFEST_FILE]
    last = [n for n in names if n == layout.SPEC_FILE]
    for group in (first, [n for n in names if n not in first and n not in last], last):
        if group:
            storage.delete_below(folder, group)
    return {"sweep_id": sweep_id, "storage": root, "action": "deleted", "files": len(files), "bytes_freed": total}


def prune(root: str, sweep_id: str, yes: bool = False, force: bool = False) -> dict[str, Any]:
    """Remove a completed sweep's Tune checkpoints (``tune/``) and its word2vec epoch cache
    (``word2vec/``, regenerable) and keep its manifest, spec, trials table, best and report; a
    sweep that can still be resumed is refused unless ``force``."""
    manifest = sweep_manifest(root, sweep_id)
    reason = running_reason(root, sweep_id, manifest)
    status = manifest.get("status")
    if not force:
        if reason is not None:
            raise SessrecError(f"sweep {sweep_id!r} is running ({reason}); its checkpoints are in use")
        if status != Status.COMPLETED.value:
            raise SessrecError(
                f"sweep {sweep_id!r} is {status}: 'tune resume' goes on from its checkpoints; "
                "pass --force to remove them anyway"
            )
    folder = layout.sweep_dir(root, sweep_id)
    removed = {
        storage.join(folder, name): list(storage.walk_file_sizes(storage.join(folder, name)))
        for name in (layout.TUNE_DIR, layout.WORD2VEC_CACHE_DIR)
    }
    files = [file for found in removed.values() for file in found]
    total = sum(size for _, size in files)
    if files and not yes:
        raise SessrecError(
            f"pruning sweep {sweep_id!r} removes {len(files)} checkpoint files, {size_text(total)}; "
            "pass --yes to remove them"
        )
    if files:
        outputs.WRITING.set()
        for below, found in removed.items():
            if found:
                storage.delete_below(below, [path for path, _ in found])
    kept = [layout.MANIFEST_FILE, layout.SPEC_FILE, layout.TRIALS_FILE, layout.BEST_DIR, layout.REPORT_DIR]
    return {
        "sweep_id": sweep_id,
        "storage": root,
        "action": "pruned",
        "files": len(files),
        "bytes_freed": total,
        "kept": kept,
    }

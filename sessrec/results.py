"""Reading sweeps back from storage, local or S3 alike: list, show, best, fetch."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from sessrec import formats, layout, outputs, storage
from sessrec.core.embeddings import word2vec_text_problem
from sessrec.errors import NotFoundError, SessrecError


def _manifest(root: str, sweep_id: str) -> dict[str, Any]:
    uri = storage.join(layout.sweep_dir(root, sweep_id), layout.MANIFEST_FILE)
    try:
        return formats.sweep_manifest_from_json(storage.read_bytes(uri), uri)
    except NotFoundError:
        raise NotFoundError(f"no sweep {sweep_id!r} in {root}") from None


def list_sweeps(root: str) -> list[dict[str, Any]]:
    rows = []
    for sweep_id in storage.list_children(storage.join(root, layout.SWEEPS)):
        if not layout.NAME_PATTERN.match(sweep_id):
            continue
        try:
            manifest = _manifest(root, sweep_id)
        except NotFoundError:
            continue  # a folder without a manifest is not a sweep (yet)
        except SessrecError as exc:  # listed, so that a damaged sweep is seen, not lost from view
            manifest = {"status": "damaged", "problem": str(exc)}
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
        _manifest(root, sweep_id)
        raise NotFoundError(f"sweep {sweep_id!r} has no trials table yet (still running, or interrupted: 'sessrec tune resume {sweep_id}')") from None
    return formats.read_parquet(data, uri).to_pandas()


def _trials_of(root: str, sweep_id: str, manifest: dict[str, Any]) -> tuple[pd.DataFrame, str]:
    """The trials table of a finished run, else (interrupted, stopped, still running) the
    trials as their checkpoints record them; and which of the two it is."""
    if manifest.get("trials"):
        return trials(root, sweep_id), "trials table"
    from sessrec.tuning import checkpointed_trials  # the checkpoints' format is the sweep's own

    return checkpointed_trials(root, sweep_id), "checkpoints"


def show(root: str, sweep_id: str) -> dict[str, Any]:
    """A sweep's manifest and its ten best trials: from the trials table of a finished run, else
    (interrupted, stopped, still running) from the trials' checkpoints."""
    manifest = _manifest(root, sweep_id)
    table, source = _trials_of(root, sweep_id, manifest)
    top: list[dict[str, Any]] = []
    if len(table):
        metric = f"last_{manifest.get('metric', 'recall_at_k')}"
        columns = ["trial_id", "state", "epochs_run", metric, *[c for c in table.columns if c.startswith("config.")]]
        top = table.sort_values(metric, ascending=False, na_position="last")[columns].head(10).to_dict("records")
    return {"manifest": manifest, "trials_from": source, "top_trials": top}


def best(root: str, sweep_id: str) -> dict[str, Any]:
    manifest = _manifest(root, sweep_id)
    folder = layout.sweep_dir(root, sweep_id)
    config_uri, metrics_uri = (storage.join(folder, layout.BEST_DIR, name) for name in (layout.CONFIG_FILE, layout.METRICS_FILE))
    try:
        config = formats.from_json(storage.read_bytes(config_uri), config_uri)
        metrics = formats.from_json(storage.read_bytes(metrics_uri), metrics_uri)
    except NotFoundError:
        raise NotFoundError(f"sweep {sweep_id!r} has no best result yet (status: {manifest.get('status')})") from None
    return {"sweep_id": sweep_id, "status": manifest.get("status"), "dataset": manifest["dataset"], "split": manifest.get("split"),
            "metric": manifest["metric"], "config": config, **metrics}


def write_report(root: str, sweep_id: str, to: str | None = None, overwrite: bool = False) -> list[str]:
    """Build the sweep's plots and HTML page into ``<sweep>/report/`` (rebuilt from the sweep's
    results each time) and into ``to``, if given (its files replaced only with ``overwrite``)."""
    from sessrec.report import build_report

    manifest = _manifest(root, sweep_id)
    table, _ = _trials_of(root, sweep_id, manifest)
    try:
        best_metrics = {k: v for k, v in best(root, sweep_id).items() if k != "config"}
    except NotFoundError:
        best_metrics = None  # every trial errored: the report still shows what happened
    files = build_report(table, manifest, best_metrics)
    if to is not None:
        _refuse_to_replace(to, files, overwrite)
    folders = [storage.join(layout.sweep_dir(root, sweep_id), layout.REPORT_DIR)] + ([to] if to is not None else [])
    # index.html last in each folder: the page appears once its plots are there.
    return outputs.write_all({storage.join(folder, name): content for folder in folders for name, content in files.items()})


def fetch(root: str, sweep_id: str, to: str, overwrite: bool = False) -> tuple[list[str], str | None]:
    """Copy the best config, metrics and embeddings (Parquet, and word2vec text when the item
    ids allow it) to ``to`` (files already there replaced only with ``overwrite``); returns the
    files written and why the text format was left out, if it was."""
    summary = best(root, sweep_id)
    source = storage.join(layout.sweep_dir(root, sweep_id), layout.BEST_DIR)
    uri = storage.join(source, layout.EMBEDDINGS_FILE)
    data = storage.read_bytes(uri)
    embeddings = formats.embeddings_from_parquet(data, uri)
    target = Path(to)
    files = {layout.EMBEDDINGS_FILE: data}
    left_out = word2vec_text_problem(embeddings.keys.tolist())
    if left_out is None:
        files[layout.EMBEDDINGS_TEXT_FILE] = embeddings.to_word2vec_text().encode("utf-8")
    files[layout.CONFIG_FILE] = formats.to_json(summary["config"])
    files[layout.METRICS_FILE] = formats.to_json({k: v for k, v in summary.items() if k != "config"})
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
        # Checked even with --overwrite: a folder in a file's place would stop the copy half-way.
        folders = [name for name in names if (Path(folder) / name).is_dir()]
        if folders:
            raise SessrecError(f"{folder}/{folders[0]} is a folder; sessrec replaces files only: move it away first")
    present = [] if overwrite else [name for name in names if storage.exists(storage.join(folder, name))]
    if present:
        shown = ", ".join(present[:3]) + (f" and {len(present) - 3} more" if len(present) > 3 else "")
        raise SessrecError(f"{folder} already has {shown}; pass --overwrite to replace them")

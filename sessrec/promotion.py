"""Promotion: a sweep's best model copied to ``models/NAME`` with its provenance, optionally only
when it beats the model there (``--if-better``), every decision kept in the model's
``promotions.json``."""

from __future__ import annotations

from typing import Any

from sessrec import formats, layout, outputs, storage
from sessrec.errors import NotFoundError, SessrecError
from sessrec.results import best, sweep_manifest

#: Promotion decisions kept in a model's ``promotions.json`` (the newest; older ones drop off).
PROMOTIONS_KEPT = 200


def _current_model(root: str, name: str) -> dict[str, Any] | None:
    """The completion file of the model stored as ``name`` (recommender.json or metrics.json), or None."""
    from sessrec import recommenders_store

    kind = recommenders_store.existing_model(root, name)
    if kind is None:
        return None
    marker = layout.RECOMMENDER_FILE if kind == "recommender" else layout.METRICS_FILE
    uri = storage.join(layout.model_dir(root, name), marker)
    meta = formats.from_json(storage.read_bytes(uri), uri)
    if not isinstance(meta, dict):
        raise SessrecError(f"{uri} is not a model's description (a JSON object)")
    return meta


def _figures_record(
    origin: dict[str, Any],
    dataset_sha256: Any,
    split: Any,
    validation: dict[str, Any],
    test: dict[str, Any],
    metric: str,
) -> dict[str, Any]:
    """What a promotion compares of a model: ``origin`` (its sweep id, and its trial id where the
    record has one), where it was evaluated and its figures of ``metric`` (fractions)."""
    return {
        **origin,
        "dataset_sha256": dataset_sha256,
        "split": split,
        "k": validation.get("k", test.get("k")),
        "mode": validation.get("mode", test.get("mode", "item")),
        "validation": validation.get(metric),
        "test": test.get(metric),
    }


def _figures(meta: dict[str, Any], metric: str) -> dict[str, Any]:
    """The figures record of a stored model, from its completion file, with when it was made."""
    validation: dict[str, Any] = meta["validation"] if isinstance(meta.get("validation"), dict) else {}
    test: dict[str, Any] = meta["test"] if isinstance(meta.get("test"), dict) else {}
    promotion: dict[str, Any] = meta["promotion"] if isinstance(meta.get("promotion"), dict) else {}
    origin = {"sweep_id": promotion.get("sweep_id")}
    return {
        **_figures_record(origin, meta.get("dataset_sha256"), meta.get("split"), validation, test, metric),
        "created": promotion.get("promoted_at") or meta.get("created"),
    }


def _not_comparable(new: dict[str, Any], current: dict[str, Any]) -> str | None:
    """Why two models' figures cannot be compared (None: they can): another dataset, split, K or mode."""
    for key, what in (("dataset_sha256", "dataset (sha256)"), ("split", "split"), ("k", "K"), ("mode", "mode")):
        if current.get(key) != new.get(key):
            theirs, ours = current.get(key), new.get(key)
            if key == "dataset_sha256":
                theirs, ours = str(theirs)[:12], str(ours)[:12]
            return f"another {what}: {theirs}, not {ours}"
    if not isinstance(current.get("validation"), (int, float)):
        return "it records no validation figure of this metric"
    return None


def _history(root: str, name: str) -> list[dict[str, Any]]:
    uri = storage.join(layout.model_dir(root, name), layout.PROMOTIONS_FILE)
    try:
        history = formats.from_json(storage.read_bytes(uri, storage.MAX_DOCUMENT_BYTES), uri)
    except NotFoundError:
        return []
    return history if isinstance(history, list) else []


def promote(root: str, sweep_id: str, name: str, if_better: bool = False, force: bool = False) -> dict[str, Any]:
    """Copy the sweep's best model to ``models/NAME`` with its provenance in the completion file
    (written last, so ``serve`` reloads a whole model). With ``if_better``, only when its validation
    figure of the sweep's metric beats the current model's (a tie keeps the current; test figures
    are recorded, never decide). A current model on another dataset, split, K or mode is refused
    unless ``force``. Every decision is added to ``models/NAME/promotions.json``."""
    folder = layout.model_dir(root, name)
    manifest = sweep_manifest(root, sweep_id)
    summary = best(root, sweep_id)
    source = storage.join(layout.sweep_dir(root, sweep_id), layout.BEST_DIR)
    present = set(storage.list_children(source))
    recommender = set(layout.RECOMMENDER_MODEL_FILES) <= present
    if not recommender and layout.EMBEDDINGS_FILE not in present:
        raise SessrecError(f"sweep {sweep_id!r} has no best model files in {source}")
    metric = str(manifest["metric"])
    validation, test = dict(summary["validation"]), dict(summary["test"])
    dataset = manifest.get("dataset") or {}
    origin = {"sweep_id": sweep_id, "trial_id": summary.get("trial_id")}
    new = _figures_record(origin, dataset.get("sha256"), manifest.get("split"), validation, test, metric)
    current_meta = _current_model(root, name)
    current = None if current_meta is None else _figures(current_meta, metric)
    problem = None if current is None else _not_comparable(new, current)
    if problem is not None and problem.startswith("another") and not force:
        raise SessrecError(f"model {name!r} in {root} was evaluated on {problem}; pass --force to replace it")
    if if_better and current is not None and problem is None and not new["validation"] > current["validation"]:
        decision = "kept"
    else:
        decision = "promoted"
    at = formats.now()
    record = {
        "decision": decision,
        "at": at,
        "model": name,
        "sweep_id": sweep_id,
        "metric": metric,
        "if_better": if_better,
        "forced": bool(force and problem),
        "not_comparable": problem,
        "new": new,
        "current": current,
    }
    history = (_history(root, name) + [record])[-PROMOTIONS_KEPT:]
    files: dict[str, bytes | None] = {}
    if decision == "promoted":
        provenance = {
            "sweep_id": sweep_id,
            "trial_id": summary.get("trial_id"),
            "metric": metric,
            "mode": new["mode"],
            "promoted_at": at,
            "if_better": if_better,
            "previous": current,
        }
        common = {
            "dataset": dataset.get("uri"),
            "dataset_sha256": dataset.get("sha256"),
            "split": manifest.get("split"),
            "validation": validation,
            "test": test,
            "created": at,
            "promotion": provenance,
        }
        if recommender:
            arrays = storage.read_bytes(storage.join(source, layout.RECOMMENDER_ARRAYS_FILE))
            meta_uri = storage.join(source, layout.RECOMMENDER_FILE)
            meta = {**formats.from_json(storage.read_bytes(meta_uri), meta_uri), **common, "name": name}
            files = {storage.join(folder, f): None for f in reversed(layout.WORD2VEC_MODEL_FILES)}
            files[storage.join(folder, layout.RECOMMENDER_ARRAYS_FILE)] = arrays
            marker = (storage.join(folder, layout.RECOMMENDER_FILE), formats.to_json(meta))
        else:
            embeddings = storage.read_bytes(storage.join(source, layout.EMBEDDINGS_FILE))
            config = summary["config"]
            files = {
                storage.join(folder, f): None
                for f in (
                    layout.RECOMMENDER_FILE,
                    layout.RECOMMENDER_ARRAYS_FILE,
                    layout.EMBEDDINGS_TEXT_FILE,
                    layout.CURVE_FILE,
                )
            }
            files[storage.join(folder, layout.EMBEDDINGS_FILE)] = embeddings
            files[storage.join(folder, layout.CONFIG_FILE)] = formats.to_json(
                {"config": config, "dataset": dataset.get("uri"), "split": manifest.get("split"), "k": new["k"]}
            )
            marker = (
                storage.join(folder, layout.METRICS_FILE),
                formats.to_json({"model": name, **common, "config": config}),
            )
        files[storage.join(folder, layout.PROMOTIONS_FILE)] = formats.to_json(history)
        files[marker[0]] = marker[1]  # last: marks the new version whole (serve reloads on it)
    else:
        files[storage.join(folder, layout.PROMOTIONS_FILE)] = formats.to_json(history)
    outputs.write_all(files)
    return {**record, "uri": folder}

"""The laptop pipeline: each function is one CLI command's work, joining the pure core to
storage. Outputs land in the documented layout (see ``sessrec.layout``)."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from sessrec import __version__, formats, layout, outputs, storage
from sessrec.core import baselines
from sessrec.core.embeddings import Embeddings, word2vec_text_problem
from sessrec.core.metrics import evaluate
from sessrec.core.sessions import Sessions, filter_min_length, sessions_from_transactions
from sessrec.core.split import Split, next_item_split
from sessrec.core.synth import synth_sessions
from sessrec.core.word2vec import Word2VecConfig, embeddings_of, fit
from sessrec.errors import NotFoundError, SessrecError


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Dataset:
    sessions: Sessions
    uri: str
    sha256: str


def sessions_from_bytes(data: bytes, uri: str) -> Sessions:
    """Sessions from a JSONL (.jsonl, .json) or Parquet file (.parquet, .pq, or no suffix)."""
    name = uri.rstrip("/").rpartition("/")[2]
    suffix = name[name.rfind(".") :].lower() if "." in name else ""
    if suffix in (".jsonl", ".json"):
        return formats.sessions_from_jsonl(data, uri)
    if suffix in (".parquet", ".pq", ""):
        return formats.sessions_from_parquet(data, uri)
    raise SessrecError(
        f"{uri}: a sessions file is Parquet or JSONL (.parquet, .jsonl); "
        "make a dataset from a transactions table with 'sessrec data prepare'"
    )


def load_dataset(ref: str, root: str) -> Dataset:
    """A dataset by name (under the storage root) or a sessions file (Parquet or JSONL) by URI."""
    if layout.is_file_ref(ref):
        sessions = sessions_from_bytes(storage.read_bytes(ref), ref)
        return Dataset(sessions, ref, sessions.content_sha256())
    folder = layout.dataset_dir(root, ref)
    manifest_uri = storage.join(folder, layout.MANIFEST_FILE)
    try:
        manifest = formats.from_json(storage.read_bytes(manifest_uri), manifest_uri)
    except NotFoundError:
        raise NotFoundError(f"no dataset {ref!r} in {root} (run 'sessrec data prepare' or 'sessrec data synth')") from None
    uri = storage.join(folder, layout.SESSIONS_FILE)
    sessions = formats.sessions_from_parquet(storage.read_bytes(uri), uri)
    sha = sessions.content_sha256()
    if sha != manifest.get("sha256"):
        raise SessrecError(f"dataset {ref!r} is corrupt: its sessions do not match the sha256 in its manifest")
    return Dataset(sessions, uri, sha)


def dataset_manifest(ref: str, root: str) -> dict[str, Any]:
    if layout.is_file_ref(ref):
        dataset = load_dataset(ref, root)
        return {"uri": ref, "sha256": dataset.sha256, **dataset.sessions.stats()}
    path = storage.join(layout.dataset_dir(root, ref), layout.MANIFEST_FILE)
    try:
        return formats.from_json(storage.read_bytes(path), path)
    except NotFoundError:
        raise NotFoundError(f"no dataset {ref!r} in {root}") from None


def check_dataset(ref: str, root: str) -> str:
    """One line when the dataset's manifest and sessions are readable with the current settings and
    agree (the preflight of `helm test`); raises with one line otherwise."""
    dataset = load_dataset(ref, root)
    where = ref if layout.is_file_ref(ref) else f"{ref} in {root}"
    return f"ok: dataset {where}: {len(dataset.sessions):,} sessions readable, sha256 {dataset.sha256[:12]}"


def save_dataset(sessions: Sessions, name: str, root: str, source: dict[str, Any], overwrite: bool) -> dict[str, Any]:
    """Write sessions then the manifest, together (see ``sessrec.outputs``)."""
    folder = layout.dataset_dir(root, name)
    manifest_uri = storage.join(folder, layout.MANIFEST_FILE)
    if not overwrite and storage.exists(manifest_uri):
        raise SessrecError(f"dataset {name!r} already exists in {root}; pass --overwrite to replace it")
    manifest = {
        "name": name,
        "sha256": sessions.content_sha256(),
        **sessions.stats(),
        "source": source,
        "created": now(),
        "sessrec_version": __version__,
    }
    sessions_uri = storage.join(folder, layout.SESSIONS_FILE)
    outputs.write_all({sessions_uri: formats.sessions_to_parquet(sessions), manifest_uri: formats.to_json(manifest)})
    return manifest


def prepare(
    input_uri: str,
    name: str,
    root: str,
    fmt: str | None = None,
    encoding: str = "ISO-8859-1",
    min_length: int = 3,
    overwrite: bool = False,
    **columns_and_filters: Any,
) -> dict[str, Any]:
    layout.check_name(name, "dataset name")
    fmt = fmt or _guess_format(input_uri)
    data = storage.read_bytes(input_uri)
    if fmt == "jsonl":
        sessions = filter_min_length(formats.sessions_from_jsonl(data, input_uri), min_length)
    else:
        table = formats.read_transactions(data, fmt, encoding, input_uri)
        sessions = sessions_from_transactions(table, min_length=min_length, **columns_and_filters)
    # A local path is recorded absolute: the manifest outlives the folder the command ran in.
    uri = input_uri if storage.is_s3(input_uri) else str(Path(input_uri).resolve())
    source = {"uri": uri, "format": fmt, "min_length": min_length, **columns_and_filters}
    if fmt == "csv":
        source["encoding"] = encoding
    return save_dataset(sessions, name, root, source, overwrite)


def _guess_format(uri: str) -> str:
    for suffix, fmt in ((".csv", "csv"), (".csv.gz", "csv"), (".parquet", "parquet"), (".jsonl", "jsonl")):
        if uri.lower().endswith(suffix):
            return fmt
    raise SessrecError(f"cannot tell the format of {uri}; pass --format csv|parquet|jsonl")


def synth(name: str, root: str, overwrite: bool = False, **params: Any) -> dict[str, Any]:
    layout.check_name(name, "dataset name")
    return save_dataset(synth_sessions(**params), name, root, {"synthetic": params}, overwrite)


def split_dataset(dataset: Dataset, seed: int, n: int) -> Split:
    return next_item_split(dataset.sessions, n, seed)


def baseline(ref: str, root: str, method: str, seed: int, n: int, k: int) -> dict[str, Any]:
    if method not in baselines.METHODS:
        raise SessrecError(f"unknown baseline {method!r}; choose one of {', '.join(baselines.METHODS)}")
    dataset = load_dataset(ref, root)
    split = split_dataset(dataset, seed, n)
    scorer = baselines.build(method, split.train)
    return {
        "method": method,
        "dataset": dataset.uri,
        "dataset_sha256": dataset.sha256,
        "split": {"seed": seed, "n": n},
        "validation": evaluate(scorer, split.validation.queries, split.validation.targets, k),
        "test": evaluate(scorer, split.test.queries, split.test.targets, k),
    }


def train(
    ref: str,
    root: str,
    name: str,
    config: Word2VecConfig,
    seed: int,
    n: int,
    k: int,
    overwrite: bool = False,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    export_word2vec: bool = False,
) -> dict[str, Any]:
    """Train one model, evaluating on validation after every epoch and on test once at the end.
    Every output is made before the first is written, so a failure writes nothing."""
    folder = layout.model_dir(root, name)
    metrics_uri = storage.join(folder, layout.METRICS_FILE)
    if not overwrite and storage.exists(metrics_uri):
        raise SessrecError(f"model {name!r} already exists in {root}; pass --overwrite to replace it")
    dataset = load_dataset(ref, root)
    split = split_dataset(dataset, seed, n)
    if export_word2vec and (problem := word2vec_text_problem(_trained_items(split.train, config.min_count))):
        raise SessrecError(f"--export word2vec: {problem}")  # before training, not after
    curve: list[dict[str, Any]] = []
    started = time.perf_counter()

    def record(epoch: int, metrics: dict[str, float], _model) -> None:
        curve.append({"epoch": epoch, **metrics, "elapsed_s": round(time.perf_counter() - started, 3)})
        if on_epoch is not None:
            on_epoch(epoch, metrics)

    model = fit(config, split.train.to_lists(), split.validation, k, on_epoch=record)
    embeddings = embeddings_of(model)
    result = {
        "model": name,
        "dataset": dataset.uri,
        "dataset_sha256": dataset.sha256,
        "split": {"seed": seed, "n": n},
        "config": config.to_dict(),
        "validation": curve[-1] if curve else {},
        "test": evaluate(embeddings, split.test.queries, split.test.targets, k),
        "train_seconds": round(time.perf_counter() - started, 3),
        "created": now(),
    }
    files: dict[str, bytes | None] = {
        layout.EMBEDDINGS_FILE: formats.embeddings_to_parquet(embeddings),
        layout.CONFIG_FILE: formats.to_json({"config": config.to_dict(), "dataset": dataset.uri, "split": result["split"], "k": k}),
        layout.CURVE_FILE: formats.to_json(curve),
    }
    # Without --export, an export of the model this one replaces goes: it would not match.
    files[layout.EMBEDDINGS_TEXT_FILE] = embeddings.to_word2vec_text().encode("utf-8") if export_word2vec else None
    files = {storage.join(folder, name): content for name, content in files.items()}
    files[metrics_uri] = formats.to_json(result)  # last: marks the model complete
    outputs.write_all(files)
    return result


def _trained_items(sessions: Sessions, min_count: int) -> list[str]:
    """The items word2vec keeps: those seen at least ``min_count`` times."""
    return sessions.vocab[sessions.item_counts() >= min_count].tolist()


def load_embeddings(ref: str, root: str) -> Embeddings:
    """Embeddings by URI (Parquet, or word2vec text with a .txt/.vec suffix) or by model name."""
    if not layout.is_file_ref(ref):
        ref = storage.join(layout.model_dir(root, ref), layout.EMBEDDINGS_FILE)
    data = storage.read_bytes(ref)
    if ref.endswith((".txt", ".vec")):
        try:
            return Embeddings.from_word2vec_text(data.decode("utf-8"))
        except UnicodeDecodeError:
            raise SessrecError(f"{ref} is not UTF-8 text") from None
        except SessrecError as exc:  # the parser does not know the file's name
            raise SessrecError(f"{ref}: {exc}") from None
    return formats.embeddings_from_parquet(data, ref)

"""Stored session recommenders (``sessrec fit``), and what ``sessrec recommend`` writes.

A fitted recommender is two files under ``models/<name>/`` (names in :mod:`sessrec.layout`):
``recommender.npz``, its arrays (``np.savez``; read back with ``allow_pickle=False``, so a file
holding pickled objects is refused, never unpickled), and ``recommender.json``, its parameters,
catalogue size, dataset, split and metrics (each naming its mode) and the sha256 of the arrays.
The JSON is written last: it marks the model complete, and a model whose arrays no longer match
it is refused as corrupt.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from sessrec import formats, layout, storage
from sessrec.core.recommenders import SessionScorer, from_arrays
from sessrec.errors import NotFoundError, SessrecError

#: ``recommender.json``'s "kind": what tells a stored recommender from other JSON.
KIND = "session-recommender"


def arrays_to_npz(arrays: Mapping[str, np.ndarray]) -> bytes:
    """The arrays as ``.npz`` bytes; an object array (which ``np.savez`` would pickle) is refused."""
    for key, value in arrays.items():
        if np.asarray(value).dtype.hasobject:
            raise SessrecError(
                f"recommender array {key!r} holds Python objects; only numeric or text arrays are stored"
            )
    sink = io.BytesIO()
    # Any: numpy's stub types savez's **kwds as arrays, but mypy checks an unpacked dict against
    # the keyword parameters too (allow_pickle: bool).
    named: dict[str, Any] = {key: np.asarray(value) for key, value in arrays.items()}
    np.savez(sink, **named)
    return sink.getvalue()


def arrays_from_npz(data: bytes, what: str) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` read without pickle: anything else is a one-line SessrecError."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise SessrecError(f"{what} is a single array, not an .npz archive of a recommender's arrays")
            return {key: npz[key] for key in npz.files}
    except SessrecError:
        raise
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise SessrecError(f"{what} is not a readable arrays-only .npz ({reason})") from None


def sha256(data: bytes) -> str:
    """The hex SHA-256 digest of ``data``."""
    return hashlib.sha256(data).hexdigest()


def model_files(root: str, name: str) -> tuple[str, str]:
    """(arrays URI, description URI): the recommender.npz and recommender.json of model ``name``
    under ``root``."""
    folder = layout.model_dir(root, name)
    return storage.join(folder, layout.RECOMMENDER_ARRAYS_FILE), storage.join(folder, layout.RECOMMENDER_FILE)


def existing_model(root: str, name: str) -> str | None:
    """The kind of model stored as ``name`` ("recommender", "word2vec"), or None."""
    folder = layout.model_dir(root, name)
    if storage.exists(storage.join(folder, layout.RECOMMENDER_FILE)):
        return "recommender"
    if storage.exists(storage.join(folder, layout.METRICS_FILE)):
        return "word2vec"
    return None


def files_to_write(root: str, name: str, model: SessionScorer, meta: dict[str, Any]) -> dict[str, bytes | None]:
    """``uri -> content`` for :func:`sessrec.outputs.write_all`, in order: the files of a word2vec
    model this one replaces go first (its metrics.json first of all), the JSON that marks the
    recommender complete last. ``meta`` gains the parameters, catalogue size and the arrays' sha256."""
    data = arrays_to_npz(model.to_arrays())
    folder = layout.model_dir(root, name)
    files: dict[str, bytes | None] = {
        storage.join(folder, file): None for file in reversed(layout.WORD2VEC_MODEL_FILES)
    }
    arrays_uri, json_uri = model_files(root, name)
    meta.update(kind=KIND, params=model.params(), n_items=int(model.n_items), arrays_sha256=sha256(data))
    files[arrays_uri] = data
    files[json_uri] = formats.to_json(meta)
    return files


def load_meta(root: str, name: str) -> dict[str, Any]:
    """The description (recommender.json) of the recommender stored as ``name``; none is a
    ``NotFoundError``, a word2vec model or a malformed description a SessrecError."""
    _, json_uri = model_files(root, name)
    try:
        meta = formats.from_json(storage.read_bytes(json_uri), json_uri)
    except NotFoundError:
        if existing_model(root, name) == "word2vec":
            raise SessrecError(
                f"model {name!r} is a word2vec model (from 'sessrec train'), not a session recommender; "
                f"use --embeddings {name}"
            ) from None
        raise NotFoundError(f"no recommender {name!r} in {root} (fit one with 'sessrec fit')") from None
    _check_description(meta, json_uri)
    return meta


def _check_description(meta: Any, json_uri: str) -> None:
    """A stored recommender's description has its kind, parameters, size and the arrays' sha256."""
    if (
        not isinstance(meta, dict)
        or meta.get("kind") != KIND
        or not isinstance(meta.get("params"), dict)
        or not isinstance(meta.get("n_items"), int)
        or not isinstance(meta.get("arrays_sha256"), str)
    ):
        raise SessrecError(
            f"{json_uri} is not a stored recommender's description (kind, params, n_items, arrays_sha256)"
        )


def load(root: str, name: str) -> tuple[SessionScorer, dict[str, Any]]:
    """The fitted recommender stored as ``name`` and its description; one-line errors when it is
    missing, another kind of model, corrupt, or not arrays-only."""
    meta = load_meta(root, name)
    arrays_uri, _ = model_files(root, name)
    return from_stored(name, meta, arrays_uri)


def load_folder(folder: str, what: str) -> tuple[SessionScorer, dict[str, Any], bytes]:
    """The recommender in ``folder`` (a model's, a sweep's best, any URI), its description and the
    description's exact bytes (what marks this version: ``sessrec serve`` watches it for changes)."""
    json_uri = storage.join(folder, layout.RECOMMENDER_FILE)
    description = storage.read_bytes(json_uri)
    meta = formats.from_json(description, json_uri)
    _check_description(meta, json_uri)
    model, meta = from_stored(what, meta, storage.join(folder, layout.RECOMMENDER_ARRAYS_FILE))
    return model, meta, description


def from_stored(name: str, meta: dict[str, Any], arrays_uri: str) -> tuple[SessionScorer, dict[str, Any]]:
    """The recommender ``meta`` describes, from its arrays at ``arrays_uri``, checked against the sha256."""
    try:
        data = storage.read_bytes(arrays_uri)
    except NotFoundError:
        raise SessrecError(f"model {name!r} is incomplete: {arrays_uri} is missing") from None
    if sha256(data) != meta["arrays_sha256"]:
        raise SessrecError(
            f"model {name!r} is corrupt: {layout.RECOMMENDER_ARRAYS_FILE} does not match "
            f"the sha256 in {layout.RECOMMENDER_FILE}"
        )
    arrays = arrays_from_npz(data, arrays_uri)
    try:
        model = from_arrays(arrays, meta["params"])
    except SessrecError as exc:
        raise SessrecError(f"model {name!r}: {exc}") from None
    except (ValueError, IndexError, KeyError, TypeError) as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise SessrecError(
            f"model {name!r} is corrupt: its arrays do not make a {meta['params'].get('model')} recommender ({reason})"
        ) from None
    if model.n_items != meta["n_items"]:
        raise SessrecError(
            f"model {name!r} is corrupt: {model.n_items} items in its arrays, {meta['n_items']} in its description"
        )
    return model, meta


def files_in(folder: str) -> dict[str, bytes]:
    """A stored recommender's files in ``folder`` (a model's, or a sweep's best), checked to belong
    together, as ``name -> content`` for a copy (``results fetch``); {} when it holds none."""
    json_uri = storage.join(folder, layout.RECOMMENDER_FILE)
    try:
        description = storage.read_bytes(json_uri)
    except NotFoundError:
        return {}
    meta = formats.from_json(description, json_uri)
    arrays_uri = storage.join(folder, layout.RECOMMENDER_ARRAYS_FILE)
    data = storage.read_bytes(arrays_uri)
    if not isinstance(meta, dict) or sha256(data) != meta.get("arrays_sha256"):
        raise SessrecError(f"{arrays_uri} does not match the sha256 in {layout.RECOMMENDER_FILE}")
    return {layout.RECOMMENDER_ARRAYS_FILE: data, layout.RECOMMENDER_FILE: description}


# -- many sessions in, their recommendations out ----------------------------------------------


def sessions_from_jsonl(data: bytes, what: str) -> tuple[list[int], list[list[str]]]:
    """(line numbers, sessions) of a JSONL file of JSON arrays of item strings; blank lines are
    skipped, an empty session or anything else is a one-line error naming its line."""
    numbers, sessions = [], []
    for number, session in formats.jsonl_sessions(data, what):
        if not session:
            raise SessrecError(f"{what} line {number}: the session is empty; a session needs at least one item")
        numbers.append(number)
        sessions.append(session)
    if not sessions:
        raise SessrecError(f"{what} holds no sessions")
    return numbers, sessions


OUTPUT_SUFFIXES = (".jsonl", ".parquet")


def output_format(uri: str) -> str:
    """The format of the output file ``uri`` by its suffix (any case), "jsonl" or "parquet"; any
    other suffix is a SessrecError."""
    for suffix in OUTPUT_SUFFIXES:
        if uri.lower().endswith(suffix):
            return suffix[1:]
    raise SessrecError(f"--to {uri}: name a .jsonl or a .parquet file")


def rows_to_bytes(rows: Sequence[dict[str, Any]], fmt: str) -> bytes:
    """Rows of (line, items, names, scores, unknown) as JSONL or Parquet (a name: None where unknown)."""
    if fmt == "jsonl":
        return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8")
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "line": pa.array([row["line"] for row in rows], type=pa.int64()),
            "items": pa.array([row["items"] for row in rows], type=pa.list_(pa.string())),
            "names": pa.array([row["names"] for row in rows], type=pa.list_(pa.string())),
            "scores": pa.array([row["scores"] for row in rows], type=pa.list_(pa.float64())),
            "unknown": pa.array([row["unknown"] for row in rows], type=pa.list_(pa.string())),
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()

"""File formats: bytes in, plain objects out (and back). No paths or URIs here.

- sessions: Parquet with one ``items: list<string>`` column; JSONL with one JSON array per line.
- transactions: CSV (any encoding) or Parquet, one row per purchase.
- embeddings: Parquet with ``item: string`` and ``vector: fixed_size_list<float32>`` (written; read: also
  ``list``/``large_list`` of equal-length rows, of any float or integer type).
- item names: Parquet with ``item: string`` and ``name: string``, one row per named item.
- times in records (``created``, ``started``, ...): ISO 8601 in UTC, to the second (``now``).
"""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Iterator
from typing import Any

import jsonschema
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sessrec.core.embeddings import Embeddings, finite_float32
from sessrec.core.sessions import Sessions
from sessrec.errors import SessrecError
from sessrec.spec import METRICS


def now() -> str:
    """The current time as stored records write it: ISO 8601 in UTC, to the second."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def read_parquet(data: bytes, what: str) -> pa.Table:
    """The table in Parquet ``data``, read on the calling thread only; unreadable data is a
    SessrecError that starts with ``what``."""
    try:
        # On the caller's thread only (use_threads=False; also for to_pandas below): a read must
        # start no Arrow CPU-pool threads. A pool thread still busy with a read's last references
        # (the reader holds `data`, a Python object) as the interpreter finalizes is ended by
        # pthread_exit when it waits for the GIL, and that unwinding through std::thread's
        # noexcept frame aborts the process after the command did its work ("terminate called
        # without an active exception", exit -6/134; apache/arrow#34314, #45017). Not
        # pq.read_table either: its dataset scanner uses the pools too. The tables sessrec reads
        # (sessions, embeddings, trials, transactions) gain little from column-parallel decoding.
        return pq.ParquetFile(pa.BufferReader(data)).read(use_threads=False)
    except (pa.ArrowException, OSError) as exc:
        raise SessrecError(f"{what} is not a readable Parquet file: {str(exc).splitlines()[0]}") from None


def _write_parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def sessions_to_parquet(sessions: Sessions) -> bytes:
    """Sessions as Parquet bytes: one ``items: list<string>`` row per session."""
    # Dictionary-decode in Arrow rather than building millions of Python strings.
    dictionary = pa.array(sessions.vocab.tolist(), type=pa.string())
    items = pa.DictionaryArray.from_arrays(pa.array(sessions.codes, type=pa.int32()), dictionary).cast(pa.string())
    column = pa.ListArray.from_arrays(pa.array(sessions.offsets, type=pa.int64()).cast(pa.int32()), items)
    return _write_parquet(pa.table({"items": column}))


def sessions_from_parquet(data: bytes, what: str = "sessions file") -> Sessions:
    """Sessions from Parquet bytes with an ``items`` column of lists of strings; no such column,
    another type or nulls are a SessrecError."""
    table = read_parquet(data, what)
    if "items" not in table.column_names:
        raise SessrecError(f"{what} has no 'items' column (columns: {', '.join(table.column_names)})")
    column = table.column("items").combine_chunks()
    if not pa.types.is_list(column.type) and not pa.types.is_large_list(column.type):
        raise SessrecError(f"{what}: column 'items' must be a list of strings, got {column.type}")
    if column.null_count or column.values.null_count:
        raise SessrecError(f"{what}: column 'items' contains nulls")
    if not pa.types.is_string(column.type.value_type) and not pa.types.is_large_string(column.type.value_type):
        raise SessrecError(f"{what}: items must be strings, got {column.type.value_type}")
    offsets = np.asarray(column.offsets, dtype=np.int64)
    encoded = column.values.slice(offsets[0], offsets[-1] - offsets[0]).dictionary_encode()
    return Sessions(
        vocab=np.asarray(encoded.dictionary.to_pylist(), dtype=object),
        codes=np.asarray(encoded.indices, dtype=np.int32),
        offsets=offsets - offsets[0],
    )


def jsonl_sessions(data: bytes, what: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, session) for each non-blank line of a JSONL file of JSON arrays of item
    strings; anything else is a one-line error naming its line."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SessrecError(f"{what} is not UTF-8 text") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            session = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SessrecError(f"{what} line {number}: malformed JSON ({exc.msg})") from None
        except RecursionError:
            raise SessrecError(f"{what} line {number}: nested too deeply to be a session") from None
        if not isinstance(session, list) or not all(isinstance(item, str) for item in session):
            raise SessrecError(f"{what} line {number}: expected a JSON array of strings")
        if "\\u" in line:  # only an escape can give an unpaired surrogate (\ud800): no text, unstorable
            for position, item in enumerate(session, start=1):
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    raise SessrecError(
                        f"{what} line {number}: item {position} holds an unpaired surrogate escape "
                        "(\\ud800-\\udfff), not text"
                    ) from None
        yield number, session


def sessions_from_jsonl(data: bytes, what: str = "sessions file") -> Sessions:
    """Sessions from JSONL bytes, one JSON array of item strings per non-blank line; a bad line, or
    no session at all, is a SessrecError."""
    sessions = [session for _, session in jsonl_sessions(data, what)]
    if not sessions:
        raise SessrecError(f"{what} holds no sessions")
    return Sessions.from_lists(sessions)


def read_transactions(
    data: bytes, fmt: str, encoding: str = "ISO-8859-1", what: str = "transactions file"
) -> pd.DataFrame:
    """The transactions table of CSV (``fmt`` "csv": every column as text, decoded as ``encoding``)
    or Parquet ("parquet"); empty or unreadable data, another format or an unknown encoding is a
    SessrecError."""
    if not data.strip():
        raise SessrecError(f"{what} is empty")
    if fmt == "parquet":
        return read_parquet(data, what).to_pandas(use_threads=False)  # no pool threads: see read_parquet
    if fmt != "csv":
        raise SessrecError(f"unknown format {fmt!r}: use csv or parquet (transactions) or jsonl (sessions)")
    try:
        # Everything as text: item codes such as 85123A and 22423 must stay strings.
        return pd.read_csv(io.BytesIO(data), encoding=encoding, dtype=str)
    except LookupError:
        raise SessrecError(f"unknown encoding {encoding!r}") from None
    except UnicodeDecodeError as exc:
        raise SessrecError(
            f"{what} is not valid {encoding} text ({_decode_error_place(data, encoding, exc)}); pass --encoding"
        ) from None
    except UnicodeError as exc:  # a decoder's own check, e.g. UTF-16 without a byte order mark
        raise SessrecError(f"{what} is not valid {encoding} text ({exc}); pass --encoding") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise SessrecError(f"{what} is not a readable CSV file: {str(exc).splitlines()[0]}") from None


def _decode_error_place(data: bytes, encoding: str, exc: UnicodeDecodeError) -> str:
    """Where the bad byte is in the file: pandas decodes in chunks, so its error's offset counts
    from the start of a chunk; decoding the whole file again (on this error path only) gives the
    offset in the file, and the line for encodings where a newline is the byte 0x0a."""
    try:
        data.decode(encoding)
        return f"{exc.reason}"
    except UnicodeDecodeError as whole:
        place = f"{whole.reason} at byte {whole.start}"
        try:
            ascii_newlines = "\n".encode(encoding) == b"\n"
        except (LookupError, UnicodeError):
            ascii_newlines = False
        line = data.count(b"\n", 0, whole.start) + 1
        return f"{place}, line {line}" if ascii_newlines else place


def embeddings_to_parquet(embeddings: Embeddings) -> bytes:
    """Embeddings as Parquet bytes: ``item: string`` and ``vector: fixed_size_list<float32>``."""
    flat = pa.array(embeddings.vectors.reshape(-1), type=pa.float32())
    vectors = pa.FixedSizeListArray.from_arrays(flat, embeddings.dims)
    return _write_parquet(pa.table({"item": pa.array(embeddings.keys.tolist(), type=pa.string()), "vector": vectors}))


def embeddings_from_parquet(data: bytes, what: str = "embeddings file") -> Embeddings:
    """Embeddings from Parquet bytes with an ``item`` text column and a ``vector`` column of
    equal-length lists of numbers (made float32); nulls, unequal or empty vectors, NaN or infinite
    values are a SessrecError."""
    table = read_parquet(data, what)
    if not {"item", "vector"} <= set(table.column_names):
        raise SessrecError(f"{what} needs columns 'item' and 'vector' (has: {', '.join(table.column_names)})")
    items = table.column("item")
    if not pa.types.is_string(items.type) and not pa.types.is_large_string(items.type):
        raise SessrecError(f"{what}: column 'item' must hold text ids, got {items.type}")
    if items.null_count:
        raise SessrecError(f"{what}: column 'item' must hold text ids without nulls ({items.null_count} null)")
    vectors = table.column("vector").combine_chunks()
    # fixed_size_list is what sessrec writes; pandas and most other writers give list<double>.
    list_type = vectors.type
    if not (pa.types.is_fixed_size_list(list_type) or pa.types.is_list(list_type) or pa.types.is_large_list(list_type)):
        raise SessrecError(f"{what}: column 'vector' must hold lists of numbers, got {vectors.type}")
    value_type = vectors.type.value_type
    if not pa.types.is_floating(value_type) and not pa.types.is_integer(value_type):
        raise SessrecError(f"{what}: column 'vector' must hold numbers, got lists of {value_type}")
    if not len(vectors):
        raise SessrecError(f"{what} holds no vectors")
    if vectors.null_count:
        raise SessrecError(f"{what}: column 'vector' holds {vectors.null_count} null vector(s)")
    values = vectors.flatten()  # only the values the rows use, whatever the offsets
    if values.null_count:
        raise SessrecError(f"{what}: vectors hold {values.null_count} null value(s)")
    lengths = pc.list_value_length(vectors)
    shortest, longest = pc.min(lengths).as_py(), pc.max(lengths).as_py()
    if shortest != longest:
        raise SessrecError(f"{what}: vectors must all have the same length; rows have {shortest} to {longest} values")
    if longest == 0:
        raise SessrecError(f"{what}: vectors are empty")
    matrix = finite_float32(values.to_numpy(zero_copy_only=False).reshape(len(vectors), -1), f"{what}: vectors hold")
    return Embeddings(np.asarray(items.to_pylist(), dtype=object), matrix)


def names_to_parquet(names: dict[str, str]) -> bytes:
    """Item names (item -> name) as Parquet bytes: ``item`` and ``name`` text columns, sorted by
    item."""
    items = sorted(names)
    return _write_parquet(
        pa.table(
            {
                "item": pa.array(items, type=pa.string()),
                "name": pa.array([names[item] for item in items], type=pa.string()),
            }
        )
    )


def names_from_parquet(data: bytes, what: str = "item names file") -> dict[str, str]:
    """``item -> name`` from Parquet bytes with text columns ``item`` and ``name``; a missing
    column, another type or nulls are a SessrecError."""
    table = read_parquet(data, what)
    if not {"item", "name"} <= set(table.column_names):
        raise SessrecError(f"{what} needs columns 'item' and 'name' (has: {', '.join(table.column_names)})")
    columns = {}
    for column in ("item", "name"):
        values = table.column(column)
        if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)) or values.null_count:
            raise SessrecError(f"{what}: column {column!r} must hold text without nulls, got {values.type}")
        columns[column] = values.to_pylist()
    return dict(zip(columns["item"], columns["name"], strict=True))


def to_json(value: Any) -> bytes:
    """``value`` as indented UTF-8 JSON (non-ASCII characters kept as they are), ending in a
    newline."""
    return (json.dumps(value, indent=2, sort_keys=False, ensure_ascii=False) + "\n").encode("utf-8")


def from_json(data: bytes, what: str) -> Any:
    """The value of UTF-8 JSON ``data``; anything else is a SessrecError that starts with
    ``what``."""
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SessrecError(f"{what} is not valid JSON ({exc})") from None


_TEXT = {"type": "string"}
#: What sessrec reads from a sweep manifest, with the types it reads them as.
SWEEP_MANIFEST_SCHEMA = {
    "type": "object",
    "required": ["status", "metric", "dataset"],
    "properties": {
        "status": _TEXT,
        "metric": {"enum": list(METRICS)},
        "dataset": {"type": "object", "required": ["uri", "sha256"], "properties": {"uri": _TEXT, "sha256": _TEXT}},
        "trials": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}},
        "best": {"type": "object"},
        "runs": {"type": "integer", "minimum": 1},
        **dict.fromkeys(("started", "finished", "resumed", "interrupted"), _TEXT),
    },
}


def sweep_manifest_from_json(data: bytes, what: str) -> dict:
    """A sweep manifest from JSON bytes, checked against :data:`SWEEP_MANIFEST_SCHEMA`; a mismatch
    is a SessrecError naming where."""
    manifest = from_json(data, what)
    try:
        jsonschema.validate(manifest, SWEEP_MANIFEST_SCHEMA)
    except jsonschema.ValidationError as exc:
        where = ".".join(str(part) for part in exc.absolute_path) or "top level"
        raise SessrecError(f"{what} is not a sweep manifest ({where}: {exc.message[:200]})") from None
    return manifest

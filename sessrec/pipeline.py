"""The laptop pipeline: each function is one CLI command's work, joining the pure core to
storage. Outputs land in the documented layout (see ``sessrec.layout``).

Over 400 lines: one short function per command (data and its item names, baselines, train, fit,
recommend), each joining the core to storage in a few lines; split by command they would share
most imports."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from sessrec import __version__, formats, layout, outputs, recommenders_store, storage
from sessrec.core import baselines
from sessrec.core.embeddings import Embeddings, word2vec_text_problem
from sessrec.core.item_names import DEFAULT_NAME_COLUMN, item_names
from sessrec.core.metrics import evaluate
from sessrec.core.recommenders import Component, Hybrid, SessionScorer, catalogue
from sessrec.core.recommenders import build as build_recommender
from sessrec.core.recommenders import check_params as check_recommender_params
from sessrec.core.recommenders.hybrid import params_components
from sessrec.core.recommenders.registry import WORD2VEC_MODELS
from sessrec.core.recommenders.word2vec_session import OWN_PARAMS as W2V_SESSION_PARAMS
from sessrec.core.session_metrics import EXCLUDES, evaluate_sessions, session_pairs
from sessrec.core.session_metrics import recommend as recommend_for_sessions
from sessrec.core.sessions import Sessions, filter_min_length, sessions_from_transactions
from sessrec.core.split import Split, next_item_split
from sessrec.core.synth import synth_sessions
from sessrec.core.word2vec import Word2VecConfig, embeddings_of, fit, one_blas_thread
from sessrec.errors import NotFoundError, SessrecError, StorageError

if TYPE_CHECKING:
    from sessrec.core.recommenders.word2vec_item import Word2VecItem


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
        raise NotFoundError(
            f"no dataset {ref!r} in {root} (run 'sessrec data prepare' or 'sessrec data synth')"
        ) from None
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


def _folder_names(folder: str, sha256: str | None) -> dict[str, str] | None:
    """The item names the dataset in ``folder`` keeps ({} if none); None when the folder holds no
    dataset, or (``sha256`` given) one with other sessions. A names file its manifest does not
    vouch for (missing, or another sha256) is a one-line error, as corrupt sessions are."""
    manifest_uri = storage.join(folder, layout.MANIFEST_FILE)
    try:
        manifest = formats.from_json(storage.read_bytes(manifest_uri), manifest_uri)
    except NotFoundError:
        return None
    if not isinstance(manifest, dict) or (sha256 is not None and manifest.get("sha256") != sha256):
        return None
    entry = manifest.get("names")
    if not isinstance(entry, dict):
        return {}
    uri = storage.join(folder, layout.NAMES_FILE)
    try:
        data = storage.read_bytes(uri)
    except NotFoundError:
        raise SessrecError(f"{uri} is missing, though its dataset's manifest lists item names") from None
    if hashlib.sha256(data).hexdigest() != entry.get("sha256"):
        raise SessrecError(f"{uri} is corrupt: it does not match the sha256 in its dataset's manifest")
    return formats.names_from_parquet(data, uri)


def load_item_names(ref: str, root: str) -> dict[str, str]:
    """A dataset's item names, ``id -> name`` ({} when it keeps none): by dataset name, or by its
    sessions URI (``.../datasets/NAME/sessions.parquet``); any other sessions file has none."""
    if layout.is_file_ref(ref):
        if layout.dataset_of_sessions_uri(ref) is None:
            return {}
        folder = ref.rstrip("/").rpartition("/")[0]
    else:
        folder = layout.dataset_dir(root, ref)
    names = _folder_names(folder, None)
    if names is None:
        raise NotFoundError(f"no dataset {ref!r} in {root}")
    return names


def recorded_item_names(root: str, dataset: str | None, sha256: str | None) -> dict[str, str]:
    """The item names of the dataset a model or sweep records as its provenance (``dataset``: its
    name or sessions URI; ``sha256``: its ``dataset_sha256``), ``id -> name``; {} where none are
    known: no record, a sessions file outside a dataset folder, a dataset without names, or one
    since replaced by other sessions. Looked up by the dataset's name under ``root`` first (a
    recorded local URI may be relative to another folder), then at the recorded URI; only a
    dataset with the recorded sha256 counts. For ``serve`` and ``recommend``."""
    if not dataset or not sha256:
        return {}
    if layout.is_file_ref(dataset):
        name = layout.dataset_of_sessions_uri(dataset)
        if name is None:
            return {}
        candidates = [layout.dataset_dir(root, name), dataset.rstrip("/").rpartition("/")[0]]
    elif layout.NAME_PATTERN.match(dataset) and len(dataset) <= layout.MAX_NAME_LENGTH:
        candidates = [layout.dataset_dir(root, dataset)]
    else:
        return {}
    for folder in dict.fromkeys(candidates):
        names = _folder_names(folder, sha256)
        if names is not None:
            return names
    return {}


def model_item_names(root: str, ref: str) -> dict[str, str]:
    """Item names for what a model recommends: those of the dataset it was trained or fitted on,
    found through the dataset it records (a model name; a sweep id: the sweep's dataset); {} for
    an embeddings file or where unknown (see ``recorded_item_names``). A model folder (a fetched
    copy) finds them through the dataset its files record, as a stored model does."""
    folder, sweep_id = model_source(root, ref)
    if sweep_id is not None:  # a sweep's best: its manifest records the dataset
        uri = storage.join(layout.sweep_dir(root, sweep_id), layout.MANIFEST_FILE)
        try:
            manifest = formats.from_json(storage.read_bytes(uri), uri)
        except NotFoundError:
            return {}
        dataset = manifest.get("dataset") if isinstance(manifest, dict) else None
        if not isinstance(dataset, dict):
            return {}
        return recorded_item_names(root, dataset.get("uri"), dataset.get("sha256"))
    for marker in (layout.RECOMMENDER_FILE, layout.METRICS_FILE):
        uri = storage.join(folder, marker)
        try:
            meta = formats.from_json(storage.read_bytes(uri), uri)
        except NotFoundError:
            continue
        except StorageError:  # an embeddings file, not a model folder: it records no dataset
            return {}
        return (
            recorded_item_names(root, meta.get("dataset"), meta.get("dataset_sha256")) if isinstance(meta, dict) else {}
        )
    return {}


def save_dataset(
    sessions: Sessions,
    name: str,
    root: str,
    source: dict[str, Any],
    overwrite: bool,
    names: dict[str, str] | None = None,
    name_col: str | None = None,
) -> dict[str, Any]:
    """Write the item names (if any), the sessions, then the manifest, together (see
    ``sessrec.outputs``). A dataset replaced by one without names loses the old names."""
    folder = layout.dataset_dir(root, name)
    manifest_uri = storage.join(folder, layout.MANIFEST_FILE)
    if not overwrite and storage.exists(manifest_uri):
        raise SessrecError(f"dataset {name!r} already exists in {root}; pass --overwrite to replace it")
    names_bytes = formats.names_to_parquet(names) if names else None
    manifest = {
        "name": name,
        "sha256": sessions.content_sha256(),
        **sessions.stats(),
        "names": None
        if names_bytes is None
        else {"column": name_col, "items": len(names or {}), "sha256": hashlib.sha256(names_bytes).hexdigest()},
        "source": source,
        "created": formats.now(),
        "sessrec_version": __version__,
    }
    outputs.write_all(
        {
            storage.join(folder, layout.NAMES_FILE): names_bytes,
            storage.join(folder, layout.SESSIONS_FILE): formats.sessions_to_parquet(sessions),
            manifest_uri: formats.to_json(manifest),
        }
    )
    return manifest


def prepare(
    input_uri: str,
    name: str,
    root: str,
    fmt: str | None = None,
    encoding: str = "ISO-8859-1",
    min_length: int = 3,
    overwrite: bool = False,
    name_col: str | None = None,
    no_names: bool = False,
    **columns_and_filters: Any,
) -> dict[str, Any]:
    """A dataset from a transactions table (or a sessions JSONL). Item names come from ``name_col``
    (which must then exist), else from the UCI ``Description`` column when the table has one;
    ``no_names`` keeps none."""
    layout.check_name(name, "dataset name")
    if no_names and name_col is not None:
        raise SessrecError("--name-col and --no-names contradict each other; give one")
    fmt = fmt or _guess_format(input_uri)
    if fmt == "jsonl" and name_col is not None:
        raise SessrecError("--name-col is for transactions tables; a sessions JSONL has no columns (and no names)")
    data = storage.read_bytes(input_uri)
    names: dict[str, str] = {}
    used_col = None
    if fmt == "jsonl":
        sessions = filter_min_length(formats.sessions_from_jsonl(data, input_uri), min_length)
    else:
        table = formats.read_transactions(data, fmt, encoding, input_uri)
        if name_col is not None and name_col not in table.columns:
            raise SessrecError(
                f"--name-col {name_col!r} is not a column of {input_uri} "
                f"(columns: {', '.join(map(str, table.columns))}); pass --no-names to keep no names"
            )
        sessions = sessions_from_transactions(table, min_length=min_length, **columns_and_filters)
        wanted = name_col if name_col is not None else DEFAULT_NAME_COLUMN
        if not no_names and wanted in table.columns:
            item_col = columns_and_filters.get("item_col", "StockCode")
            names, used_col = item_names(table, item_col, wanted, sessions.vocab.tolist()), wanted
    # A local path is recorded absolute: the manifest outlives the folder the command ran in.
    uri = input_uri if storage.is_s3(input_uri) else str(Path(input_uri).resolve())
    source = {"uri": uri, "format": fmt, "min_length": min_length, **columns_and_filters}
    if fmt != "jsonl":
        source["name_col"] = used_col
    if fmt == "csv":
        source["encoding"] = encoding
    return save_dataset(sessions, name, root, source, overwrite, names, used_col)


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


#: Session-mode baselines: name -> (recommender, parameters), settings from the protocol's
#: measurements (SR over the last 3 items, decay 0.3; multi-step transitions; log-count repeat).
SESSION_BASELINES: dict[str, tuple[str, dict[str, Any]]] = {
    "sr": ("sr", {"steps": 20, "weighting": "gap", "last_n": 3, "decay": 0.3}),
    "session-transitions": ("transitions", {"last_n": 3, "decay": 0.5}),
    "repeat": ("repeat", {"transform": "log"}),
}
#: Every baseline: the item-mode ones (the seed-comparable figures) first.
BASELINE_METHODS = (*baselines.METHODS, *SESSION_BASELINES)


def baseline_mode(method: str) -> str:
    return "item" if method in baselines.METHODS else "session"


def baseline(ref: str, root: str, method: str, seed: int, n: int, k: int, exclude: str = "query") -> dict[str, Any]:
    """One baseline's validation and test metrics. Item-mode baselines score the query alone and
    exclude only it (``exclude`` applies to the session-mode ones); every figure names both."""
    if method not in BASELINE_METHODS:
        raise SessrecError(f"unknown baseline {method!r}; choose one of {', '.join(BASELINE_METHODS)}")
    if exclude not in EXCLUDES:
        raise SessrecError(f"exclude must be one of {', '.join(EXCLUDES)}, got {exclude!r}")
    dataset = load_dataset(ref, root)
    if method in SESSION_BASELINES:
        name, params = SESSION_BASELINES[method]
        test, validation = session_pairs(dataset.sessions, n, seed)
        model = build_recommender(name, params).fit(dataset.sessions.drop_last())
        return {
            "method": method,
            "mode": "session",
            "exclude": exclude,
            "params": model.params(),
            "dataset": dataset.uri,
            "dataset_sha256": dataset.sha256,
            "split": {"seed": seed, "n": n},
            "validation": evaluate_sessions(model, validation.sessions, validation.targets, k, "session", exclude),
            "test": evaluate_sessions(model, test.sessions, test.targets, k, "session", exclude),
        }
    split = split_dataset(dataset, seed, n)
    scorer = baselines.build(method, split.train)
    named = {"mode": "item", "exclude": "query"}
    return {
        "method": method,
        **named,
        "dataset": dataset.uri,
        "dataset_sha256": dataset.sha256,
        "split": {"seed": seed, "n": n},
        "validation": {**evaluate(scorer, split.validation.queries, split.validation.targets, k), **named},
        "test": {**evaluate(scorer, split.test.queries, split.test.targets, k), **named},
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
    if not overwrite and recommenders_store.existing_model(root, name):
        raise SessrecError(f"model {name!r} already exists in {root}; pass --overwrite to replace it")
    dataset = load_dataset(ref, root)
    split = split_dataset(dataset, seed, n)
    if export_word2vec and (problem := word2vec_text_problem(_trained_items(split.train, config.min_count))):
        raise SessrecError(f"--export word2vec: {problem}")  # before training, not after
    curve: list[dict[str, Any]] = []
    started = time.perf_counter()

    def record(epoch: int, metrics: dict[str, float], _model: Any) -> None:
        curve.append({"epoch": epoch, **metrics, "elapsed_s": round(time.perf_counter() - started, 3)})
        if on_epoch is not None:
            on_epoch(epoch, metrics)

    model = fit(config, split.train.to_lists(), split.validation, k, on_epoch=record)
    embeddings = embeddings_of(model)
    with one_blas_thread():  # as each epoch's evaluation: no BLAS threads left spinning while it writes
        test = evaluate(embeddings, split.test.queries, split.test.targets, k)
    result = {
        "model": name,
        "dataset": dataset.uri,
        "dataset_sha256": dataset.sha256,
        "split": {"seed": seed, "n": n},
        "config": config.to_dict(),
        "validation": curve[-1] if curve else {},
        "test": test,
        "train_seconds": round(time.perf_counter() - started, 3),
        "created": formats.now(),
    }
    files: dict[str, bytes | None] = {
        layout.EMBEDDINGS_FILE: formats.embeddings_to_parquet(embeddings),
        layout.CONFIG_FILE: formats.to_json(
            {"config": config.to_dict(), "dataset": dataset.uri, "split": result["split"], "k": k}
        ),
        layout.CURVE_FILE: formats.to_json(curve),
    }
    # Without --export, an export of the model this one replaces goes: it would not match.
    files[layout.EMBEDDINGS_TEXT_FILE] = embeddings.to_word2vec_text().encode("utf-8") if export_word2vec else None
    # A session recommender this model replaces goes, its description (what marks it) first.
    files = {layout.RECOMMENDER_FILE: None, layout.RECOMMENDER_ARRAYS_FILE: None, **files}
    files = {storage.join(folder, name): content for name, content in files.items()}
    files[metrics_uri] = formats.to_json(result)  # last: marks the model complete
    outputs.write_all(files)
    return result


def _trained_items(sessions: Sessions, min_count: int) -> list[str]:
    """The items word2vec keeps: those seen at least ``min_count`` times."""
    return sessions.vocab[sessions.item_counts() >= min_count].tolist()


def load_embeddings(ref: str, root: str) -> Embeddings:
    """Embeddings by URI (Parquet, or word2vec text with a .txt/.vec suffix), by model name, or
    by sweep id (its best)."""
    if not layout.is_file_ref(ref):
        ref = storage.join(named_model_folder(root, ref), layout.EMBEDDINGS_FILE)
    data = storage.read_bytes(ref)
    if ref.endswith((".txt", ".vec")):
        try:
            return Embeddings.from_word2vec_text(data.decode("utf-8"))
        except UnicodeDecodeError:
            raise SessrecError(f"{ref} is not UTF-8 text") from None
        except SessrecError as exc:  # the parser does not know the file's name
            raise SessrecError(f"{ref}: {exc}") from None
    return formats.embeddings_from_parquet(data, ref)


def model_source(root: str, ref: str) -> tuple[str, str | None]:
    """(folder, sweep id or None) of a model reference: a folder URI (a fetched or promoted copy; a
    file in it, such as its recommender.json, names it too), a model name (``models/NAME``), or a
    sweep id (its ``best/``). Any other name reads ``models/NAME``, whose absence reads 'not found'."""
    if layout.is_file_ref(ref):
        folder = ref.rstrip("/")
        for marker in (layout.RECOMMENDER_FILE, layout.METRICS_FILE, layout.EMBEDDINGS_FILE):
            if folder.endswith("/" + marker):
                folder = folder[: -len(marker) - 1]
        return folder, None
    if recommenders_store.existing_model(root, ref):
        return layout.model_dir(root, ref), None
    best = storage.join(layout.sweep_dir(root, ref), layout.BEST_DIR)
    if any(storage.exists(storage.join(best, marker)) for marker in (layout.RECOMMENDER_FILE, layout.METRICS_FILE)):
        return best, ref
    return layout.model_dir(root, ref), None


def named_model_folder(root: str, name: str) -> str:
    """The folder of a model reference (:func:`model_source`)."""
    return model_source(root, name)[0]


def is_word2vec_model(root: str, name: str) -> bool:
    """Whether ``name`` (a model, or a sweep's best) is word2vec embeddings, not a session recommender."""
    folder = named_model_folder(root, name)
    return not storage.exists(storage.join(folder, layout.RECOMMENDER_FILE)) and storage.exists(
        storage.join(folder, layout.EMBEDDINGS_FILE)
    )


# -- stored session recommenders (sessrec fit, sessrec recommend --model) ----------------------


@dataclass(frozen=True)
class StoredEmbeddings:
    """A word2vec model's embeddings for the w2v parts of a recommender, with their provenance."""

    embeddings: Embeddings
    config: dict[str, Any]
    source: dict[str, Any]


def _w2v_params(what: str, model: str, params: dict[str, Any], config: dict[str, Any] | None) -> dict[str, Any]:
    """A word2vec recommender's parameters: its scoring ones as given, its training ones from the
    stored model's ``config`` (a recommender never trains word2vec itself; None: none was given)."""
    allowed = set(W2V_SESSION_PARAMS) if model == "w2v_session" else set()
    extra = sorted(set(params) - allowed)
    if extra:
        settable = f"only {', '.join(sorted(allowed))} can be set" if allowed else "it takes no parameters"
        raise SessrecError(
            f"{what}: {', '.join(extra)} come(s) from the word2vec model given by --embeddings; {settable}"
        )
    if config is None:
        raise SessrecError(f"{what} needs --embeddings NAME: the embeddings of a word2vec model ('sessrec train')")
    return {**config, **params}


def check_fit_params(model: str, params: dict[str, Any], config: dict[str, Any] | None) -> dict[str, Any]:
    """The parameters checked (one-line errors), defaults filled in, word2vec ones from ``config``."""
    if model == "hybrid":
        components = []
        for i, component in enumerate(params_components(params)):
            component = dict(component)
            sub = component.get("model")
            if sub in WORD2VEC_MODELS:
                own = {k: v for k, v in component.items() if k not in ("model", "weight", "normalise")}
                rest = {k: v for k, v in component.items() if k in ("model", "weight", "normalise")}
                component = {**rest, **_w2v_params(f"hybrid component {i} ({sub})", sub, own, config)}
            components.append(component)
        return check_recommender_params("hybrid", {**params, "components": components})
    if model in WORD2VEC_MODELS:
        return check_recommender_params(model, _w2v_params(f"recommender {model}", model, params, config))
    return check_recommender_params(model, params)


def uses_embeddings(model: str, checked: dict[str, Any]) -> bool:
    if model == "hybrid":
        return any(c["model"] in WORD2VEC_MODELS for c in checked["components"])
    return model in WORD2VEC_MODELS


def _fitted(model: str, checked: dict[str, Any], train: Sessions, stored: StoredEmbeddings | None) -> SessionScorer:
    """Fit on ``train``; a word2vec part takes the stored embeddings over the training catalogue."""
    if model == "hybrid":
        components = []
        for c in checked["components"]:
            inner = {k: v for k, v in c.items() if k not in ("model", "weight", "normalise")}
            components.append(Component(_fitted(c["model"], inner, train, stored), c["weight"], c["normalise"]))
        return Hybrid(components)
    scorer = build_recommender(model, checked)
    if model in WORD2VEC_MODELS:
        assert stored is not None
        return cast("Word2VecItem", scorer).use_embeddings(stored.embeddings, catalogue(train))
    return scorer.fit(train)


def stored_embeddings(ref: str, root: str, dataset: Dataset, seed: int, n: int) -> StoredEmbeddings:
    """A word2vec model's embeddings by name (checked to come from the same dataset and split: a
    model trained on another split has seen this one's test items) or by URI (not checked)."""
    embeddings = load_embeddings(ref, root)
    if layout.is_file_ref(ref):
        return StoredEmbeddings(embeddings, {}, {"uri": ref, "same_split_checked": False})
    folder = layout.model_dir(root, ref)
    metrics_uri = storage.join(folder, layout.METRICS_FILE)
    metrics = formats.from_json(storage.read_bytes(metrics_uri), metrics_uri)
    split = {"seed": seed, "n": n}
    same = isinstance(metrics, dict) and metrics.get("dataset_sha256") == dataset.sha256
    if not same or metrics.get("split") != split:
        theirs = metrics.get("split") if isinstance(metrics, dict) else None
        raise SessrecError(
            f"word2vec model {ref!r} was trained on another dataset or split ({theirs}, not {split} of this "
            "dataset): its embeddings may have seen this split's test items; train one with the same --seed and --n"
        )
    config = metrics.get("config") if isinstance(metrics.get("config"), dict) else {}
    return StoredEmbeddings(embeddings, config, {"model": ref, "same_split_checked": True})


def fit_recommender(
    ref: str,
    root: str,
    name: str,
    model: str,
    params: dict[str, Any],
    seed: int,
    n: int,
    k: int,
    exclude: str = "query",
    embeddings: str | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Fit a session recommender on the protocol's training split, evaluate it on validation and
    test in session mode, and store it (``recommenders_store``): every output is made before the
    first is written, the description that marks it complete last."""
    layout.check_name(name, "model name")
    if exclude not in EXCLUDES:
        raise SessrecError(f"exclude must be one of {', '.join(EXCLUDES)}, got {exclude!r}")
    if not overwrite and recommenders_store.existing_model(root, name):
        raise SessrecError(f"model {name!r} already exists in {root}; pass --overwrite to replace it")
    # The parameters are checked before anything is read (word2vec's own once its model is).
    checked = check_fit_params(model, params, {} if embeddings is not None else None)
    if embeddings is not None and not uses_embeddings(model, checked):
        raise SessrecError(f"--embeddings is for word2vec recommenders (w2v_session, or one in a hybrid), not {model}")
    dataset = load_dataset(ref, root)
    test, validation = session_pairs(dataset.sessions, n, seed)
    stored = stored_embeddings(embeddings, root, dataset, seed, n) if embeddings is not None else None
    if stored is not None:
        checked = check_fit_params(model, params, stored.config)
    started = time.perf_counter()
    scorer = _fitted(model, checked, dataset.sessions.drop_last(), stored)
    fit_seconds = round(time.perf_counter() - started, 3)
    meta: dict[str, Any] = {
        "name": name,
        "model": model,
        "dataset": dataset.uri,
        "dataset_sha256": dataset.sha256,
        "split": {"seed": seed, "n": n},
        "embeddings": None if stored is None else stored.source,
        "validation": evaluate_sessions(scorer, validation.sessions, validation.targets, k, "session", exclude),
        "test": evaluate_sessions(scorer, test.sessions, test.targets, k, "session", exclude),
        "fit_seconds": fit_seconds,
        "created": formats.now(),
        "sessrec_version": __version__,
    }
    outputs.write_all(recommenders_store.files_to_write(root, name, scorer, meta))
    return meta


def session_scorer(
    root: str, model: str | None, embeddings: str | None, params: dict[str, Any]
) -> tuple[SessionScorer, str]:
    """The recommender ``sessrec recommend`` scores with, and its name: a stored recommender, or a
    word2vec model's embeddings as ``w2v_session`` (``params``: last_n, decay)."""
    if (model is None) == (embeddings is None):
        raise SessrecError("name the model: --model NAME (a stored recommender) or --embeddings NAME (word2vec)")
    if model is not None:
        if params:
            raise SessrecError(
                "--param is for --embeddings; a stored recommender keeps the parameters it was fitted with"
            )
        folder, sweep_id = model_source(root, model)
        if storage.exists(storage.join(folder, layout.RECOMMENDER_FILE)) or not storage.exists(
            storage.join(folder, layout.EMBEDDINGS_FILE)
        ):
            if sweep_id is None and not layout.is_file_ref(model):
                scorer, _ = recommenders_store.load(root, model)
            else:  # a sweep's best recommender, or a folder (fetched, copied)
                scorer, _, _ = recommenders_store.load_folder(folder, model)
            return scorer, model
        # A word2vec model (or sweep, or folder): scored as w2v_session, as 'sessrec serve' does.
        embeddings = storage.join(folder, layout.EMBEDDINGS_FILE) if layout.is_file_ref(model) else model
    assert embeddings is not None
    vectors = load_embeddings(embeddings, root)
    checked = check_recommender_params("w2v_session", _w2v_params("w2v_session", "w2v_session", params, {}))
    scorer = cast("Word2VecItem", build_recommender("w2v_session", checked))  # a Word2VecSession
    return scorer.use_embeddings(vectors, vectors.keys), embeddings


def unknown_text(unknown: list[str], limit: int = 10) -> str:
    """Item ids the model does not know, for one line: the first ``limit`` quoted, then a count."""
    shown = ", ".join(map(repr, unknown[:limit]))
    return shown + (f" and {len(unknown) - limit} more" if len(unknown) > limit else "")


def recommend_session(
    scorer: SessionScorer,
    items: list[str],
    k: int,
    exclude: str = "query",
    mode: str = "session",
    names: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Top-K for one session (mode "session") or for each item as a query (mode "item"); unknown
    items are left out and named, all of them unknown is a one-line error. Each recommendation
    carries its ``name`` from ``names`` (None where unknown)."""
    names = names or {}
    if not items:
        raise SessrecError("the session is empty; give at least one item")
    unknown = list(dict.fromkeys(item for item in items if item not in scorer.index))
    known = [item for item in items if item in scorer.index]
    if not known:
        raise SessrecError(f"no item is known to the model: {unknown_text(unknown)}")
    if mode == "item" and not scorer.item_mode:
        raise SessrecError(
            f"recommender {scorer.name} scores whole sessions and has no item mode; "
            "pass --session to recommend from the items as one session"
        )
    if mode == "item":
        queries = list(dict.fromkeys(known))
        recs = recommend_for_sessions(scorer, [[q] for q in queries], k, "item", "query")
        rows: Any = {
            q: [{"item": i, "score": s, "name": names.get(i)} for i, s in r]
            for q, r in zip(queries, recs.items, strict=True)
        }
        exclude = "query"
    else:
        recs = recommend_for_sessions(scorer, [items], k, "session", exclude)
        rows = [{"item": i, "score": s, "name": names.get(i)} for i, s in recs.items[0]]
    return {
        "mode": mode,
        "exclude": exclude,
        "k": k,
        "session" if mode == "session" else "queries": items,
        "unknown": unknown,
        "recommendations": rows,
    }


def recommend_file(
    scorer: SessionScorer,
    sessions_uri: str,
    to: str,
    k: int,
    exclude: str = "query",
    overwrite: bool = False,
    names: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Top-K for every session of a JSONL file (one JSON array of items per line), written to ``to``
    (.jsonl or .parquet): one row per session with its input line number, the recommended items,
    their names from ``names`` (None where unknown), their scores and the session's unknown items.
    A session with no known item gets no items."""
    names = names or {}
    fmt = recommenders_store.output_format(to)
    if exclude not in EXCLUDES:
        raise SessrecError(f"exclude must be one of {', '.join(EXCLUDES)}, got {exclude!r}")
    if not overwrite and storage.exists(to):
        raise SessrecError(f"{to} already exists; pass --overwrite to replace it")
    numbers, sessions = recommenders_store.sessions_from_jsonl(storage.read_bytes(sessions_uri), sessions_uri)
    unknown = [list(dict.fromkeys(item for item in s if item not in scorer.index)) for s in sessions]
    scorable = [i for i, s in enumerate(sessions) if len(unknown[i]) < len(set(s))]
    recs = recommend_for_sessions(scorer, [sessions[i] for i in scorable], k, "session", exclude) if scorable else None
    rows = [
        {"line": number, "items": [], "names": [], "scores": [], "unknown": unknown[i]}
        for i, number in enumerate(numbers)
    ]
    for position, i in enumerate(scorable):
        assert recs is not None
        rows[i]["items"] = [item for item, _ in recs.items[position]]
        rows[i]["names"] = [names.get(item) for item, _ in recs.items[position]]
        rows[i]["scores"] = [score for _, score in recs.items[position]]
    outputs.write_all({to: recommenders_store.rows_to_bytes(rows, fmt)})
    all_unknown = list(dict.fromkeys(item for u in unknown for item in u))
    return {
        "to": to,
        "format": fmt,
        "mode": "session",
        "exclude": exclude,
        "k": k,
        "sessions": len(sessions),
        "sessions_with_unknown_items": sum(1 for u in unknown if u),
        "lines_without_known_items": [numbers[i] for i, u in enumerate(unknown) if len(u) == len(set(sessions[i]))],
        "unknown": all_unknown,
    }

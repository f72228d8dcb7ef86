"""The storage layout, defined once. Every path sessrec reads or writes under a storage root
(a local folder or ``s3://bucket/prefix``) is built here:

    <root>/datasets/<name>/sessions.parquet     sessions, one list<string> per row
    <root>/datasets/<name>/names.parquet        item id, name: the items' descriptions, where the source had them
    <root>/datasets/<name>/manifest.json        sha256 of the content, counts, source, options (and of the names)
    <root>/models/<name>/embeddings.parquet     item, float32 vector (sessrec train)
    <root>/models/<name>/embeddings.txt         the same in word2vec text format (--export word2vec)
    <root>/models/<name>/config.json            word2vec config, dataset, split seed and N
    <root>/models/<name>/curve.json             validation metrics after every epoch
    <root>/models/<name>/metrics.json           final validation and test metrics
    <root>/models/<name>/recommender.npz        a fitted session recommender's arrays (sessrec fit; no pickle)
    <root>/models/<name>/recommender.json       its parameters, catalogue size, dataset, split, metrics
    <root>/models/<name>/promotions.json        promotions from sweeps: each decision and its figures
    <root>/sweeps/<id>/spec.yaml                the sweep spec as run
    <root>/sweeps/<id>/manifest.json            dataset sha256, split, versions, times, trial counts
    <root>/sweeps/<id>/lease.json               the lease of the driver running the sweep (one at a time)
    <root>/sweeps/<id>/tune/run-<n>/            Ray Tune's experiment folder of the sweep's n-th run
    <root>/sweeps/<id>/tune/run-<n>/point-<p>-<trial>/checkpoint_<i>/state.npz   a trial's weights
    <root>/sweeps/<id>/tune/run-<n>/point-<p>-<trial>/checkpoint_<i>/trial.json  its config and curve
    <root>/sweeps/<id>/word2vec/<key>/epoch-<n>.npz   the sweep's word2vec after n epochs, shared by its
                                                trials with the same word2vec config (key: its sha256); regenerable
    <root>/sweeps/<id>/trials.parquet           one row per trial: config, metrics, epochs, state
    <root>/sweeps/<id>/best/config.json         the best trial's config
    <root>/sweeps/<id>/best/metrics.json        its validation metrics and its test metrics
    <root>/sweeps/<id>/best/embeddings.parquet  its embeddings
    <root>/sweeps/<id>/report/                  PNG plots and index.html

What marks an output whole is written last (a dataset's manifest, a model's metrics.json or
recommender.json), so a folder without it is incomplete. A model folder holds one kind of model.
Resume reads only the checkpoints' ``trial.json`` and ``state.npz`` (JSON and arrays), never
Tune's own pickled state.
Names and sweep ids are DNS-1035 slugs: they become Kubernetes names and are never paths.
"""

from __future__ import annotations

import re

from sessrec import storage
from sessrec.errors import SessrecError

NAME_PATTERN = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
MAX_NAME_LENGTH = 40

DATASETS, MODELS, SWEEPS = "datasets", "models", "sweeps"
SESSIONS_FILE, MANIFEST_FILE = "sessions.parquet", "manifest.json"
#: A dataset's item names (``data prepare --name-col``); its manifest's ``names`` entry holds its sha256.
NAMES_FILE = "names.parquet"
EMBEDDINGS_FILE, EMBEDDINGS_TEXT_FILE = "embeddings.parquet", "embeddings.txt"
CONFIG_FILE, CURVE_FILE, METRICS_FILE = "config.json", "curve.json", "metrics.json"
SPEC_FILE, TRIALS_FILE, TUNE_DIR, BEST_DIR, REPORT_DIR = "spec.yaml", "trials.parquet", "tune", "best", "report"
LEASE_FILE = "lease.json"
STATE_FILE, TRIAL_FILE = "state.npz", "trial.json"
#: A sweep's word2vec epoch cache: one folder per word2vec config, one training state per epoch.
WORD2VEC_CACHE_DIR = "word2vec"
RECOMMENDER_ARRAYS_FILE, RECOMMENDER_FILE = "recommender.npz", "recommender.json"
#: A model's promotion decisions, newest last (``sessrec results promote``; not a completion marker).
PROMOTIONS_FILE = "promotions.json"
#: The files of each kind of stored model; the last of each marks it complete.
WORD2VEC_MODEL_FILES = (EMBEDDINGS_FILE, EMBEDDINGS_TEXT_FILE, CONFIG_FILE, CURVE_FILE, METRICS_FILE)
RECOMMENDER_MODEL_FILES = (RECOMMENDER_ARRAYS_FILE, RECOMMENDER_FILE)


# Stored records are small: reading one is bounded, so a damaged or hostile file cannot exhaust memory.
storage.bound_documents(MANIFEST_FILE, CONFIG_FILE, CURVE_FILE, METRICS_FILE, TRIAL_FILE, SPEC_FILE)


def run_name(number: int) -> str:
    """Tune's experiment name of a sweep's ``number``-th run (1: ``tune run``, then each resume)."""
    return f"run-{number}"


def word2vec_epoch_file(epoch: int) -> str:
    """The file of a word2vec cache entry: the training state after ``epoch`` epochs."""
    return f"epoch-{epoch}.npz"


def trial_dir_name(point: int, trial_id: str) -> str:
    """A trial's checkpoint folder under its run: ``point-<point, 5 digits>-<trial id>``."""
    return f"point-{point:05d}-{trial_id}"


def check_name(name: str, what: str = "name") -> str:
    """``name`` if it is a DNS-1035 slug of at most MAX_NAME_LENGTH characters, else a SessrecError
    naming ``what``."""
    if not NAME_PATTERN.match(name) or len(name) > MAX_NAME_LENGTH:
        raise SessrecError(
            f"invalid {what} {name!r}: use lower-case letters, digits and '-', start with a letter, "
            f"at most {MAX_NAME_LENGTH} characters"
        )
    return name


def is_file_ref(ref: str) -> bool:
    """A path or s3:// URI of a file, not the name of a stored dataset or model: names are
    slugs, with no '/' and no '.'."""
    return storage.is_s3(ref) or "/" in ref or "." in ref


def dataset_dir(root: str, name: str) -> str:
    """``<root>/datasets/<name>``; an invalid name is a SessrecError."""
    return storage.join(root, DATASETS, check_name(name, "dataset name"))


def model_dir(root: str, name: str) -> str:
    """``<root>/models/<name>``; an invalid name is a SessrecError."""
    return storage.join(root, MODELS, check_name(name, "model name"))


def sweep_dir(root: str, sweep_id: str) -> str:
    """``<root>/sweeps/<sweep_id>``; an invalid id is a SessrecError."""
    return storage.join(root, SWEEPS, check_name(sweep_id, "sweep id"))


def dataset_of_sessions_uri(uri: str) -> str | None:
    """The dataset name of a stored dataset's sessions URI (``.../datasets/NAME/sessions.parquet``,
    what models and sweeps record as their dataset); None for any other file."""
    parts = uri.rstrip("/").split("/")
    if len(parts) >= 3 and parts[-1] == SESSIONS_FILE and parts[-3] == DATASETS:
        name = parts[-2]
        if NAME_PATTERN.match(name) and len(name) <= MAX_NAME_LENGTH:
            return name
    return None

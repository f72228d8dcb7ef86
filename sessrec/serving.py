"""``sessrec serve``: a stored recommender over HTTP with Ray Serve, reloaded when storage changes.

The edge to Ray Serve is :func:`serve_forever` alone (it imports Ray); everything else is plain
Python, testable without Ray: :func:`handle` turns (method, path, body) into (status, JSON), and
:class:`ModelHolder` loads the model and swaps in a new version.

Endpoints (JSON in, JSON out, 127.0.0.1 by default):

    POST /recommend        {"session": ["A", "B"], "k": 10}   or {"item": "A", "k": 10} (item mode)
                           -> {"items": [...], "scores": [...], "unknown": [...], "mode", "k", "version"}
    POST /recommend/batch  {"sessions": [["A"], ["B", "C"]], "k": 10}
                           -> {"results": [{"items", "scores", "unknown"}, ...], "k", "version"}
    GET  /healthz          -> {"status": "ok", "version"}
    GET  /model            -> name, source, kind, version, provenance (sweep, dataset sha256, split,
                              metrics), load time, the last refused version

Bad input is a 4xx with a one-line ``{"error": "..."}``: malformed JSON or fields (400), ``k``
outside 1..1000, an empty session or one over 10,000 items, a batch over 1,000 sessions (400), a
body over 1 MB (413, by Content-Length and by the bytes read), an unknown path (404) or method
(405). A session none of whose items the model knows is a 422 on ``/recommend`` (as for
``sessrec recommend``); in a batch it gets an empty ``items`` list and its ``unknown`` ids, so one
such session does not fail the others. Item names: each answer has a ``names`` list beside
``items`` (``null`` where a name is not known), from the names of the dataset the model records,
loaded with each version (``Served.names``).

Hot reload: every ``reload_interval`` seconds each replica reads the model's completion marker
(``recommender.json``, or ``metrics.json`` of a word2vec model) and compares its sha256 with the
version served. A new version is loaded in a background thread and swapped in with one reference
assignment: requests in flight finish on the model they started with, none is dropped. A version
that does not load (arrays without their description, a sha256 mismatch...) is refused with a
warning line and shown under ``refused`` in ``/model``; the old one keeps serving. A refused version
is not retried until the marker changes again.

Ingress (see :func:`serve_forever`): with one replica (the default) the replica itself listens on
``host:port`` (Ray Serve's direct ingress): no proxy, no proxy-to-replica actor call. A request
costs the replica about 1 ms of CPU, against about 8 ms through Serve's HTTP proxy (4 ms in the
proxy, 4 ms in the replica) on 2 CPUs; see docs/benchmarks.md. Several replicas go through Serve's
proxy, which balances them (``--ingress proxy`` forces it for one replica).

Over 400 lines: the request checks and the reload logic are plain functions here, next to the
thin Serve deployment, so that they are tested without Ray.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sessrec import formats, layout, pipeline, recommenders_store, storage
from sessrec.core.recommenders import SessionScorer
from sessrec.core.session_metrics import EXCLUDES
from sessrec.core.session_metrics import recommend as recommend_for_sessions
from sessrec.errors import NotFoundError, SessrecError
from sessrec.k8s.defaults import SERVE_APP, SERVE_DEPLOYMENT, SERVE_MAX_ONGOING_REQUESTS
from sessrec.spec import DEFAULT_K, MAX_K

MAX_BODY_BYTES = 1_000_000
MAX_SESSION_ITEMS = 10_000
MAX_BATCH_SESSIONS = 1_000
DEFAULT_RELOAD_INTERVAL_S = 2.0


class BadRequest(Exception):
    """Bad input: answered with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str, extra: dict[str, Any] | None = None):
        super().__init__(message)
        self.status = status
        self.message = " ".join(message.split())  # one line
        self.extra = extra or {}


# -- requests ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    """A validated request: sessions of item ids (one for /recommend), K, mode and exclusion."""

    sessions: list[list[str]]
    k: int = DEFAULT_K
    mode: str = "session"
    exclude: str = "query"
    batch: bool = False


def check_content_length(header: str | None) -> None:
    """413 when the declared body is over :data:`MAX_BODY_BYTES`, 400 when the header is not a number."""
    if header is None:
        return
    if not header.strip().isdigit():
        raise BadRequest(400, f"Content-Length must be a whole number of bytes, got {header[:40]!r}")
    if int(header) > MAX_BODY_BYTES:
        raise BadRequest(413, f"the body is {int(header):,} bytes; at most {MAX_BODY_BYTES:,} are accepted")


def _json_body(body: bytes) -> dict[str, Any]:
    if len(body) > MAX_BODY_BYTES:
        raise BadRequest(413, f"the body is over {MAX_BODY_BYTES:,} bytes")
    try:
        data = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadRequest(400, "malformed JSON: the body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise BadRequest(400, f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise BadRequest(400, "malformed JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise BadRequest(400, "the body must be a JSON object")
    return data


def _k(data: dict[str, Any]) -> int:
    k = data.get("k", DEFAULT_K)
    if isinstance(k, bool) or not isinstance(k, int):
        if isinstance(k, float) and k.is_integer():
            k = int(k)
        else:
            raise BadRequest(400, f"k must be a whole number from 1 to {MAX_K}, got {json.dumps(k)[:40]}")
    if not 1 <= k <= MAX_K:
        raise BadRequest(400, f"k must be from 1 to {MAX_K}, got {k}")
    return k


def _session(value: Any, what: str) -> list[str]:
    if not isinstance(value, list):
        raise BadRequest(400, f"{what} must be a JSON array of item ids (strings)")
    if not value:
        raise BadRequest(400, f"{what} is empty; give at least one item")
    if len(value) > MAX_SESSION_ITEMS:
        raise BadRequest(400, f"{what} has {len(value):,} items; at most {MAX_SESSION_ITEMS:,} are accepted")
    if not all(isinstance(item, str) for item in value):
        raise BadRequest(400, f"{what} must hold item ids as strings")
    return value


def _exclude(data: dict[str, Any]) -> str:
    exclude = data.get("exclude", "query")
    if exclude not in EXCLUDES:
        raise BadRequest(400, f"exclude must be one of {', '.join(EXCLUDES)}, got {json.dumps(exclude)[:40]}")
    return str(exclude)


def _no_other_fields(data: dict[str, Any], allowed: set[str]) -> None:
    extra = sorted(set(data) - allowed)
    if extra:
        raise BadRequest(
            400, f"unknown field(s) {', '.join(map(repr, extra[:5]))}; expected {', '.join(sorted(allowed))}"
        )


def parse_recommend(body: bytes) -> Query:
    """The body of ``POST /recommend``: ``{"session": [...]}`` or ``{"item": "..."}``, ``k``, ``exclude``."""
    data = _json_body(body)
    _no_other_fields(data, {"session", "item", "k", "exclude"})
    if ("session" in data) == ("item" in data):
        raise BadRequest(400, 'give either "session" (a list of item ids) or "item" (one item id)')
    k, exclude = _k(data), _exclude(data)
    if "item" in data:
        item = data["item"]
        if not isinstance(item, str):
            raise BadRequest(400, "item must be an item id (a string)")
        return Query([[item]], k, "item", "query")
    return Query([_session(data["session"], "session")], k, "session", exclude)


def parse_batch(body: bytes) -> Query:
    """The body of ``POST /recommend/batch``: ``{"sessions": [[...], ...]}``, ``k``, ``exclude``."""
    data = _json_body(body)
    _no_other_fields(data, {"sessions", "k", "exclude"})
    sessions = data.get("sessions")
    if not isinstance(sessions, list) or not sessions:
        raise BadRequest(400, 'give "sessions": a non-empty JSON array of sessions (arrays of item ids)')
    if len(sessions) > MAX_BATCH_SESSIONS:
        raise BadRequest(400, f"{len(sessions):,} sessions; at most {MAX_BATCH_SESSIONS:,} per batch")
    k, exclude = _k(data), _exclude(data)
    return Query([_session(s, f"session {i}") for i, s in enumerate(sessions)], k, "session", exclude, batch=True)


# -- responses ---------------------------------------------------------------------------------


def _unknown(scorer: SessionScorer, session: list[str]) -> list[str]:
    return list(dict.fromkeys(item for item in session if item not in scorer.index))


def _shown(items: list[str], limit: int = 5) -> str:
    text = ", ".join(json.dumps(item)[:60] for item in items[:limit])
    return text + (f" and {len(items) - limit} more" if len(items) > limit else "")


def recommend(
    scorer: SessionScorer, query: Query, version: str = "", names: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The answer to a validated query; a single session with no known item is a 422. With
    ``names`` (item id -> name) each answer also gets ``names``, one per item (``null`` if none)."""
    if query.mode == "item" and not scorer.item_mode:
        raise BadRequest(400, f"recommender {scorer.name} scores whole sessions and has no item mode; send a session")
    unknown = [_unknown(scorer, s) for s in query.sessions]
    scorable = [i for i, s in enumerate(query.sessions) if len(unknown[i]) < len(set(s))]
    if not query.batch and not scorable:
        raise BadRequest(422, f"no item is known to the model: {_shown(unknown[0])}", {"unknown": unknown[0]})
    rows: list[dict[str, Any]] = [{"items": [], "scores": [], "unknown": u} for u in unknown]
    if scorable:
        recs = recommend_for_sessions(scorer, [query.sessions[i] for i in scorable], query.k, query.mode, query.exclude)
        for position, i in enumerate(scorable):
            rows[i]["items"] = [str(item) for item, _ in recs.items[position]]
            rows[i]["scores"] = [round(score, 6) for _, score in recs.items[position]]
    if names is not None:  # item names are attached here, and only here
        for row in rows:
            row["names"] = [names.get(item) for item in row["items"]]
    if query.batch:
        return {"results": rows, "k": query.k, "exclude": query.exclude, "version": version}
    return {**rows[0], "mode": query.mode, "k": query.k, "exclude": query.exclude, "version": version}


def error_body(exc: BadRequest) -> dict[str, Any]:
    return {"error": exc.message, **exc.extra}


def handle(holder: ModelHolder, method: str, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
    """(status, JSON) for one request; bad input is a 4xx, never an exception."""
    path = "/" + path.strip("/")
    routes = {"/recommend": "POST", "/recommend/batch": "POST", "/healthz": "GET", "/model": "GET"}
    try:
        if path not in routes:
            raise BadRequest(
                404, f"no endpoint {path[:80]}; try POST /recommend, POST /recommend/batch, GET /healthz, GET /model"
            )
        if method.upper() != routes[path]:
            raise BadRequest(405, f"{path} takes {routes[path]}, not {method.upper()[:10]}")
        served = holder.current  # one read: the whole request uses this version
        if path == "/healthz":
            return 200, {"status": "ok", "version": served.version}
        if path == "/model":
            return 200, holder.describe()
        query = parse_batch(body) if path == "/recommend/batch" else parse_recommend(body)
        return 200, recommend(served.scorer, query, served.version, served.names)
    except BadRequest as exc:
        return exc.status, error_body(exc)


# -- models ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """Where a served model lives: a folder with a recommender or word2vec embeddings."""

    ref: str
    folder: str
    sweep_id: str | None = None


def resolve(ref: str, root: str) -> Source:
    """A model name in storage (``models/NAME``), a sweep id (its ``best/``) or a folder URI."""
    if not layout.is_file_ref(ref):
        layout.check_name(ref, "model name or sweep id")
    folder, sweep_id = pipeline.model_source(root, ref)
    if layout.is_file_ref(ref) or sweep_id is not None or recommenders_store.existing_model(root, ref):
        return Source(ref, folder, sweep_id=sweep_id)
    raise NotFoundError(f"no model or finished sweep {ref!r} in {root} (see 'sessrec results list')")


def read_marker(folder: str) -> tuple[str, bytes]:
    """(kind, bytes) of the file that marks the model in ``folder`` complete; NotFoundError if none."""
    for kind, name in (("recommender", layout.RECOMMENDER_FILE), ("word2vec", layout.METRICS_FILE)):
        try:
            return kind, storage.read_bytes(storage.join(folder, name))
        except NotFoundError:
            continue
    raise NotFoundError(f"{folder} holds no complete model ({layout.RECOMMENDER_FILE} or {layout.METRICS_FILE})")


def version_of(marker: bytes) -> str:
    return hashlib.sha256(marker).hexdigest()[:16]


@dataclass(frozen=True)
class Served:
    """One loaded version of the model."""

    scorer: SessionScorer
    version: str
    info: dict[str, Any] = field(default_factory=dict)
    names: Mapping[str, str] | None = None  # item id -> name, attached to answers by recommend()


def _metrics(meta: dict[str, Any]) -> dict[str, Any]:
    return {key: meta[key] for key in ("validation", "test") if key in meta}


def load(source: Source, root: str) -> Served:
    """The model in ``source`` as it is now; a one-line SessrecError if it is incomplete or corrupt."""
    started = time.perf_counter()
    kind, marker = read_marker(source.folder)
    if kind == "recommender":
        scorer, meta, marker = recommenders_store.load_folder(source.folder, source.ref)
    else:
        meta = formats.from_json(marker, storage.join(source.folder, layout.METRICS_FILE))
        if not isinstance(meta, dict):
            raise SessrecError(f"{source.folder}/{layout.METRICS_FILE} is not a word2vec model's metrics")
        scorer, _ = pipeline.session_scorer(root, None, storage.join(source.folder, layout.EMBEDDINGS_FILE), {})
    provenance: dict[str, Any] = {
        "sweep": source.sweep_id or (meta.get("promotion") or {}).get("sweep_id"),  # promoted: its sweep
        "promotion": meta.get("promotion"),
        "dataset": meta.get("dataset"),
        "dataset_sha256": meta.get("dataset_sha256"),
        "split": meta.get("split"),
        "metrics": _metrics(meta),
        "created": meta.get("created"),
    }
    if source.sweep_id is not None:
        uri = storage.join(layout.sweep_dir(root, source.sweep_id), layout.MANIFEST_FILE)
        try:
            manifest = formats.from_json(storage.read_bytes(uri), uri)
        except SessrecError:  # provenance is extra: a model still serves without its sweep's manifest
            manifest = None
        if isinstance(manifest, dict):
            dataset: dict[str, Any] = manifest["dataset"] if isinstance(manifest.get("dataset"), dict) else {}
            provenance.update(
                dataset=dataset.get("uri"), dataset_sha256=dataset.get("sha256"), split=manifest.get("split")
            )
    info = {
        "name": source.ref,
        "source": source.folder,
        "kind": kind,
        "params": scorer.params(),
        "n_items": int(scorer.n_items),
        "item_mode": bool(scorer.item_mode),
        "provenance": provenance,
        "loaded_at": formats.now(),
        "load_seconds": round(time.perf_counter() - started, 3),
    }
    # The names of the dataset the model records (only while it holds the same sessions): every
    # answer gets a name per item, null where none is known.
    names = pipeline.recorded_item_names(root, provenance["dataset"], provenance["dataset_sha256"])
    info["named_items"] = len(names)
    return Served(scorer, version_of(marker), info, names=names)


class ModelHolder:
    """The version served, and the poller that swaps in a new one (see the module's docstring)."""

    def __init__(self, ref: str, root: str, reload_interval: float = DEFAULT_RELOAD_INTERVAL_S):
        self.root = root
        self.source = resolve(ref, root)
        self.reload_interval = reload_interval
        self.current: Served = load(self.source, root)
        self.refused: dict[str, Any] | None = None
        self.reloads = 0
        self._failed: str | None = None  # the marker version last refused (not retried)
        self._missing_warned = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def describe(self) -> dict[str, Any]:
        served = self.current
        return {
            **served.info,
            "version": served.version,
            "reloads": self.reloads,
            "refused": self.refused,
            "reload_interval_s": self.reload_interval,
        }

    def check(self) -> bool:
        """Load and swap in the stored model if its marker changed; True when it did."""
        try:
            _, marker = read_marker(self.source.folder)
        except SessrecError as exc:
            if not self._missing_warned:
                self._warn("(none)", str(exc))
                self._missing_warned = True
            return False
        self._missing_warned = False
        version = version_of(marker)
        if version in (self.current.version, self._failed):
            return False
        try:
            served = load(self.source, self.root)
        except SessrecError as exc:
            self._failed = version
            self._warn(version, str(exc))
            return False
        except Exception as exc:  # a bug or an unreadable file: the old model keeps serving
            self._failed = version
            self._warn(version, f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}")
            return False
        previous, self.current = self.current.version, served  # one assignment: requests read it once
        self.reloads += 1
        self.refused = None
        print(
            f"sessrec serve: now serving {self.source.ref} version {served.version} (was {previous})",
            file=sys.stderr,
            flush=True,
        )
        return True

    def _warn(self, version: str, reason: str) -> None:
        self.refused = {"version": version, "error": reason, "at": formats.now()}
        line = (
            f"warning: sessrec serve: refused {self.source.ref} version {version}, "
            f"still serving {self.current.version}: {reason}"
        )
        print(" ".join(line.split()), file=sys.stderr, flush=True)

    def start(self) -> None:
        if self.reload_interval <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._poll, name="sessrec-reload", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _poll(self) -> None:
        while not self._stop.wait(self.reload_interval):
            try:
                self.check()
            except Exception as exc:  # never let the poller die
                print(f"warning: sessrec serve: reload check failed: {exc}", file=sys.stderr, flush=True)


# -- Ray Serve (the edge) ----------------------------------------------------------------------


def build_app(ref: str, root: str, replicas: int, reload_interval: float) -> Any:
    """The Serve application: ``replicas`` replicas of one deployment, each with its own holder."""
    from ray import serve
    from starlette.requests import Request
    from starlette.responses import Response

    @serve.deployment(
        name=SERVE_DEPLOYMENT,
        num_replicas=replicas,
        ray_actor_options={"num_cpus": 0},
        max_ongoing_requests=SERVE_MAX_ONGOING_REQUESTS,
        logging_config={"enable_access_log": False, "log_level": "WARNING"},
        health_check_period_s=5,
    )
    class Recommender:
        def __init__(self, ref: str, root: str, reload_interval: float) -> None:
            self.holder = ModelHolder(ref, root, reload_interval)
            self.holder.start()

        async def __call__(self, request: Request) -> Response:
            try:
                check_content_length(request.headers.get("content-length"))
                body = bytearray()
                async for chunk in request.stream():
                    body += chunk
                    if len(body) > MAX_BODY_BYTES:
                        raise BadRequest(413, f"the body is over {MAX_BODY_BYTES:,} bytes")
                status, payload = handle(self.holder, request.method, request.url.path, bytes(body))
            except BadRequest as exc:
                status, payload = exc.status, error_body(exc)
            except Exception as exc:  # a bug: still one JSON line, and the replica goes on
                status, payload = 500, {"error": f"internal error: {type(exc).__name__}"}
            return Response(json.dumps(payload, ensure_ascii=False), status_code=status, media_type="application/json")

    return Recommender.bind(ref, root, reload_interval)  # type: ignore[attr-defined]


APP_ARGS = ("model", "storage", "reload_interval")


def app_from_args(args: dict[str, Any]) -> Any:
    """The same application as ``sessrec serve``, from a Ray Serve config (a KubeRay RayService:
    ``import_path: sessrec.serving:app_from_args``). ``args``: ``model`` (required; a model name,
    sweep id or s3:// folder), ``storage`` (default: the settings, i.e. $SESSREC_STORAGE of the
    pod) and ``reload_interval`` (seconds). Replicas, autoscaling and each replica's resources come
    from the config's ``deployments`` entry, which overrides the deployment's own options."""
    from sessrec.settings import Settings

    if not isinstance(args, dict):
        raise SessrecError(f"sessrec.serving:app_from_args: args must be a mapping of {', '.join(APP_ARGS)}")
    unknown = sorted(set(args) - set(APP_ARGS))
    if unknown:
        expected = ", ".join(APP_ARGS)
        raise SessrecError(f"sessrec.serving:app_from_args: unknown args {', '.join(unknown)}; expected {expected}")
    model = args.get("model")
    if not isinstance(model, str) or not model:
        raise SessrecError("sessrec.serving:app_from_args: args.model is required (a model name, sweep id or folder)")
    interval = args.get("reload_interval", DEFAULT_RELOAD_INTERVAL_S)
    bad_interval = f"sessrec.serving:app_from_args: reload_interval must be 0 or more seconds, got {interval!r}"
    if isinstance(interval, bool) or not isinstance(interval, (int, float, str)):
        raise SessrecError(bad_interval)
    try:
        reload_interval = float(interval)
    except ValueError:
        raise SessrecError(bad_interval) from None
    if not 0 <= reload_interval < float("inf"):
        raise SessrecError(bad_interval)
    storage_root = args.get("storage")
    root = Settings.load(storage=str(storage_root) if storage_root else None).storage
    return build_app(model, root, 1, reload_interval)


INGRESS_MODES = ("auto", "direct", "proxy")


def choose_ingress(ingress: str, replicas: int) -> str:
    """``direct`` or ``proxy``: ``auto`` is direct for one replica, the proxy for several (a
    direct-ingress replica listens on a port of its own, and only one of them can have ``port``)."""
    if ingress not in INGRESS_MODES:
        raise SessrecError(f"ingress must be one of {', '.join(INGRESS_MODES)}, got {ingress!r}")
    if ingress == "auto":
        return "direct" if replicas == 1 else "proxy"
    if ingress == "direct" and replicas != 1:
        raise SessrecError(
            f"--ingress direct serves one replica on the port; {replicas} replicas need --ingress proxy (or auto)"
        )
    return ingress


# The replica runs the request handler on its own event loop, not on a second thread's loop: one
# hop fewer, about 0.15 ms of replica CPU less per request (the handler is short and async).
REPLICA_ENV = {"RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0"}


def direct_ingress_env(port: int) -> dict[str, str]:
    """The environment of an embedded Ray whose one ingress replica listens on ``port`` itself
    (Ray Serve's direct ingress; read by the controller and the replica when they start)."""
    return {
        "RAY_SERVE_ENABLE_DIRECT_INGRESS": "1",
        "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT": str(port),
        "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT": str(port + 1),  # the end of the range is excluded
        # No load balancer to deregister from: Ctrl-C does not wait 30 s (requests in flight still finish).
        "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "0",
        # A replica restarted after a crash takes the one port again at once, not after 150 s.
        "RAY_SERVE_PORT_QUARANTINE_S": "0",
    }


def _check_port(host: str, port: int) -> None:
    """A one-line SessrecError, before Ray starts, when ``host:port`` cannot be listened on."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise SessrecError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def serve_forever(
    ref: str,
    root: str,
    host: str,
    port: int,
    replicas: int,
    reload_interval: float,
    on_ready: Any = None,
    ingress: str = "auto",
) -> None:
    """Start an embedded Ray with Serve on ``host:port`` and block until interrupted (Ctrl-C).

    ``ingress`` (see :func:`choose_ingress`): ``direct``, the replica answers on ``host:port``
    itself, and Serve's proxy, which Serve always starts, is put on a free port of ``host``, unused;
    ``proxy``, the proxy answers on ``host:port`` and passes each request to a replica."""
    import signal

    mode = choose_ingress(ingress, replicas)
    ModelHolder(ref, root, 0)  # a model that does not load is one line here, before Ray starts
    _check_port(host, port)
    import ray
    from ray import serve

    from sessrec.sweep.ray_start import private_ray_temp_dir, start_embedded

    proxy_port = port
    if mode == "direct":
        if ray.is_initialized():
            raise SessrecError("--ingress direct needs a Ray of its own; use --ingress proxy in a running Ray")
        os.environ.update(direct_ingress_env(port))  # inherited by the Ray processes started below
        proxy_port = _free_port(host)
    for key, value in REPLICA_ENV.items():
        os.environ.setdefault(key, value)
    logging.getLogger("ray").setLevel(logging.WARNING)
    sigterm_handler = signal.getsignal(signal.SIGTERM)
    if not ray.is_initialized():
        start_embedded(  # retried where a start fails, as a sweep's
            num_cpus=max(os.cpu_count() or 1, 1),
            include_dashboard=False,
            log_to_driver=True,
            logging_level=logging.WARNING,
            configure_logging=True,
            _node_ip_address="127.0.0.1",
            _temp_dir=private_ray_temp_dir(),  # its logs private to the user, as a sweep's
        )
    if callable(sigterm_handler):
        signal.signal(signal.SIGTERM, sigterm_handler)
    try:
        serve.start(http_options={"host": host, "port": proxy_port}, logging_config={"log_level": "WARNING"})
        serve.run(build_app(ref, root, replicas, reload_interval), name=SERVE_APP, route_prefix="/", blocking=False)
        if on_ready is not None:
            on_ready()
        while True:
            time.sleep(1.0)
    finally:
        try:
            serve.shutdown()
        except Exception:  # shutting down: nothing more to do
            pass

"""The sweep record: ``sweeps/<id>/manifest.json``, the claim of a sweep id, and the lease of
the driver that runs the sweep (``sweeps/<id>/lease.json``) (no Ray).

The one writer of a sweep's manifest. ``SweepRecord.claim`` takes an id (the spec is written
create-if-absent: a second sweep with the same id is refused, never merged) and writes the first
manifest; every later change of it (``update``, ``settle``) goes through ``SweepRecord._write``,
and only between the statuses ``TRANSITIONS`` allows. Also here: sweep ids, the sweep's folder
(``SweepPaths``), and reading a sweep back (``load_sweep``, ``SweepRecord.read``).

One driver at a time: a run of a sweep (``tune run``, ``tune resume``) first takes the sweep's
``Lease`` (create-if-absent; an expired or released one is taken over by a compare-and-swap on
its version), renews it from a thread every ``lease_timing().renew_s`` seconds, and releases it
when the run ends. A lease not renewed for ``expiry_s`` seconds (its driver was killed) is free.
Every write of the manifest, the trials table and the best result is fenced by it
(``SweepRecord._write``, ``SweepRecord.write_result``): a driver whose lease was taken writes
nothing more.

Just over 400 lines: the manifest and the lease that fences its writes are one owner.
"""

from __future__ import annotations

import math
import os
import secrets
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sessrec import formats, layout, storage
from sessrec.errors import NotFoundError, SessrecError, StorageError
from sessrec.settings import seconds_setting
from sessrec.spec import SweepSpec, parse_spec


class Status(StrEnum):
    """A sweep's ``status`` in its manifest (stored as the plain string)."""

    RUNNING = "running"  # claimed, or continued by a resume; also what a dead driver leaves
    COMPLETED = "completed"  # results written: trials table, best config, metrics, embeddings
    INTERRUPTED = "interrupted"  # stopped on a signal or a lost run; resume continues it
    FAILED = "failed"  # every trial errored, the driver broke, or its job failed
    STOPPED = "stopped"  # its Ray job was stopped ('sessrec jobs stop', a job ended stopped)
    #: Never stored: what ``sessrec results list`` shows for a manifest it cannot read.
    DAMAGED = "damaged"


#: The statuses a manifest may go to from each status. A status this sessrec does not know
#: (a manifest from elsewhere) may go to any; ``completed`` is final.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.RUNNING: frozenset({Status.RUNNING, Status.COMPLETED, Status.INTERRUPTED, Status.FAILED, Status.STOPPED}),
    Status.INTERRUPTED: frozenset({Status.RUNNING}),
    Status.FAILED: frozenset({Status.RUNNING}),
    Status.STOPPED: frozenset({Status.RUNNING}),
    Status.COMPLETED: frozenset(),
    Status.DAMAGED: frozenset(),
}
_KNOWN = frozenset(status.value for status in Status)


@dataclass(frozen=True)
class SweepPaths:
    """A sweep's folder in the storage layout, and the files in it."""

    root: str
    sweep_id: str

    @property
    def folder(self) -> str:
        return layout.sweep_dir(self.root, self.sweep_id)

    def file(self, *parts: str) -> str:
        return storage.join(self.folder, *parts)

    @property
    def word2vec_cache(self) -> str:
        """The folder of the sweep's word2vec epoch cache (``checkpoints.Word2VecCache``)."""
        return self.file(layout.WORD2VEC_CACHE_DIR)


#: A new sweep id is a prefix of the spec's name, then "-<UTC date>-<UTC time>-<4 hex>" (21
#: characters): the prefix keeps the id within a name's length (a spec name may be 24 long).
SWEEP_ID_PREFIX_LENGTH = layout.MAX_NAME_LENGTH - 21


def sweep_id_prefix(spec_name: str) -> str:
    """What a new sweep id of the spec ``spec_name`` starts with (no trailing '-')."""
    return spec_name[:SWEEP_ID_PREFIX_LENGTH].rstrip("-")


def new_sweep_id(spec: SweepSpec) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return f"{sweep_id_prefix(spec.name)}-{stamp}-{secrets.token_hex(2)}"


def check_sweep_id(root: str, sweep_id: str | None, resume_existing: bool = False) -> None:
    """What a run refuses about an id before it trains: a bad name, or one in use."""
    if sweep_id is not None:
        layout.check_name(sweep_id, "sweep id")
        if not resume_existing and storage.exists(SweepPaths(root, sweep_id).file(layout.SPEC_FILE)):
            raise sweep_exists(sweep_id, root)


def sweep_exists(sweep_id: str, root: str) -> SessrecError:
    return SessrecError(f"sweep {sweep_id!r} already exists in {root}; choose another --sweep-id or 'tune resume' it")


class SweepRecord:
    """A sweep's manifest: read it from ``manifest``, change it through ``note`` and ``update``."""

    def __init__(self, paths: SweepPaths, manifest: dict[str, Any], lease: Lease | None = None) -> None:
        self.paths = paths
        self.manifest = manifest
        #: The lease of the run that writes this record: every write checks it first.
        self.lease = lease

    @property
    def status(self) -> str:
        return str(self.manifest.get("status"))

    @classmethod
    def claim(
        cls, paths: SweepPaths, spec: SweepSpec, manifest: dict[str, Any], lease: Lease | None = None
    ) -> SweepRecord | None:
        """Claim the sweep id by writing its spec create-if-absent, then write its first manifest
        (status ``running``); None if the id was taken. ``lease``: the run's, taken before."""
        if manifest.get("status") != Status.RUNNING:
            raise ValueError(f"a claimed sweep starts {Status.RUNNING.value!r}, not {manifest.get('status')!r}")
        if not storage.create_exclusive(paths.file(layout.SPEC_FILE), spec.to_yaml().encode()):
            return None
        record = cls(paths, manifest, lease)
        record._write(manifest)
        return record

    @classmethod
    def read(cls, paths: SweepPaths, what: str | None = None) -> SweepRecord:
        """The stored manifest, checked against its schema; ``NotFoundError`` if there is none."""
        uri = paths.file(layout.MANIFEST_FILE)
        return cls(paths, formats.sweep_manifest_from_json(storage.read_bytes(uri), what or uri))

    @classmethod
    def settle(cls, root: str, sweep_id: str, status: Status, reason: str) -> bool:
        """After a job ended without finishing its sweep, mark a manifest still saying 'running'
        (the driver was stopped or died before it could); ``tune resume`` still takes it up.
        False where there is no manifest or it says anything else."""
        try:
            record = cls.read(SweepPaths(root, sweep_id), f"sweep {sweep_id} manifest")
        except NotFoundError:
            return False
        if record.status != Status.RUNNING:
            return False
        record.update(status, reason=reason, ended=formats.now())
        return True

    def note(self, **fields: Any) -> None:
        """Change fields that the next ``update`` writes (a status change writes them all)."""
        if "status" in fields:
            raise ValueError("a status changes through update()")
        self.manifest.update(fields)

    def update(self, status: Status, **fields: Any) -> None:
        """Move to ``status`` with ``fields`` and write the manifest. The record changes once the
        write succeeded: its status is always the stored one."""
        current = self.manifest.get("status")
        if current in _KNOWN and status not in TRANSITIONS[Status(current)]:
            raise ValueError(f"sweep {self.paths.sweep_id}: no change from status {current!r} to {status.value!r}")
        updated = dict(self.manifest)
        if status in (Status.RUNNING, Status.COMPLETED) and "reason" in updated and "reason" not in fields:
            # Why an earlier run ended is history once the sweep goes on, not the sweep's state.
            ended = {"status": updated.get("status"), "reason": updated.pop("reason")}
            updated["history"] = [*updated.get("history", []), ended]
        updated.update(status=status.value, **fields)
        self._write(updated)
        self.manifest = updated

    def write_result(self, uri: str, data: bytes) -> None:
        """A fenced write of one of the sweep's results (the trials table, a best file)."""
        if self.lease is not None:
            self.lease.check()
        storage.write_bytes(uri, data)

    def _write(self, manifest: dict[str, Any]) -> None:
        """The one write of ``manifest.json``, fenced by the run's lease."""
        self.write_result(self.paths.file(layout.MANIFEST_FILE), formats.to_json(manifest))

    def lost(self) -> LeaseLost | None:
        """The error to end with, where this run's lease was taken over."""
        if self.lease is None or self.lease.lost is None:
            return None
        try:
            self.lease.check()
        except LeaseLost as exc:
            return exc
        return None


# The driver's lease -------------------------------------------------------------------------

#: The lease's expiry in seconds (a killed driver's lease is free after it); the variable overrides
#: it (tests make it short). Renewed LEASE_RENEWALS times per expiry: every 5 s by default.
LEASE_EXPIRY_VAR, LEASE_EXPIRY_S, LEASE_RENEWALS = "SESSREC_LEASE_EXPIRY", 30.0, 6


@dataclass(frozen=True)
class LeaseTiming:
    expiry_s: float
    renew_s: float
    #: How long ``--resume-existing`` waits for a live driver's lease: its expiry plus a margin.
    wait_s: float


def lease_timing() -> LeaseTiming:
    """The lease's timings, from SESSREC_LEASE_EXPIRY (seconds, 1 to 3600) or the defaults."""
    expiry = seconds_setting(LEASE_EXPIRY_VAR, LEASE_EXPIRY_S, 1, 3600)
    return LeaseTiming(expiry, expiry / LEASE_RENEWALS, expiry * 1.5 + 10)


class LeaseHeld(SessrecError):
    """Another driver holds the sweep's lease and renews it."""


class LeaseLost(SessrecError):
    """This driver's lease was taken over: it writes nothing more."""


def _holder(record: dict[str, Any] | None) -> str:
    """The driver a lease record names, for one line."""
    if record is None:
        return "a driver whose lease record is unreadable"
    now_s = time.time()
    age = now_s - float(record.get("started_s", now_s))
    renewed = now_s - float(record.get("renewed_s", now_s))
    return (
        f"{record.get('command', 'a driver')} on host {record.get('host', '?')}, pid {record.get('pid', '?')}, "
        f"started {record.get('started', '?')} (lease held {age:.0f} s, renewed {renewed:.0f} s ago)"
    )


def _live(record: dict[str, Any] | None) -> bool:
    """Whether a lease record holds: not released and renewed within its expiry."""
    if record is None or record.get("released"):
        return False
    try:
        return time.time() - float(record["renewed_s"]) <= float(record["expiry_s"])
    except (KeyError, TypeError, ValueError):
        return False  # not a lease record: free to take over


def _parse(data: bytes) -> dict[str, Any] | None:
    try:
        record = formats.from_json(data, layout.LEASE_FILE)
    except SessrecError:
        return None
    return record if isinstance(record, dict) else None


def _held(paths: SweepPaths, holder: str, timing: LeaseTiming, after: str) -> LeaseHeld:
    return LeaseHeld(
        f"sweep {paths.sweep_id} is being run by another driver: {holder}{after}; "
        f"nothing was written (a killed driver's lease expires {timing.expiry_s:.0f} s after "
        "its last renewal)"
    )


class Lease:
    """The lease of one run of a sweep: taken with ``acquire``, renewed by a thread, checked by
    ``check`` before every fenced write, given up with ``release``."""

    def __init__(self, paths: SweepPaths, record: dict[str, Any], version: str, timing: LeaseTiming) -> None:
        self.paths, self.record, self.version, self.timing = paths, record, version, timing
        self.lost: str | None = None  # who took it, once it was taken
        #: On loss, interrupt the main thread as Ctrl-C does (Tune then stops its trials); the
        #: next fenced write raises ``LeaseLost``.
        self.interrupt_on_loss = True
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def uri(self) -> str:
        return self.paths.file(layout.LEASE_FILE)

    @classmethod
    def acquire(cls, paths: SweepPaths, command: str, wait: bool = False) -> Lease:
        """Take the sweep's lease and start renewing it. Held by a live driver: refused in one
        line naming it (``LeaseHeld``), or with ``wait`` waited for (a line every few seconds)
        until it is released or expires, at most ``lease_timing().wait_s``."""
        timing = lease_timing()
        started = time.monotonic()
        said = -math.inf
        while True:
            taken = cls._take(paths, command, timing)
            if isinstance(taken, Lease):
                taken._start()
                return taken
            waited = time.monotonic() - started
            if not wait or waited >= timing.wait_s:
                raise _held(paths, _holder(taken), timing, f" after waiting {waited:.0f} s" if wait else "")
            if waited - said >= 5:
                said = waited
                sys.stderr.write(
                    f"waiting for the driver of sweep {paths.sweep_id} to finish or its lease to expire "
                    f"({waited:.0f} s of at most {timing.wait_s:.0f} s): {_holder(taken)}\n"
                )
                sys.stderr.flush()
            time.sleep(min(1.0, timing.renew_s))

    @staticmethod
    def held_by(paths: SweepPaths) -> str | None:
        """The live driver holding the sweep's lease now, for one line; None when none does (no
        lease, a released or expired one, or an unreadable one: free to take over)."""
        try:
            record = _parse(storage.read_bytes(paths.file(layout.LEASE_FILE)))
        except NotFoundError:
            return None
        return _holder(record) if _live(record) else None

    @classmethod
    def check_free(cls, paths: SweepPaths) -> None:
        """Refuse at once (``LeaseHeld``) while a live driver holds the sweep's lease: a look before
        work that a refused run would waste, such as starting Ray. ``acquire`` takes the lease later."""
        if (holder := cls.held_by(paths)) is not None:
            raise _held(paths, holder, lease_timing(), "")

    @classmethod
    def _take(cls, paths: SweepPaths, command: str, timing: LeaseTiming) -> Lease | dict[str, Any] | None:
        """One try: this run's lease, or the live holder's record (None: unreadable)."""
        uri = paths.file(layout.LEASE_FILE)
        now_s = time.time()
        record = {
            "owner": secrets.token_hex(16),
            "command": command,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": formats.now(),
            "started_s": now_s,
            "renewed_s": now_s,
            "expiry_s": timing.expiry_s,
            "released": False,
        }
        data = formats.to_json(record)
        if not storage.create_exclusive(uri, data):
            try:
                current, version = storage.read_versioned(uri)
            except NotFoundError:
                return None
            holder = _parse(current)
            if _live(holder) or not storage.replace_if(uri, data, version):
                return holder if _live(holder) else cls._reread(uri)
        stored, version = storage.read_versioned(uri)
        mine = _parse(stored)
        if mine is None or mine.get("owner") != record["owner"]:
            return mine
        return cls(paths, record, version, timing)

    @staticmethod
    def _reread(uri: str) -> dict[str, Any] | None:
        try:
            return _parse(storage.read_versioned(uri)[0])
        except NotFoundError:
            return None

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._heartbeat, name="sessrec-lease", daemon=True)
        self._thread.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.timing.renew_s):
            try:
                self._renew()
            except StorageError:
                continue  # storage away for a while: try again; after the expiry another may take it
            if self.lost is not None:
                if self.interrupt_on_loss:
                    os.kill(os.getpid(), signal.SIGINT)
                return

    def _renew(self) -> None:
        with self._lock:
            if self.lost is not None or self._stop.is_set():
                return
            record = {**self.record, "renewed_s": time.time()}
            if storage.replace_if(self.uri, formats.to_json(record), self.version):
                stored, version = storage.read_versioned(self.uri)
                if (_parse(stored) or {}).get("owner") == record["owner"]:
                    self.record, self.version = record, version
                    return
            self._mark_lost()

    def _mark_lost(self) -> None:
        self.lost = _holder(self._reread(self.uri))

    def check(self) -> None:
        """Right before a fenced write: still this run's lease, or ``LeaseLost``."""
        if self.lost is None:
            with self._lock:
                try:
                    stored = _parse(storage.read_versioned(self.uri)[0])
                except NotFoundError:
                    stored = None
                if stored is None or stored.get("owner") != self.record["owner"] or stored.get("released"):
                    self._mark_lost()
        if self.lost is not None:
            raise LeaseLost(
                f"sweep {self.paths.sweep_id}: this driver lost its lease to {self.lost}; "
                "it wrote nothing more and leaves the sweep to that driver"
            )

    def release(self) -> None:
        """Stop renewing and free the lease (not one already taken over); storage errors are
        ignored: the lease then expires."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        with self._lock:
            if self.lost is not None:
                return
            try:
                storage.replace_if(self.uri, formats.to_json({**self.record, "released": True}), self.version)
            except StorageError:
                pass


def load_sweep(root: str, sweep_id: str) -> tuple[SweepSpec, SweepRecord]:
    """A stored sweep's spec and record; refused, naming the file, if either is damaged."""
    paths = SweepPaths(root, sweep_id)
    if not storage.exists(paths.file(layout.SPEC_FILE)):
        raise SessrecError(f"no sweep {sweep_id!r} in {root}")
    spec = parse_spec(storage.read_text(paths.file(layout.SPEC_FILE)), paths.file(layout.SPEC_FILE))
    return spec, SweepRecord.read(paths)

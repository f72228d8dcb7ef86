"""Starting an embedded Ray (a sweep's or ``sessrec serve``'s own local Ray), and starting it again
where the start fails. Ray is imported inside the functions: importing this module imports no Ray.

A start fails in one of two ways:

- ``ray.init`` raises (its temp folder unusable, a node that did not come up): ``start_embedded``
  removes what was half-started and tries again, in the same process.
- Ray ends the process itself. Where the raylet dies between its start and the driver's
  registration, Ray 2.60 logs "Failed to register worker to Raylet" or "Failed to get the system
  config from raylet" and calls ``_Exit(1)`` from C++: no Python code runs after it. So the
  ``sessrec`` process runs such a command in a child process (``supervise``) and runs it again
  where the child ended that way, inside ``ray.init``. Commands start Ray before they store or
  lease anything, so a child that ended there left nothing to undo but Ray's own session. (One
  exception: ``tune run --resume-existing`` of a sweep already stored takes its lease first, so
  that a completed sweep starts no Ray; its next run waits out the dead run's lease, 30 s.)
"""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any

from sessrec.errors import SessrecError

#: How many times a local Ray start is tried, and the pause before each retry, in seconds.
EMBEDDED_START_ATTEMPTS, EMBEDDED_RETRY_PAUSE_S = 3, 2.0

#: The embedded Ray's temp folder (its session's logs and sockets) lives in a folder of the user's
#: own (mode 0700), not in Ray's default /tmp/ray, which Ray makes writable and readable by all.
#: Under /tmp, not $TMPDIR: Ray's Unix socket paths below it must stay under 107 characters.
PRIVATE_TEMP_PARENT = "/tmp"

#: Set by a supervising ``sessrec`` process for the child it runs: "<its pid>:<the start's state file>".
SUPERVISED_VAR = "SESSREC_RAY_START_SUPERVISED"
#: What the state file says while ``ray.init`` runs (then the temp folder); it is emptied after.
STARTING = "starting "

#: Whether this process may run its command again in a child (``allow_supervision``).
_supervision_allowed = False
#: In a supervised child: the file that tells the parent a ``ray.init`` is under way.
_state_file: str | None = None


def private_ray_temp_dir() -> str:
    """``/tmp/sessrec-ray-<uid>/ray``: the embedded Ray's temp folder. Ray makes the folder it is
    given world-writable (chmod 0777), so that one lies inside a folder only the user may enter,
    created 0700; one owned by someone else, not a folder, or open to group or others is refused."""
    import stat

    private = os.path.join(PRIVATE_TEMP_PARENT, f"sessrec-ray-{os.getuid()}")
    try:
        os.mkdir(private, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise SessrecError(f"cannot create the embedded Ray's temp folder {private}: {exc.strerror or exc}") from None
    info = os.lstat(private)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise SessrecError(
            f"{private} is not a folder of this user's: the embedded Ray's logs would not be private; remove it"
        )
    if stat.S_IMODE(info.st_mode) & 0o077:
        mode = stat.S_IMODE(info.st_mode)
        raise SessrecError(
            f"{private} is open to other users (mode {mode:o}): the embedded Ray's logs would not be "
            f"private; run 'chmod 700 {private}' or remove it"
        )
    return os.path.join(private, "ray")


def start_embedded(**options: Any) -> None:
    """Start an embedded Ray: ``ray.init(**options)`` (``_temp_dir`` among them), retried where it fails.

    A local start can fail for a while (its temp folder unusable, a raylet that died as it started):
    the half-started Ray is shut down, its processes and its session folder removed, one line says
    so on stderr, and the start is tried again, ``EMBEDDED_START_ATTEMPTS`` times in all. The last
    failure is one ``SessrecError`` line. Where Ray ends the process instead (see the module's
    docstring), a supervising parent runs the command again."""
    import ray

    temp_dir = options.get("_temp_dir")
    for attempt in range(1, EMBEDDED_START_ATTEMPTS + 1):
        before = _own_sessions(temp_dir, os.getpid())
        _tell_parent(f"{STARTING}{temp_dir or ''}")
        try:
            ray.init(**options)
            return
        except Exception as exc:  # what Ray raises varies (OSError, RuntimeError, its own Exception)
            reason = (str(exc).splitlines() or [type(exc).__name__])[0][:300] or type(exc).__name__
        finally:
            _tell_parent("")
        _clean_failed_start(temp_dir, before)
        if attempt == EMBEDDED_START_ATTEMPTS:
            raise SessrecError(f"the embedded Ray did not start ({attempt} attempts); the last: {reason}")
        _say_retry(reason, attempt + 1)
        time.sleep(EMBEDDED_RETRY_PAUSE_S)


def _say_retry(reason: str, attempt: int) -> None:
    sys.stderr.write(
        f"Ray did not start ({reason}); retrying in {EMBEDDED_RETRY_PAUSE_S:.0f} s "
        f"(attempt {attempt} of {EMBEDDED_START_ATTEMPTS})\n"
    )
    sys.stderr.flush()


def _own_sessions(temp_dir: str | None, pid: int) -> set[str]:
    """The session folders under ``temp_dir`` that process ``pid`` started (Ray names them
    ``session_<time>_<pid>``)."""
    if not temp_dir:
        return set()
    try:
        names = os.listdir(temp_dir)
    except OSError:
        return set()
    return {name for name in names if name.startswith("session_") and name.endswith(f"_{pid}")}


def _clean_failed_start(temp_dir: str | None, before: set[str]) -> None:
    """Undo a failed start: Ray's own shutdown, then whatever it left of the new session (processes
    this process started for it, found by the session folder in their command line, and the folder)."""
    import ray

    try:
        ray.shutdown()
    except Exception:  # nothing (more) to shut down
        pass
    _remove_sessions(str(temp_dir), _own_sessions(temp_dir, os.getpid()) - before)


def _remove_sessions(temp_dir: str, names: set[str]) -> None:
    """Kill the processes that name these session folders of ``temp_dir``, and remove the folders."""
    import shutil

    for name in names:
        session = os.path.join(temp_dir, name)
        for pid in _processes_naming(session):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        shutil.rmtree(session, ignore_errors=True)
        latest = os.path.join(temp_dir, "session_latest")
        if os.path.islink(latest) and os.readlink(latest) == session:
            os.unlink(latest)


def _processes_naming(session: str) -> list[int]:
    """Processes whose command line names the folder ``session`` (a Ray session's GCS, raylet, agents)."""
    pids, marks = [], (session.encode() + b"/", session.encode() + b"\0")  # the folder, not a longer name
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else ():
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                text = cmdline.read()
            if any(mark in text for mark in marks):
                pids.append(int(entry))
        except OSError:
            continue
    return pids


# Supervision: the command in a child process, run again where Ray ended it as it started ----------


def allow_supervision() -> None:
    """Let ``supervise`` run the command again in a child. Only the ``sessrec`` process's entry point
    calls this: its command line (``sys.orig_argv``) is the command; an in-process caller's is not."""
    global _supervision_allowed
    _supervision_allowed = True


def supervise() -> None:
    """Called by a command about to start an embedded Ray, before it stores or leases anything.

    - In a child that a ``sessrec`` process supervises: note the state file, and end with the
      parent (a killed parent leaves no sweep running on).
    - In the ``sessrec`` process itself, on Linux: run this command line in a child process, pass it
      every signal, and end as it ends (``SystemExit`` with its status; killed by a signal, the same
      signal). Where Ray ended the child inside ``ray.init``, one line says so, and the command runs
      again, ``EMBEDDED_START_ATTEMPTS`` times in all; the last such end is one error line.
    - Anywhere else (in-process callers, other systems): nothing."""
    global _state_file
    supervised = os.environ.pop(SUPERVISED_VAR, None)  # not inherited by Ray's processes
    if supervised is not None:
        parent, _, _state_file = supervised.partition(":")
        _end_with_parent(int(parent))
        return
    if _supervision_allowed and sys.platform == "linux" and hasattr(signal, "sigtimedwait"):
        raise SystemExit(_run_supervised())


def _tell_parent(state: str) -> None:
    if _state_file is not None:
        try:
            Path(_state_file).write_text(state)
        except OSError:  # the parent's file gone: a start that Ray ends is then not run again
            pass


def _end_with_parent(parent: int) -> None:
    """SIGKILL this process when its parent ends (Linux's parent-death signal)."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # it ended before the signal was set
        os.kill(os.getpid(), signal.SIGKILL)


#: Passed on to the child, once: it leads a process group of its own, so a signal to this process's
#: group (a terminal's Ctrl-C, `timeout`) reaches this process alone, not both.
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
STOPS = (signal.SIGTSTP, signal.SIGCONT)  # Ctrl-Z and fg: the child's whole group stops and goes on
ENDINGS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


def _run_supervised() -> int:
    """The command in a child, run again while Ray ends it inside ``ray.init``; its exit status."""
    import tempfile  # here: the entry point imports this module, and --help stays quick

    descriptor, state = tempfile.mkstemp(prefix="sessrec-ray-start-")
    os.close(descriptor)
    try:
        attempt = 1
        while True:
            child, status, ending = _run_child(state)
            temp_dir = Path(state).read_text()
            if ending or os.waitstatus_to_exitcode(status) != 1 or not temp_dir.startswith(STARTING):
                return _mirror(status)
            reason = _remove_hard_end(temp_dir.removeprefix(STARTING), child)
            if attempt == EMBEDDED_START_ATTEMPTS:
                raise SessrecError(f"the embedded Ray did not start ({attempt} attempts); the last: {reason}")
            attempt += 1
            _say_retry(reason, attempt)
            time.sleep(EMBEDDED_RETRY_PAUSE_S)
    finally:
        os.unlink(state)


def _run_child(state: str) -> tuple[int, int, bool]:
    """Run this command line in a child and wait for it, passing it signals; returns its pid, its
    wait status, and whether a signal that ends a command came for it."""
    watched = {*FORWARDED, *STOPS, signal.SIGCHLD}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, watched)  # taken by sigtimedwait below
    ending = False
    try:
        Path(state).write_text("")
        child = os.posix_spawn(
            sys.executable,
            [sys.executable, *sys.orig_argv[1:]],
            {**os.environ, SUPERVISED_VAR: f"{os.getpid()}:{state}"},
            setpgroup=0,
            setsigmask=(),
            setsigdef=(*FORWARDED, *STOPS, signal.SIGPIPE, signal.SIGXFSZ),
        )
        while True:
            done, status = os.waitpid(child, os.WNOHANG)
            if done:
                break
            received = signal.sigtimedwait(watched, 1.0)
            if received is None or received.si_signo == signal.SIGCHLD:
                continue
            ending |= received.si_signo in ENDINGS
            _pass_on(child, received.si_signo)
        while (received := signal.sigtimedwait(watched, 0)) is not None:  # came as it ended: not for a re-run
            ending |= received.si_signo in ENDINGS
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    return child, status, ending


def _pass_on(child: int, signum: int) -> None:
    try:
        if signum == signal.SIGTSTP:
            os.killpg(child, signal.SIGTSTP)
            os.kill(os.getpid(), signal.SIGSTOP)  # as the terminal would have stopped this process too
        elif signum == signal.SIGCONT:
            os.killpg(child, signal.SIGCONT)
        else:
            os.kill(child, signum)
    except ProcessLookupError:
        pass  # it has ended meanwhile


def _mirror(status: int) -> int:
    """The child's exit status; a child killed by a signal kills this process with the same one."""
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        sys.stdout.flush()
        sys.stderr.flush()
        if -code not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(-code, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {-code})
        os.kill(os.getpid(), -code)
        return 128 - code  # a signal that does not end a process by default
    return code


#: Ray's own log line (glog's): "[time E pid tid] file.cc:line: message".
_RAY_ERROR_LINE = re.compile(r"^\[[^\]]* E \d+ \d+\] [\w./-]+:\d+: (.+)$")


def _remove_hard_end(temp_dir: str, child: int) -> str:
    """Remove what the child's Ray session left; why Ray ended the child, from the driver's log."""
    sessions = _own_sessions(temp_dir, child)
    reason = "Ray ended the process as it started, exit status 1"
    for name in sorted(sessions):
        for log in sorted(Path(temp_dir, name, "logs").glob("python-core-driver-*.log")):
            try:
                found = [match[1] for line in log.read_text().splitlines() if (match := _RAY_ERROR_LINE.match(line))]
            except OSError:
                continue
            if found:
                reason = f"Ray ended the process: {found[-1].split('. ')[0][:300]}"
    _remove_sessions(temp_dir, sessions)
    return reason

"""The ``sessrec`` command's entry point. It installs the Ctrl-C / SIGTERM handling first, then
loads the Typer app (``sessrec.cli.commands``, about 1.7 s of imports): an interrupt during
start-up is one ``error: interrupted`` line too, not a traceback or a silent kill (only the
interpreter's own start, before any of sessrec runs, is out of reach)."""

from __future__ import annotations

import _thread
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sessrec import outputs
from sessrec.errors import SessrecError


def __getattr__(name: str) -> Any:
    # `from sessrec.cli import app` keeps working without loading the app at import time.
    if name == "app":
        from sessrec.cli.commands import app

        return app
    raise AttributeError(name)


def _stop_like_ctrl_c(signum: int, frame: object) -> None:
    # SIGTERM (docker stop, kubectl delete, a job stop) takes the Ctrl-C path: Ray Tune saves
    # its state and stops (it installs its own SIGINT handler), other commands end before they
    # write their outputs.
    os.kill(os.getpid(), signal.SIGINT)


#: What Typer returns, without a word, when a command is interrupted (no command returns a number).
TYPER_INTERRUPTED = 130


#: Set once Ctrl-C or SIGTERM has been raised in the command: an error that follows it is the
#: interrupt's doing (a Cython extension interrupted mid-import reports an ImportError).
INTERRUPTED = threading.Event()


def _interrupt(signum: int, frame: object) -> None:
    if outputs.WRITING.is_set():
        return  # the outputs are being written: let the command finish them (see sessrec.outputs)
    INTERRUPTED.set()
    raise KeyboardInterrupt


def _interrupt_again() -> None:
    if signal.getsignal(signal.SIGINT) is _interrupt:  # the command is still running
        _thread.interrupt_main(signal.SIGINT)


@contextmanager
def interrupt_handling() -> Iterator[None]:
    """Ctrl-C and SIGTERM stop the command with ``KeyboardInterrupt`` (except while it writes its
    outputs), wherever they land. On leaving, both signals are ignored (the process is ending):
    an in-process caller restores its own handlers."""
    outputs.WRITING.clear()
    INTERRUPTED.clear()
    unraisablehook = sys.unraisablehook

    def deliver_again(unraisable: Any) -> None:
        # Python swallows an exception raised where it cannot propagate (a weakref callback, a
        # __del__, garbage collection), printing "Exception ignored in ..." with a traceback,
        # and the interrupted command would go on and finish. A swallowed interrupt is signalled
        # again from another thread: it lands once this callback has returned (signalled from
        # here, the handler would run at once, still inside it).
        if issubclass(unraisable.exc_type, KeyboardInterrupt):
            _thread.start_new_thread(_interrupt_again, ())
        else:
            unraisablehook(unraisable)

    sys.unraisablehook = deliver_again
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _stop_like_ctrl_c)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        sys.unraisablehook = unraisablehook


def main() -> None:
    """The ``sessrec`` process. Once the command has returned, the process ends at once
    (``os._exit``) instead of through the interpreter's shutdown: with pyarrow loaded, that
    shutdown now and then aborts a finished command (exit -6, "terminate called without an
    active exception": a Parquet reader thread outlives Arrow's teardown, apache/arrow#34314),
    and it takes a while, during which a signal would turn a finished command into a kill.
    Nothing is left to do by then: outputs are written and closed, Ray is left (below).

    The command's error line is printed after an embedded Ray has shut down: until then the
    driver's own threads may still print Ray's log lines ("Attempting to recover 10 lost
    objects ...", when Ray's processes were signalled with the command), and the error is the
    command's last line.

    A command that starts an embedded Ray may run itself again in a child process from here
    (``sessrec.sweep.ray_start.supervise``): this process's command line is the command."""
    from sessrec.sweep import ray_start

    ray_start.allow_supervision()
    code, error = _command()
    if "ray" in sys.modules:  # an embedded Ray's processes end with the driver's ray.shutdown()
        import ray

        ray.shutdown()
    _print_error(error)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run() -> int:
    """The command named by ``sys.argv``, with sessrec's signal handling; its exit status. Its
    error, if any, is printed as one line."""
    code, error = _command()
    _print_error(error)
    return code


def _command() -> tuple[int, str]:
    with interrupt_handling():
        return _run()


def _print_error(error: str) -> None:
    if error:
        print(error, file=sys.stderr)


def _run() -> tuple[int, str]:
    """The command's exit status and its one-line error ("" when none)."""
    try:
        import typer

        from sessrec.cli.commands import app

        try:
            result = app(standalone_mode=False, prog_name="sessrec")
        except typer.exceptions.TyperException as exc:  # usage errors: bad or missing options
            if type(exc).__name__ == "NoArgsIsHelpError":  # `sessrec data`: the help is the answer
                return getattr(exc, "exit_code", 2), ""
            ctx = getattr(exc, "ctx", None)
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            option, root = getattr(exc, "option_name", None), ctx.find_root() if ctx is not None else None
            if (
                option
                and ctx is not None
                and root is not None
                and any(option in param.opts for param in root.command.params)
            ):
                # `sessrec results list --storage X`: the root's options go before the command.
                command = ctx.command_path.removeprefix(root.command_path).strip()
                hint = f" ({option} goes before the command: '{root.command_path} {option} ... {command} ...')"
            return getattr(exc, "exit_code", 2), f"error: {exc.format_message()}{hint}"
        except typer.Abort:
            raise KeyboardInterrupt from None
        except SystemExit as exc:  # --show-completion, --install-completion and completion itself end so
            return (exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)), ""
        if result == TYPER_INTERRUPTED:
            raise KeyboardInterrupt
        return (result if isinstance(result, int) else 0), ""
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM, in any command: 130, as a shell reports it
        detail = str(exc) if exc.args and isinstance(exc.args[0], str) else ""
        return 130, f"error: interrupted{' (' + detail + ')' if detail else ''}"
    except SessrecError as exc:
        return 1, f"error: {exc}"
    except Exception as exc:  # a bug, not bad input: still one line unless asked for more
        if INTERRUPTED.is_set():  # the interrupt, turned into another error on its way out (a lazy import's)
            return 130, "error: interrupted"
        if os.environ.get("SESSREC_DEBUG"):
            raise
        first_line = (str(exc).splitlines() or [""])[0]
        return 2, f"error: unexpected {type(exc).__name__}: {first_line} (set SESSREC_DEBUG=1 for details)"

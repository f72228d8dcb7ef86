"""The ``sessrec`` command's entry point. It installs the Ctrl-C / SIGTERM handling first, then
loads the Typer app (``sessrec.cli.commands``, about 1.7 s of imports): an interrupt during
start-up is one ``error: interrupted`` line too, never a traceback or a silent kill."""

from __future__ import annotations

import os
import signal
import sys
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


def _interrupt(signum: int, frame: object) -> None:
    if outputs.WRITING.is_set():
        return  # the outputs are being written: let the command finish them (see sessrec.outputs)
    raise KeyboardInterrupt


def main() -> None:
    previous = signal.signal(signal.SIGINT, _interrupt), signal.signal(signal.SIGTERM, _stop_like_ctrl_c)
    outputs.WRITING.clear()
    try:
        code = _run()
    finally:
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])
    sys.exit(code)


def _run() -> int:
    """The command's exit status; errors printed as one line."""
    try:
        import typer

        from sessrec.cli.commands import app

        try:
            result = app(standalone_mode=False)
        except typer.exceptions.TyperException as exc:  # usage errors: bad or missing options
            ctx = getattr(exc, "ctx", None)
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            print(f"error: {exc.format_message()}{hint}", file=sys.stderr)
            return getattr(exc, "exit_code", 2)
        except typer.Abort:
            raise KeyboardInterrupt from None
        return result if isinstance(result, int) else 0
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except SessrecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # a bug, not bad input: still one line unless asked for more
        if os.environ.get("SESSREC_DEBUG"):
            raise
        first_line = (str(exc).splitlines() or [""])[0]
        print(f"error: unexpected {type(exc).__name__}: {first_line} (set SESSREC_DEBUG=1 for details)", file=sys.stderr)
        return 2

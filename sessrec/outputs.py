"""Writing a command's outputs all at once, so that an interrupt never leaves half of them.

Commands make every output in memory first; ``write_all`` then writes them in order (the file
that marks the result complete last). From its first write on, ``WRITING`` is set and the
CLI's Ctrl-C / SIGTERM handler lets the command finish instead of stopping it: a dataset with
new sessions but its old manifest would be refused as corrupt, a model without its
``metrics.json`` looks unfinished, a fetched folder with half of its files looks whole.
Writing takes moments (the content is ready); stopping before it writes nothing.

The CLI imports this module before anything else, to install its signal handlers at once: it
loads ``storage`` only when it writes.
"""

from __future__ import annotations

import threading

WRITING = threading.Event()


def write_all(files: dict[str, bytes | None]) -> list[str]:
    """Write ``uri -> content`` in the given order, each file atomically (see ``storage``);
    ``None`` removes the file (an output the new version no longer has). Returns those written."""
    from sessrec import storage  # here: see the module's docstring

    WRITING.set()
    for uri, content in files.items():
        if content is None:
            storage.delete(uri)
        else:
            storage.write_bytes(uri, content)
    return [uri for uri, content in files.items() if content is not None]

"""YAML as sessrec reads it: PyYAML's safe loader, with ``1e-3`` read as a number.

PyYAML follows YAML 1.1, where a float needs a dot, so ``1e-3`` would be the string '1e-3'.
YAML 1.2, Helm and Kubernetes read it as a number, and so does anyone writing a learning rate.

Bounded: a file is read only up to ``storage.MAX_DOCUMENT_BYTES`` (``read_file``), and anchors
and aliases are allowed (Kubernetes manifests use them) only while the document they expand to
stays within ``MAX_EXPANDED_NODES`` values, every use of an alias counted: a "billion laughs"
document (nested aliases, 9**10 values from a few hundred bytes) or a recursive alias is refused
before anything is built from it, instead of hanging whatever walks the result (schema
validation, rendering) with memory growing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from sessrec import storage

#: The most values (scalars, lists, mappings) one document may expand to, aliases counted at each
#: use. Far above any spec, settings file or manifest (a few hundred to a few thousand).
MAX_EXPANDED_NODES = 200_000


class ExpansionError(yaml.YAMLError):
    """A document whose aliases expand beyond MAX_EXPANDED_NODES, or refer to themselves."""


class Loader(yaml.SafeLoader):
    def construct_document(self, node: yaml.Node) -> Any:
        _check_expansion(node)
        return super().construct_document(node)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _check_expansion(root: yaml.Node) -> None:
    """Count the values the document expands to, each shared (aliased) node once per use, in
    time linear in the node graph (sizes memoized); refuse a cycle or a count over the bound."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            on_path.discard(key)
            sizes[key] = min(1 + sum(sizes[id(child)] for child in _children(node)), MAX_EXPANDED_NODES + 1)
            continue
        if key in sizes:
            continue
        on_path.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in on_path:
                line = child.start_mark.line + 1
                raise ExpansionError(
                    f"an alias refers to a node that contains it (line {line}): recursive aliases are refused"
                )
            if id(child) not in sizes:
                stack.append((child, False))
    if sizes[id(root)] > MAX_EXPANDED_NODES:
        raise ExpansionError(f"its aliases expand it to more than {MAX_EXPANDED_NODES} values: refused")


# An exponent without a dot (a dotted one is YAML 1.1's float already); integers stay integers.
_EXPONENT = re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$")
Loader.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT, list("-+0123456789"))


def load(text: str) -> Any:
    return yaml.load(text, Loader=Loader)


def load_all(text: str) -> Iterator[Any]:
    return yaml.load_all(text, Loader=Loader)


def read_file(path: str | Path, what: str) -> str:
    """A local YAML file's text, read only up to storage.MAX_DOCUMENT_BYTES; a device, a FIFO or a
    larger file is refused (SessrecError naming ``what`` and the path), a missing file raises
    storage's NotFoundError."""
    name = f"{what} {path}"
    return storage.read_text(str(Path(path)), storage.MAX_DOCUMENT_BYTES, name)


def read_stream(stream: Any, what: str) -> str:
    """Standard input or another binary stream, as read_file (at most MAX_DOCUMENT_BYTES)."""
    from sessrec.errors import SessrecError

    data = stream.read(storage.MAX_DOCUMENT_BYTES + 1)
    if len(data) > storage.MAX_DOCUMENT_BYTES:
        raise SessrecError(f"{what} is larger than the {storage.MAX_DOCUMENT_TEXT} limit for such files: refused")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise SessrecError(f"{what} is not UTF-8 text") from None


def error_text(exc: yaml.YAMLError) -> str:
    """One line: what is wrong and where (PyYAML's own text spans several, with a caret)."""
    problem = getattr(exc, "problem", None)
    mark = getattr(exc, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(str(exc).split())

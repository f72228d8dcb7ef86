"""YAML as sessrec reads it: PyYAML's safe loader, with ``1e-3`` read as a number.

PyYAML follows YAML 1.1, where a float needs a dot, so ``1e-3`` would be the string '1e-3'.
YAML 1.2, Helm and Kubernetes read it as a number, and so does anyone writing a learning rate.
"""

from __future__ import annotations

import re
from typing import Any, Iterator

import yaml


class Loader(yaml.SafeLoader):
    pass


# An exponent without a dot (a dotted one is YAML 1.1's float already); integers stay integers.
Loader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$"), list("-+0123456789"))


def load(text: str) -> Any:
    return yaml.load(text, Loader=Loader)  # noqa: S506 (a SafeLoader)


def load_all(text: str) -> Iterator[Any]:
    return yaml.load_all(text, Loader=Loader)  # noqa: S506 (a SafeLoader)


def error_text(exc: yaml.YAMLError) -> str:
    """One line: what is wrong and where (PyYAML's own text spans several, with a caret)."""
    problem = getattr(exc, "problem", None)
    mark = getattr(exc, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(str(exc).split())

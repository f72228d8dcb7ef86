"""Modules loaded on first use, so that building the CLI (and every ``--help``) stays fast: the
package modules behind the commands pull in numpy, pandas, pyarrow, gensim, boto3 or Ray."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType


def lazy_module(name: str) -> ModuleType:
    """``name``, imported when one of its attributes is first read (the module itself at once
    where it is already imported). Import errors surface at that first use."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    parent, _, child = name.rpartition(".")
    if parent:  # what a normal import does: `sessrec.pipeline` is an attribute of `sessrec`
        setattr(sys.modules[parent], child, module)
    return module

"""Names the commands' help texts and option checks need, kept here so that building the CLI
(and ``sessrec --help``) imports none of numpy, pandas, pyarrow, gensim, Ray or boto3. Each is a
copy of its defining constant (named beside it); ``tests/test_cli_ux.py`` checks they agree."""

from __future__ import annotations

#: sessrec.spec.BUILTIN_SPECS
BUILTIN_SPECS = ("tiny", "seed3d", "reference", "retail", "session")
#: sessrec.pipeline.BASELINE_METHODS
BASELINE_METHODS = ("popular", "assoc", "transitions", "sr", "session-transitions", "repeat")
#: the keys of sessrec.core.recommenders.MODELS
MODELS = ("w2v_item", "w2v_session", "sr", "transitions", "repeat", "hybrid")
#: sessrec.core.session_metrics.EXCLUDES
EXCLUDES = ("query", "session")
#: sessrec.core.sessions.DEFAULT_PRODUCT_PATTERN
DEFAULT_PRODUCT_PATTERN = r"^\d{5}"
#: sessrec.spec.DEFAULT_K, MAX_K and DEFAULT_PAIRS
DEFAULT_K, MAX_K, DEFAULT_PAIRS = 10, 1000, 1000
#: sessrec.k8s.defaults.SERVE_PORT and sessrec.serving.DEFAULT_RELOAD_INTERVAL_S
SERVE_PORT, DEFAULT_RELOAD_INTERVAL_S = 8000, 2.0
#: the heavy libraries no ``--help`` may load
HEAVY_MODULES = ("ray", "gensim", "pandas", "pyarrow", "matplotlib", "boto3")

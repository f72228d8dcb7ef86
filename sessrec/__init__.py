"""sessrec: tune session-based (prod2vec) recommenders with Ray Tune."""

__version__ = "0.1.0"

"""Hyperparameter sweeps: Ray Tune over word2vec configs, recorded in the storage layout.

No-Ray modules (what reads a sweep back, and what a Ray worker or driver builds on): ``records``
(the manifest), ``trials`` (the trials table), ``checkpoints`` (trials as their checkpoints
record them), ``estimate`` (time and epoch arithmetic, dry run), ``request`` (what a run is
asked to do and refuses up front). Ray side: ``trial`` (runs in the workers), ``search``
(searcher and scheduler), ``progress``, ``cluster`` (connect, outages) and ``driver`` (one run).
This package imports none of them: importing it imports no Ray.
"""

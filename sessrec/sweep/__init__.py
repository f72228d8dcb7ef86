"""Hyperparameter sweeps: Ray Tune over recommender configs (word2vec, the count-based session
recommenders and their hybrids), recorded in the storage layout.

No-Ray modules (what reads a sweep back, and what a Ray worker or driver builds on): ``records``
(the manifest and the lease), ``trials`` (the trials table), ``checkpoints`` (trials as their
checkpoints record them), ``estimate`` (time and epoch arithmetic, dry run), ``request`` (what a
run is asked to do and refuses up front), ``scoring`` and ``best_scoring`` (a trial's and the
best's evaluation). Ray side: ``trial`` (runs in the workers), ``search`` (searcher and
scheduler), ``budget`` (time budget and goal), ``progress``, ``ray_start`` (the embedded start
and its supervision), ``cluster`` (connect, outages) and ``driver`` (one run).
This package imports none of them: importing it imports no Ray.
"""

"""gapsvm's benchmarks: ``python -m benchmarks.run`` (``make bench``) prints every ratio.

Each ``bench_*`` module measures one row of the table in ``benchmarks/README.md`` and exposes
a ``run(...)`` function returning a dict with a ``rows`` list (see :mod:`benchmarks.common`);
the same functions run in a tiny mode in ``tests/test_benchmarks.py``.
"""

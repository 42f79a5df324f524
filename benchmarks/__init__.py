"""prism_match's benchmarks: the asv suite, the peer comparison and micro-benchmarks.

Layout: one asv file per family (``bench_load``, ``bench_match``,
``bench_match_many``, ``bench_assign``, ``bench_update``, ``bench_explain``)
over the seeded, cached workloads of ``common``; ``compare.py`` runs the
same workloads through prism_match, the numpy ``baseline``, polars and DuckDB
(``peers``) and the seed's pure-Python algorithm (``seed_algorithm``) and
prints medians and ratios measured in one run; ``micro/`` holds
pytest-benchmark micro-benchmarks. Run them with ``make bench``.
"""

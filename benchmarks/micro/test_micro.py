"""Micro-benchmarks of the hot calls, with pytest-benchmark.

Kept apart from the unit tests (``testpaths = ["tests"]`` never collects
them) and disabled by the project's ``--benchmark-disable``, so
``pytest benchmarks/micro`` runs each once as a test; measure with
``pytest benchmarks/micro --benchmark-enable``. Each checks its result, so a
benchmark that silently stopped doing the work fails.
"""

from __future__ import annotations

import pytest

from benchmarks import common
from benchmarks.baseline import BaselineRegistry

N = 1_000
K = 5


@pytest.fixture(scope="module")
def registry():
    return common.registry(N)


@pytest.fixture(scope="module")
def mapping():
    return common.selectivity_slot("medium")


@pytest.fixture(scope="module")
def prepared(registry, mapping):
    return registry.prepare(mapping)


def test_match_prepared(benchmark, registry, prepared):
    matches = benchmark(registry.match, prepared, K)
    assert len(matches) == K
    assert [m.score for m in matches] == sorted((m.score for m in matches), reverse=True)


def test_match_mapping_cached(benchmark, registry, mapping, prepared):
    matches = benchmark(registry.match, mapping, K)
    assert [m.backend_id for m in matches] == [m.backend_id for m in registry.match(prepared, K)]


def test_prepare(benchmark, registry, mapping):
    prepared = benchmark(registry.prepare, mapping)
    assert prepared.slot_name == mapping["slot_name"]


def test_update(benchmark):
    registry = common.fresh_registry(N)  # live state changes: not the shared copy
    backend_id = registry.backend_ids[N // 2]
    benchmark(registry.update, backend_id, write_rps=1234.0)
    assert registry.columns.write_rps[N // 2] == 1234.0


def test_explain(benchmark, registry, prepared):
    diagnosis = benchmark(registry.explain, prepared)
    assert diagnosis.total == N and 0 < diagnosis.eligible < N


def test_query(benchmark, registry, prepared):
    result = benchmark(registry.query, prepared)
    assert result.total_count == registry.explain(prepared).eligible


def test_numpy_baseline(benchmark, registry, prepared):
    baseline = BaselineRegistry(registry)
    slot = baseline.prepare(prepared)
    idx, _ = benchmark(baseline.topk, slot, K)
    assert [registry.backend_ids[i] for i in idx] == [m.backend_id for m in registry.match(prepared, K)]


def test_reasons(benchmark, registry, prepared):
    def reasons():
        return [m.reasons for m in registry.match(prepared, K)]

    out = benchmark(reasons)
    assert all(out)

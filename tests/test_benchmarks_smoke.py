"""The benchmarks are code too: a broken benchmark or an unfair baseline fails here.

Each asv benchmark class runs every method once at its smallest sizes (and
every value of its categorical parameters); the numpy baseline, the polars
and DuckDB pipelines and the seed's pure-Python algorithm must return what
``Registry.match`` returns, ids and scores, on synthetic registries with
exact ties, wide vocabularies and both capacity bases — a baseline that
answers something else would make every ratio meaningless. Nothing here is
timed.
"""

from __future__ import annotations

import importlib
import inspect
import itertools
import sys
from pathlib import Path

import orjson
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the benchmarks package lives beside src/, not inside it
    sys.path.insert(0, str(ROOT))

import prism_match  # noqa: E402
from prism_match import MatchPolicy, load_registry  # noqa: E402
from prism_match.synthetic import generate_registry, generate_slots  # noqa: E402

from benchmarks import common  # noqa: E402
from benchmarks.baseline import BaselineRegistry  # noqa: E402
from benchmarks.peers import DuckDBMatcher, PolarsMatcher, slot_tables  # noqa: E402
from benchmarks.seed_algorithm import match_slot_to_backend, seed_backends, seed_requirement  # noqa: E402

MODULES = ["bench_load", "bench_match", "bench_match_many", "bench_assign", "bench_update", "bench_explain",
           "bench_health", "bench_living"]
PREFIXES = ("time_", "peakmem_", "mem_", "track_", "timeraw_")
FUTURE_APIS = ("match_many", "assign", "from_polars")


@pytest.fixture(autouse=True)
def _bench_cache(tmp_path_factory, monkeypatch):
    # Generated registries go to the test's temporary folder, not the tree.
    monkeypatch.setenv("PRISM_BENCH_CACHE", str(tmp_path_factory.getbasetemp() / "bench-cache"))


def _benchmark_classes():
    for module_name in MODULES:
        module = importlib.import_module(f"benchmarks.{module_name}")
        for name, cls in vars(module).items():
            if inspect.isclass(cls) and cls.__module__ == module.__name__:
                methods = sorted(m for m in dir(cls) if m.startswith(PREFIXES))
                if methods:
                    yield pytest.param(cls, methods, id=f"{module_name}.{name}")


def _smallest_params(cls) -> list[tuple]:
    """The smallest value of each numeric parameter, every value of the others."""
    params = getattr(cls, "params", None)
    if params is None:
        return [()]
    lists = params if params and isinstance(params[0], (list, tuple)) else [params]
    chosen = [[min(values)] if all(isinstance(v, (int, float)) for v in values) else list(values)
              for values in lists]
    return list(itertools.product(*chosen))


def test_every_benchmark_module_is_covered():
    found = {p.stem for p in (ROOT / "benchmarks").glob("bench_*.py")}
    assert found == set(MODULES)


@pytest.mark.parametrize(("cls", "methods"), list(_benchmark_classes()))
def test_benchmark_runs_once(cls, methods):
    ran = 0
    for params in _smallest_params(cls):
        bench = cls()
        try:
            if hasattr(bench, "setup"):
                bench.setup(*params)
        except NotImplementedError as exc:
            # Only an API that is not built yet may skip a benchmark.
            missing = [api for api in FUTURE_APIS if not common.has_api(api)]
            assert any(f"Registry.{api}" in str(exc) or api in str(exc) for api in missing), str(exc)
            continue
        for name in methods:
            result = getattr(bench, name)(*params)
            if name.startswith("track_"):
                assert isinstance(result, (int, float)) and result > 0
            ran += 1
        if hasattr(bench, "teardown"):
            bench.teardown(*params)
    if ran == 0:
        pytest.skip(f"{cls.__name__}: needs an API this build lacks ({', '.join(FUTURE_APIS)})")


# --- the baseline and the peers answer what Registry.match answers ---------------------------

REGISTRIES = [
    # (backends, seed, generator options, policy)
    (300, 1, {}, None),
    (250, 2, {"duplicate_share": 0.4}, None),                 # many exact ties
    (200, 3, {"extra_capabilities": 150}, None),               # vocabulary of several mask words
    (300, 4, {}, MatchPolicy(capacity_basis="available")),
    (200, 5, {}, MatchPolicy(w_perf=1.0, w_cost=0.0, w_avail=0.5, w_region=2.0, perf_cap=3.0,
                             health_statuses=("healthy",))),
]


def _registry(n, seed, options, policy):
    docs = generate_registry(n, seed, **options)
    return load_registry(docs) if policy is None else load_registry(docs, policy=policy)


def _slots(seed):
    extra = [
        {"slot_name": "unknown-name", "interfaces": ["NoSuchInterface"]},
        {"slot_name": "versioned", "capabilities": ["get@v2"], "interfaces": ["KeyValueBasicInterface@v1"]},
        {"slot_name": "typed", "backend_types": ["postgres", "redis"], "consistency": "strong",
         "min_storage": "1TB"},
        {"slot_name": "latency-only", "performance": {"max_latency_p99": "10ms"}},
        {"slot_name": "unknown-region", "regions": ["mars-1"]},
    ]
    return generate_slots(60, seed) + list(common.SELECTIVITY_SLOTS.values()) + extra


def _expected(registry, prepared, k):
    matches = registry.match(prepared, k)
    return [m.backend_id for m in matches], [m.score for m in matches]


@pytest.mark.parametrize(("n", "seed", "options", "policy"), REGISTRIES)
@pytest.mark.parametrize("k", [1, 5, 40])
def test_numpy_baseline_agrees_with_match(n, seed, options, policy, k):
    registry = _registry(n, seed, options, policy)
    baseline = BaselineRegistry(registry)
    for slot in _slots(seed):
        prepared = registry.prepare(slot)
        ids, scores = _expected(registry, prepared, k)
        idx, got_scores = baseline.topk(baseline.prepare(prepared), k)
        assert [registry.backend_ids[i] for i in idx] == ids, slot["slot_name"]
        assert list(got_scores) == pytest.approx(scores, rel=1e-12, abs=1e-12)


def test_numpy_baseline_finds_matches_and_ties():
    # The agreement above is not vacuous: matches exist, and some are exact ties.
    registry = _registry(250, 2, {"duplicate_share": 0.4}, None)
    baseline = BaselineRegistry(registry)
    _, scores = baseline.topk(baseline.prepare(common.selectivity_slot("broad")), 40)
    assert len(scores) == 40
    assert len(set(scores.tolist())) < len(scores)


@pytest.mark.parametrize(("n", "seed", "options", "policy"), REGISTRIES)
def test_peers_agree_with_match(n, seed, options, policy):
    registry = _registry(n, seed, options, policy)
    slots = _slots(seed)
    prepared = [registry.prepare(s) for s in slots]
    k = 5
    expected = [_expected(registry, p, k) for p in prepared]
    table, caps = slot_tables(prepared)
    ids = registry.backend_ids
    duck = DuckDBMatcher(registry)
    try:
        for matcher in (PolarsMatcher(registry), duck):
            got: list[tuple[list, list]] = [([], []) for _ in prepared]
            for s, b, score in matcher.topk(table, caps, k).iter_rows():
                got[s][0].append(ids[b])
                got[s][1].append(score)
            for (want_ids, want_scores), (got_ids, got_scores), slot in zip(expected, got, slots):
                assert got_ids == want_ids, (type(matcher).__name__, slot["slot_name"])
                assert got_scores == pytest.approx(want_scores, rel=1e-12, abs=1e-12)
    finally:
        duck.close()
    seed_list = seed_backends(registry)
    for p, (want_ids, want_scores) in zip(prepared, expected):
        req = seed_requirement(p, registry.policy.health_statuses)
        got = match_slot_to_backend(req, seed_list, k, registry.policy)
        assert [b for b, _ in got] == want_ids
        assert [s for _, s in got] == pytest.approx(want_scores, rel=1e-12, abs=1e-12)


def test_compare_script_runs(tmp_path, capsys):
    from benchmarks import compare

    out = tmp_path / "latest.json"
    report = compare.main(["--smoke", "--json", str(out)])
    data = orjson.loads(out.read_bytes())
    assert data["rows"] and data["targets"]
    assert data["machine"]["prism_match"] == prism_match.__version__
    disagreeing = [(r["workload"], r["contender"]) for r in data["rows"] if r["agrees"] is False]
    assert disagreeing == []
    assert "| workload | contender |" in capsys.readouterr().out
    assert len(report.rows) == len(data["rows"])


def test_pruning_script_runs_and_every_contender_agrees(capsys):
    from benchmarks import pruning

    rows = pruning.main(["--smoke"])
    assert {row["shape"] for row in rows} == set(pruning.SHAPES)
    assert all(row["agree"] for row in rows)
    assert "| 300 | high minimums |" in capsys.readouterr().out

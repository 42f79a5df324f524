"""Shared Hypothesis strategies for the matching tests.

Random registries are lists of registration dicts (what ``load_registry``
takes), built from a few *bodies* shared under different ids so that exact
ties are common; ids mix upper and lower case, digits, punctuation and
non-ASCII so byte order differs from naive expectations. Every optional
block and field may be missing. Slots draw names mostly from what the
registry declares (so some backends are eligible), sometimes names nobody
knows. Import them with ``from conftest import ...``.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from prism_match import MatchPolicy
from prism_match.schema import BACKEND_TYPES, CONSISTENCY_LEVELS, HEALTH_STATUSES

__all__ = ["registries", "slots", "slot_for", "policies", "policies_or_default", "update_ops", "RegistryCase",
           "apply_update", "RATES", "rates", "sizes"]

# Case, digits, punctuation and characters whose UTF-8 bytes sort after ASCII
# (é, a CJK character, a private-use code point, an astral emoji).
ID_ALPHABET = "aAbBzZ019-_.é中\ue000😀"
# "x@y" is a name that contains "@" (not `x` at version `y`); "Get" differs from "get" by case.
BASE_NAMES = ("get", "set", "delete", "transaction", "x@y", "query", "publish", "Get", "scan", "subscribe", "ttl")
VERSIONS = ("v1", "v2", "v3")
RATES = (0, 1, 500, 1000, 10000, 50000, 200000, 1000000)
SIZES = (0, 1000, "100GB", "1TB", "5TB", "2TiB", 2.5e12)
LATENCIES_MS = (0.5, 1, 5, 25, 100)
BOUNDS = ("100us", "5ms", "25ms", "1s")


def name_pool(size: int) -> list[str]:
    return list(BASE_NAMES[:size]) + [f"x{i}" for i in range(max(0, size - len(BASE_NAMES)))]


def _drop_none(mapping: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if v is not None}


def maybe(strategy: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(st.none(), strategy)


def block(**fields: st.SearchStrategy) -> st.SearchStrategy:
    """A mapping whose fields are each present or missing."""
    return st.fixed_dictionaries({k: maybe(v) for k, v in fields.items()}).map(_drop_none)


rates = st.one_of(st.sampled_from(RATES), st.floats(min_value=0, max_value=2e6))
sizes = st.one_of(st.sampled_from(SIZES), st.floats(min_value=0, max_value=1e13))
costs = st.one_of(st.sampled_from((0, 0.001, 0.5, 1, 3)), st.floats(min_value=0, max_value=10))
uptimes = st.one_of(st.sampled_from((0, 50, 99.9, 100)), st.floats(min_value=0, max_value=100))


class RegistryCase:
    """A drawn registry: the documents and the pools they were drawn from."""

    def __init__(self, docs: list[dict], features: list[str], regions: list[str], tags: list[str]):
        self.docs, self.features, self.regions, self.tags = docs, features, regions, tags

    def declared(self, key: str) -> list[str]:
        names = set()
        for doc in self.docs:
            for item in doc.get(key, []):
                names.add(item if isinstance(item, str) else item["name"])
        return sorted(names)

    def __repr__(self) -> str:
        return f"RegistryCase(docs={self.docs!r})"


def _feature(names: list[str], latency: bool) -> st.SearchStrategy:
    name = st.sampled_from(names)
    plain = st.one_of(
        name,
        st.builds(lambda n: {"name": n}, name),
        st.builds(lambda n, v: {"name": n, "version": v}, name, st.sampled_from(VERSIONS)),
    )
    if not latency:
        return plain
    timed = st.builds(
        lambda n, v, p: {"name": n, "version": v, "performance": {"latency": {"p99_ms": p}}},
        name, st.sampled_from(VERSIONS),
        st.one_of(st.sampled_from(LATENCIES_MS), st.floats(min_value=0, max_value=200)))
    # Issue 13's per-capability performance: every field present or not, the
    # batch fields inside `performance`, beside it (G2) or both.
    small = st.one_of(st.sampled_from(LATENCIES_MS), st.floats(min_value=0, max_value=200))
    counts = st.sampled_from((0, 100, 500, 1000))
    latency = st.fixed_dictionaries({}, optional={"p50_ms": small, "p95_ms": small, "p99_ms": small,
                                                  "p999_ms": small})
    batch = {"supports_batch": st.booleans(), "max_batch_size": counts, "max_concurrent_operations": counts}
    perf = st.fixed_dictionaries({}, optional={"latency": latency, "max_write_rps": rates, "max_read_rps": rates,
                                               **batch})
    rich = st.builds(lambda n, v, p, b: {"name": n, "version": v, "performance": p, **b},
                     name, st.sampled_from(VERSIONS), perf, st.fixed_dictionaries({}, optional=batch))
    return st.one_of(plain, timed, timed, rich, rich)  # performance data is common enough to matter


INCIDENTS = ([{"started_at": "2026-01-01T00:00:00Z"}],
             [{"started_at": "2026-01-01T00:00:00Z", "resolved_at": "2026-01-01T01:00:00Z"}])


@st.composite
def bodies(draw, features: list[str], regions: list[str], tags: list[str], wide: bool) -> dict:
    """One registration without its id; every block may be missing."""
    most = 30 if wide else 5
    body: dict[str, Any] = {
        "backend_type": draw(st.sampled_from(BACKEND_TYPES)),
        "capabilities": draw(st.lists(_feature(features, True), max_size=most)),
        "interfaces": draw(st.lists(_feature(features, False), max_size=most)),
        "capacity": draw(maybe(block(max_write_rps=rates, max_read_rps=rates, max_storage=sizes,
                                     max_namespaces=st.sampled_from((0, 1, 10)),
                                     max_connections=st.sampled_from((0, 50, 100))))),
        "current": draw(maybe(block(write_rps=rates, read_rps=rates, storage_used=sizes,
                                    namespace_count=st.sampled_from((0, 1, 5)),
                                    active_connections=st.sampled_from((0, 60))))),
        "cost": draw(maybe(block(cost_per_1k_writes=costs, cost_per_1k_reads=costs))),
        "health": draw(maybe(block(status=st.sampled_from(HEALTH_STATUSES), uptime_percent_24h=uptimes))),
        "regions": draw(st.lists(st.sampled_from(regions), max_size=most, unique=True)),
        "compliance": draw(st.lists(st.sampled_from(tags), max_size=most, unique=True)),
        "consistency": draw(maybe(st.sampled_from(CONSISTENCY_LEVELS))),
        # Open and resolved incidents (the incident penalty reads the open ones).
        "recent_incidents": draw(maybe(st.sampled_from(INCIDENTS))),
    }
    return _drop_none(body)


@st.composite
def registries(draw, wide: bool | None = None, max_backends: int = 14, min_backends: int = 0) -> RegistryCase:
    """A registry of up to ``max_backends`` backends sharing a few bodies.
    ``wide``: vocabularies of ~100 names, regions and tags, so every mask
    spans several uint64 words (one backend declares all of them)."""
    if wide is None:
        wide = draw(st.booleans())
    size = 100 if wide else draw(st.sampled_from((2, 4, 8)))
    features = name_pool(size)
    regions = [f"r{i}" for i in range(90 if wide else 4)]
    tags = [f"t{i}" for i in range(90 if wide else 3)]
    n_bodies = draw(st.integers(1, 5))
    shapes = [draw(bodies(features, regions, tags, wide)) for _ in range(n_bodies)]
    n = draw(st.integers(min_backends, max_backends))
    ids = draw(st.lists(st.text(ID_ALPHABET, min_size=1, max_size=3), min_size=n, max_size=n, unique=True))
    docs = [dict(shapes[draw(st.integers(0, n_bodies - 1))], backend_id=bid) for bid in ids]
    if wide and docs:
        # One backend knows every name, so the vocabularies really are wide.
        docs[draw(st.integers(0, len(docs) - 1))].update(
            capabilities=features + [{"name": n, "version": "v2"} for n in features[:10]],
            interfaces=list(features), regions=list(regions), compliance=list(tags))
    return RegistryCase(docs, features, regions, tags)


def _required(names: list[str]) -> st.SearchStrategy:
    """A requirement: bare (any version), ``Name@v``, ``{name}`` or ``{name, version}``."""
    name = st.sampled_from(names)
    return st.one_of(
        name,
        st.builds(lambda n, v: f"{n}@{v}", name, st.sampled_from(VERSIONS)),
        st.builds(lambda n: {"name": n}, name),
        st.builds(lambda n, v: {"name": n, "version": v}, name, st.sampled_from(VERSIONS)),
    )


FILTERS = ("capabilities", "interfaces", "performance", "preferred_region", "regions", "compliance",
           "backend_types", "health_statuses", "min_storage", "consistency", "min_connections", "preferences",
           "current_backend")
PERFORMANCE = ("min_write_rps", "min_read_rps", "max_latency_p99", "requires_transactions",
               "requires_atomic_writes", "min_storage", "max_latency_p50", "max_latency_p95", "max_latency_p999",
               "requires_batch", "min_batch_size", "min_concurrency", "per_capability_throughput")


@st.composite
def slot_for(draw, case: RegistryCase) -> dict:
    """A slot requirement mapping for ``case``. A few filters at a time, their
    values mostly taken from one *target* backend (so some backends are
    eligible), now and then a name, region or tag nobody declares."""
    target = draw(st.sampled_from(case.docs)) if case.docs else {}

    def names_of(key: str) -> list[str]:
        own = sorted({i if isinstance(i, str) else i["name"] for i in target.get(key, [])})
        known = own or case.declared(key) or case.features
        return known + ["nosuch"] if draw(st.integers(0, 9)) == 0 else known

    def near(own: list[str], pool: list[str], unknown: str) -> list[str]:
        return sorted(set(own)) + ([unknown] if draw(st.integers(0, 9)) == 0 else []) + \
            (pool if draw(st.booleans()) or not own else [])

    regions = near(target.get("regions", []), case.regions, "nowhere")
    # Compliance draws from every tag too, so all-of is tested with several.
    tags = near(target.get("compliance", []), case.tags, "notag") or ["notag"]
    keys = draw(st.sets(st.sampled_from(FILTERS), max_size=4))
    perf_keys = draw(st.sets(st.sampled_from(PERFORMANCE), min_size=1, max_size=3))
    values = {
        "capabilities": st.lists(_required(names_of("capabilities")), min_size=1, max_size=3),
        "interfaces": st.lists(_required(names_of("interfaces")), min_size=1, max_size=2),
        "performance": st.fixed_dictionaries({k: v for k, v in {
            "min_write_rps": rates, "min_read_rps": rates, "max_latency_p99": st.sampled_from(BOUNDS),
            "requires_transactions": st.booleans(), "requires_atomic_writes": st.booleans(),
            "min_storage": sizes, "max_latency_p50": st.sampled_from(BOUNDS),
            "max_latency_p95": st.sampled_from(BOUNDS), "max_latency_p999": st.sampled_from(BOUNDS),
            "requires_batch": st.booleans(), "min_batch_size": st.sampled_from((0, 100, 500, 1000)),
            "min_concurrency": st.sampled_from((0, 50, 100)),
            "per_capability_throughput": st.booleans()}.items() if k in perf_keys}),
        # One region, or a ranked list (the strategies of issue 13).
        "preferred_region": st.one_of(st.sampled_from(regions),
                                      st.lists(st.sampled_from(regions), min_size=1, max_size=4)),
        "regions": st.lists(st.sampled_from(regions), max_size=3),
        "compliance": st.lists(st.sampled_from(tags), min_size=1, max_size=3),
        "backend_types": st.lists(st.sampled_from(BACKEND_TYPES), max_size=4).map(
            lambda ts: ts + [target["backend_type"]] if target and len(ts) % 2 else ts),
        "health_statuses": st.lists(st.sampled_from(HEALTH_STATUSES), max_size=3),
        "min_storage": sizes,
        "consistency": st.sampled_from(CONSISTENCY_LEVELS),
        "min_connections": st.sampled_from((0, 40, 50, 100)),
        "preferences": st.lists(st.one_of(
            st.builds(lambda t, w: {"backend_type": t, "weight": w}, st.sampled_from(BACKEND_TYPES), WEIGHTS),
            st.builds(lambda t, w: {"tag": t, "weight": w}, st.sampled_from(tags), WEIGHTS)), min_size=1, max_size=3),
        "current_backend": st.sampled_from([d["backend_id"] for d in case.docs] + ["gone"]),
    }
    slot = {"slot_name": "s"}
    for key in FILTERS:  # a fixed order: the same draw gives the same slot
        if key in keys:
            slot[key] = draw(values[key])
    return slot


def slots(case: RegistryCase) -> st.SearchStrategy:
    return slot_for(case)


WEIGHTS = st.one_of(st.sampled_from((1, 0.5, 2, 3)), st.floats(min_value=0.01, max_value=10))
weights = st.one_of(st.sampled_from((0, 0.1, 0.25, 0.4, 1, 3)), st.floats(min_value=0, max_value=5))

policies = st.builds(
    MatchPolicy,
    w_perf=weights, w_cost=weights, w_avail=weights, w_region=weights,
    perf_cap=st.one_of(st.sampled_from((0.5, 1.0, 2.0, 3.0)), st.floats(min_value=0.01, max_value=10)),
    capacity_basis=st.sampled_from(("max", "available")),
    health_statuses=st.lists(st.sampled_from(HEALTH_STATUSES), max_size=5).map(tuple),
    # Issue 13's knobs: every path must agree under them too.
    strategy=st.sampled_from(("spread", "binpack")),
    w_affinity=weights,
    degraded_penalty=st.one_of(st.just(0.0), weights),
    stickiness=st.one_of(st.just(0.0), weights),
    incident_penalty=st.one_of(st.just(0.0), weights),
)
policies_or_default = st.one_of(st.just(MatchPolicy()), policies)


@st.composite
def update_ops(draw, case: RegistryCase) -> tuple[str, dict[str, Any]]:
    """One ``Registry.update`` call: a backend and some of the live fields."""
    backend_id = draw(st.sampled_from([d["backend_id"] for d in case.docs]))
    changes = draw(block(write_rps=rates, read_rps=rates, storage_used=sizes.filter(
        lambda s: not isinstance(s, str)), namespace_count=st.sampled_from((0, 3)),
        status=st.sampled_from(HEALTH_STATUSES), uptime=uptimes, active_connections=st.sampled_from((0, 30, 60))))
    return backend_id, changes


def apply_update(registry, live, backend_id: str, changes: dict[str, Any]) -> None:
    """The same update to the registry and to the reference's live state."""
    registry.update(backend_id, **changes)
    live.update(backend_id, **changes)

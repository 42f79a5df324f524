"""The samples in data/ reproduce the Prism page's examples and answers.

Each query sample carries the page's `response:`; the registry answers it.
The pattern sample binds, and the page's "compatible" backends pass
check_binding. The policy sample is the default policy.
"""

from pathlib import Path

import pytest
import yaml

import prism_match as pm
from prism_match.policy import MatchPolicy
from prism_match.slot_files import read_slots

DATA = Path(__file__).resolve().parent.parent / "data"


@pytest.fixture(scope="module")
def registry() -> pm.Registry:
    return pm.load_registry(DATA / "registry.yaml")


def sample(name: str) -> dict:
    return yaml.safe_load((DATA / name).read_text())


def test_query_by_capabilities_gives_the_pages_response(registry):
    doc = sample("query.yaml")
    result = registry.query(doc["query"])
    expected = doc["response"]
    assert result.total_count == expected["total_count"] == 2
    # The page's order (primary 0.92, secondary 0.78); its scores are on its own scale.
    assert [m.backend_id for m in result.backends] == [b["backend_id"] for b in expected["backends"]]
    assert result.backends[0].score > result.backends[1].score
    for match, page in zip(result.backends, expected["backends"]):
        assert set(page["reasons"]) <= {r.type for r in match.reasons}


def test_query_by_type_gives_the_pages_backends(registry):
    doc = sample("query-by-type.yaml")
    result = registry.query(doc["query"])
    # The page lists the two backends without scores: a set, not a ranking.
    assert sorted(m.backend_id for m in result.backends) == sorted(doc["response"]["backends"])
    assert result.total_count == len(doc["response"]["backends"])


def test_pattern_sample_binds_and_the_pages_backends_are_compatible(registry):
    pattern = sample("pattern.yaml")
    binding = registry.bind_pattern(pattern)
    assert set(binding.backend_ids()) == {"registry", "messaging"}
    assert all(backend is not None for backend in binding.backend_ids().values())
    # The page: postgres-primary is compatible with `registry`, the Kafka cluster with `messaging`.
    problems = registry.check_binding(pattern, {"registry": "postgres-primary", "messaging": "kafka-prod-us-east-1"})
    assert problems == {"registry": [], "messaging": []}


def test_the_pages_storage_slot_binds_postgres_primary_with_its_reasons(registry):
    # The page's "Match Reasons" example binds slot `storage` to postgres-primary.
    storage = read_slots(DATA / "slots.yaml")[0]
    best = registry.match(storage, k=1)[0]
    assert best.backend_id == "postgres-primary"
    types = [r.type for r in best.reasons]
    assert {"capability_match", "performance", "region_affinity"} <= set(types)
    region = next(r for r in best.reasons if r.type == "region_affinity")
    assert region.explanation == "Backend in same region (us-east-1) as requester"


def test_policy_sample_is_the_default_policy():
    assert MatchPolicy(**sample("policy.yaml")["policy"]) == MatchPolicy()


def test_registry_sample_keeps_the_pages_three_backends(registry):
    assert {"kafka-prod-us-east-1", "postgres-primary", "redis-cache-us-east-1"} <= set(registry.backend_ids)
    assert registry["postgres-primary"].health.status == "healthy"

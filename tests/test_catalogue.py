"""The capability vocabulary (issue 13): a registration naming a capability
close to a core one warns with a did-you-mean (never an error); the
catalogue answers which patterns need a capability, what a pattern needs,
and which backends can serve it; the command line says the same."""

from __future__ import annotations

import warnings

import orjson
import pytest
import yaml

from prism_match import RegistryError, load_registry
from prism_match.catalogue import (CAPABILITIES, PATTERNS, CapabilityWarning, pattern_capabilities,
                                   patterns_needing, suggest_capability)
from prism_match.cli import main


def backend(bid: str, *caps: str) -> dict:
    return {"backend_id": bid, "backend_type": "kafka", "capabilities": list(caps)}


def test_a_near_miss_warns_with_a_did_you_mean_and_still_loads():
    with pytest.warns(CapabilityWarning) as caught:
        registry = load_registry([backend("k1", "pubish", "subscribe"), backend("k2", "pubish")])
    assert len(caught) == 1   # once per name, naming the first backend
    warning = caught[0].message
    assert (warning.name, warning.suggestion, warning.backend_id) == ("pubish", "publish", "k1")
    assert str(warning).startswith("Unknown capability `pubish` (backend `k1`); did you mean `publish`?")
    assert len(registry) == 2
    assert [m.backend_id for m in registry.match({"slot_name": "s", "capabilities": ["pubish"]}, k=2)] == ["k1", "k2"]


def test_known_names_and_distant_names_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error", CapabilityWarning)
        registry = load_registry([backend("k", "publish", "get", "full_text_search", "vector_search")])
        registry.add(backend("k2", "graph_traversal", "custom_thing"))


def test_an_added_backend_is_checked_too():
    registry = load_registry([backend("k", "publish")])
    with pytest.warns(CapabilityWarning, match="Unknown capability `subscibe` \\(backend `k2`\\); did you mean "
                                               "`subscribe`?"):
        registry.add(backend("k2", "subscibe"))


@pytest.mark.parametrize("name, expected", [("pubish", "publish"), ("Publish", "publish"), ("ak", "ack"), ("xyz", None),
                                            ("batchget", "batch_get"), ("transactions", "transaction"),
                                            ("publish", None), ("something_else", None)])
def test_suggestions(name, expected):
    assert suggest_capability(name) == expected


def test_which_patterns_need_a_capability():
    assert patterns_needing("publish") == ["PubSub", "Queue"]
    assert patterns_needing("ack") == ["Queue", "Consumer"]
    assert patterns_needing("ttl") == ["KeyValue (with TTL)"]
    assert patterns_needing("ttl", optional=False) == []
    with pytest.raises(RegistryError, match="`pubish` is not a core capability; did you mean `publish`?"):
        patterns_needing("pubish")


def test_what_a_pattern_needs_is_the_inverse_of_the_table():
    assert pattern_capabilities("Queue") == ["publish", "enqueue", "dequeue", "ack", "nack"]
    assert pattern_capabilities("key-value") == ["get", "set", "delete"]
    assert pattern_capabilities("KeyValue", optional=True) == ["get", "set", "delete", "batch_get", "batch_set",
                                                               "ttl"]
    for pattern, (required, optional) in PATTERNS.items():
        for cap in required:
            assert pattern in CAPABILITIES[cap].required
        for cap in optional:
            assert pattern in CAPABILITIES[cap].optional
    with pytest.raises(RegistryError, match="Unknown pattern `Queu`; did you mean `Queue`?"):
        pattern_capabilities("Queu")


def test_which_backends_can_serve_a_pattern():
    registry = load_registry([backend("full", "publish", "enqueue", "dequeue", "ack", "nack"),
                              backend("half", "publish", "subscribe"), backend("none", "get")])
    assert [m.backend_id for m in registry.backends_for_pattern("Queue").backends] == ["full"]
    assert {m.backend_id for m in registry.backends_for_pattern("PubSub").backends} == {"half"}
    assert registry.backends_for_pattern("Graph").total_count == 0


def test_the_command_line(tmp_path, capsys):
    assert main(["catalogue", "--capability", "publish", "-o", "json"]) == 0
    assert orjson.loads(capsys.readouterr().out) == {"capability": "publish", "patterns": ["PubSub", "Queue"]}
    assert main(["catalogue", "--pattern", "Queue", "--registry", "data/registry.yaml", "-o", "json"]) == 0
    doc = orjson.loads(capsys.readouterr().out)
    assert doc["capabilities"] == ["publish", "enqueue", "dequeue", "ack", "nack"]
    assert all("backend_id" in b for b in doc["backends"])
    assert main(["catalogue"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == len(CAPABILITIES)
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump([backend("k", "pubish")]))
    assert main(["match", str(path), "data/slots.yaml", "-o", "json"]) in (0, 2)
    err = capsys.readouterr().err
    assert "warning: Unknown capability `pubish` (backend `k`); did you mean `publish`?" in err
    assert "Traceback" not in err

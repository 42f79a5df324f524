"""`prism-match schema KIND`: a JSON Schema per document kind, generated
from the msgspec Structs, that every sample in data/ (and the page's own
examples) satisfies, checked with the jsonschema library; and that refuses
what the loader refuses, on the points a schema can express."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import orjson
import pytest
import yaml

from prism_match.documents import KINDS, document_kind, json_schema
from prism_match.loading import read_file_documents

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
SEED = Path(__file__).parent / "data" / "seed"


def as_json(doc: object) -> object:
    # What an editor sees: YAML timestamps are strings in JSON.
    return orjson.loads(orjson.dumps(doc, default=str))


def validator(kind: str) -> jsonschema.protocols.Validator:
    schema = json_schema(kind)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_has_a_valid_schema(kind):
    schema = json_schema(kind)
    assert schema["title"] == f"prism_match {kind} document"
    jsonschema.validators.validator_for(schema).check_schema(schema)


SAMPLES = [(path, name, doc) for path in sorted(DATA.glob("*.yaml")) for name, doc in read_file_documents(path)]


@pytest.mark.parametrize(("path", "name", "doc"), SAMPLES, ids=[name for _, name, _ in SAMPLES])
def test_every_sample_in_data_validates_against_its_schema(path, name, doc):
    kind = document_kind(doc)
    assert kind in KINDS, name
    errors = list(validator(kind).iter_errors(as_json(doc)))
    assert errors == [], f"{name}: {[e.message for e in errors]}"


@pytest.mark.parametrize("name", ["kafka-prod-full.yaml", "kafka-prod-short.yaml", "postgres-primary.yaml",
                                  "redis-cache.yaml", "slot-requirement.yaml", "query-by-capabilities.yaml",
                                  "query-by-type.yaml"])
def test_the_pages_examples_validate_too(name):
    [(_, doc)] = read_file_documents(SEED / name)
    assert list(validator(document_kind(doc)).iter_errors(as_json(doc))) == []


def test_the_schema_refuses_what_the_loader_refuses():
    registration = validator("registration")
    good = {"backend_id": "a", "backend_type": "redis", "capacity": {"max_storage": "20GiB"}}
    assert registration.is_valid(good)
    assert not registration.is_valid({**good, "backend_type": "mysql"})
    assert not registration.is_valid({**good, "max_write_rsp": 1})                       # a typo
    assert not registration.is_valid({**good, "capacity": {"max_write_rps": -5}})
    assert not registration.is_valid({**good, "capacity": {"max_storage": "lots"}})
    # Registration names are checked by the Struct (one pass, no regular
    # expression); the schema still carries the rule as a pattern.
    named = {**good, "capabilities": ["get", {"name": "set", "version": "v2"}], "interfaces": ["KV"],
             "regions": ["us-east-1"], "compliance": ["pci"]}
    assert registration.is_valid(named)
    for bad in ({**named, "backend_id": "a\x07"}, {**named, "capabilities": ["g\x1bt"]},
                {**named, "capabilities": [{"name": "set", "version": "v\n"}]}, {**named, "interfaces": ["K\tV"]},
                {**named, "regions": ["us-east-1\n"]}, {**named, "compliance": ["\x00"]}):
        assert not registration.is_valid(bad), bad
    slot = validator("slot")
    assert slot.is_valid({"slot_name": "s", "performance": {"max_latency_p99": "25ms"}})
    assert not slot.is_valid({"slot_name": "s", "performance": {"max_latency_p99": "soon"}})
    policy = validator("policy")
    assert policy.is_valid(yaml.safe_load((DATA / "policy.yaml").read_text()))
    assert not policy.is_valid({"policy": {"capacity_basis": "most"}})

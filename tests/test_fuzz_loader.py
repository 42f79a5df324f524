"""Hypothesis fuzzing of the loader from mutated valid documents.

Valid registrations (the synthetic generator's and the seed's) and slots
are mutated — keys deleted or misspelt, values retyped, junk inserted,
values swapped, wrapped in lists, secrets planted under secret names — and
then loaded as Python objects, as JSON and as YAML files:

* nothing but RegistryError ever escapes, and no planted secret is echoed;
* the three ways in give the same answer (the same registrations, or the
  same problems at the same paths);
* mutations that keep a document valid (dropping optional blocks,
  reordering lists, other in-range numbers, sizes written with units) load.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prism_match import Registry, RegistryError, load_registry
from prism_match.loading import load_registrations, read_file_documents
from prism_match.engine import validate_slot
from prism_match.synthetic import generate_registry, generate_slots

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])
SECRET = "zz-planted-secret-zz"
SEED = Path(__file__).parent / "data" / "seed"

VALID_DOCS: list[dict] = generate_registry(40, seed=5) + [
    doc for name in ("kafka-prod-full.yaml", "kafka-prod-short.yaml", "postgres-primary.yaml", "redis-cache.yaml")
    for _, doc in read_file_documents(SEED / name)]
VALID_SLOTS: list[dict] = generate_slots(20, seed=5) + [
    read_file_documents(SEED / "slot-requirement.yaml")[0][1]["slot_requirement"],
    {"slot_name": "full", "capabilities": ["get", {"name": "set", "version": "v2"}], "interfaces": ["KV@v1"],
     "performance": {"min_write_rps": 10, "max_latency_p99": "25ms", "requires_transactions": True},
     "regions": ["us-east-1"], "compliance": ["pci"], "backend_types": ["postgres"],
     "health_statuses": ["healthy"], "min_storage": "1TB", "consistency": "strong", "preferred_region": "x"},
]

junk = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=8),
    st.binary(max_size=4), st.lists(st.integers(-3, 3), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(-3, 3), max_size=2),
    st.just(10**400), st.just(-(10**400)), st.datetimes(timezones=st.just(dt.timezone.utc)),
    st.sampled_from(["10TB", "2.5 GiB", "30s", "1m30s", "-1", "", "${SECRET:x/y}", "kafka", "healthy", "strong",
                     "NaN", "1e999", "0x10", "yes", "~", "[1, 2]", "{a: b}"]),
)


def paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path into ``value`` (the root included)."""
    out = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            out += paths(child, prefix + (key,))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            out += paths(child, prefix + (i,))
    return out


def get(value: Any, path: tuple) -> Any:
    for part in path:
        value = value[part]
    return value


def put(doc: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    get(doc, path[:-1])[path[-1]] = new
    return doc


def typo(key: Any, draw) -> Any:
    if not isinstance(key, str) or not key:
        return f"{key}x"
    i = draw(st.integers(0, len(key) - 1))
    return draw(st.sampled_from([key[:i] + key[i + 1:], key[:i] + "x" + key[i:], key.upper(), key + "_"]))


@st.composite
def mutated(draw, pool: list[dict]) -> Any:
    doc: Any = copy.deepcopy(draw(st.sampled_from(pool)))
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(paths(doc)))
        target = get(doc, path)
        op = draw(st.sampled_from(["delete", "retype", "insert", "swap", "wrap", "unwrap", "rename",
                                   "stringify", "negate", "duplicate"]))
        if op == "delete" and path:
            parent = get(doc, path[:-1])
            del parent[path[-1]]
        elif op == "retype":
            doc = put(doc, path, draw(junk))
        elif op == "insert" and isinstance(target, dict):
            target[draw(st.one_of(st.text(max_size=6), st.sampled_from(["name", "version", "performance", "type"])))] = \
                draw(junk)
        elif op == "insert" and isinstance(target, list):
            target.insert(draw(st.integers(0, len(target))), draw(junk))
        elif op == "swap":
            other = draw(st.sampled_from(paths(doc)))
            if path and other and path[:len(other)] != other and other[:len(path)] != path:
                a, b = get(doc, path), get(doc, other)
                put(doc, path, b)
                put(doc, other, a)
        elif op == "wrap":
            doc = put(doc, path, [target])
        elif op == "unwrap" and isinstance(target, list) and target:
            doc = put(doc, path, target[0])
        elif op == "rename" and path and isinstance(path[-1], str):
            parent = get(doc, path[:-1])
            parent[typo(path[-1], draw)] = parent.pop(path[-1])
        elif op == "stringify":
            doc = put(doc, path, str(target))
        elif op == "negate" and isinstance(target, (int, float)) and not isinstance(target, bool):
            doc = put(doc, path, -target - 1)
        elif op == "duplicate" and isinstance(target, list) and target:
            target.append(copy.deepcopy(target[0]))
    # Last, so that no later mutation moves it out from under its name: a
    # secret under a secret-named key, which no error may ever show.
    dicts = [p for p in paths(doc) if isinstance(get(doc, p), dict)]
    if dicts and draw(st.booleans()):
        get(doc, draw(st.sampled_from(dicts)))[draw(st.sampled_from(["password", "token", "key", "secret",
                                                                     "Password"]))] = \
            draw(st.sampled_from([SECRET, [SECRET], {"inner": SECRET}, 12345]))
    return doc


registries = st.lists(mutated(VALID_DOCS), min_size=1, max_size=3)


_FIRST = re.compile(r"first defined at (\S+ \S+)$")


def _normal(location: str) -> tuple[int, str]:
    """``<input> $[2].capacity`` / ``r.yaml#3 $.capacity`` → ``(2, ".capacity")``:
    which item, and the path inside it, whatever the source."""
    document, _, path = location.partition(" ")
    document = re.sub(r":\d+:\d+$", "", document)  # a file's line and column: where, not which
    index = int(document.rsplit("#", 1)[1]) - 1 if "#" in document else 0
    if path.startswith("$["):
        head, _, rest = path[2:].partition("]")
        return int(head), rest
    return index, path[1:]


def outcome(load, source) -> tuple[str, Any]:
    """("ok", registrations) or ("error", [(item, path, message)]), so that
    different sources of the same documents compare."""
    try:
        return "ok", load(source)
    except RegistryError as exc:
        text = str(exc) + repr(exc)
        assert SECRET not in text, text
        return "error", [(*_normal(loc), _FIRST.sub(lambda m: f"first defined at {_normal(m.group(1))}", msg))
                         for loc, msg in exc.errors]


def json_text(value: Any) -> str | None:
    """JSON for ``value`` when it says the same thing as the Python object
    (string keys, no NaN, no bytes or datetimes), else None."""
    def plain(v: Any) -> bool:
        if isinstance(v, dict):
            return all(isinstance(k, str) and plain(x) for k, x in v.items())
        if isinstance(v, list):
            return all(plain(x) for x in v)
        if isinstance(v, float):
            return math.isfinite(v)
        return v is None or isinstance(v, (bool, int, str))
    return json.dumps(value) if plain(value) else None


@SETTINGS
@given(docs=registries)
def test_only_registry_error_escapes(docs):
    for options in ({}, {"strict": False}, {"allow_inline_secrets": True}):
        kind, value = outcome(lambda d: load_registry(d, **options), docs)
        if kind == "ok":
            assert isinstance(value, Registry) and len(value) == len(docs)
            for reg in value:
                assert SECRET not in repr(reg)
        else:
            assert value  # at least one (item, path, message)
            for _, path, message in value:
                assert message and (path == "" or path[0] in ".[")


@SETTINGS
@given(docs=registries)
def test_json_and_yaml_files_give_the_same_answer(tmp_path_factory, docs):
    expected = outcome(load_registrations, docs)
    folder = tmp_path_factory.mktemp("fuzz")
    text = json_text(docs)
    if text is not None:
        path = folder / "r.json"
        path.write_text(text)
        assert outcome(load_registrations, path) == expected
    # As YAML, one document per registration: only mappings keep the same
    # meaning (a list document would be a list of registrations).
    if not all(isinstance(d, dict) and "backends" not in d for d in docs):
        return
    try:
        dumped = yaml.safe_dump_all(docs, sort_keys=False)
    except yaml.YAMLError:
        return
    path = folder / "r.yaml"
    path.write_text(dumped)
    assert outcome(load_registrations, path) == expected


@SETTINGS
@given(slot=mutated(VALID_SLOTS))
def test_mutated_slots_raise_only_registry_error(slot):
    try:
        result = validate_slot(slot)
    except RegistryError as exc:
        assert exc.errors and SECRET not in str(exc)
    else:
        assert result.slot_name


@SETTINGS
@given(data=st.binary(max_size=300), suffix=st.sampled_from([".yaml", ".json"]))
def test_random_bytes_as_files(tmp_path_factory, data, suffix):
    path = tmp_path_factory.mktemp("bytes") / f"r{suffix}"
    path.write_bytes(data)
    try:
        load_registry(path)
    except RegistryError as exc:
        assert exc.errors


yaml_fragments = st.sampled_from([
    "backend_id: a\n", "backend_type: kafka\n", "capacity:\n", "  max_write_rps: 5\n", "- ", "&a ", "*a ", "[",
    "]", "{", "}", ": ", "---\n", "? ", "!!set ", "!!binary ", "'", '"', "\t", "  ", "\n", "<<: *a\n", "x", "1e999",
    "2025-13-45", "9" * 50, "password: " + SECRET + "\n", "metadata:\n", "  key: " + SECRET + "\n",
])


@SETTINGS
@given(parts=st.lists(yaml_fragments, max_size=25))
def test_random_yaml_text(tmp_path_factory, parts):
    path = tmp_path_factory.mktemp("yaml") / "r.yaml"
    path.write_text("".join(parts))
    try:
        load_registry(path)
    except RegistryError as exc:
        assert exc.errors and SECRET not in str(exc)


# --- mutations that keep a document valid ----------------------------------------------------------

OPTIONAL_BLOCKS = ("display_name", "description", "connection", "capabilities", "interfaces", "capacity", "current",
                   "cost", "health", "regions", "compliance", "metadata", "consistency")


@st.composite
def valid_mutation(draw) -> tuple[dict, dict]:
    """(original, a mutation of it that must load the same way)."""
    original = copy.deepcopy(draw(st.sampled_from(VALID_DOCS)))
    doc = copy.deepcopy(original)
    for key in draw(st.sets(st.sampled_from(OPTIONAL_BLOCKS), max_size=4)):
        doc.pop(key, None)
    for key in ("capabilities", "interfaces", "regions", "compliance"):
        if key in doc:
            doc[key] = draw(st.permutations(doc[key]))
    if isinstance(doc.get("capacity"), dict):
        cap = doc["capacity"]
        if "max_write_rps" in cap:
            cap["max_write_rps"] = draw(st.one_of(st.integers(0, 10**9), st.floats(0, 1e12)))
        if isinstance(cap.get("max_storage"), (int, float)):
            cap["max_storage"] = f"{cap['max_storage']}B"
        elif isinstance(cap.get("max_storage"), str) and cap["max_storage"].endswith("GB"):
            cap["max_storage"] = f"{int(cap['max_storage'][:-2]) * 1000}MB"
    if isinstance(doc.get("health"), dict) and "uptime_percent_24h" in doc["health"]:
        doc["health"]["uptime_percent_24h"] = draw(st.floats(0, 100))
    return original, doc


@SETTINGS
@given(pair=valid_mutation())
def test_valid_mutations_load(pair):
    original, doc = pair
    before = load_registry([original])[original["backend_id"]]
    after = load_registry([doc])[doc["backend_id"]]
    assert after.backend_type == before.backend_type
    assert sorted(map(str, after.capabilities)) == sorted(map(str, before.capabilities)) or \
        "capabilities" not in doc
    if after.capacity is not None and before.capacity is not None and "capacity" in doc:
        assert after.capacity.max_storage == before.capacity.max_storage


@pytest.mark.parametrize("seed", range(3))
def test_whole_generated_registries_load(seed):
    docs = generate_registry(300, seed=seed)
    assert len(load_registry(docs)) == 300

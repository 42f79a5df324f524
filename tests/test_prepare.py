"""Preparing slots: the C preparation and its ways in.

``CoreRegistry.prepare`` builds the kernel's struct; ``prepare.slot_details``
writes the same rules out in Python (the paths-agree tests in test_kernel.py
hold the two against each other on random slots). Here: a plain slot dict
takes a short way in (msgpack bytes as cache key and decoder input) that
must accept exactly what the general way (``validate_slot``) accepts; the
cache of slot mappings; names with control characters; and what a
PreparedSlot refuses.
"""

from __future__ import annotations

import copy
import pickle

import pytest
from hypothesis import HealthCheck, given, settings
from test_fuzz_loader import SECRET, VALID_SLOTS, mutated

from prism_match import MatchPolicy, PreparedSlot, RegistryError, load_registry
from prism_match.engine import validate_slot
from prism_match.schema import SlotRequirement
from prism_match.synthetic import generate_registry

SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

REGISTRY = load_registry(generate_registry(60, seed=11))
SLOT = {"slot_name": "kv", "capabilities": ["get", "set"], "interfaces": ["KeyValueBasicInterface"],
        "performance": {"min_write_rps": 1000}, "preferred_region": "us-east-1"}


def ids(matches) -> list[str]:
    return [m.backend_id for m in matches]


def outcome(call):
    try:
        return "ok", call()
    except RegistryError as exc:
        assert SECRET not in str(exc)
        return "error", exc.errors


@SETTINGS
@given(slot=mutated(VALID_SLOTS))
def test_the_short_way_in_accepts_what_the_general_way_accepts(slot):
    fast_kind, fast = outcome(lambda: REGISTRY.prepare(copy.deepcopy(slot)))
    general_kind, general = outcome(lambda: REGISTRY.engine.prepare_general(copy.deepcopy(slot)))
    assert fast_kind == general_kind, (slot, fast, general)
    if fast_kind == "ok":
        assert fast.requirement == general.requirement
        assert fast.kernel_view() == general.kernel_view()
        # Through the cache too: match takes the same way as prepare.
        assert ids(REGISTRY.match(slot, k=3)) == ids(REGISTRY.match(general, k=3))
    else:
        assert fast == general


def test_a_mapping_is_cached_by_content_not_by_identity():
    registry = load_registry(generate_registry(60, seed=11))
    slot = copy.deepcopy(SLOT)
    first = registry.engine.prepare(slot)
    assert registry.engine.prepare(copy.deepcopy(SLOT)) is first  # equal content: the same prepared slot
    slot["performance"]["min_write_rps"] = 10**12  # changed in place: a new content, a new answer
    assert registry.engine.prepare(slot) is not first
    assert registry.match(slot) == []
    assert registry.match(SLOT) != []


def test_explicit_prepare_compiles_afresh():
    a, b = REGISTRY.prepare(SLOT), REGISTRY.prepare(SLOT)
    assert a is not b and a.requirement == b.requirement and a.kernel_view() == b.kernel_view()


def test_the_slot_cache_stays_bounded_and_correct():
    registry = load_registry(generate_registry(60, seed=11))
    expected = {}
    for i in range(700):  # past the bound more than twice
        slot = {**SLOT, "performance": {"min_write_rps": float(i * 500)}}
        expected[i] = ids(registry.match(registry.prepare(slot), k=2))
        assert ids(registry.match(slot, k=2)) == expected[i]
        assert registry.engine.core.cached_slots <= 256
    for i in (0, 350, 699):  # remembered or not, the same answer
        assert ids(registry.match({**SLOT, "performance": {"min_write_rps": float(i * 500)}}, k=2)) == expected[i]


def test_a_policy_change_forgets_cached_mappings():
    registry = load_registry(generate_registry(60, seed=11))
    slot = {"slot_name": "any"}
    everyone = registry.query(slot).total_count
    registry.match(slot)
    registry.policy = MatchPolicy(health_statuses=("maintenance",))
    maintenance = sum(1 for b in registry if b.health_status == "maintenance")
    assert registry.query(slot).total_count == maintenance < everyone
    assert all(registry[m.backend_id].health_status == "maintenance" for m in registry.match(slot, k=100))


@pytest.mark.parametrize("field, value, path", [
    ("slot_name", "kv\n", "$.slot_name"),
    ("slot_name", "\x1b[31mred", "$.slot_name"),
    ("capabilities", ["get", "se\x1ft"], "$.capabilities[1]"),
    ("capabilities", [{"name": "get", "version": "v\x00"}], "$.capabilities[0].version"),
    ("interfaces", [{"name": "KV\t"}], "$.interfaces[0].name"),
    ("regions", ["us-east-1\r"], "$.regions[0]"),
    ("compliance", ["pci", "\x07"], "$.compliance[1]"),
    ("preferred_region", "us\x0b", "$.preferred_region"),
])
def test_a_control_character_in_a_slot_name_is_refused_at_its_path(field, value, path):
    slot = {**SLOT, field: value}
    for call in (REGISTRY.match, REGISTRY.prepare, REGISTRY.explain, validate_slot):
        with pytest.raises(RegistryError) as info:
            call(slot)
        [(location, message)] = info.value.errors
        assert location.endswith(path) and message.startswith("Expected a name without control characters")
        text = str(info.value)
        assert not any(ord(c) < 0x20 and c != "\n" for c in text), repr(text)  # escaped, never raw
        assert "\\x" in text


def test_a_query_with_a_control_character_is_refused():
    with pytest.raises(RegistryError, match=r"query \$\.required_interfaces\[0\]"):
        REGISTRY.query({"required_interfaces": ["a\x1b[2J"]})


def test_a_name_ending_in_a_newline_is_refused_in_a_registration():
    doc = generate_registry(1, seed=3)[0]
    with pytest.raises(RegistryError) as info:
        load_registry([{**doc, "regions": ["us-east-1\n"]}])
    assert info.value.errors == [("<input> $[0].regions[0]",
                                  'Expected a name without control characters, got `"us-east-1\\x0a"`')]


def test_a_struct_built_by_hand_is_checked_when_prepared():
    with pytest.raises(ValueError, match="without control characters"):
        SlotRequirement(slot_name="x\x1b")
    bogus = SlotRequirement(slot_name="x", backend_types=["mainframe"])  # Structs skip type checks when built
    with pytest.raises(RegistryError, match=r"Expected one of `kafka`.*got `mainframe` - at slot backend_types"):
        REGISTRY.match(bogus)
    with pytest.raises(RegistryError, match=r"got `sometimes` - at slot consistency"):
        REGISTRY.match(SlotRequirement(slot_name="x", consistency="sometimes"))
    # Tuples where the schema says lists: read like the lists they stand for.
    as_tuples = SlotRequirement(slot_name="kv", capabilities=("get", "set"), interfaces=("KeyValueBasicInterface",))
    as_lists = {"slot_name": "kv", "capabilities": ["get", "set"], "interfaces": ["KeyValueBasicInterface"]}
    assert ids(REGISTRY.match(as_tuples, k=5)) == ids(REGISTRY.match(as_lists, k=5)) != []


def test_a_prepared_slot_is_not_pickled():
    prepared = REGISTRY.prepare(SLOT)
    with pytest.raises(TypeError, match="prepare it where it is used"):
        pickle.dumps(prepared)
    assert pickle.loads(pickle.dumps(prepared.requirement)) == prepared.requirement
    assert repr(prepared) == "<PreparedSlot 'kv'>"
    assert repr(REGISTRY.prepare({"slot_name": "x", "capabilities": ["nosuch"]})) == \
        "<PreparedSlot 'x' (unmatchable)>"


def test_prepared_slot_cannot_be_subclassed():
    with pytest.raises(TypeError):
        type("Sub", (PreparedSlot,), {})


def test_each_unknown_name_makes_its_slot_unmatchable():
    registry = load_registry(generate_registry(20, seed=2))
    for i in range(2000):
        prepared = registry.prepare({"slot_name": "x", "capabilities": [f"nosuch{i}"]})
        assert prepared.unmatchable and registry.match(prepared) == []
    assert [r.label for r in prepared.unknown_names()] == ["nosuch1999"]


def test_a_policy_change_reprepares_only_what_it_changes(monkeypatch):
    registry = load_registry(generate_registry(60, seed=11))
    own = registry.prepare({**SLOT, "health_statuses": ["healthy"]})  # names its statuses
    default = registry.prepare(SLOT)                                   # takes the policy's
    registry.match(SLOT)
    registry.policy = MatchPolicy(w_cost=0.5)  # the same default statuses, another tuple
    assert registry.engine.core.cached_slots == 1    # kept: nothing it baked in changed
    calls = []
    engine = registry.engine
    original = type(engine).prepare_general
    monkeypatch.setattr(type(engine), "prepare_general",
                        lambda self, slot: calls.append(slot) or original(self, slot))
    for slot in (own, default, SLOT):
        registry.match(slot)
    assert calls == []  # each went straight to the kernel
    registry.policy = MatchPolicy(health_statuses=("healthy", "unhealthy"))
    assert registry.engine.core.cached_slots == 0
    registry.match(own)
    assert calls == []  # its own statuses: still valid
    registry.match(default)
    assert calls == [default]  # prepared again for the new defaults

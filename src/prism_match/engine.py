"""The engine: what every layer below the registry works with.

``Registry`` (registry.py, the top) owns one ``Engine`` and hands it down to
the modules that answer questions (diagnosis, batch, placement, patterns):
the compiled columns, the core that holds their pointers, the policy in both
forms, and a function from backend_id to its registration. Those modules
take an engine and return values; none of them imports the registry.

Preparing lives here too, in its general form: any slot the API accepts
(mapping, ``slot_requirement:`` or ``query:`` wrapper, Struct, a slot
prepared under another policy or before the vocabularies grew) becomes a
``PreparedSlot``, every problem reported with its path. The core's
``resolve`` handles the hot cases in C and falls back on this.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from ._core import CorePolicy, CoreRegistry, PreparedSlot
from .compiled import Columns
from .errors import RegistryError
from .loading import validate_documents
from .policy import MatchPolicy
from .schema import Query, Registration, SlotRequirement, decode_hook

__all__ = ["Engine", "validate_slot"]

_CACHE_SIZE = 4096


def _slot_location(raw: Any) -> str:
    name = raw.get("slot_name") if isinstance(raw, Mapping) else None
    return f"slot `{name[:60]}`" if isinstance(name, str) else "slot"


def _validated(raw: Any, kind: type, where: str | None) -> Any:
    # The valid case is one msgspec call; only a failure goes through the
    # loader's diagnostics, which collect every problem with its path.
    try:
        return msgspec.convert(raw, kind, dec_hook=decode_hook)
    except (msgspec.ValidationError, RecursionError):
        pass
    [(_, value)] = validate_documents([(where or _slot_location(raw), "$", raw)], kind)
    return value


def validate_slot(slot: Any) -> SlotRequirement:
    """A mapping (slot requirement, ``slot_requirement:`` wrapper, query or
    ``query:`` wrapper) or Struct → a validated SlotRequirement."""
    if isinstance(slot, SlotRequirement):
        return slot
    if isinstance(slot, Query):
        return slot.to_slot()
    if type(slot) is not dict and not isinstance(slot, Mapping):
        raise RegistryError(f"Expected a slot mapping or a prepared slot, got `{type(slot).__name__}`", "slot")
    if "slot_name" not in slot:  # a wrapper or a query; a plain slot names itself
        if len(slot) == 1 and "slot_requirement" in slot:
            slot = slot["slot_requirement"]
        elif "query" in slot and isinstance(slot.get("query"), Mapping):
            return _validated(slot["query"], Query, "query").to_slot()
        elif "required_capabilities" in slot or "required_interfaces" in slot or "min_capacity" in slot:
            return _validated(slot, Query, "query").to_slot()
    return _validated(slot, SlotRequirement, None)


class Engine:
    """The columns, their core and the policy, as the layers below the
    registry read them. ``registration(backend_id)`` gives the (live)
    registration; ``reasons_of(match)`` is filled in by the reasons module's
    owner (the registry) before the first match."""

    __slots__ = ("columns", "core", "policy", "core_policy", "registration", "_reprepared")

    def __init__(self, columns: Columns, registration: Callable[[str], Registration],
                 reasons_of: Callable[[Any], list], policy: MatchPolicy, *, log: Any = None, version: int = 0):
        self.columns = columns
        self.registration = registration
        # The general path is looked up on each use (the slow path only), so a
        # subclass or a test can replace it.
        self.core = CoreRegistry(columns, lambda slot: self.prepare_general(slot), reasons_of, log, version)
        self.set_policy(policy)

    def set_policy(self, policy: MatchPolicy) -> None:
        if not isinstance(policy, MatchPolicy):
            raise RegistryError(f"Expected a MatchPolicy, got `{type(policy).__name__}`", "policy")
        self.policy = policy
        self.core_policy: CorePolicy = policy.core()
        self.core.policy = self.core_policy
        self.core.set_default_health(policy.health_statuses)  # forgets slots prepared under the old ones
        self.core.order_by(policy.w_cost, policy.w_avail)  # the scan order for these weights (kept if the same)
        self._reprepared: dict[int, tuple[PreparedSlot, PreparedSlot]] = {}

    def prepare(self, slot: Any) -> PreparedSlot:
        """Any slot the API accepts → a PreparedSlot valid now (the hot cases in C)."""
        return self.core.resolve(slot)

    def prepare_general(self, slot: Any) -> PreparedSlot:
        """The general path: wrappers, queries, Structs, any Mapping, and
        prepared slots that no longer fit (another registry is an error;
        another policy's default statuses or older vocabularies: prepared
        again, once, and kept while they hold)."""
        if isinstance(slot, PreparedSlot):
            if slot.columns is not self.columns:
                raise RegistryError("This slot was prepared for another registry; prepare it again", "slot")
            kept = self._reprepared.get(id(slot))
            if kept is None or kept[0] is not slot or kept[1].vocab_version != self.core.vocab_version or (
                    kept[1].sticky and kept[1].positions_version != self.core.positions_version):
                if len(self._reprepared) >= _CACHE_SIZE:
                    self._reprepared.clear()
                kept = self._reprepared[id(slot)] = (slot, self.core.prepare_requirement(slot.requirement))
            return kept[1]
        return self.core.prepare_requirement(validate_slot(slot))

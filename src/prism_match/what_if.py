"""What-if: the changes a what-if view applies, checked, and the diff of two plans.

``Registry.what_if(changes, remove=...)`` (registry.py) builds a read-only
registry over an overlay of the live columns (``Columns.overlay``: only the
live-state columns, the alive words and the columns a change touches are
copied; everything else is shared) and applies these changes to it. This
module holds what needs no registry: which fields a what-if may set and how
their values are read (``check_changes``), how a ``--set id.field=value``
is parsed (``parse_set``), how a static change is written into the overlay
(``write_static``) and shown in the registration (``changed_registration``),
and the diff of a plan against another (``plan_diff``).

Values: a number (or, for ``max_storage``/``storage_used``, a size such as
``"10TB"``), a factor ``"*1.5"`` of the backend's current value, or for
``status`` a health status. ``capacity`` is a shorthand: a factor applied
to every ``max_*`` the backend declares.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec
import numpy as np

from .compiled import cost_score
from .errors import RegistryError
from .schema import HEALTH_STATUSES, Capacity, Cost, Current, Registration
from .units import parse_size

__all__ = ["LIVE_FIELDS", "STATIC_FIELDS", "WHAT_IF_FIELDS", "check_changes", "parse_set", "write_static",
           "changed_registration", "overlay_columns", "PlanDiff", "SlotMove", "plan_diff"]

# Fields ``Registry.update`` writes (its validation applies): field -> column read for a factor.
LIVE_FIELDS = {"write_rps": "write_rps", "read_rps": "read_rps", "storage_used": "storage_used",
               "namespace_count": "namespace_count", "uptime": "uptime_percent_24h", "status": "health"}
# Fields of the registration written straight into the overlay: field -> (column, where in the document).
STATIC_FIELDS = {
    "max_write_rps": ("max_write_rps", "capacity"), "max_read_rps": ("max_read_rps", "capacity"),
    "max_storage": ("max_storage", "capacity"), "max_namespaces": ("max_namespaces", "capacity"),
    "max_connections": ("max_connections", "capacity"), "active_connections": ("active_connections", "current"),
    "cost_per_1k_writes": ("cost_per_1k_writes", "cost"),
}
CAPACITY_FIELDS = ("max_write_rps", "max_read_rps", "max_storage", "max_namespaces", "max_connections")
WHAT_IF_FIELDS = (*LIVE_FIELDS, *STATIC_FIELDS, "capacity")
_SIZES = {"max_storage", "storage_used"}
# The columns an overlay copies always: what update, reserve and release write, and the alive words.
LIVE_COLUMNS = ("write_rps", "read_rps", "storage_used", "namespace_count", "used_write_rps", "used_read_rps",
                "used_storage", "used_namespaces", "reserved_write_rps", "reserved_read_rps", "reserved_storage",
                "reserved_namespaces", "uptime_percent_24h", "avail_score", "health")


def _number(field: str, value: Any, current: float, where: str) -> float:
    """A value of a numeric field: a finite number >= 0, a size, or ``*F``."""
    if isinstance(value, str) and value.strip()[:1] in ("*", "x") and value.strip()[1:]:
        try:
            factor = float(value.strip()[1:])
        except ValueError:
            raise RegistryError(f"Expected a factor such as `*1.5`, got `{value[:40]}`", where) from None
        if not math.isfinite(factor) or factor < 0:
            raise RegistryError(f"Expected a finite factor >= 0, got `{value[:40]}`", where)
        if math.isnan(current):
            raise RegistryError(f"Backend declares no `{field}`: a factor has nothing to scale", where)
        return current * factor
    if isinstance(value, bool):
        raise RegistryError(f"Expected a number >= 0, got `{value}`", where)
    if isinstance(value, str) and field in _SIZES:
        try:
            return parse_size(value)
        except (ValueError, RegistryError):
            raise RegistryError(f"Expected a size such as `10TB` or a number of bytes, got `{value[:40]}`",
                                where) from None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise RegistryError(f"Expected a number >= 0 or a factor such as `*1.5`, got `{value[:40]}`",
                                where) from None
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise RegistryError(f"Expected a finite number >= 0, got `{str(value)[:40]}`", where)
    if field == "uptime" and value > 100:
        raise RegistryError(f"Expected a percentage in [0, 100], got `{value}`", where)
    return float(value)


def check_changes(changes: Any, remove: Any, columns: Any, index: Mapping[str, int]
                  ) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """``changes`` ({backend_id: {field: value}}) and ``remove`` (ids) →
    (backend_id → {field: value as written}, ids to remove), every value
    read (factors applied to the backend's value in ``columns``). Every
    problem is reported together, at ``what_if $.ID.FIELD``."""
    errors: list[tuple[str, str]] = []
    if changes is None:
        changes = {}
    if not isinstance(changes, Mapping):
        raise RegistryError(f"Expected a mapping of backend_id to {{field: value}}, got `{type(changes).__name__}`",
                            "what_if")
    if remove is None:
        remove = []
    if isinstance(remove, str) or not isinstance(remove, Iterable):
        raise RegistryError(f"Expected a list of backend ids to remove, got `{type(remove).__name__}`",
                            "what_if remove")
    remove = list(remove)
    out: dict[str, dict[str, Any]] = {}
    for bid, fields in changes.items():
        where = f"what_if $.{str(bid)[:60]}"
        if bid not in index:
            errors.append((where, f"Unknown backend `{str(bid)[:60]}`"))
            continue
        if not isinstance(fields, Mapping):
            errors.append((where, f"Expected a mapping of field to value, got `{type(fields).__name__}`"))
            continue
        i = index[bid]
        done: dict[str, Any] = {}
        # `capacity` last, so a field named on its own wins over the shorthand.
        for field, value in sorted(fields.items(), key=lambda kv: kv[0] == "capacity"):
            at = f"{where}.{str(field)[:40]}"
            try:
                if field == "status":
                    if value not in HEALTH_STATUSES:
                        raise RegistryError(f"Expected one of {', '.join(f'`{s}`' for s in HEALTH_STATUSES)}, "
                                            f"got `{str(value)[:40]}`", at)
                    done[field] = value
                elif field == "capacity":
                    if not (isinstance(value, str) and value.strip()[:1] in ("*", "x")) and \
                            not isinstance(value, (int, float)):
                        raise RegistryError(f"Expected a factor such as `*1.5`, got `{str(value)[:40]}`", at)
                    text = value if isinstance(value, str) else f"*{value}"
                    for name in CAPACITY_FIELDS:
                        current = float(columns.store[name][i])
                        if not math.isnan(current) and not math.isinf(current):
                            done.setdefault(name, _number(name, text, current, at))
                elif field in LIVE_FIELDS or field in STATIC_FIELDS:
                    column = LIVE_FIELDS[field] if field in LIVE_FIELDS else STATIC_FIELDS[field][0]
                    done[field] = _number(field, value, float(columns.store[column][i]), at)
                else:
                    raise RegistryError(f"Unknown field `{str(field)[:40]}`; expected one of "
                                        + ", ".join(f"`{f}`" for f in WHAT_IF_FIELDS), at)
            except RegistryError as exc:
                errors += exc.errors
        out[bid] = done
    for j, bid in enumerate(remove):
        if bid not in index:
            errors.append((f"what_if remove[{j}]", f"Unknown backend `{str(bid)[:60]}`"))
        elif bid in out:
            errors.append((f"what_if remove[{j}]", f"Backend `{str(bid)[:60]}` is both changed and removed"))
    if errors:
        raise RegistryError(errors)
    return out, remove


def parse_set(spec: str) -> tuple[str, str, str]:
    """``ID.FIELD=VALUE`` → (id, field, value); the id may hold dots (the
    last dot before ``=`` splits it from the field)."""
    head, eq, value = spec.partition("=")
    bid, dot, field = head.rpartition(".")
    if not eq or not dot or not bid or not field:
        raise RegistryError(f"Expected `ID.FIELD=VALUE` (e.g. `kafka-prod.status=unhealthy`), got `{spec[:80]}`",
                            "--set")
    return bid, field, value


def overlay_columns(columns: Any, changes: Mapping[str, Mapping[str, Any]]) -> Any:
    """The overlay a what-if writes into: live columns, alive words and
    every static column a change touches copied (cost_score with its price)."""
    touched = {STATIC_FIELDS[f][0] for fields in changes.values() for f in fields if f in STATIC_FIELDS}
    if "cost_per_1k_writes" in touched:
        touched.add("cost_score")
    return columns.overlay(tuple(sorted(set(LIVE_COLUMNS) | touched)))


def write_static(columns: Any, i: int, fields: Mapping[str, float]) -> None:
    """Write the static fields of one backend into the overlay (copied columns)."""
    store = columns.store
    for field, value in fields.items():
        if field in STATIC_FIELDS:
            store[STATIC_FIELDS[field][0]][i] = value
    if "cost_per_1k_writes" in fields:
        store["cost_score"][i] = cost_score(np.array([fields["cost_per_1k_writes"]]))[0]


def changed_registration(reg: Registration, fields: Mapping[str, Any]) -> Registration:
    """``reg`` with the static fields changed (capacity, current connections,
    cost), so reasons and ``view[id]`` describe the backend as changed."""
    blocks: dict[str, dict[str, Any]] = {}
    for field, value in fields.items():
        if field in STATIC_FIELDS:
            blocks.setdefault(STATIC_FIELDS[field][1], {})[field] = value
    kinds = {"capacity": Capacity, "current": Current, "cost": Cost}
    updates = {}
    for block, values in blocks.items():
        old = getattr(reg, block)
        updates[block] = kinds[block](**values) if old is None else msgspec.structs.replace(old, **values)
    return msgspec.structs.replace(reg, **updates) if updates else reg


class SlotMove(msgspec.Struct, frozen=True):
    """One slot whose placement differs: ``before``/``after`` backend (None: unplaced)."""

    slot_name: str
    before: str | None
    after: str | None


class PlanDiff(msgspec.Struct, frozen=True):
    """A plan against today's: ``moved`` (placed in both, elsewhere),
    ``unplaced`` (placed today, not any more), ``placed`` (newly placed),
    ``unchanged`` (how many slots stay where they are)."""

    moved: list[SlotMove]
    unplaced: list[SlotMove]
    placed: list[SlotMove]
    unchanged: int

    @property
    def changed(self) -> bool:
        return bool(self.moved or self.unplaced or self.placed)

    def as_dict(self) -> dict[str, Any]:
        return msgspec.to_builtins(self)

    def __str__(self) -> str:
        return (f"{len(self.moved)} moved, {len(self.unplaced)} no longer placed, {len(self.placed)} newly placed, "
                f"{self.unchanged} unchanged")


def plan_diff(before: Any, after: Any) -> PlanDiff:
    """Slot by slot (slot order of ``before``), where two Assignments of the
    same slots differ."""
    was = {b.slot_name: b.backend_id for b in before.bindings}
    now = {b.slot_name: b.backend_id for b in after.bindings}
    order = [*(b.slot_name for b in before.bindings), *(u.slot_name for u in before.unplaced)]
    moved, unplaced, placed, same = [], [], [], 0
    for name in order:
        a, b = was.get(name), now.get(name)
        if a == b:
            same += 1
        elif a is not None and b is not None:
            moved.append(SlotMove(name, a, b))
        elif a is not None:
            unplaced.append(SlotMove(name, a, None))
        else:
            placed.append(SlotMove(name, None, b))
    return PlanDiff(moved, unplaced, placed, same)

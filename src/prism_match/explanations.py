"""Why, as columns: the reasons of each match and the diagnosis of each
unbound slot, added to a ``match_many`` table on request.

After the batch kernel (batch.py) has ranked every slot: this module only
formats text, slot by slot, so the batch's hot path stays free of strings
and a caller who does not ask pays nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .diagnosis import explain

if TYPE_CHECKING:
    import polars as pl

    from .engine import Engine
    from .slot_details import PreparedSlot

__all__ = ["add_explanations"]

def add_explanations(engine: Engine, prepared: list[PreparedSlot], frame: pl.DataFrame, k: int, *,
                     diagnose: bool, reasons: bool) -> pl.DataFrame:
    """``frame`` (match_many's rows) with ``reasons`` (a list of
    ``{type, explanation}`` per matched row) and/or ``diagnosis`` (the
    explain text of a slot with no eligible backend, null on matched rows).

    Reasons are built from the registry's live state when asked for, as
    ``Match.reasons`` are; a row whose backend changed rank since the batch
    ran (a concurrent ``update``) gets null rather than another's reasons.
    """
    import polars as pl

    reason_dtype = pl.List(pl.Struct({"type": pl.String, "explanation": pl.String}))
    slot_index = frame.get_column("slot_index").to_list()
    backend = frame.get_column("backend_id").to_list()
    columns: list[pl.Series] = []
    if reasons:
        by_slot: dict[int, dict[str, Any]] = {}
        for i in sorted(set(slot_index)):
            found = engine.core.topk(prepared[i], engine.core_policy, k)
            by_slot[i] = {m.backend_id: [{"type": r.type, "explanation": r.explanation} for r in m.reasons]
                          for m in found}
        columns.append(pl.Series("reasons", [by_slot[i].get(b) if b is not None else None
                                             for i, b in zip(slot_index, backend)], dtype=reason_dtype))
    if diagnose:
        unbound = {i for i, b in zip(slot_index, backend) if b is None}
        texts = {i: str(explain(engine, prepared[i])) for i in sorted(unbound)}
        columns.append(pl.Series("diagnosis", [texts.get(i) if b is None else None
                                               for i, b in zip(slot_index, backend)], dtype=pl.String))
    return frame.with_columns(columns)

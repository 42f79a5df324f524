"""The kinds of document prism_match reads, told apart by shape.

Between the files people edit and the Structs of schema.py: a parsed YAML or
JSON document is a registration, a slot requirement, a pattern, a query or a
policy (docs/contract.md §1-2). ``document_kind`` recognises one by its keys;
``validate_document`` checks it as that kind, with the loader's error grammar
(file, JSON path, expected, got). The CLI's ``validate`` and ``--policy``,
and ``json_schema`` (an editor's completion and checking) use this module;
matching never does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import msgspec

from .errors import RegistryError
from .loading import Problem, registration_problems, split_document, validate_documents
from .policy import MatchPolicy
from .schema import (Base, Capability, Connection, Duration, DurationMs, Threshold, HealthStatus, Incident, Interface, Pattern,
                     Query, Registration, Size, SlotRequirement)

__all__ = ["KINDS", "PolicyDocument", "document_kind", "validate_document", "policy_from_document", "json_schema"]

KINDS = ("registration", "slot", "pattern", "query", "policy")

# The page's snippets (one block of a registration, under its own key):
# validated as that block, so every example of the page is checked as what
# it is. Not kinds of their own on the command line.
_FRAGMENTS: dict[str, type] = {"capability": Capability, "interface": Interface, "incident": Incident}
_CONNECTION_KEYS = {"auth", "tls", "pool", "timeouts", "retry", "endpoint"}
_QUERY_KEYS = set(Query.__struct_fields__)


_DEFAULT = MatchPolicy()


class PolicyDocument(Base, kw_only=True):
    """A policy file (``policy:`` wrapper optional): MatchPolicy's fields,
    each optional, unknown fields refused."""

    # The defaults are MatchPolicy's own (one place for them).
    w_perf: float = _DEFAULT.w_perf
    w_cost: float = _DEFAULT.w_cost
    w_avail: float = _DEFAULT.w_avail
    w_region: float = _DEFAULT.w_region
    perf_cap: float = _DEFAULT.perf_cap
    capacity_basis: Literal["max", "available"] = _DEFAULT.capacity_basis
    health_statuses: list[HealthStatus] = msgspec.field(default_factory=lambda: list(_DEFAULT.health_statuses))
    strategy: Literal["spread", "binpack"] = _DEFAULT.strategy
    w_affinity: float = _DEFAULT.w_affinity
    degraded_penalty: float = _DEFAULT.degraded_penalty
    stickiness: float = _DEFAULT.stickiness
    incident_penalty: float = _DEFAULT.incident_penalty


_POLICY_KEYS = set(PolicyDocument.__struct_fields__)
_TYPES: dict[str, type] = {"registration": Registration, "slot": SlotRequirement, "pattern": Pattern,
                           "query": Query, "policy": PolicyDocument}


def document_kind(doc: Any) -> str | None:
    """The kind of a parsed document from its keys, or None."""
    if isinstance(doc, list):
        first = next((item for item in doc if isinstance(item, Mapping)), None)
        return None if first is None else ("slot" if "slot_name" in first else "registration")
    if not isinstance(doc, Mapping):
        return None
    keys = set(doc)
    if "pattern" in keys and isinstance(doc.get("slots"), Mapping):
        return "pattern"
    if "query" in keys and isinstance(doc.get("query"), Mapping):
        return "query"
    if "policy" in keys and isinstance(doc.get("policy"), Mapping):
        return "policy"
    if keys & {"slot_name", "slot_requirement"} or isinstance(doc.get("slots"), list):
        return "slot"
    if keys & {"backend_id", "backend_type", "backends"}:
        return "registration"
    if keys and keys <= _QUERY_KEYS:
        return "query"
    if keys and keys <= _POLICY_KEYS:
        return "policy"
    if len(keys) == 1 and next(iter(keys)) in _FRAGMENTS or keys and keys <= _CONNECTION_KEYS:
        return "fragment"
    return None


def _unwrapped(doc_name: str, doc: Mapping, key: str, ignore: Sequence[str] = ()) -> tuple[str, str, Any]:
    extra = [k for k in doc if k not in (key, *ignore)]
    if extra:
        raise RegistryError(f"Unknown field `{str(extra[0])[:60]}` beside `{key}`", f"{doc_name} $")
    return doc_name, f"$.{key}", doc[key]


def validate_document(doc_name: str, doc: Any, kind: str, *, strict: bool = True,
                      allow_inline_secrets: bool = False) -> list[Any]:
    """``doc`` validated as ``kind``: the Structs it holds (several for a
    list of registrations or slots). Raises RegistryError with every problem."""
    if isinstance(doc, Problem):
        [item] = split_document(doc_name, doc, list_key="backends")
        validate_documents([item], Registration)  # raises the reading problem
    if kind == "registration":
        items = split_document(doc_name, doc, list_key="backends")
        values = validate_documents(items, Registration, strict=strict)
        errors = [(f"{item[0]} {item[1]}{loc}", msg) for item, reg in values
                  for loc, msg in registration_problems(reg, allow_inline_secrets)]
        if errors:
            raise RegistryError(errors)
        return [reg for _, reg in values]
    if kind == "slot":
        items = split_document(doc_name, doc, list_key="slots", wrapper_keys=("slot_requirement",))
        return [slot for _, slot in validate_documents(items, SlotRequirement, strict=strict)]
    if kind == "fragment":
        key = next(iter(doc)) if len(doc) == 1 and next(iter(doc)) in _FRAGMENTS else None
        item = _unwrapped(doc_name, doc, key) if key else (doc_name, "$", doc)
        return [value for _, value in validate_documents([item], _FRAGMENTS[key] if key else Connection,
                                                         strict=strict)]
    if kind not in _TYPES:
        raise RegistryError(f"Expected a kind in {', '.join(f'`{k}`' for k in KINDS)}, got `{kind[:40]}`", "--kind")
    if not isinstance(doc, Mapping):
        raise RegistryError(f"Expected a mapping (a {kind} document), got `{type(doc).__name__}`", f"{doc_name} $")
    if kind == "query" and isinstance(doc.get("query"), Mapping):
        item = _unwrapped(doc_name, doc, "query", ignore=("response",))  # the page's illustration
    elif kind == "policy" and isinstance(doc.get("policy"), Mapping):
        item = _unwrapped(doc_name, doc, "policy")
    else:
        item = (doc_name, "$", doc)
    [(_, value)] = validate_documents([item], _TYPES[kind], strict=strict)
    if kind == "policy":
        policy_from_document(value, f"{item[0]} {item[1]}")
    return [value]


def policy_from_document(document: PolicyDocument, where: str = "policy") -> MatchPolicy:
    """The MatchPolicy a validated policy document describes (its own rules,
    such as a positive cap, checked with the document's location)."""
    fields = msgspec.structs.asdict(document)
    fields["health_statuses"] = tuple(fields["health_statuses"])
    try:
        return MatchPolicy(**fields)
    except RegistryError as exc:
        raise RegistryError([(loc.replace("policy $", where, 1), msg) for loc, msg in exc.errors]) from None


def _schema_hook(kind: type) -> dict[str, Any]:
    # The marker types of schema.py are floats parsed from text: the schema
    # says what the parser accepts, so an editor can check it as you type.
    if kind is Size:
        return {"anyOf": [{"type": "number", "minimum": 0},
                          {"type": "string", "pattern": r"^\s*[0-9.]+(e[+-]?[0-9]+)?\s*([KMGTP]i?B|B)?\s*$"}],
                "description": "bytes, or a size with a unit: B KB MB GB TB PB (powers of 1000), "
                               "KiB MiB GiB TiB PiB (powers of 1024)"}
    if kind is Threshold:
        return {"anyOf": [{"type": "number", "minimum": 0},
                          {"type": "string", "pattern": r"^\s*[0-9.]+\s*%\s*$"},
                          {"type": "string", "pattern": r"^\s*([0-9.]+(ns|us|µs|ms|s|m|h)\s*)+$"}],
                "description": "a check threshold: a number, a percentage (1%) or a duration (100ms)"}
    if kind in (Duration, DurationMs):
        return {"type": "string", "pattern": r"^\s*([0-9.]+(ns|us|µs|ms|s|m|h)\s*)+$",
                "description": "a duration with units ns us ms s m h, combinable (1m30s)"}
    raise NotImplementedError(kind)


def json_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of a document kind, generated from its msgspec Struct
    (for yaml-language-server and other editors)."""
    if kind not in _TYPES:
        raise RegistryError(f"Expected a kind in {', '.join(f'`{k}`' for k in KINDS)}, got `{kind[:40]}`", "schema")
    target: Any = _TYPES[kind]
    if kind == "registration":
        target = Registration | list[Registration]
    schema = msgspec.json.schema(target, schema_hook=_schema_hook)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = f"prism_match {kind} document"
    if kind in ("query", "policy"):
        # The page's wrapper (`query:` with its illustrative `response:`), or the fields alone.
        inner = {key: value for key, value in schema.items() if key not in ("$schema", "title", "$defs")}
        wrapped = {"type": "object", "properties": {kind: inner}, "required": [kind],
                   "additionalProperties": kind == "query"}
        schema = {"$schema": schema["$schema"], "title": schema["title"], "$defs": schema.get("$defs", {}),
                  "anyOf": [inner, wrapped]}
    elif kind == "slot":
        inner = {key: value for key, value in schema.items() if key not in ("$schema", "title", "$defs")}
        schema = {"$schema": schema["$schema"], "title": schema["title"], "$defs": schema.get("$defs", {}),
                  "anyOf": [inner, {"type": "array", "items": inner},
                            {"type": "object", "properties": {"slots": {"type": "array", "items": inner}},
                             "required": ["slots"], "additionalProperties": False},
                            {"type": "object", "properties": {"slot_requirement": inner},
                             "required": ["slot_requirement"], "additionalProperties": False}]}
    return schema

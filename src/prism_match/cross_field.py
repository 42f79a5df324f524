"""The rules msgspec cannot express, on validated registrations.

Secrets (an inline value under a secret name, a URL with a password), the
bounds of free-form blocks (``metadata``, operation ``parameters``: depth,
size, no self-reference), names per backend, pool and backoff ordering.
``registration_problems`` runs once per backend on the success path, and on
an item that converted only once its wrong parts were set aside, so one pass
reports every problem.
"""

from __future__ import annotations

from typing import Any

from .compiled import MAX_NAMES_PER_BACKEND
from .field_errors import MAX_DEPTH, format_path
from .redact import is_inline_secret, is_secret_field, url_password
from .schema import Registration

__all__ = ["MAX_FREEFORM_NODES", "check_freeform", "registration_problems"]

MAX_FREEFORM_NODES = 10_000    # values in one free-form mapping (metadata, parameters)


def _inline_secret_message(field: str, url: bool = False) -> str:
    what = f"the password of the URL in `{field}`" if url else f"`{field}`"
    return (f"Inline secret in {what}: expected a reference `${{SECRET:path}}` "
            "(the value is not shown; pass allow_inline_secrets=True to accept it)")


def check_freeform(value: Any, path: str, out: list[tuple[str, str]], *, secrets: bool) -> None:
    """A free-form mapping (metadata, parameters): bounded depth and size,
    no self-reference, and (``secrets``) no inline value under a secret name
    nor a URL with an inline password.

    Iterative, so nesting cannot exhaust the stack; a cycle shows up as depth.
    """
    stack: list[tuple[Any, list[Any], int]] = [(value, [], 0)]
    count = 0
    while stack:
        node, parts, depth = stack.pop()
        if depth >= MAX_DEPTH:
            out.append((path, f"Nesting deeper than {MAX_DEPTH} levels (or a value that contains itself)"))
            return
        if isinstance(node, dict):
            pairs: Any = node.items()
        elif isinstance(node, (list, tuple)):
            pairs = enumerate(node)
        else:
            continue
        count += len(node)
        if count > MAX_FREEFORM_NODES:
            out.append((path, f"Expected at most {MAX_FREEFORM_NODES:,} values in a free-form block"))
            return
        below = []
        for key, child in pairs:
            if secrets and isinstance(key, str) and is_secret_field(key) and is_inline_secret(child):
                out.append((path + format_path(parts + [key])[1:], _inline_secret_message(key)))
            elif secrets and isinstance(child, str) and url_password(child):
                out.append((path + format_path(parts + [key])[1:], _inline_secret_message(str(key), url=True)))
            elif isinstance(child, (dict, list, tuple)):
                below.append((child, parts + [key], depth + 1))
        stack += reversed(below)


def registration_problems(reg: Registration, allow_inline_secrets: bool) -> list[tuple[str, str]]:
    """Rules msgspec cannot express: secrets, free-form bounds, names per
    backend, pool and backoff ordering. Paths are relative to the
    registration (``$...``).

    Runs once per backend on the success path, so each rule first checks
    that its block is present at all.
    """
    problems: list[tuple[str, str]] = []
    if len(reg.capabilities) > MAX_NAMES_PER_BACKEND or len(reg.interfaces) > MAX_NAMES_PER_BACKEND \
            or len(reg.regions) > MAX_NAMES_PER_BACKEND or len(reg.compliance) > MAX_NAMES_PER_BACKEND:
        for field in ("capabilities", "interfaces", "regions", "compliance"):
            count = len(getattr(reg, field))
            if count > MAX_NAMES_PER_BACKEND:
                problems.append((f"$.{field}", f"Expected at most {MAX_NAMES_PER_BACKEND:,} {field} in one "
                                               f"backend, got {count:,}"))
    conn = reg.connection
    if conn is not None:
        auth = conn.auth
        if auth is not None and not allow_inline_secrets:
            for field in ("password", "token"):
                value = getattr(auth, field, None)
                if is_inline_secret(value):
                    problems.append((f"$.connection.auth.{field}", _inline_secret_message(field)))
        if conn.endpoint is not None and not allow_inline_secrets and url_password(conn.endpoint):
            problems.append(("$.connection.endpoint", _inline_secret_message("endpoint", url=True)))
        if conn.pool is not None:
            _check_pool(conn.pool, "$.connection.pool", problems)
        if conn.retry is not None:
            _check_retry(conn.retry, "$.connection.retry", problems)
    if reg.pool is not None:
        _check_pool(reg.pool, "$.pool", problems)
    if reg.retry is not None:
        _check_retry(reg.retry, "$.retry", problems)
    if reg.metadata:
        check_freeform(reg.metadata, "$.metadata", problems, secrets=not allow_inline_secrets)
    check = reg.health_check
    if check is not None and check.endpoint and not allow_inline_secrets and url_password(check.endpoint):
        problems.append(("$.health_check.endpoint", _inline_secret_message("endpoint", url=True)))
    for i, ifc in enumerate(reg.interfaces):
        if type(ifc) is not str and ifc.operations:
            for j, op in enumerate(ifc.operations):
                if op.parameters:
                    # `key: string (required)` declares a parameter, not a secret.
                    check_freeform(op.parameters, f"$.interfaces[{i}].operations[{j}].parameters", problems,
                                   secrets=False)
    return problems


def _check_pool(pool: Any, where: str, problems: list[tuple[str, str]]) -> None:
    if pool.max_connections is not None and pool.min_connections > pool.max_connections:
        problems.append((f"{where}.min_connections",
                         f"Expected `min_connections` <= `max_connections` ({pool.max_connections}), "
                         f"got `{pool.min_connections}`"))


def _check_retry(retry: Any, where: str, problems: list[tuple[str, str]]) -> None:
    if (retry.initial_backoff is not None and retry.max_backoff is not None
            and retry.initial_backoff > retry.max_backoff):
        problems.append((f"{where}.initial_backoff",
                         f"Expected `initial_backoff` <= `max_backoff` ({retry.max_backoff:g}s), "
                         f"got `{retry.initial_backoff:g}s`"))

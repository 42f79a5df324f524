"""Secrets never leave the process in text.

SPEC §1: ``auth.password``, ``auth.token`` and any field named ``key``,
``secret`` or ``password`` hold a reference ``${SECRET:path}``. This module
decides which names are secret, whether a value is a reference, and replaces
inline values by a fixed mask wherever a registration is shown.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["SECRET_FIELDS", "is_secret_field", "is_secret_reference", "may_hold_secret", "redacted", "MASK",
           "printable", "quoted", "redacted_url"]

SECRET_FIELDS = frozenset({"password", "token", "key", "secret"})
MASK = "***redacted***"
_REFERENCE = re.compile(r"\$\{SECRET:[^{}\s]+\}")


def is_secret_field(name: object) -> bool:
    """``password``, ``Token``, ``KEY``…: compared without case, so a
    capitalised key is no way around the rule."""
    return isinstance(name, str) and name.lower() in SECRET_FIELDS


_LOOKS_ASSIGNED = re.compile(r"(?i)\b(?:password|token|key|secret)\b\s*[:=]")


def may_hold_secret(text: str) -> bool:
    """Text that reads like ``password: …`` — typically YAML whose layout was
    lost, so that a secret ended up inside a plain string. Error messages
    show such a string's type, never its text."""
    return _LOOKS_ASSIGNED.search(text) is not None


def is_secret_reference(value: object) -> bool:
    return isinstance(value, str) and _REFERENCE.fullmatch(value) is not None


def redacted(name: str, value: Any) -> Any:
    """``value`` with every inline secret below it masked (references stay)."""
    if is_secret_field(name) and value is not None and not is_secret_reference(value):
        return MASK
    if isinstance(value, dict):
        return {k: redacted(str(k), v) for k, v in value.items()}
    if isinstance(value, list):
        return [redacted("", v) for v in value]
    return value


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: object, limit: int | None = None) -> str:
    """``text`` as an error or a table may show it: control characters (a
    terminal escape sequence among them) written as ``\\xNN``, and cut to
    ``limit`` characters when given. Idempotent."""
    text = str(text)
    if limit is not None and len(text) > limit:
        text = text[: limit - 3] + "..."
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def quoted(value: str, limit: int = 40) -> str:
    """A string as the error grammar shows a value found: quoted and
    shortened, or only its type when it reads like ``password: …``."""
    if may_hold_secret(value):
        return "str"
    return '"' + (value if len(value) <= limit else value[: limit - 3] + "...") + '"'


_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/@:]*):(?P<password>[^/@]*)@")


def redacted_url(url: str) -> str:
    """A URL with the password of its ``user:password@`` part masked (a
    reference stays): health probe endpoints may carry credentials."""
    def mask(m: re.Match) -> str:
        password = m.group("password")
        shown = password if is_secret_reference(password) else MASK
        return f"{m.group('scheme')}{m.group('user')}:{shown}@"
    return _URL_USERINFO.sub(mask, url)

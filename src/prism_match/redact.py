"""Secrets never leave the process in text; nor do control characters.

SPEC §1: ``auth.password``, ``auth.token`` and any field whose name says it
holds a credential keep a reference ``${SECRET:path}``, never the value. This
module decides which names are secret (compared after normalising case,
surrounding spaces, ``-``/``_`` and camelCase, so ``" Password"``,
``API-Key`` and ``apiKey`` are all secret), finds the password part of a URL
(``postgres://user:pass@host``), and replaces inline values by a fixed mask
wherever a registration is shown. A snapshot keeps neither: it stores
:data:`REMOVED` in their place.

It also holds the one escaping helper, :func:`printable`: C0 and C1 control
characters, DEL, and the bidirectional embeddings, overrides and isolates
(U+202A–U+202E, U+2066–U+2069, which reorder what a terminal shows) are
written as escapes in every error and every output.
"""

from __future__ import annotations

import functools
import re
from typing import Any

__all__ = ["SECRET_FIELDS", "is_secret_field", "is_secret_reference", "is_inline_secret", "may_hold_secret",
           "redacted", "MASK", "REMOVED", "printable", "quoted", "normalized_key", "url_password", "mask_url_password",
           "redacted_url"]

# Names that are secret on their own (after normalized_key) ...
SECRET_FIELDS = frozenset({"password", "passwd", "pwd", "passphrase", "token", "key", "secret", "apikey",
                           "secretkey", "privatekey", "accesskey", "clientsecret", "accesstoken"})
# ... the last words that make a name secret (``db_password``, ``client_secret``, ``access_token``) ...
_SECRET_LAST_WORDS = ("password", "passwd", "passphrase", "secret", "token")
# ... and the qualifiers that make ``*_key`` a credential (``api_key``, ``private_key``), where a bare
# ``_key`` suffix would also catch ``partition_key`` or ``sort_key`` in metadata.
_KEY_QUALIFIERS = frozenset({"api", "access", "secret", "private", "signing", "encryption", "master", "client",
                             "auth", "ssh", "account", "app", "session", "license", "shared", "service",
                             "consumer", "storage", "subscription", "webhook", "hmac", "gpg", "pgp"})
MASK = "***redacted***"
# What a snapshot stores instead of an inline secret (``Registry.save``): it says what happened, and
# is shown as it is (it is not a secret).
REMOVED = "***removed: secrets are not saved in snapshots***"
_REFERENCE_TEXT = r"\$\{SECRET:[^{}\s]+\}"
_REFERENCE = re.compile(_REFERENCE_TEXT)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SEPARATORS = re.compile(r"[\s\-.]+")


@functools.lru_cache(maxsize=4096)
def normalized_key(name: str) -> str:
    """``" Client-Secret "`` → ``client_secret``; ``apiKey`` → ``api_key``."""
    return _SEPARATORS.sub("_", _CAMEL.sub("_", name.strip())).lower().strip("_")


def is_secret_field(name: object) -> bool:
    """Does a field of this name hold a credential? ``password``, ``Token``,
    ``" KEY"``, ``api_key``, ``db-password``, ``clientSecret``…: compared
    after :func:`normalized_key`, so no spelling is a way around the rule."""
    if not isinstance(name, str):
        return False
    key = normalized_key(name)
    if key in SECRET_FIELDS or key.endswith(_SECRET_LAST_WORDS):
        return True
    words = key.rsplit("_", 2)
    return len(words) >= 2 and words[-1] == "key" and words[-2] in _KEY_QUALIFIERS


# scheme://user:PASSWORD@host — the password part, greedy to the authority's last "@"
# (an unescaped "@" inside a password is common); a reference stays a reference.
_URL_CREDENTIALS = re.compile(rf"([A-Za-z][A-Za-z0-9+.\-]*://[^\s/?#@:]*:)({_REFERENCE_TEXT}|[^\s/?#]*)@")


def url_password(text: object) -> bool:
    """A URL in ``text`` carries an inline password (not a reference)."""
    if not isinstance(text, str) or "@" not in text:
        return False
    return any(m.group(2) and _REFERENCE.fullmatch(m.group(2)) is None for m in _URL_CREDENTIALS.finditer(text))


def mask_url_password(text: str, mask: str = MASK) -> str:
    """``text`` with the password of every URL replaced by ``mask``."""
    if "@" not in text:
        return text
    return _URL_CREDENTIALS.sub(
        lambda m: m.group(0) if not m.group(2) or _REFERENCE.fullmatch(m.group(2)) else f"{m.group(1)}{mask}@",
        text)


_LOOKS_ASSIGNED = re.compile(r"(?i)(?:password|passwd|token|key|secret)[\"']?\s*[:=]")


def may_hold_secret(text: str) -> bool:
    """Text that reads like ``password: …`` — typically YAML whose layout was
    lost, so that a secret ended up inside a plain string — or a URL with a
    password. Error messages show such a string's type, never its text."""
    return _LOOKS_ASSIGNED.search(text) is not None or url_password(text)


def is_secret_reference(value: object) -> bool:
    return isinstance(value, str) and _REFERENCE.fullmatch(value) is not None


def is_inline_secret(value: object) -> bool:
    """A value under a secret name that is a secret itself: not None, not a
    reference, not the snapshot's removal marker (both are shown as they are)."""
    return value is not None and value != REMOVED and not is_secret_reference(value)


def redacted(name: str, value: Any, mask: str = MASK) -> Any:
    """``value`` with every inline secret below it replaced by ``mask``
    (references stay), URL passwords included."""
    if is_secret_field(name) and is_inline_secret(value):
        return mask
    if isinstance(value, str):
        return mask_url_password(value, mask)
    if isinstance(value, dict):
        return {k: redacted(str(k), v, mask) for k, v in value.items()}
    if isinstance(value, list):
        return [redacted("", v, mask) for v in value]
    return value


# The characters never written raw. Below DEL they are escaped as ``\xNN``;
# DEL, C1 and the bidirectional controls as ``\uNNNN``, which is also JSON's
# own escape for the same character: JSON output stays valid, and lossless.
_UNSAFE = "\x7f-\x9f\u202a-\u202e\u2066-\u2069"
_CONTROL = re.compile(f"[\x00-\x1f{_UNSAFE}]")
_CONTROL_IN_TEXT = re.compile(f"[\x00-\x08\x0b-\x1f{_UNSAFE}]")  # a whole document: lines and tabs stay


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x7f else f"\\u{code:04x}"


def printable(text: object, limit: int | None = None, *, lines: bool = False) -> str:
    """``text`` as an error, a table or a file may show it: control
    characters (a terminal escape sequence among them) and bidirectional
    overrides written as escapes, and cut to ``limit`` characters when given.
    ``lines``: a whole document (a table, CSV, JSON), whose newlines and tabs
    stay. Idempotent."""
    text = str(text)
    if limit is not None and len(text) > limit:
        text = text[: limit - 3] + "..."
    return (_CONTROL_IN_TEXT if lines else _CONTROL).sub(_escape, text)


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

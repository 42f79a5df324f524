"""Names ↔ bit positions.

Capabilities and interfaces share one *feature* vocabulary. Every declared
capability contributes two tokens, ``c:get`` (the bare name: any version) and
``c:get@v1`` (that exact version); interfaces likewise with ``i:``. A slot's
bare requirement asks for the first, ``Name@v2`` for the second, so a single
mask test covers both readings. Regions and compliance tags have their own
vocabularies. A vocabulary of any size works: masks span as many uint64
words as it needs.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

__all__ = ["Vocabulary", "capability_token", "interface_token", "versioned", "is_versioned", "split_versioned",
           "split_requirement", "requirement_parts", "requirement_token", "shown", "VERSION_SEP"]

# Joins a name and its version inside a token. Not "@": names are free text
# and may contain "@" (``x@y`` the name must not collide with ``x`` at
# version ``y``); schema.Name refuses control characters, so this one is free.
VERSION_SEP = "\x1f"


def capability_token(name: str) -> str:
    return "c:" + name


def interface_token(name: str) -> str:
    return "i:" + name


def versioned(token: str, version: str) -> str:
    return f"{token}{VERSION_SEP}{version}"


def is_versioned(token: str) -> bool:
    return VERSION_SEP in token


def capability_names(tokens: Iterable[str]) -> list[str]:
    """The capability names among feature tokens (``c:get`` → ``get``;
    versioned tokens left out)."""
    return [t[2:] for t in tokens if t.startswith("c:") and not is_versioned(t)]


def split_versioned(token: str) -> tuple[str, str | None]:
    """``c:get<SEP>v1`` → (``c:get``, ``v1``); a bare token → (token, None)."""
    bare, sep, version = token.partition(VERSION_SEP)
    return bare, (version if sep else None)


def split_requirement(text: str) -> tuple[str, str | None]:
    """``Name@version`` as people write it → (name, version or None). The last
    "@" splits, so a name may contain "@" when a version is given."""
    name, sep, version = text.rpartition("@")
    return (name, version) if sep and name and version else (text, None)


def requirement_parts(item) -> tuple[str, str | None]:
    """A requirement as written (``Name``, ``Name@v2`` or a ``{name, version}``
    Struct) → (name, version or None)."""
    if isinstance(item, str):
        return split_requirement(item)
    return item.name, item.version


def requirement_token(kind: str, item) -> str:
    """The token a capability or interface requirement asks for: the bare
    token (any version) or the versioned one."""
    name, version = requirement_parts(item)
    token = capability_token(name) if kind == "capability" else interface_token(name)
    return token if version is None else versioned(token, version)


def shown(token: str) -> str:
    """A token as people read it: ``get`` or ``get@v1`` (no kind prefix)."""
    bare, version = split_versioned(token)
    return bare[2:] if version is None else f"{bare[2:]}@{version}"


def _stem(name: str) -> str:
    """The part of a name that tells it apart: lower case, without a trailing
    ``Interface`` (or a misspelling of it, ``Interfac``)."""
    lower = name.lower()
    stem = re.sub(r"int[a-z]*$", "", lower)
    return stem or lower


class Vocabulary:
    """An ordered set of tokens; token ``t`` is bit ``index[t]`` of a mask."""

    __slots__ = ("tokens", "index")

    def __init__(self, tokens: Iterable[str] = ()):
        self.tokens: list[str] = []
        self.index: dict[str, int] = {}
        for token in tokens:
            self.add(token)

    def add(self, token: str) -> int:
        bit = self.index.get(token)
        if bit is None:
            bit = self.index[token] = len(self.tokens)
            self.tokens.append(token)
        return bit

    def truncate(self, size: int) -> None:
        """Forget the tokens added after the first ``size`` (the names of an
        add that was refused)."""
        for token in self.tokens[size:]:
            del self.index[token]
        del self.tokens[size:]

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self.index

    @property
    def words(self) -> int:
        """uint64 words per mask (at least one, so shapes never collapse)."""
        return max(1, (len(self.tokens) + 63) // 64)

    def suggest(self, token: str) -> str | None:
        """The closest known token of the same kind, for a did-you-mean."""
        prefix = token[:2] if token[1:2] == ":" else ""
        pool = [t[len(prefix):] for t in self.tokens if t.startswith(prefix) and VERSION_SEP not in t]
        # Compare without the suffix every interface shares, or `WatchInterface`
        # looks like `TTLInterface` for its last nine letters.
        stems = {_stem(name): name for name in pool}
        close = difflib.get_close_matches(_stem(token[len(prefix):]), list(stems), n=1, cutoff=0.6)
        return stems[close[0]] if close else None

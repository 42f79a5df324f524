"""Everything prism_match writes leaves through here: snapshots
(``Registry.save``, ``prism-match compile -o``) and the command line's
tables, CSV, JSON and Parquet, to a file or to standard output.

What writing to a path means, decided once:

* a regular file (or a new name) is replaced atomically: the data goes to a
  temporary file beside it, renamed over it only once complete, so a reader
  never sees half a file. The replacement keeps the old file's permission
  bits; a new file gets the umask's (``0666 & ~umask``), never a private
  ``0600`` temporary's;
* a FIFO or a character device (``/dev/stdout``, ``/dev/null``, a terminal)
  is written through, opened as it is: it cannot be renamed over, and
  replacing it with a regular file would break it;
* a symlink is followed, deliberately, and what it points to is written in
  place (truncated and written, not renamed over: the link stays a link and
  its target keeps its inode and permissions). ``/dev/stdout`` is such a
  link;
* a directory, a block device or a socket is refused.

Every failure (no such directory, permission denied, disk full, an empty
path or one with a NUL) is a one-line :class:`RegistryError` naming the
path; nothing here raises ``OSError``.

Text is escaped on its way out (``redact.printable`` with ``lines=True``):
control characters and bidirectional overrides in names never reach a
terminal raw, whether as a table, CSV or JSON (where the ``\\uNNNN`` escape
is JSON's own). :class:`render.SafeConsole` does the same for rich's tables on a
terminal, escaping the text of each segment before rich adds its colours.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO


from .errors import RegistryError
from .redact import printable

__all__ = ["open_output", "write_bytes", "write_text", "checked_path"]


def checked_path(path: Any, where: str) -> str:
    """``path`` as a non-empty ``str`` without NUL, else a RegistryError at
    ``where`` (the call that was given it)."""
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, str):
        raise RegistryError(f"Expected a file path, got `{type(path).__name__}`", where)
    if not path:
        raise RegistryError("Expected a file path, got an empty string", where)
    if "\x00" in path:
        raise RegistryError("Expected a file path, got one with a NUL character", printable(path, 80))
    return path


def _failed(exc: OSError, name: str) -> RegistryError:
    return RegistryError(f"Cannot write file: {exc.strerror or type(exc).__name__}", name)


def _kind(mode: int) -> str | None:
    """What may not be written to, in words; None for what may."""
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return None


@contextlib.contextmanager
def open_output(path: Any, where: str = "output") -> Iterator[BinaryIO]:
    """A binary file to write ``path``'s new content to (module docstring):
    committed when the block ends normally, discarded when it raises."""
    name = checked_path(path, where)
    try:
        link = os.lstat(name)
    except FileNotFoundError:
        link = None
    except OSError as exc:
        raise _failed(exc, name) from None
    if link is not None and not stat.S_ISREG(link.st_mode):
        if stat.S_ISLNK(link.st_mode):
            try:
                target = os.stat(name)
            except FileNotFoundError:  # a dangling link: its target is created
                target = None
            except OSError as exc:
                raise _failed(exc, name) from None
            refused = _kind(target.st_mode) if target is not None else None
        else:
            refused = _kind(link.st_mode)
        if refused:
            raise RegistryError(f"Cannot write file: it is {refused}", name)
        yield from _written_through(name)
        return
    yield from _replaced(name, link)


def _written_through(name: str) -> Iterator[BinaryIO]:
    """A FIFO, a character device or a symlink's target, opened as it is."""
    try:
        handle = open(name, "wb")  # noqa: SIM115 - closed below, errors turned into RegistryError
    except OSError as exc:
        raise _failed(exc, name) from None
    try:
        yield handle
        handle.close()
    except OSError as exc:
        raise _failed(exc, name) from None
    finally:
        with contextlib.suppress(OSError):
            handle.close()


def _replaced(name: str, old: os.stat_result | None) -> Iterator[BinaryIO]:
    """A temporary file beside ``name``, renamed over it when complete."""
    target = Path(name)
    directory = target.parent
    fd, tmp = -1, ""
    for attempt in range(100):
        tmp = str(directory / f".{target.name}.{os.getpid()}.{attempt}.tmp")
        try:
            # 0o666: the umask applies, as for any new file.
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
            break
        except FileExistsError:
            continue
        except OSError as exc:
            raise _failed(exc, name) from None
    else:
        raise RegistryError("Cannot write file: no free temporary name beside it", name)
    try:
        if old is not None:
            os.fchmod(fd, stat.S_IMODE(old.st_mode))
            with contextlib.suppress(OSError):  # only root may give a file away; keep ours otherwise
                os.fchown(fd, old.st_uid, old.st_gid)
        with os.fdopen(fd, "wb") as handle:
            fd = -1
            yield handle
        os.replace(tmp, name)
        tmp = ""
    except OSError as exc:
        raise _failed(exc, name) from None
    finally:
        if fd >= 0:
            os.close(fd)
        if tmp:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def write_bytes(data: bytes, path: Any, where: str = "output") -> None:
    """``data`` to ``path`` as :func:`open_output` writes (binary, unescaped:
    Parquet)."""
    with open_output(path, where) as handle:
        try:
            handle.write(data)
        except OSError as exc:
            raise _failed(exc, str(path)) from None


def write_text(text: str, path: Any | None, where: str = "output") -> None:
    """``text`` escaped (control characters, bidirectional overrides) to
    ``path``, or to standard output when ``path`` is None."""
    text = printable(text, lines=True)
    if path is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    write_bytes(text.encode("utf-8"), path, where)

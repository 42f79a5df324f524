"""The living registry from the command line: change a compiled snapshot in place.

A placement script keeps its registry in a snapshot (``prism-match compile
registry.yaml -o live.npz``) and changes it one command at a time; each
command loads the snapshot, makes its change (the same calls as the Python
API: add, remove, replace, reserve, release) and saves it back, so live
usage, reservations and the version carry over from one command to the
next. Each prints one JSON line: what it did and the registry's version.

    prism-match add live.npz new-backends.yaml
    prism-match reserve live.npz slots.yaml [--backend ID]
    prism-match release live.npz 3
    prism-match remove live.npz kafka-old
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import msgspec
import orjson

from .errors import RegistryError

__all__ = ["add_live_parsers"]


def add_live_parsers(sub: Any, open_registry: Any) -> None:
    """Register add, remove, replace, reserve and release on ``build_parser``'s
    subparsers; ``open_registry(path, args)`` reads the snapshot."""
    specs = (
        ("add", "register the backends of FILE(s) in a snapshot (all or nothing)", _add),
        ("remove", "unregister backends from a snapshot", _remove),
        ("replace", "re-register the backends of FILE(s), keeping their live usage", _replace),
        ("reserve", "take one placement for each slot of SLOTS (best backend, or --backend)", _reserve),
        ("release", "give reservations back by id", _release),
    )
    for name, help_text, run in specs:
        p = sub.add_parser(name, help=help_text)
        p.add_argument("snapshot", metavar="SNAPSHOT", help="a compiled registry (prism-match compile -o)")
        if name in ("add", "replace"):
            p.add_argument("files", nargs="+", metavar="FILE", help="registration documents (YAML/JSON)")
        elif name == "remove":
            p.add_argument("ids", nargs="+", metavar="BACKEND_ID")
        elif name == "reserve":
            p.add_argument("slots", metavar="SLOTS", help="a slot file (YAML/JSON/table)")
            p.add_argument("--backend", metavar="BACKEND_ID", help="reserve on this backend only")
        else:
            p.add_argument("ids", nargs="+", type=int, metavar="RESERVATION_ID")
        p.set_defaults(run=_command(run), open_registry=open_registry)


def _command(action: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        registry = args.open_registry(args.snapshot, args)
        done = action(registry, args)
        registry.save(args.snapshot)
        sys.stdout.write(orjson.dumps({"version": registry.version, **done}).decode() + "\n")
        return 0
    return run


def _registrations(files: list[str]) -> list[Any]:
    from .loading import load_registrations

    return load_registrations([Path(f) for f in files])


def _add(registry: Any, args: argparse.Namespace) -> dict[str, Any]:
    regs = _registrations(args.files)
    registry.add(regs, allow_inline_secrets=getattr(args, "allow_inline_secrets", False))
    return {"added": [r.backend_id for r in regs]}


def _replace(registry: Any, args: argparse.Namespace) -> dict[str, Any]:
    regs = _registrations(args.files)
    for reg in regs:
        registry.replace(reg, allow_inline_secrets=getattr(args, "allow_inline_secrets", False))
    return {"replaced": [r.backend_id for r in regs]}


def _remove(registry: Any, args: argparse.Namespace) -> dict[str, Any]:
    missing = [bid for bid in args.ids if bid not in registry]
    if missing:
        raise RegistryError([("command line", f"Unknown backend `{bid[:60]}`") for bid in missing])
    for bid in args.ids:
        registry.remove(bid)
    return {"removed": list(args.ids)}


def _reserve(registry: Any, args: argparse.Namespace) -> dict[str, Any]:
    from .slot_files import load_slots

    held = [registry.reserve(slot, args.backend) for slot in load_slots(args.slots)]
    return {"reservations": [msgspec.structs.asdict(r) for r in held]}


def _release(registry: Any, args: argparse.Namespace) -> dict[str, Any]:
    return {"released": {str(rid): registry.release(rid) for rid in args.ids}}

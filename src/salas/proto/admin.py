"""The admin console's protocol: JSON lines over the data dir's Unix socket.

A request is one line, ``{"cmd": "rooms.list", "args": {...}}``; the answer is
one line, ``{"ok": true, "result": ...}`` or ``{"ok": false, "error": "..."}``.
``logs`` with ``follow`` then sends ``{"log": "..."}`` lines until the console
hangs up. Only the user running the server can reach the socket (mode 0600),
so this is about clear errors for mistakes, not about trust.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

#: Longest request line: a broadcast text or a topic is at most a few KiB.
MAX_REQUEST = 64 * 1024


@dataclass(frozen=True, slots=True)
class Arg:
    kind: type | tuple[type, ...]
    required: bool = False
    #: ``None`` is a value of its own ("no limit", "no key").
    nullable: bool = False


_NAME = Arg(str, required=True)
_REASON = Arg(str)

#: Every command, and the arguments it takes.
COMMANDS: dict[str, dict[str, Arg]] = {
    "rooms.list": {},
    "rooms.who": {"room": _NAME},
    "rooms.create": {
        "room": _NAME,
        "limit": Arg(int),
        "private": Arg(bool),
        "key": Arg(str),
        "topic": Arg(str),
    },
    "rooms.set": {
        "room": _NAME,
        "limit": Arg(int, nullable=True),
        "private": Arg(bool),
        "key": Arg(str, nullable=True),
        "topic": Arg(str),
    },
    "rooms.close": {"room": _NAME, "reason": _REASON},
    "users.list": {},
    "users.kick": {"name": _NAME, "reason": _REASON},
    "users.oper": {"name": _NAME},
    "users.deoper": {"name": _NAME},
    "broadcast": {"text": Arg(str, required=True)},
    "logs": {"lines": Arg(int), "follow": Arg(bool)},
    "accounts.list": {},
    "accounts.create": {"name": _NAME, "password": Arg(str, required=True), "oper": Arg(bool)},
    "accounts.delete": {"name": _NAME},
    "accounts.oper": {"name": _NAME},
    "accounts.deoper": {"name": _NAME},
    "shutdown": {"reason": _REASON},
    "nodes": {},
}


@dataclass(frozen=True, slots=True)
class Request:
    cmd: str
    args: dict[str, Any]


class RequestError(ValueError):
    """A request that can't be run; the message is the answer's error text."""


def encode_request(cmd: str, **args: Any) -> bytes:
    return encode({"cmd": cmd, "args": args})


def encode(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def ok(result: Any = None) -> bytes:
    return encode({"ok": True, "result": result})


def refused(error: str) -> bytes:
    return encode({"ok": False, "error": error})


def decode_request(line: bytes) -> Request:
    """The request on one line, checked against ``COMMANDS``; RequestError says what is wrong."""
    if len(line) > MAX_REQUEST:
        raise RequestError(f"request longer than {MAX_REQUEST} bytes")
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError):
        raise RequestError("not a JSON object") from None
    if not isinstance(obj, dict):
        raise RequestError("not a JSON object")
    cmd = obj.get("cmd")
    if not isinstance(cmd, str) or cmd not in COMMANDS:
        raise RequestError(f"unknown command {cmd!r}" if isinstance(cmd, str) else "no command")
    args = obj.get("args", {})
    if not isinstance(args, dict):
        raise RequestError("args must be an object")
    spec = COMMANDS[cmd]
    for name in args:
        if name not in spec:
            raise RequestError(f"{cmd} takes no argument {name!r}")
    for name, arg in spec.items():
        if name not in args:
            if arg.required:
                raise RequestError(f"{cmd} needs {name!r}")
            continue
        value = args[name]
        if value is None and arg.nullable:
            continue
        # bool is an int in Python: a limit of ``true`` is no limit at all.
        wrong = isinstance(value, bool) and arg.kind is int
        if wrong or not isinstance(value, arg.kind):
            raise RequestError(f"{cmd}: {name!r} has the wrong type")
    args = dict(args)
    if isinstance(args.get("room"), str):
        # IRC's spelling of a room ("#tas") names it too, as in `history export`.
        args["room"] = args["room"].removeprefix("#")
    return Request(cmd, args)


def decode_reply(line: bytes) -> dict[str, Any]:
    """One line from the server, for the console; ValueError when it is not one of ours."""
    obj = json.loads(line)
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    return obj

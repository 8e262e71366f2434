"""One entry of the cluster's operation log, as bytes and back (sans I/O).

Every node applies the log's entries to its own hub in the same order, so the
copies stay the same. An entry comes from a network peer, so ``decode`` is
total: whatever the bytes, it returns an ``Entry`` whose every field has
exactly its declared type, or raises ``BadEntry``, and nothing else. Every
node runs the same decoder, so a bad entry is refused by all of them alike.

Wire shape, compact JSON in UTF-8::

    {"v": 1, "node": 3, "seq": 17, "ops": [
        ["do", 5, "Say", {"room": "#a", "text": "hi"}],
        ["call", "disconnect", [5, "Connection reset"]]]}

A command is its class name and its fields (those equal to their default are
left out); nested dataclasses are objects, and a command that is a call's
argument is ``[NAME, {fields}]``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal, NoReturn, get_args, get_origin, get_type_hints

from salas.core import commands as c

#: Bump when the entry format or a command's fields change.
BUS_SCHEMA: Final = 1
#: Largest entry, in bytes, and most ops in one (a peer's entry is untrusted).
MAX_ENTRY: Final = 8 * 1024 * 1024
MAX_OPS: Final = 100_000
#: Longest string field, in UTF-8 bytes (the hub checks content, this bounds memory).
MAX_STR: Final = 1024 * 1024
#: Node numbers are 0 < node < MAX_NODE.
MAX_NODE: Final = 2**20

_INT_MIN: Final = -(2**63)
_INT_MAX: Final = 2**63 - 1
_SHORT_STR: Final = MAX_STR // 4  # this many characters can't be over MAX_STR bytes


@dataclass(frozen=True, slots=True)
class Do:
    """A session's command, as the hub's ``handle(sid, cmd, now)`` takes it."""

    sid: int
    cmd: c.Command


@dataclass(frozen=True, slots=True)
class Call:
    """One of the hub's direct methods (``CALLS``), without its ``now`` (the log gives it)."""

    method: str
    args: tuple[Any, ...]


Op = Do | Call


@dataclass(frozen=True, slots=True)
class Entry:
    node: int
    """The publishing node's number (0 < node < MAX_NODE)."""
    seq: int
    """That node's entry counter, from 1."""
    ops: tuple[Op, ...]


class BadEntry(ValueError):
    """An entry this node can't apply: garbage, a newer schema, or out of bounds."""


# -- what may go on the bus ----------------------------------------------------
# Listed by hand, so that carrying a new command is a deliberate change (and a
# test checks that every command the hub handles is here).

#: Commands a ``do`` op may carry: those ``Hub.handle`` takes.
_DO: Final[tuple[type[Any], ...]] = (
    c.Register,
    c.Rename,
    c.Join,
    c.Create,
    c.Leave,
    c.Say,
    c.Tell,
    c.Tag,
    c.Topic,
    c.ListRooms,
    c.ListUsers,
    c.Names,
    c.Echo,
    c.SetEcho,
    c.SetAway,
    c.Kick,
    c.Invite,
    c.SetModes,
    c.ListBans,
    c.Whois,
    c.Lookup,
    c.Stats,
    c.BecomeOper,
    c.DropOper,
    c.CloseRoom,
    c.Kill,
    c.Broadcast,
    c.Shutdown,
    c.Overview,
    c.CallStart,
    c.CallAnswer,
    c.CallSignal,
    c.CallEnd,
    c.LeaveAll,
    c.FetchHistory,
    c.FetchTargets,
    c.Quit,
)
#: Commands that only travel as a call's argument (the hub names them in a refusal).
_ARGS_ONLY: Final[tuple[type[Any], ...]] = (c.LogIn, c.RegisterAccount, c.ChangePassword)

#: Every command the log carries, by the name it goes by.
COMMANDS: dict[str, type[Any]] = {cls.__name__: cls for cls in (*_DO, *_ARGS_ONLY)}
#: The names a ``do`` op may carry (the others would make ``Hub.handle`` fail).
DO_COMMANDS: frozenset[str] = frozenset(cls.__name__ for cls in _DO)

#: The hub's direct methods: the types of their arguments, in order, ``now`` left out.
CALLS: dict[str, tuple[object, ...]] = {
    "disconnect": (int, str),
    "log_in": (int, str, str, c.LogIn),
    "register_account": (int, str, c.RegisterAccount),
    "set_password": (int, str, c.ChangePassword),
    "close_room": (str, str, str),
    "kill": (str, str, str),
    "broadcast": (str, str, str),
    "create_room": (str, str, int | None, bool, str | None, str),
    "set_room": (str, str, tuple[c.ModeChange, ...], str | None),
    "set_oper": (str, bool, str),
    "create_account": (str, str, bool, str),
    "delete_account": (str, str),
    "set_account_oper": (str, bool, str),
    "expire_rooms": (),
    "expire_calls": (),
    "node_gone": (int, str),
    "snapshot_wanted": (str,),
    "shutdown_node": (int, str),
}


# -- checking values read from JSON ----------------------------------------------
# A check takes what json.loads made (or what an encoder made: tuples too) and
# returns the value of the declared type, or raises BadEntry.

_Check = Callable[[object], Any]
#: Turns a value into what json can write; None: it already is.
_Encode = Callable[[Any], object] | None

_KINDS: Final[dict[type, str]] = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "a boolean",
    list: "an array",
    tuple: "an array",
    dict: "an object",
    type(None): "null",
}


def _kind(value: object) -> str:
    return _KINDS.get(type(value), type(value).__name__)


def _show(value: object) -> str:
    """A peer's value in a reason, kept short."""
    if type(value) is str:
        return repr(value if len(value) <= 30 else value[:30] + "...")
    return _kind(value)


def _bad(reason: str) -> NoReturn:
    raise BadEntry(reason)


def _check_str(value: object) -> str:
    if type(value) is not str:
        _bad(f"expected a string, got {_kind(value)}")
    if len(value) > _SHORT_STR and len(value.encode("utf-8", "surrogatepass")) > MAX_STR:
        _bad("a string over 1 MiB")
    return value


def _check_int(value: object) -> int:
    if type(value) is not int:  # not bool either
        _bad(f"expected an integer, got {_kind(value)}")
    if not _INT_MIN <= value <= _INT_MAX:
        _bad("an integer over 64 bits")
    return value


def _check_bool(value: object) -> bool:
    if type(value) is not bool:
        _bad(f"expected a boolean, got {_kind(value)}")
    return value


def _check_float(value: object) -> float:
    if type(value) is float:
        if math.isfinite(value):
            return value
        _bad("not a finite number")
    if type(value) is int:
        return float(_check_int(value))
    _bad(f"expected a number, got {_kind(value)}")


_SCALARS: Final[dict[type, tuple[_Check, _Encode]]] = {
    str: (_check_str, None),
    int: (_check_int, None),
    bool: (_check_bool, None),
    float: (_check_float, None),
}


def _literal(values: tuple[object, ...]) -> _Check:
    for v in values:
        if type(v) not in (str, int, bool):
            raise TypeError(f"oplog can't carry Literal value {v!r}")
    allowed = frozenset((type(v), v) for v in values)
    shown = "/".join(map(str, values))

    def check(value: object) -> object:
        if type(value) in (str, int, bool) and (type(value), value) in allowed:
            return value
        _bad(f"expected one of {shown}, got {_show(value)}")

    return check


def _optional(inner: _Check) -> _Check:
    def check(value: object) -> object:
        return None if value is None else inner(value)

    return check


def _tuple_of(item: _Check) -> _Check:
    def check(value: object) -> tuple[object, ...]:
        if type(value) is not list and type(value) is not tuple:
            _bad(f"expected an array, got {_kind(value)}")
        return tuple([item(x) for x in value])

    return check


def _tuple_fixed(items: tuple[_Check, ...]) -> _Check:
    n = len(items)

    def check(value: object) -> tuple[object, ...]:
        if (type(value) is not list and type(value) is not tuple) or len(value) != n:
            _bad(f"expected an array of {n}, got {_kind(value)}")
        return tuple([f(x) for f, x in zip(items, value, strict=True)])

    return check


_REQUIRED: Final = object()  # a field's default when it has none


def _fields_codec(cls: type[Any]) -> tuple[_Check, Callable[[Any], dict[str, object]]]:
    """A dataclass as a JSON object of its fields: (decoder, encoder).

    Built once per class from its type hints. Secret fields (``repr=False``:
    passwords) are always written as "": the hub only uses such a command to
    name what failed, and secrets stay off the bus.
    """
    hints = get_type_hints(cls)
    label = cls.__name__
    checks: dict[str, _Check] = {}
    required: list[str] = []
    plan: list[tuple[str, object, bool, _Encode]] = []
    for f in dataclasses.fields(cls):
        if f.default_factory is not dataclasses.MISSING or not f.init:
            raise TypeError(f"oplog can't carry {label}.{f.name} (default_factory or init=False)")
        secret = not f.repr
        if secret and hints[f.name] is not str:
            raise TypeError(f"oplog blanks secret {label}.{f.name}, so it must be a str")
        check, enc = _codec(hints[f.name])
        checks[f.name] = check
        default = _REQUIRED if f.default is dataclasses.MISSING else f.default
        if default is _REQUIRED:
            required.append(f.name)
        plan.append((f.name, default, secret, enc))
    names = frozenset(checks)
    needed = frozenset(required)

    def decode(value: object) -> Any:
        if type(value) is not dict:
            _bad(f"{label}: expected an object, got {_kind(value)}")
        if not names.issuperset(value):
            extra = next(k for k in value if k not in names)
            _bad(f"{label}: unknown field {_show(extra)}")
        if not needed.issubset(value):
            _bad(f"{label}: missing {sorted(needed.difference(value))[0]}")
        kwargs = {}
        for k, x in value.items():
            try:
                kwargs[k] = checks[k](x)
            except BadEntry as err:
                raise BadEntry(f"{label}.{k}: {err}") from None
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as err:  # a __post_init__ that refuses
            raise BadEntry(f"{label}: {err}") from None

    def encode(obj: Any) -> dict[str, object]:
        if type(obj) is not cls:
            raise ValueError(f"expected {label}, got {type(obj).__name__}")
        out: dict[str, object] = {}
        for name, default, secret, enc in plan:
            if secret:
                out[name] = ""
                continue
            v = getattr(obj, name)
            if v is default or (type(v) is type(default) and v == default):
                continue
            out[name] = v if enc is None else enc(v)
        return out

    return decode, encode


_CLASSES: dict[type[Any], tuple[_Check, Callable[[Any], dict[str, object]]]] = {}


def _class_codec(cls: type[Any]) -> tuple[_Check, Callable[[Any], dict[str, object]]]:
    if cls not in _CLASSES:
        _CLASSES[cls] = _fields_codec(cls)
    return _CLASSES[cls]


def _tagged(cls: type[Any]) -> tuple[_Check, _Encode]:
    """A command as a call's argument: ``[NAME, {fields}]``."""
    name = cls.__name__
    decode, encode = _class_codec(cls)

    def check(value: object) -> Any:
        if (type(value) is not list and type(value) is not tuple) or len(value) != 2:
            _bad(f"expected [{name}, {{fields}}], got {_kind(value)}")
        if value[0] != name:
            _bad(f"expected a {name}, got {_show(value[0])}")
        return decode(value[1])

    return check, lambda obj: [name, encode(obj)]


def _optional_enc(enc: Callable[[Any], object]) -> Callable[[Any], object]:
    return lambda v: None if v is None else enc(v)


def _tuple_of_enc(enc: Callable[[Any], object]) -> Callable[[Any], object]:
    return lambda v: [enc(x) for x in v]


def _tuple_fixed_enc(encs: tuple[_Encode, ...]) -> Callable[[Any], object]:
    return lambda v: [x if e is None else e(x) for e, x in zip(encs, v, strict=True)]


def _codec(hint: object) -> tuple[_Check, _Encode]:
    """How to check and write a value of this type hint; TypeError for one the
    log can't carry, so that a command with a new kind of field fails at import."""
    if isinstance(hint, type) and hint in _SCALARS:
        return _SCALARS[hint]
    origin, args = get_origin(hint), get_args(hint)
    if origin is Literal:
        return _literal(args), None
    if origin is typing.Union or origin is types.UnionType:
        inner = [a for a in args if a is not type(None)]
        if len(inner) != 1 or len(args) != 2:
            raise TypeError(f"oplog can't carry the union {hint!r}")
        check, enc = _codec(inner[0])
        return _optional(check), None if enc is None else _optional_enc(enc)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            check, enc = _codec(args[0])
            return _tuple_of(check), None if enc is None else _tuple_of_enc(enc)
        parts = [_codec(a) for a in args]
        encs = tuple(e for _, e in parts)
        fixed = _tuple_fixed(tuple(ch for ch, _ in parts))
        return fixed, None if all(e is None for e in encs) else _tuple_fixed_enc(encs)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if hint in COMMANDS.values():
            return _tagged(hint)
        return _class_codec(hint)
    raise TypeError(f"oplog can't carry {hint!r}")


#: name -> (decoder of its fields object); only those a ``do`` may carry.
_DO_DECODE: Final[dict[str, _Check]] = {
    name: _class_codec(cls)[0] for name, cls in COMMANDS.items() if name in DO_COMMANDS
}
#: class -> (name, encoder of its fields).
_DO_ENCODE: Final[dict[type[Any], tuple[str, Callable[[Any], dict[str, object]]]]] = {
    cls: (name, _class_codec(cls)[1]) for name, cls in COMMANDS.items() if name in DO_COMMANDS
}
_CALL_CODECS: Final[dict[str, tuple[tuple[_Check, ...], tuple[_Encode, ...]]]] = {
    method: (tuple(_codec(h)[0] for h in hints), tuple(_codec(h)[1] for h in hints))
    for method, hints in CALLS.items()
}


# -- ops and entries -------------------------------------------------------------


#: A room message is most of the log: it has a path of its own both ways,
#: doing the same checks as the general one without walking the type hints.
_SAY_KINDS: Final = frozenset(get_args(c.MessageKind))
_SAY_KEYS: Final = (frozenset({"room", "text"}), frozenset({"room", "text", "kind"}))


def _say_fields(room: object, text: object, kind: object) -> bool:
    """Do these make a Say that the general decoder would take as it is?"""
    return (
        (room is None or (type(room) is str and len(room) <= _SHORT_STR))
        and type(text) is str
        and len(text) <= _SHORT_STR
        and type(kind) is str
        and kind in _SAY_KINDS
    )


def _decode_op(op: object) -> Op:
    if (
        type(op) is list
        and len(op) == 4
        and op[2] == "Say"
        and op[0] == "do"
        and type(op[1]) is int
        and _INT_MIN <= op[1] <= _INT_MAX
        and type(f := op[3]) is dict
        and f.keys() in _SAY_KEYS
    ):
        room, text, kind = f["room"], f["text"], f.get("kind", "say")
        if _say_fields(room, text, kind):
            return Do(op[1], c.Say(room, text, kind))
    if (type(op) is not list and type(op) is not tuple) or not op:
        _bad(f"an op must be a non-empty array, got {_kind(op)}")
    kind = op[0]
    if kind == "do":
        if len(op) != 4:
            _bad(f"a do op has 4 items, got {len(op)}")
        try:
            sid = _check_int(op[1])
        except BadEntry as err:
            raise BadEntry(f"sid: {err}") from None
        name = op[2]
        decode = _DO_DECODE.get(name) if type(name) is str else None
        if decode is None:
            _bad(f"unknown command {_show(name)}")
        return Do(sid, decode(op[3]))
    if kind == "call":
        if len(op) != 3:
            _bad(f"a call op has 3 items, got {len(op)}")
        method, args = op[1], op[2]
        codecs = _CALL_CODECS.get(method) if type(method) is str else None
        if codecs is None:
            _bad(f"unknown call {_show(method)}")
        checks = codecs[0]
        if type(args) is not list and type(args) is not tuple:
            _bad(f"{method}: arguments must be an array, got {_kind(args)}")
        if len(args) != len(checks):
            _bad(f"{method}: takes {len(checks)} arguments, got {len(args)}")
        values = []
        for i, (check, arg) in enumerate(zip(checks, args, strict=True)):
            try:
                values.append(check(arg))
            except BadEntry as err:
                raise BadEntry(f"{method} argument {i}: {err}") from None
        return Call(method, tuple(values))
    _bad(f"unknown op {_show(kind)}")


def _op_json(op: Op) -> list[object]:
    """An op as json can write it, checked as ``decode`` will check it: whatever
    would be refused on every node is refused here, at its origin."""
    if type(op) is Do and type(cmd := op.cmd) is c.Say:
        sid = op.sid
        if (
            type(sid) is int
            and _INT_MIN <= sid <= _INT_MAX
            and _say_fields(cmd.room, cmd.text, cmd.kind)
        ):
            fields: dict[str, object] = {"room": cmd.room, "text": cmd.text}
            if cmd.kind != "say":
                fields["kind"] = cmd.kind
            return ["do", sid, "Say", fields]
    try:
        if type(op) is Do:
            codec = _DO_ENCODE.get(type(op.cmd))
            if codec is None:
                raise ValueError(
                    f"{type(op.cmd).__name__} is not a command the log carries in a do"
                )
            name, encode = codec
            form: list[object] = ["do", op.sid, name, encode(op.cmd)]
        elif type(op) is Call:
            codecs = _CALL_CODECS.get(op.method)
            if codecs is None:
                raise ValueError(f"{op.method!r} is not a call the log carries")
            encs = codecs[1]
            if len(op.args) != len(encs):
                raise ValueError(f"{op.method} takes {len(encs)} arguments, got {len(op.args)}")
            args = [a if e is None else e(a) for e, a in zip(encs, op.args, strict=True)]
            form = ["call", op.method, args]
        else:
            raise ValueError(f"not an op: {type(op).__name__}")
        _decode_op(form)
    except BadEntry as err:
        raise ValueError(f"can't go on the bus: {err}") from None
    except (AttributeError, TypeError) as err:  # a wrong type where a dataclass or tuple goes
        raise ValueError(f"can't go on the bus: {err}") from None
    return form


_DUMP: Final = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=False, check_circular=False
).encode


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("a lone surrogate can't go on the bus") from None


def check_op(op: Op) -> None:
    """Raise ValueError if ``encode`` would refuse this op. For a publisher that
    wants to refuse one op when it is made, rather than a whole entry later."""
    _utf8(_DUMP(_op_json(op)))


def encode(entry: Entry) -> bytes:
    """Compact JSON in UTF-8. ValueError (at the origin, where the bug is) for
    an entry that ``decode`` would refuse: a method not in CALLS, a command not
    carried, a wrong type, a bound passed."""
    node, seq, ops = entry.node, entry.seq, entry.ops
    if type(node) is not int or not 0 < node < MAX_NODE:
        raise ValueError(f"node must be an int in 1..{MAX_NODE - 1}, got {node!r}")
    if type(seq) is not int or not 1 <= seq <= _INT_MAX:
        raise ValueError(f"seq must be a 64-bit int from 1, got {seq!r}")
    if len(ops) > MAX_OPS:
        raise ValueError(f"more than {MAX_OPS} ops in one entry")
    forms = []
    for i, op in enumerate(ops):
        try:
            forms.append(_op_json(op))
        except ValueError as err:
            raise ValueError(f"op {i}: {err}") from None
    data = _utf8(_DUMP({"v": BUS_SCHEMA, "node": node, "seq": seq, "ops": forms}))
    if len(data) > MAX_ENTRY:
        raise ValueError(f"entry of {len(data)} bytes, over {MAX_ENTRY}")
    return data


def _no_constant(name: str) -> NoReturn:
    _bad(f"{name} is not a number here")


def _parse_int(digits: str) -> int:
    # A long run of digits would be slow to convert, whatever sys's digit limit is.
    if len(digits) > 20:
        _bad("an integer over 64 bits")
    return int(digits)


_LOAD: Final = json.JSONDecoder(parse_constant=_no_constant, parse_int=_parse_int).decode

#: A \\u escape of a surrogate: json.loads lets a lone one through.
_SURROGATE_ESCAPE: Final = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def _check_no_lone_surrogates(value: object) -> None:
    """A string no UTF-8 encoder takes would fail later, elsewhere."""
    stack = [value]
    while stack:
        v = stack.pop()
        if type(v) is str:
            if _SURROGATE.search(v):
                _bad("a lone surrogate in a string")
        elif type(v) is list:
            stack.extend(v)
        elif type(v) is dict:
            stack.extend(v)  # the keys
            stack.extend(v.values())


_TOP: Final = frozenset(("v", "node", "seq", "ops"))


def decode(data: bytes | str) -> Entry:
    """The entry these bytes hold, every field of exactly its declared type;
    BadEntry (with a short reason) for anything else, never another exception."""
    if isinstance(data, str):
        if len(data) > MAX_ENTRY:
            _bad(f"over {MAX_ENTRY} bytes")
        try:
            size = len(data.encode("utf-8"))
        except UnicodeEncodeError:
            _bad("a lone surrogate in the text")
        if size > MAX_ENTRY:
            _bad(f"over {MAX_ENTRY} bytes")
        text = data
    else:
        try:
            if len(data) > MAX_ENTRY:
                _bad(f"over {MAX_ENTRY} bytes")
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            _bad("not UTF-8")
        except (AttributeError, TypeError):
            _bad(f"expected bytes or str, got {type(data).__name__}")
    try:
        obj = _LOAD(text)
    except BadEntry:
        raise
    except json.JSONDecodeError as err:
        _bad(f"not JSON: {err.msg} at {err.pos}")
    except RecursionError:
        _bad("nested too deeply")
    except ValueError:
        _bad("not JSON")
    if "\\u" in text and _SURROGATE_ESCAPE.search(text):
        _check_no_lone_surrogates(obj)

    if type(obj) is not dict:
        _bad(f"expected an object, got {_kind(obj)}")
    v = obj.get("v")
    if type(v) is not int:
        _bad("missing or bad v (the bus schema)")
    if v != BUS_SCHEMA:
        if v > BUS_SCHEMA:
            _bad(f"entry from a newer bus schema (v{v}); this node speaks v{BUS_SCHEMA}")
        _bad(f"unknown bus schema v{v}")
    if obj.keys() != _TOP:
        extra = sorted(obj.keys() - _TOP)
        _bad(f"unknown key {_show(extra[0])}" if extra else f"missing {min(_TOP - obj.keys())}")
    node, seq, ops = obj["node"], obj["seq"], obj["ops"]
    if type(node) is not int or not 0 < node < MAX_NODE:
        _bad(f"node must be an integer in 1..{MAX_NODE - 1}")
    if type(seq) is not int or not 1 <= seq <= _INT_MAX:
        _bad("seq must be a 64-bit integer from 1")
    if type(ops) is not list:
        _bad(f"ops must be an array, got {_kind(ops)}")
    if len(ops) > MAX_OPS:
        _bad(f"more than {MAX_OPS} ops")
    decoded = []
    for i, op in enumerate(ops):
        try:
            decoded.append(_decode_op(op))
        except BadEntry as err:
            raise BadEntry(f"op {i}: {err}") from None
    return Entry(node, seq, tuple(decoded))

"""The operation log's codec: every op the hub takes survives the trip, and
``decode`` answers anything else a peer may send with BadEntry, never with
another exception and never with a value of the wrong type."""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import types
import typing
from collections.abc import Iterator
from typing import Any, Literal, get_args, get_origin, get_type_hints

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from salas.core import commands as c
from salas.core.hub import Hub
from salas.core.oplog import (
    BUS_SCHEMA,
    CALLS,
    COMMANDS,
    DO_COMMANDS,
    MAX_ENTRY,
    MAX_NODE,
    MAX_OPS,
    MAX_STR,
    BadEntry,
    Call,
    Do,
    Entry,
    Op,
    check_op,
    decode,
    encode,
)

INT64 = (-(2**63), 2**63 - 1)
SECRET = "hunter2-s3cret"

# -- values of a type hint, and whether a value has exactly that type -----------


def strategy(hint: Any) -> st.SearchStrategy[Any]:
    """Any value of the hint that the log must carry: small and extreme ints,
    any finite float, any text (Hypothesis leaves out lone surrogates)."""
    if hint is str:
        return st.text(max_size=12)
    if hint is int:
        return st.integers(-3, 100) | st.integers(*INT64)
    if hint is bool:
        return st.booleans()
    if hint is float:
        return st.floats(allow_nan=False, allow_infinity=False)
    origin, args = get_origin(hint), get_args(hint)
    if origin is Literal:
        return st.sampled_from(args)
    if origin is typing.Union or origin is types.UnionType:
        (inner,) = [a for a in args if a is not type(None)]
        return st.none() | strategy(inner)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return st.lists(strategy(args[0]), max_size=3).map(tuple)
        return st.tuples(*(strategy(a) for a in args))
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        hints = get_type_hints(hint)
        fields = {f.name: strategy(hints[f.name]) for f in dataclasses.fields(hint)}
        return st.builds(hint, **fields)
    raise AssertionError(f"no strategy for {hint!r}")


def conforms(value: Any, hint: Any) -> bool:
    """``value`` has exactly the type ``hint`` declares (a bool is no int here)."""
    if hint is int:
        return type(value) is int and INT64[0] <= value <= INT64[1]
    if hint is float:
        return type(value) is float and math.isfinite(value)
    if hint in (str, bool):
        return type(value) is hint
    origin, args = get_origin(hint), get_args(hint)
    if origin is Literal:
        return any(type(value) is type(a) and value == a for a in args)
    if origin is typing.Union or origin is types.UnionType:
        return any(value is None if a is type(None) else conforms(value, a) for a in args)
    if origin is tuple:
        if type(value) is not tuple:
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(conforms(x, args[0]) for x in value)
        return len(value) == len(args) and all(map(conforms, value, args))
    if dataclasses.is_dataclass(hint):
        hints = get_type_hints(hint)
        return type(value) is hint and all(
            conforms(getattr(value, f.name), hints[f.name]) for f in dataclasses.fields(hint)
        )
    raise AssertionError(f"no check for {hint!r}")


def entry_conforms(entry: Entry) -> bool:
    if type(entry) is not Entry or type(entry.ops) is not tuple:
        return False
    if not (type(entry.node) is int and 0 < entry.node < MAX_NODE):
        return False
    if not (type(entry.seq) is int and 1 <= entry.seq <= INT64[1]):
        return False
    for op in entry.ops:
        if type(op) is Do:
            name = type(op.cmd).__name__
            if not (
                conforms(op.sid, int) and name in DO_COMMANDS and conforms(op.cmd, type(op.cmd))
            ):
                return False
        elif type(op) is Call:
            hints = CALLS.get(op.method)
            if hints is None or type(op.args) is not tuple or len(op.args) != len(hints):
                return False
            if not all(map(conforms, op.args, hints)):
                return False
        else:
            return False
    return True


def decodes_or_refuses(data: bytes | str) -> None:
    """The property: a valid entry of exact types, or BadEntry; nothing else escapes."""
    try:
        entry = decode(data)
    except BadEntry as err:
        assert str(err)
        assert len(str(err)) < 300  # short: a reason, not the peer's bytes back
        return
    assert entry_conforms(entry), entry


def blank(value: Any) -> Any:
    """What the far side gets: secret fields (``repr=False``) as ""."""
    if not dataclasses.is_dataclass(value) or isinstance(value, type):
        return value
    secrets = {f.name: "" for f in dataclasses.fields(value) if not f.repr}
    return dataclasses.replace(value, **secrets) if secrets else value


SIDS = st.integers(*INT64)
NODES = st.integers(1, MAX_NODE - 1)
SEQS = st.integers(1, INT64[1])
DO_OPS = st.one_of(*(st.builds(Do, SIDS, strategy(COMMANDS[name])) for name in sorted(DO_COMMANDS)))
CALL_OPS = st.one_of(
    *(
        st.builds(Call, st.just(method), st.tuples(*(strategy(h) for h in hints)))
        for method, hints in CALLS.items()
    )
)
OPS: st.SearchStrategy[Op] = DO_OPS | CALL_OPS
ENTRIES = st.builds(Entry, NODES, SEQS, st.lists(OPS, max_size=4).map(tuple))


def received(entry: Entry) -> Entry:
    ops: list[Op] = [
        Call(op.method, tuple(blank(a) for a in op.args)) if isinstance(op, Call) else op
        for op in entry.ops
    ]
    return dataclasses.replace(entry, ops=tuple(ops))


# -- the tables ----------------------------------------------------------------


def test_do_commands_are_exactly_what_the_hub_handles() -> None:
    """A command the hub learns must be added to the log on purpose, not forgotten."""
    carried = {COMMANDS[name] for name in DO_COMMANDS}
    assert carried == set(Hub()._handlers) | {c.Register, c.Quit}
    assert set(COMMANDS) - DO_COMMANDS == {"LogIn", "RegisterAccount", "ChangePassword"}
    for name, cls in COMMANDS.items():
        assert cls.__name__ == name and getattr(c, name) is cls


def test_every_command_is_carried_or_knowingly_left_out() -> None:
    # OperUp never reaches the hub: the server checks the password and sends BecomeOper.
    assert set(get_args(c.Command)) - set(COMMANDS.values()) == {c.OperUp}


def test_calls_match_the_hubs_methods() -> None:
    """Each call's arity fits its hub method's parameters (``now`` aside)."""
    not_on_hub = {m for m in CALLS if not hasattr(Hub, m)}
    assert not_on_hub == {"node_gone", "snapshot_wanted", "shutdown_node"}
    for method, hints in CALLS.items():
        if method in not_on_hub:
            continue
        params = [
            p
            for p in inspect.signature(getattr(Hub, method)).parameters.values()
            if p.name not in ("self", "now")
        ]
        required = [p for p in params if p.default is inspect.Parameter.empty]
        assert len(required) <= len(hints) <= len(params), method


def test_calls_match_the_operations_table() -> None:
    operations = pytest.importorskip("salas.core.operations")
    for method, apply in operations.APPLY.items():
        arity = len(inspect.signature(apply).parameters) - 2  # hub, now
        assert len(CALLS[method]) == arity, method


def test_secret_fields_are_marked() -> None:
    """The secrets rule goes by ``repr=False``: every password-like field has it."""
    for name in dir(c):
        cls = getattr(c, name)
        if isinstance(cls, type) and dataclasses.is_dataclass(cls):
            for f in dataclasses.fields(cls):
                if f.name in ("password", "old", "new"):
                    assert not f.repr, f"{name}.{f.name}"


# -- round trips ---------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(DO_COMMANDS))
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_every_command_round_trips(name: str, data: st.DataObject) -> None:
    cmd = data.draw(strategy(COMMANDS[name]))
    entry = Entry(data.draw(NODES), data.draw(SEQS), (Do(data.draw(SIDS), cmd),))
    back = decode(encode(entry))
    assert back == entry
    assert entry_conforms(back)


@pytest.mark.parametrize("method", sorted(CALLS))
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_every_call_round_trips(method: str, data: st.DataObject) -> None:
    args = data.draw(st.tuples(*(strategy(h) for h in CALLS[method])))
    entry = Entry(1, 1, (Call(method, args),))
    back = decode(encode(entry))
    assert back == received(entry)
    assert entry_conforms(back)


@settings(max_examples=150, deadline=None)
@given(ENTRIES)
def test_entries_round_trip(entry: Entry) -> None:
    data = encode(entry)
    assert decode(data) == received(entry)
    assert decode(data.decode()) == received(entry)


def test_encoding_is_compact_and_leaves_out_defaults() -> None:
    entry = Entry(1, 2, (Do(5, c.Say("#a", "hi")), Do(6, c.Say(None, "olá", "action"))))
    assert (
        encode(entry)
        == (
            '{"v":1,"node":1,"seq":2,"ops":[["do",5,"Say",{"room":"#a","text":"hi"}],'
            '["do",6,"Say",{"room":null,"text":"olá","kind":"action"}]]}'
        ).encode()
    )
    assert decode(encode(entry)) == entry


def test_missing_fields_take_their_defaults() -> None:
    data = '{"v":1,"node":1,"seq":1,"ops":[["do",1,"FetchHistory",{"target":null}]]}'
    assert decode(data).ops == (Do(1, c.FetchHistory(None)),)


def test_a_float_field_takes_a_json_integer_as_a_float() -> None:
    data = '{"v":1,"node":1,"seq":1,"ops":[["do",1,"FetchTargets",{"since":1,"until":2.5}]]}'
    (op,) = decode(data).ops
    assert isinstance(op, Do) and isinstance(op.cmd, c.FetchTargets)
    assert type(op.cmd.since) is float and op.cmd.since == 1.0


def test_nested_dataclasses_are_objects() -> None:
    changes = (c.ModeChange(True, "k", "s"), c.ModeChange(False, "i"))
    history = c.FetchHistory("#a", mode="between", start=c.Bound(id=3), end=c.Bound(time=9.5))
    entry = Entry(
        1,
        1,
        (
            Do(1, c.SetModes("#a", changes)),
            Do(1, history),
            Call("set_room", ("#a", "op", changes, None)),
        ),
    )
    data = encode(entry)
    assert b'{"add":true,"mode":"k","arg":"s"}' in data
    assert b'"start":{"id":3}' in data
    assert decode(data) == entry


# -- secrets -------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        Call("log_in", (1, "ann", "login", c.LogIn("ann", SECRET))),
        Call("log_in", (1, "ann", "sasl", c.LogIn(None, SECRET, "sasl"))),
        Call("register_account", (1, "$argon2id$hash", c.RegisterAccount(SECRET))),
        Call("set_password", (1, "$argon2id$hash", c.ChangePassword(SECRET, SECRET + "new"))),
    ],
)
def test_passwords_never_go_on_the_bus(call: Call) -> None:
    data = encode(Entry(1, 1, (call,)))
    assert SECRET.encode() not in data
    (back,) = decode(data).ops
    assert back == Call(call.method, tuple(blank(a) for a in call.args))


@pytest.mark.parametrize(
    "cmd", [c.OperUp("ann", SECRET), c.LogIn("ann", SECRET), c.ChangePassword(SECRET, SECRET)]
)
def test_commands_with_passwords_are_no_do(cmd: c.Command) -> None:
    with pytest.raises(ValueError, match="not a command the log carries"):
        encode(Entry(1, 1, (Do(1, cmd),)))


# -- what decode refuses ---------------------------------------------------------

GOOD = {"v": 1, "node": 1, "seq": 1, "ops": [["do", 5, "Say", {"room": "#a", "text": "hi"}]]}


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def with_op(*ops: Any) -> str:
    return compact({**GOOD, "ops": list(ops)})


def without(key: str) -> str:
    return compact({k: v for k, v in GOOD.items() if k != key})


def with_key(key: str, value: Any) -> str:
    return compact({**GOOD, key: value})


REFUSED = {
    "empty": "",
    "not json": "{'v': 1}",
    "trailing garbage": json.dumps(GOOD) + "x",
    "an array": "[1]",
    "null": "null",
    "no v": without("v"),
    "v as a string": with_key("v", "1"),
    "v as true": with_key("v", True),
    "v as a float": with_key("v", 1.0),
    "v 0": with_key("v", 0),
    "no node": without("node"),
    "no seq": without("seq"),
    "no ops": without("ops"),
    "an extra key": with_key("x", 1),
    "node 0": with_key("node", 0),
    "node too big": with_key("node", MAX_NODE),
    "node as true": with_key("node", True),
    "seq 0": with_key("seq", 0),
    "seq over 64 bits": with_key("seq", 2**63),
    "ops an object": with_key("ops", {}),
    "an op not an array": with_op("do"),
    "an empty op": with_op([]),
    "an unknown op": with_op(["undo", 5, "Say", {"text": "hi"}]),
    "a short do": with_op(["do", 5, "Say"]),
    "sid as true": with_op(["do", True, "Say", {"room": "#a", "text": "hi"}]),
    "sid as a float": with_op(["do", 5.0, "Say", {"room": "#a", "text": "hi"}]),
    "sid over 64 bits": with_op(["do", 2**64, "Say", {"room": "#a", "text": "hi"}]),
    "sid of 5000 digits": with_op(["do", 0, "Say", {"text": "hi"}]).replace(
        '"do",0', '"do",' + "1" * 5000
    ),
    "an unknown command": with_op(["do", 5, "Sing", {"text": "hi"}]),
    "a command name not a string": with_op(["do", 5, ["Say"], {"text": "hi"}]),
    "fields an array": with_op(["do", 5, "Say", ["#a", "hi"]]),
    "an extra field": with_op(["do", 5, "Say", {"room": "#a", "text": "hi", "loud": True}]),
    "a required field missing": with_op(["do", 5, "Say", {"room": "#a"}]),
    "text a number": with_op(["do", 5, "Say", {"room": "#a", "text": 5}]),
    "a bool for an int": with_op(["do", 5, "CallEnd", {"call": True}]),
    "a float for an int": with_op(["do", 5, "CallEnd", {"call": 1.0}]),
    "an int for a bool": with_op(["do", 5, "SetEcho", {"on": 1}]),
    "a literal out of range": with_op(
        ["do", 5, "Say", {"room": "#a", "text": "hi", "kind": "yell"}]
    ),
    "a literal of the wrong type": with_op(["do", 5, "CallStart", {"target": "x", "media": 1}]),
    "a pair of three": with_op(
        ["do", 5, "Tag", {"target": "x", "room": False, "tags": [["a", "b", "c"]]}]
    ),
    "a tuple not an array": with_op(["do", 5, "Lookup", {"names": "ann"}]),
    "a nested object wrong": with_op(
        ["do", 5, "SetModes", {"room": "#a", "changes": [{"add": 1, "mode": "i"}]}]
    ),
    "a nested object not an object": with_op(
        ["do", 5, "FetchHistory", {"target": None, "start": 3}]
    ),
    "NaN": with_op(["do", 5, "FetchTargets", {"since": float("nan"), "until": 1}]),
    "Infinity": with_op(["do", 5, "FetchTargets", {"since": 0, "until": float("inf")}]),
    "1e999": with_op(["do", 5, "FetchTargets", {"since": 0, "until": 1}]).replace(
        '"until":1', '"until":1e999'
    ),
    "an account command in a do": with_op(["do", 5, "LogIn", {"name": None, "password": ""}]),
    "OperUp in a do": with_op(["do", 5, "OperUp", {"name": "x", "password": ""}]),
    "an unknown call": with_op(["call", "drop_tables", []]),
    "a call's method not a string": with_op(["call", {"m": 1}, []]),
    "a call with too few arguments": with_op(["call", "disconnect", [5]]),
    "a call with too many arguments": with_op(["call", "expire_rooms", [1]]),
    "a call's arguments an object": with_op(["call", "disconnect", {"sid": 5}]),
    "a call's argument of the wrong type": with_op(["call", "disconnect", ["5", "bye"]]),
    "a command argument untagged": with_op(
        ["call", "register_account", [1, "h", {"password": ""}]]
    ),
    "a command argument of another class": with_op(
        ["call", "register_account", [1, "h", ["ChangePassword", {"old": "", "new": ""}]]]
    ),
    "a lone surrogate": with_op(["do", 5, "Say", {"room": "#a", "text": "\ud800"}]),
    "a lone surrogate in an unused key": with_key("\udfff", 1),
    "deep nesting": '{"v":1,"node":1,"seq":1,"ops":' + "[" * 100_000 + "]" * 100_000 + "}",
    "a BOM": "\ufeff" + json.dumps(GOOD),
}


@pytest.mark.parametrize("text", REFUSED.values(), ids=REFUSED.keys())
def test_decode_refuses(text: str) -> None:
    with pytest.raises(BadEntry):
        decode(text.encode())
    with pytest.raises(BadEntry):
        decode(text)


def test_the_refusals_are_of_otherwise_good_entries() -> None:
    """The table above tests what it says: the same shapes, made right, decode."""
    assert decode(json.dumps(GOOD)).ops == (Do(5, c.Say("#a", "hi")),)
    assert decode(with_op(["call", "disconnect", [5, "bye"]])).ops == (
        Call("disconnect", (5, "bye")),
    )
    assert decode(with_op(["do", 5, "CallEnd", {"call": 7}])).ops == (Do(5, c.CallEnd(7)),)


def test_a_newer_schema_says_so() -> None:
    newer = {**GOOD, "v": 2, "batch": "a field v1 never had"}
    with pytest.raises(BadEntry) as caught:
        decode(json.dumps(newer))
    assert (
        str(caught.value) == f"entry from a newer bus schema (v2); this node speaks v{BUS_SCHEMA}"
    )


def test_invalid_utf8_is_refused() -> None:
    with pytest.raises(BadEntry, match="UTF-8"):
        decode(json.dumps(GOOD).encode().replace(b"hi", b"h\xff"))


def test_a_surrogate_pair_escape_is_a_character() -> None:
    (op,) = decode(with_op(["do", 5, "Say", {"room": "#a", "text": "😀"}])).ops  # json escapes it
    assert op == Do(5, c.Say("#a", "😀"))


def test_oversize_input_is_refused_before_parsing() -> None:
    with pytest.raises(BadEntry, match="bytes"):
        decode(b" " * (MAX_ENTRY + 1))
    with pytest.raises(BadEntry, match="bytes"):
        decode(" " * (MAX_ENTRY + 1))
    with pytest.raises(BadEntry, match="bytes"):  # fewer characters, more bytes
        decode("é" * (MAX_ENTRY // 2 + 1))


def test_too_many_ops_are_refused() -> None:
    ops = ",".join(['["call","expire_calls",[]]'] * (MAX_OPS + 1))
    with pytest.raises(BadEntry, match="ops"):
        decode('{"v":1,"node":1,"seq":1,"ops":[' + ops + "]}")


def test_strings_are_bounded() -> None:
    def say(text: str) -> str:
        return with_op(["do", 5, "Say", {"room": None, "text": text}])

    assert decode(say("x" * MAX_STR)).ops == (Do(5, c.Say(None, "x" * MAX_STR)),)
    with pytest.raises(BadEntry, match="MiB"):
        decode(say("x" * (MAX_STR + 1)))
    with pytest.raises(BadEntry, match="MiB"):
        decode(say("é" * (MAX_STR // 2 + 1)))


def test_non_bytes_are_refused() -> None:
    with pytest.raises(BadEntry):
        decode(5)  # type: ignore[arg-type]


# -- decode is total: anything at all ----------------------------------------------

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from(["do", "call", "Say", "disconnect", "LogIn", "room", "text"]),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=16,
)
FIELD_NAMES = st.sampled_from(
    sorted({f.name for cls in COMMANDS.values() for f in dataclasses.fields(cls)})
)
SHAPED_OPS = st.one_of(
    st.tuples(
        st.just("do"),
        SIDS | JSON,
        st.sampled_from(sorted(COMMANDS)) | JSON,
        st.dictionaries(FIELD_NAMES, JSON, max_size=5) | JSON,
    ),
    st.tuples(
        st.just("call"), st.sampled_from(sorted(CALLS)) | JSON, st.lists(JSON, max_size=7) | JSON
    ),
    JSON,
).map(lambda op: list(op) if isinstance(op, tuple) else op)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_decode_is_total_on_bytes(data: bytes) -> None:
    decodes_or_refuses(data)


@settings(max_examples=200, deadline=None)
@given(JSON)
def test_decode_is_total_on_json(value: Any) -> None:
    decodes_or_refuses(json.dumps(value))


@settings(max_examples=150, deadline=None)
@given(
    st.fixed_dictionaries(
        {
            "v": st.just(1),
            "node": NODES,
            "seq": SEQS,
            "ops": st.lists(SHAPED_OPS, min_size=1, max_size=3),
        }
    )
)
def test_decode_is_total_on_entry_shaped_json(value: Any) -> None:
    decodes_or_refuses(json.dumps(value))


NASTY: st.SearchStrategy[Any] = st.sampled_from(
    [
        True,
        False,
        None,
        0,
        -1,
        1.5,
        2**63,
        -(2**63) - 1,
        2**64,
        "",
        "Sing",
        [],
        {},
        float("nan"),
        float("inf"),
    ]
)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, list):
        for i, x in enumerate(value):
            yield from paths(x, (*prefix, i))
    elif isinstance(value, dict):
        for k, x in value.items():
            yield from paths(x, (*prefix, k))


def mutate(ops: list[Any], data: st.DataObject) -> None:
    """Replace, drop or add one value somewhere in ``ops``, in place (the
    entry's own keys have their table above)."""
    inside = list(paths(ops))[1:]
    if not inside:
        return
    path = data.draw(st.sampled_from(inside))
    how = data.draw(st.sampled_from(["replace", "drop", "add"]))
    new = data.draw(NASTY | JSON)
    parent: Any = ops
    for step in path[:-1]:
        parent = parent[step]
    if how == "replace":
        parent[path[-1]] = new
    elif how == "drop":
        del parent[path[-1]]
    elif isinstance(target := parent[path[-1]], dict):
        target[data.draw(FIELD_NAMES | st.text(max_size=4))] = new
    elif isinstance(target, list):
        target.insert(data.draw(st.integers(0, len(target))), new)


@settings(max_examples=250, deadline=None)
@given(
    entry=st.builds(Entry, NODES, SEQS, st.lists(OPS, min_size=1, max_size=3).map(tuple)),
    data=st.data(),
)
def test_decode_is_total_on_mutated_entries(entry: Entry, data: st.DataObject) -> None:
    """Drop a field, change a type, add a field...: anywhere in a real entry's ops."""
    raw = json.loads(encode(entry))
    for _ in range(data.draw(st.integers(1, 3))):
        mutate(raw["ops"], data)
    decodes_or_refuses(json.dumps(raw))


# -- what encode refuses at the origin ----------------------------------------------

REFUSED_AT_ORIGIN = {
    "an unknown method": Call("drop_tables", ()),
    "too few arguments": Call("disconnect", (5,)),
    "an argument of the wrong type": Call("disconnect", ("5", "bye")),
    "a bool for an int": Call("disconnect", (True, "bye")),
    "a command argument of another class": Call("log_in", (1, "k", "login", c.RegisterAccount(""))),
    "a nested argument of the wrong type": Call("set_room", ("#a", "op", ("i",), None)),
    "a nested argument not a tuple": Call("set_room", ("#a", "op", 5, None)),
    "an int over 64 bits": Do(5, c.FetchHistory(None, limit=2**64)),
    "NaN": Do(5, c.FetchTargets(math.nan, 1.0)),
    "a string over 1 MiB": Do(5, c.Say(None, "x" * (MAX_STR + 1))),
    "a lone surrogate": Do(5, c.Say(None, "\ud800")),
    "a literal out of range": Do(5, c.Say(None, "hi", "yell")),  # type: ignore[arg-type]
    "not an op": c.Say(None, "hi"),
}


@pytest.mark.parametrize("op", REFUSED_AT_ORIGIN.values(), ids=REFUSED_AT_ORIGIN.keys())
def test_encode_refuses(op: Op) -> None:
    with pytest.raises(ValueError) as caught:
        encode(Entry(1, 1, (op,)))
    assert not isinstance(caught.value, BadEntry)
    with pytest.raises(ValueError):
        check_op(op)


@pytest.mark.parametrize("node, seq", [(0, 1), (MAX_NODE, 1), (1, 0), (1, 2**63), (True, 1)])
def test_encode_refuses_bad_numbers(node: int, seq: int) -> None:
    with pytest.raises(ValueError):
        encode(Entry(node, seq, ()))


def test_encode_refuses_an_entry_over_the_bound() -> None:
    """Every node would refuse it: better the publisher learns it."""
    big = Do(5, c.Say(None, "x" * MAX_STR))
    check_op(big)
    with pytest.raises(ValueError, match="over"):
        encode(Entry(1, 1, (big,) * (MAX_ENTRY // MAX_STR)))


@pytest.mark.parametrize("kind", [[], {}, 1, None, True, "shout"])
def test_a_say_of_an_unhashable_or_unknown_kind_is_a_bad_entry(kind: object) -> None:
    data = json.dumps(
        {
            "v": 1,
            "node": 1,
            "seq": 1,
            "ops": [["do", 5, "Say", {"room": "#a", "text": "hi", "kind": kind}]],
        }
    )
    with pytest.raises(BadEntry):
        decode(data)

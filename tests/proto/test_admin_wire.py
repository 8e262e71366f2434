"""The admin socket's JSON-lines protocol: ``decode_request`` is total (anything at all
is a Request or a RequestError, never another exception) and checks each command's
arguments; what the console encodes, the server accepts."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from salas.proto import admin as wire

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
ARG_NAMES = sorted({name for spec in wire.COMMANDS.values() for name in spec} | {"x"})


def decodes_or_refuses(line: bytes) -> wire.Request | None:
    try:
        request = wire.decode_request(line)
    except wire.RequestError as err:
        assert str(err), line
        return None
    assert request.cmd in wire.COMMANDS
    assert isinstance(request.args, dict)
    return request


@given(st.binary(max_size=300))
def test_any_bytes_are_a_request_or_a_request_error(line: bytes) -> None:
    decodes_or_refuses(line)


@given(st.text(max_size=200))
def test_any_text_is_a_request_or_a_request_error(text: str) -> None:
    decodes_or_refuses(text.encode("utf-8", "surrogatepass"))


@settings(max_examples=300)
@given(
    st.sampled_from(sorted(wire.COMMANDS)) | st.text(max_size=12) | JSON,
    st.dictionaries(st.sampled_from(ARG_NAMES), JSON, max_size=5) | JSON,
    st.booleans(),
)
def test_requests_near_the_real_ones(cmd: Any, args: Any, with_args: bool) -> None:
    obj: dict[str, Any] = {"cmd": cmd}
    if with_args:
        obj["args"] = args
    request = decodes_or_refuses(json.dumps(obj).encode())
    if request is None:
        return
    spec = wire.COMMANDS[request.cmd]
    assert set(request.args) <= set(spec)
    for name, arg in spec.items():
        assert name in request.args or not arg.required
    for name, value in request.args.items():
        if value is None:
            assert spec[name].nullable
        else:
            assert isinstance(value, spec[name].kind)
            assert not (spec[name].kind is int and isinstance(value, bool))


ACCEPTED = [
    ({"cmd": "rooms.list"}, wire.Request("rooms.list", {})),
    ({"cmd": "rooms.list", "args": {}}, wire.Request("rooms.list", {})),
    (
        {"cmd": "rooms.create", "args": {"room": "Teste", "limit": 2, "topic": "T"}},
        wire.Request("rooms.create", {"room": "Teste", "limit": 2, "topic": "T"}),
    ),
    (
        {"cmd": "rooms.set", "args": {"room": "Teste", "limit": None, "key": None}},
        wire.Request("rooms.set", {"room": "Teste", "limit": None, "key": None}),
    ),
    (
        {"cmd": "rooms.set", "args": {"room": "Teste", "private": True, "key": "k"}},
        wire.Request("rooms.set", {"room": "Teste", "private": True, "key": "k"}),
    ),
    (
        {"cmd": "users.kick", "args": {"name": "ana", "reason": ""}},
        wire.Request("users.kick", {"name": "ana", "reason": ""}),
    ),
    ({"cmd": "broadcast", "args": {"text": "olá"}}, wire.Request("broadcast", {"text": "olá"})),
    (
        {"cmd": "logs", "args": {"lines": 20, "follow": True}},
        wire.Request("logs", {"lines": 20, "follow": True}),
    ),
    (
        {"cmd": "accounts.create", "args": {"name": "bob", "password": "pw", "oper": True}},
        wire.Request("accounts.create", {"name": "bob", "password": "pw", "oper": True}),
    ),
    ({"cmd": "shutdown", "args": {"reason": "m"}}, wire.Request("shutdown", {"reason": "m"})),
    ({"cmd": "shutdown"}, wire.Request("shutdown", {})),
    # IRC's spelling of a room names it as well.
    ({"cmd": "rooms.who", "args": {"room": "#tas"}}, wire.Request("rooms.who", {"room": "tas"})),
]


@pytest.mark.parametrize(("obj", "request_"), ACCEPTED)
def test_accepted(obj: dict[str, Any], request_: wire.Request) -> None:
    assert wire.decode_request(json.dumps(obj).encode() + b"\n") == request_
    assert wire.decode_request(json.dumps(obj).encode() + b"\r\n") == request_


REFUSED = [
    (b"", "not a JSON object"),
    (b"garbage", "not a JSON object"),
    (b"\xff\xfe", "not a JSON object"),
    (b"[]", "not a JSON object"),
    (b"null", "not a JSON object"),
    (b"12", "not a JSON object"),
    (b'"rooms.list"', "not a JSON object"),
    (b'{"cmd": "rooms.list"', "not a JSON object"),
    (b"[" * 50_000, "not a JSON object"),
    (b'{"cmd": "rooms.list", "args": {"x": ' + b"9" * 5000 + b"}}", "not a JSON object"),
    (b"{}", "no command"),
    (b'{"cmd": null}', "no command"),
    (b'{"cmd": ["rooms.list"]}', "no command"),
    (b'{"cmd": "ROOMS.LIST"}', "unknown command 'ROOMS.LIST'"),
    (b'{"cmd": "rooms"}', "unknown command 'rooms'"),
    (b'{"cmd": "rooms.list", "args": []}', "args must be an object"),
    (b'{"cmd": "rooms.list", "args": null}', "args must be an object"),
    (b'{"cmd": "rooms.list", "args": {"room": "x"}}', "rooms.list takes no argument 'room'"),
    (b'{"cmd": "rooms.who"}', "rooms.who needs 'room'"),
    (b'{"cmd": "rooms.who", "args": {"room": null}}', "rooms.who: 'room' has the wrong type"),
    (b'{"cmd": "rooms.who", "args": {"room": 5}}', "rooms.who: 'room' has the wrong type"),
    (
        b'{"cmd": "rooms.create", "args": {"room": "a", "limit": true}}',
        "rooms.create: 'limit' has the wrong type",
    ),
    (
        b'{"cmd": "rooms.create", "args": {"room": "a", "limit": 2.0}}',
        "rooms.create: 'limit' has the wrong type",
    ),
    (
        b'{"cmd": "rooms.create", "args": {"room": "a", "limit": null}}',
        "rooms.create: 'limit' has the wrong type",
    ),
    (
        b'{"cmd": "rooms.set", "args": {"room": "a", "private": null}}',
        "rooms.set: 'private' has the wrong type",
    ),
    (
        b'{"cmd": "rooms.set", "args": {"room": "a", "private": 1}}',
        "rooms.set: 'private' has the wrong type",
    ),
    (b'{"cmd": "broadcast", "args": {}}', "broadcast needs 'text'"),
    (b'{"cmd": "logs", "args": {"lines": "20"}}', "logs: 'lines' has the wrong type"),
    (
        b'{"cmd": "accounts.create", "args": {"name": "bob"}}',
        "accounts.create needs 'password'",
    ),
]


@pytest.mark.parametrize(("line", "error"), REFUSED)
def test_refused(line: bytes, error: str) -> None:
    with pytest.raises(wire.RequestError) as info:
        wire.decode_request(line)
    assert str(info.value) == error


def test_a_request_over_the_limit_is_refused_before_it_is_read() -> None:
    text = "x" * wire.MAX_REQUEST
    line = wire.encode_request("broadcast", text=text)
    assert len(line) > wire.MAX_REQUEST
    with pytest.raises(wire.RequestError, match="request longer than 65536 bytes"):
        wire.decode_request(line)
    fits = wire.encode_request("broadcast", text="x" * (wire.MAX_REQUEST - 100))
    assert len(fits) <= wire.MAX_REQUEST
    assert wire.decode_request(fits).args["text"] == "x" * (wire.MAX_REQUEST - 100)


def test_what_the_console_sends_the_server_reads() -> None:
    line = wire.encode_request("rooms.create", room="Sala", limit=5, topic="olá\nmundo")
    assert line.endswith(b"\n") and line.count(b"\n") == 1  # one request, one line
    assert wire.decode_request(line) == wire.Request(
        "rooms.create", {"room": "Sala", "limit": 5, "topic": "olá\nmundo"}
    )


def test_answers() -> None:
    assert wire.decode_reply(wire.ok([1, "a"])) == {"ok": True, "result": [1, "a"]}
    assert wire.decode_reply(wire.ok()) == {"ok": True, "result": None}
    assert wire.decode_reply(wire.refused("no")) == {"ok": False, "error": "no"}
    for line in (wire.ok("a\nb"), wire.refused("x\ny"), wire.encode({"log": "l\nm"})):
        assert line.count(b"\n") == 1
    with pytest.raises(ValueError):
        wire.decode_reply(b"[1]")
    with pytest.raises(ValueError):
        wire.decode_reply(b"nonsense")


def test_the_console_shows_no_terminal_escapes_from_topics() -> None:
    from salas.console.commands import room_line, users_table

    row = {"name": "xy", "count": 1, "limit": None, "topic": "\x1b[2J\x1b]0;owned\x07hello"}
    assert "\x1b" not in room_line(row) and "hello" in room_line(row)
    user = {
        "name": "ann",
        "door": "irc",
        "address": "127.0.0.1:5",
        "rooms": ["xy"],
        "idle": 3,
        "account": None,
        "oper": False,
    }
    assert "\x1b" not in users_table([user])

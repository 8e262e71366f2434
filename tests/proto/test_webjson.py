"""The web client's JSON codec (proto/webjson.py), without a server: requests in,
hub commands out; hub events in, JSON messages out. docs/protocols/web.md is
the contract these cases check."""

from __future__ import annotations

import inspect
import json
from dataclasses import fields
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from salas.core import commands as c
from salas.core import errors as e
from salas.core.events import (
    AccountChanged,
    AccountRegistered,
    AwayChanged,
    Closing,
    Echoed,
    Event,
    Failed,
    HistoryReply,
    Invited,
    IsAway,
    Joined,
    Left,
    LoggedIn,
    Message,
    ModesChanged,
    NameList,
    OperGranted,
    OperRevoked,
    OverviewReply,
    PasswordChanged,
    Private,
    Renamed,
    RoomList,
    ServerNotice,
    StatsReply,
    TopicChanged,
    TopicIs,
    UserList,
    Welcome,
)
from salas.core.model import Member, RoomInfo, UserInfo, UserRef
from salas.proto.door import Deferred, Input
from salas.proto.webjson import MAX_REQUEST, REQUESTS, WebJson, error_code, error_text, iso

ME = UserRef(1, "ann", "ann", "127.0.0.1")
BOB = UserRef(2, "bob", "bob", "127.0.0.1", account="bob")
T = 1_700_000_000.25  # 2023-11-14T22:13:20.250Z


def msgs(data: bytes) -> list[dict[str, Any]]:
    """The JSON messages in some output (the codec's test framing: one per line)."""
    return [json.loads(line) for line in data.decode().splitlines() if line]


def run(items: list[Input]) -> tuple[list[c.Command], list[dict[str, Any]]]:
    """What the server would do with the inputs, minus the hub: commands out, bytes read."""
    cmds: list[c.Command] = []
    out: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, bytes):
            out += msgs(item)
        elif isinstance(item, Deferred):
            more_cmds, more_out = run(item.resolve())
            cmds += more_cmds
            out += more_out
        elif callable(item):
            out += msgs(item())
        else:
            cmds.append(item)  # type: ignore[arg-type]
    return cmds, out


def registered() -> WebJson:
    codec = WebJson(1, "127.0.0.1", 5000)
    codec.render(Welcome(ME, 1, "salas.local"))
    return codec


def ask(codec: WebJson, request: dict[str, Any] | str | bytes) -> tuple[list[c.Command], list[Any]]:
    raw = (
        request
        if isinstance(request, bytes)
        else (request.encode() if isinstance(request, str) else json.dumps(request).encode())
    )
    return run(codec.receive(raw))


# -- requests -------------------------------------------------------------------------

REQUEST_CASES: list[tuple[dict[str, Any], c.Command]] = [
    ({"type": "join", "room": "tas"}, c.Join("tas")),
    ({"type": "join", "room": "#tas", "key": "k"}, c.Join("tas", "k")),
    ({"type": "create", "room": "r"}, c.Create("r")),
    (
        {"type": "create", "room": "r", "limit": 2, "key": "s", "private": True},
        c.Create("r", 2, "s", True),
    ),
    ({"type": "leave"}, c.Leave(None)),
    ({"type": "leave", "room": "r", "reason": "bye"}, c.Leave("r", "bye")),
    ({"type": "say", "room": "r", "text": "hi"}, c.Say("r", "hi")),
    (
        {"type": "say", "room": "r", "text": "waves", "kind": "action"},
        c.Say("r", "waves", "action"),
    ),
    ({"type": "msg", "to": "bob", "text": "psst"}, c.Tell("bob", "psst")),
    ({"type": "msg", "to": "bob", "text": "n", "kind": "notice"}, c.Tell("bob", "n", "notice")),
    ({"type": "topic", "room": "r"}, c.Topic("r")),
    ({"type": "topic", "room": "r", "text": None}, c.Topic("r")),
    ({"type": "topic", "room": "r", "text": "plans"}, c.Topic("r", "plans")),
    ({"type": "topic", "room": "r", "text": ""}, c.Topic("r", "")),
    ({"type": "list"}, c.ListRooms()),
    ({"type": "who"}, c.ListUsers(everyone=True)),
    ({"type": "who", "room": "r"}, c.ListUsers("r")),
    ({"type": "history", "room": "r"}, c.FetchHistory("r", True, 50)),
    ({"type": "history", "with": "bob", "limit": 5}, c.FetchHistory("bob", False, 5)),
    (
        {"type": "history", "room": "r", "before": 42, "limit": 10},
        c.FetchHistory("r", True, 10, "before", c.Bound(id=42)),
    ),
    ({"type": "register", "password": "pw12"}, c.RegisterAccount("pw12")),
    ({"type": "login", "password": "pw12"}, c.LogIn(None, "pw12")),
    ({"type": "login", "name": "ann", "password": "pw12"}, c.LogIn("ann", "pw12")),
    ({"type": "password", "old": "a1b2", "new": "c3d4"}, c.ChangePassword("a1b2", "c3d4")),
    ({"type": "nick", "name": "anna"}, c.Rename("anna")),
    ({"type": "away", "text": "lunch"}, c.SetAway("lunch")),
    ({"type": "away"}, c.SetAway(None)),
    ({"type": "invite", "name": "bob", "room": "r"}, c.Invite("bob", "r")),
    ({"type": "kick", "room": "r", "name": "bob", "reason": "x"}, c.Kick("r", "bob", "x")),
    ({"type": "echo", "text": "ping?"}, c.Echo("ping?")),
    ({"type": "oper", "name": "op", "password": "pw"}, c.OperUp("op", "pw")),
    ({"type": "quit", "reason": "bye"}, c.Quit("bye")),
    ({"type": "close", "room": "#r"}, c.CloseRoom("r")),
    ({"type": "close", "room": "r", "reason": "done"}, c.CloseRoom("r", "done")),
    ({"type": "kill", "name": "bob"}, c.Kill("bob")),
    ({"type": "kill", "name": "bob", "reason": "spam"}, c.Kill("bob", "spam")),
    ({"type": "broadcast", "text": "restart at 5"}, c.Broadcast("restart at 5")),
    ({"type": "shutdown"}, c.Shutdown()),
    ({"type": "shutdown", "reason": "upgrade"}, c.Shutdown("upgrade")),
    ({"type": "overview"}, c.Overview()),
]


@pytest.mark.parametrize(("request_", "command"), REQUEST_CASES)
def test_each_request_is_its_command(request_: dict[str, Any], command: c.Command) -> None:
    cmds, out = ask(registered(), request_)
    assert cmds == [command]
    assert out == []


def test_every_request_type_is_covered() -> None:
    covered = {r["type"] for r, _ in REQUEST_CASES} | {"hello", "ping"}
    calls = {"call", "call_answer", "call_signal", "call_end"}  # test_webjson_calls.py
    assert covered | calls == set(REQUESTS)


def test_hello_registers_a_web_user_with_echo_and_the_lobby() -> None:
    codec = WebJson(7, "10.0.0.1", 4242)
    cmds, out = ask(codec, {"type": "hello"})
    assert cmds == [c.Register(None, "web", "10.0.0.1", 4242, echo=True, lobby=True)]
    assert out == []
    cmds, _ = ask(codec, {"type": "hello", "name": "ann", "lobby": False})
    assert cmds == [c.Register("ann", "web", "10.0.0.1", 4242, echo=True, lobby=False)]
    cmds, _ = ask(codec, {"type": "hello", "name": ""})  # empty: a guest name
    assert cmds == [c.Register(None, "web", "10.0.0.1", 4242, echo=True, lobby=True)]


def test_nothing_but_hello_and_ping_before_the_welcome() -> None:
    codec = WebJson(1, "h", 1)
    cmds, out = ask(codec, {"type": "join", "room": "r", "id": 3})
    assert cmds == []
    assert out == [
        {
            "type": "error",
            "code": "not_registered",
            "text": 'Say hello first: {"type": "hello"}',
            "re": 3,
        }
    ]
    assert ask(codec, {"type": "ping", "data": "x", "id": "p"}) == (
        [],
        [{"type": "pong", "data": "x", "re": "p"}],
    )
    codec.render(Welcome(ME, 1, "s"))
    cmds, out = ask(codec, {"type": "hello", "id": 4})
    assert cmds == []
    assert out[0]["code"] == "already_registered"
    assert out[0]["re"] == 4


def test_a_request_is_read_when_its_turn_comes() -> None:
    """A join sent in the same frame batch as hello runs after hello's welcome."""
    codec = WebJson(1, "h", 1)
    hello = codec.receive(b'{"type":"hello"}')
    join = codec.receive(b'{"type":"join","room":"r"}')
    assert all(isinstance(x, Deferred) for x in hello + join)
    run(hello)
    codec.render(Welcome(ME, 1, "s"))
    assert run(join) == ([c.Join("r")], [])


def test_request_ids_come_back_as_re_and_unanswered_requests_get_ok() -> None:
    codec = registered()
    items = codec.receive(b'{"type":"join","room":"r","id":"j1"}')
    (deferred,) = items
    assert isinstance(deferred, Deferred)
    begin, cmd, end = deferred.resolve()
    assert cmd == c.Join("r")
    assert callable(begin) and callable(end)
    assert begin() == b""
    joined = codec.render(Joined("r", ME, 1))
    assert msgs(joined)[0]["re"] == "j1"
    assert end() == b""  # answered already: no ok
    # A request nothing answers gets {"type": "ok"}.
    (deferred,) = codec.receive(b'{"type":"away","id":9}')
    begin, _, end = deferred.resolve()  # type: ignore[attr-defined]
    begin()
    assert msgs(end()) == [{"type": "ok", "re": 9}]
    # Outside a request, nothing is tagged.
    assert "re" not in msgs(codec.render(Joined("r", BOB, 2)))[0]


def test_history_is_answered_by_the_store_with_the_id_in_its_tag() -> None:
    codec = registered()
    (deferred,) = codec.receive(b'{"type":"history","room":"r","id":"h"}')
    begin, cmd, end = deferred.resolve()  # type: ignore[attr-defined]
    assert isinstance(cmd, c.FetchHistory) and cmd.tag == '"h"'
    begin()
    assert end() == b""  # the store's answer comes later, with the id
    reply = HistoryReply("r", True, (Message(5, T, "r", BOB, "old"),), "request", cmd.tag)
    (got,) = msgs(codec.render(reply))
    assert got["re"] == "h"
    assert got["messages"][0]["id"] == 5


def test_account_answers_carry_the_id_when_they_come() -> None:
    codec = registered()
    (deferred,) = codec.receive(b'{"type":"login","name":"ann","password":"pw12","id":1}')
    cmds, out = run([deferred])
    assert cmds == [c.LogIn("ann", "pw12")]
    assert out == []
    # Someone else's message while the password is checked is not the answer.
    assert "re" not in msgs(codec.render(Message(1, T, "r", BOB, "hi")))[0]
    (got,) = msgs(codec.render(LoggedIn("ann", "ann")))
    assert got == {"type": "logged_in", "account": "ann", "name": "ann", "how": "login", "re": 1}
    (deferred,) = codec.receive(b'{"type":"register","password":"pw12","id":2}')
    run([deferred])
    failed = Failed(e.AccountExists("ann"), c.RegisterAccount("pw12"))
    (got,) = msgs(codec.render(failed))
    assert got["code"] == "account_exists" and got["re"] == 2


BAD_REQUESTS: list[tuple[bytes, str]] = [
    (b"not json", "bad_json"),
    (b"\xff\xfe", "bad_json"),
    (b"[1, 2]", "bad_request"),
    (b'"hello"', "bad_request"),
    (b"{}", "unknown_type"),
    (b'{"type": 5}', "unknown_type"),
    (b'{"type": "fly"}', "unknown_type"),
    (b'{"type": "\\u0000"}', "unknown_type"),
    (b"[" * 20000, "too_long"),
    (b"[" * 15000, "bad_json"),  # nested deeper than the parser goes
    (b'{"type": "join"}', "bad_request"),
    (b'{"type": "join", "room": 5}', "bad_request"),
    (b'{"type": "join", "room": "r", "key": []}', "bad_request"),
    (b'{"type": "create", "room": "r", "limit": 0}', "bad_request"),
    (b'{"type": "create", "room": "r", "limit": true}', "bad_request"),
    (b'{"type": "create", "room": "r", "limit": 1.5}', "bad_request"),
    (b'{"type": "create", "room": "r", "private": "yes"}', "bad_request"),
    (b'{"type": "say", "room": "r"}', "bad_request"),
    (b'{"type": "say", "room": "r", "text": "x", "kind": "shout"}', "bad_request"),
    (b'{"type": "say", "room": "r", "text": "\\ud800"}', "bad_request"),
    (b'{"type": "msg", "text": "x"}', "bad_request"),
    (b'{"type": "history"}', "bad_request"),
    (b'{"type": "history", "room": "r", "with": "bob"}', "bad_request"),
    (b'{"type": "history", "room": "r", "before": -1}', "bad_request"),
    (b'{"type": "history", "room": "r", "limit": "all"}', "bad_request"),
    (b'{"type": "login"}', "bad_request"),
    (b'{"type": "password", "old": "x"}', "bad_request"),
    (b'{"type": "nick", "name": null}', "bad_request"),
    (b'{"type": "hello", "lobby": 1}', "bad_request"),
    (b'{"type": "list", "id": 1.5}', "bad_request"),
    (b'{"type": "list", "id": true}', "bad_request"),
    (b'{"type": "list", "id": {}}', "bad_request"),
    (b'{"type": "list", "id": "' + b"x" * 65 + b'"}', "bad_request"),
    (b'{"type": "list", "id": 9007199254740993}', "bad_request"),
    (b'{"type": "list", "id": ' + b"9" * 5000 + b"}", "bad_json"),
]


@pytest.mark.parametrize(("raw", "code"), BAD_REQUESTS)
def test_bad_requests_are_one_error_message(raw: bytes, code: str) -> None:
    codec = registered()
    items = codec.receive(raw)
    assert len(items) == 1 and isinstance(items[0], bytes)  # at once, no hub
    (got,) = msgs(items[0])
    assert got["type"] == "error"
    assert got["code"] == code, got
    assert got["text"]


def test_errors_keep_the_request_id_when_it_is_readable() -> None:
    codec = registered()
    (got,) = ask(codec, {"type": "fly", "id": "x1"})[1]
    assert got == {
        "type": "error",
        "code": "unknown_type",
        "text": "Unknown request type 'fly'",
        "re": "x1",
    }
    (got,) = ask(codec, {"type": "say", "id": 12})[1]
    assert got["re"] == 12 and got["text"] == "say: room must be a string"
    (got,) = ask(codec, {"type": "say", "id": [1]})[1]
    assert "re" not in got


@pytest.mark.parametrize(
    "request_",
    [
        {"type": "say", "room": "r", "text": "\x01ACTION waves\x01", "id": 2},
        {"type": "msg", "to": "bob", "text": "\x01VERSION\x01", "id": 2},
        {"type": "say", "room": "r", "text": "bell\x07", "id": 2},
    ],
)
def test_text_with_control_characters_is_refused_not_made_a_ctcp_request(
    request_: dict[str, Any],
) -> None:
    cmds, out = ask(registered(), request_)
    assert cmds == []
    assert out == [
        {
            "type": "error",
            "code": "text_invalid",
            "text": "Not sent: control characters",
            "reason": "control characters",
            "re": 2,
        }
    ]


def test_text_with_a_tab_is_sent() -> None:
    cmds, _ = ask(registered(), {"type": "say", "room": "r", "text": "a\tb"})
    assert cmds == [c.Say("r", "a\tb")]


def test_oversized_request_is_refused_before_parsing() -> None:
    big = json.dumps({"type": "say", "room": "r", "text": "x" * MAX_REQUEST}).encode()
    (got,) = ask(registered(), big)[1]
    assert got["code"] == "too_long"


# -- rendering ------------------------------------------------------------------------

INFO = UserInfo(
    "bob", "bob", "127.0.0.1", "127.0.0.1:5", "web", "bob", ("r",), 61.9, T, "bob", None, False, "o"
)

RENDER_CASES: list[tuple[Event, dict[str, Any]]] = [
    (
        Welcome(ME, 3, "salas.local", rooms=2, lobby="hall"),
        {
            "type": "welcome",
            "name": "ann",
            "account": None,
            "server": "salas.local",
            "online": 3,
            "rooms": 2,
            "lobby": "hall",
            "direct": True,
            "ice_servers": [],
        },
    ),
    (
        Joined("r", BOB, 2),
        {"type": "joined", "room": "r", "who": "bob", "account": "bob", "count": 2, "own": False},
    ),
    (
        Joined("r", ME, 1),
        {"type": "joined", "room": "r", "who": "ann", "account": None, "count": 1, "own": True},
    ),
    (
        Left("r", BOB, 1, "kick", "rude", ME),
        {
            "type": "left",
            "room": "r",
            "who": "bob",
            "count": 1,
            "kind": "kick",
            "reason": "rude",
            "by": "ann",
            "own": False,
        },
    ),
    (
        Message(7, T, "r", BOB, "<b>hi</b>", "action"),
        {
            "type": "message",
            "id": 7,
            "time": "2023-11-14T22:13:20.250Z",
            "room": "r",
            "from": "bob",
            "account": "bob",
            "text": "<b>hi</b>",
            "kind": "action",
            "own": False,
        },
    ),
    (
        Private(8, T, BOB, ME, "psst"),
        {
            "type": "private",
            "id": 8,
            "time": "2023-11-14T22:13:20.250Z",
            "from": "bob",
            "to": "ann",
            "account": "bob",
            "text": "psst",
            "kind": "say",
            "own": False,
        },
    ),
    (
        Renamed(BOB, UserRef(2, "robert", "bob", "h")),
        {"type": "renamed", "old": "bob", "new": "robert", "own": False},
    ),
    (
        TopicIs("r", "plans", "bob", T),
        {
            "type": "topic",
            "room": "r",
            "text": "plans",
            "by": "bob",
            "time": "2023-11-14T22:13:20.250Z",
            "changed": False,
        },
    ),
    (
        TopicIs("r", "", "", 0.0),
        {"type": "topic", "room": "r", "text": "", "by": None, "time": None, "changed": False},
    ),
    (
        TopicChanged("r", "new", BOB, T),
        {
            "type": "topic",
            "room": "r",
            "text": "new",
            "by": "bob",
            "time": "2023-11-14T22:13:20.250Z",
            "changed": True,
        },
    ),
    (
        RoomList((RoomInfo("r", 2, 5, "t", True, False), RoomInfo("s", 0, None, "", False, True))),
        {
            "type": "rooms",
            "rooms": [
                {
                    "name": "r",
                    "count": 2,
                    "limit": 5,
                    "topic": "t",
                    "private": True,
                    "keyed": False,
                    "permanent": False,
                },
                {
                    "name": "s",
                    "count": 0,
                    "limit": None,
                    "topic": "",
                    "private": False,
                    "keyed": True,
                    "permanent": False,
                },
            ],
        },
    ),
    (
        UserList("r", (INFO,)),
        {
            "type": "members",
            "room": "r",
            "members": [
                {
                    "name": "bob",
                    "account": "bob",
                    "op": True,
                    "voice": False,
                    "away": None,
                    "door": "web",
                    "idle": 61,
                    "oper": False,
                }
            ],
        },
    ),
    (
        NameList("r", (Member(BOB, "v", True),)),
        {
            "type": "members",
            "room": "r",
            "members": [
                {"name": "bob", "account": "bob", "op": False, "voice": True, "away": True}
            ],
        },
    ),
    (Echoed("x"), {"type": "echo", "text": "x"}),
    (Closing("bye", "shutdown"), {"type": "closing", "reason": "bye", "kind": "shutdown"}),
    (ServerNotice("maintenance", "op"), {"type": "notice", "text": "maintenance", "by": "op"}),
    (Invited("r", BOB, ME), {"type": "invited", "room": "r", "by": "bob", "to": "ann"}),
    (IsAway(BOB, "lunch"), {"type": "away", "who": "bob", "text": "lunch", "own": False}),
    (AwayChanged(ME, None), {"type": "away", "who": "ann", "text": None, "own": True}),
    (
        ModesChanged("r", BOB, (c.ModeChange(True, "l", "5"),)),
        {
            "type": "modes",
            "room": "r",
            "by": "bob",
            "changes": [{"add": True, "mode": "l", "arg": "5"}],
        },
    ),
    (OperGranted(ME), {"type": "oper"}),
    (OperRevoked(ME), {"type": "deoper"}),
    (
        LoggedIn("ann", "ann", "register"),
        {"type": "logged_in", "account": "ann", "name": "ann", "how": "register"},
    ),
    (AccountRegistered("ann"), {"type": "account_registered", "account": "ann"}),
    (PasswordChanged("ann"), {"type": "password_changed", "account": "ann"}),
    (AccountChanged(BOB, "bob"), {"type": "account", "who": "bob", "account": "bob"}),
    (
        HistoryReply("bob", False, (Private(3, T, ME, BOB, "yo"),), "request"),
        {
            "type": "history",
            "target": "bob",
            "room": False,
            "reason": "request",
            "messages": [
                {
                    "type": "private",
                    "id": 3,
                    "time": "2023-11-14T22:13:20.250Z",
                    "from": "ann",
                    "to": "bob",
                    "account": None,
                    "text": "yo",
                    "kind": "say",
                    "own": True,
                }
            ],
        },
    ),
    (
        Failed(e.RoomFull("r", 2), c.Join("r")),
        {
            "type": "error",
            "code": "room_full",
            "text": "Room r is full (2/2)",
            "room": "r",
            "limit": 2,
        },
    ),
]


@pytest.mark.parametrize(("event", "expected"), RENDER_CASES)
def test_rendering(event: Event, expected: dict[str, Any]) -> None:
    assert msgs(registered().render(event)) == [expected]


def test_events_the_web_client_does_not_use_render_nothing() -> None:
    assert registered().render(StatsReply(1, 1, 0)) == b""


def test_own_message_is_marked_and_tagged_and_others_are_the_same_for_everyone() -> None:
    ann, bob = registered(), WebJson(2, "h", 1)
    said = Message(9, T, "r", ME, "hello")
    # Bob's door renders it for every web reader but its sender: the same bytes.
    assert bob.render(said) == WebJson(3, "h", 1).render(said)
    assert msgs(bob.render(said))[0]["own"] is False
    (deferred,) = ann.receive(b'{"type":"say","room":"r","text":"hello","id":5}')
    begin, _, end = deferred.resolve()  # type: ignore[attr-defined]
    begin()
    (mine,) = msgs(ann.render(said))
    assert mine["own"] is True and mine["re"] == 5
    assert end() == b""


def test_history_marks_as_own_what_this_connection_or_its_account_sent() -> None:
    stored_ann = UserRef(0, "ann", "ann", "", account="Ann")  # read back: no connection
    stored_bob = UserRef(0, "bob", "bob", "", account="bob")
    stored_guest = UserRef(0, "ann", "ann", "")
    reply = HistoryReply(
        "r",
        True,
        (
            Message(1, T, "r", stored_ann, "mine, from the store"),
            Message(2, T, "r", ME, "mine, this connection"),
            Message(3, T, "r", stored_bob, "bob's"),
            Message(4, T, "r", stored_guest, "a guest's of the same name"),
        ),
        "request",
    )
    codec = registered()
    codec.render(LoggedIn("ann", "ann"))
    (got,) = msgs(codec.render(reply))
    assert [m["own"] for m in got["messages"]] == [True, True, False, False]
    private = HistoryReply("bob", False, (Private(3, T, stored_ann, BOB, "yo"),), "request")
    (got,) = msgs(codec.render(private))
    assert got["messages"][0]["own"] is True

    guest = registered()  # not logged in: only this connection's own are known
    (got,) = msgs(guest.render(reply))
    assert [m["own"] for m in got["messages"]] == [False, True, False, False]


def test_shared_key_only_for_others_joins_and_leaves_outside_requests() -> None:
    codec = registered()
    assert codec.shared_key(Joined("r", BOB, 2)) == "webjson"
    assert codec.shared_key(Left("r", BOB, 1)) == "webjson"
    assert codec.shared_key(Joined("r", ME, 2)) is None
    assert codec.shared_key(Message(1, T, "r", BOB, "x")) is None
    (deferred,) = codec.receive(b'{"type":"kick","room":"r","name":"bob","id":1}')
    begin, _, _ = deferred.resolve()  # type: ignore[attr-defined]
    begin()
    assert codec.shared_key(Left("r", BOB, 1, "kick")) is None  # its answer carries the id


def _errors() -> list[type[e.ChatError]]:
    return [
        cls
        for _, cls in inspect.getmembers(e, inspect.isclass)
        if issubclass(cls, e.ChatError) and cls is not e.ChatError
    ]


def _instance(cls: type[e.ChatError]) -> e.ChatError:
    values = {"int": 3, "str": "x"}
    return cls(**{f.name: values.get(str(f.type), "x") for f in fields(cls)})


@pytest.mark.parametrize("cls", _errors(), ids=lambda cls: cls.__name__)
def test_every_chat_error_has_a_code_a_text_and_its_details(cls: type[e.ChatError]) -> None:
    err = _instance(cls)
    (got,) = msgs(registered().render(Failed(err, c.ListRooms())))
    assert got["type"] == "error"
    assert got["code"] == error_code(err)
    assert got["code"].islower() and " " not in got["code"]
    assert got["text"] == error_text(err) != "That did not work"
    for f in fields(err):
        assert got[f.name] == getattr(err, f.name)


def test_error_codes() -> None:
    assert error_code(e.NoSuchRoom("x")) == "no_such_room"
    assert error_code(e.StoreUnavailable()) == "store_unavailable"


def test_iso_times_are_utc_with_milliseconds() -> None:
    assert iso(0) == "1970-01-01T00:00:00.000Z"
    assert iso(T) == "2023-11-14T22:13:20.250Z"


# -- totality ---------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
requests = st.fixed_dictionaries(
    {"type": st.sampled_from([*REQUESTS, "x"])},
    optional={
        "id": json_values,
        "room": json_values,
        "text": json_values,
        "name": json_values,
        "to": json_values,
        "limit": json_values,
        "before": json_values,
        "with": json_values,
        "kind": st.sampled_from(["say", "action", "notice", "x"]),
        "password": json_values,
        "key": json_values,
        "private": json_values,
        "lobby": json_values,
        "reason": json_values,
    },
)


def _total(codec: WebJson, raw: bytes) -> None:
    for item in codec.receive(raw):
        assert isinstance(item, bytes | Deferred)
        if isinstance(item, bytes):
            for got in msgs(item):
                assert got["type"] == "error"
        else:
            for sub in item.resolve():
                if callable(sub):
                    sub()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_give_inputs_never_an_exception(raw: bytes) -> None:
    _total(registered(), raw)
    _total(WebJson(1, "h", 1), raw)


@settings(max_examples=300, deadline=None)
@given(requests)
def test_any_request_shape_gives_inputs_never_an_exception(request: dict[str, Any]) -> None:
    raw = json.dumps(request).encode()
    _total(registered(), raw)
    _total(WebJson(1, "h", 1), raw)


# -- operators ------------------------------------------------------------------------


def test_operator_requests_with_bad_fields_are_refused_before_the_hub() -> None:
    codec = registered()
    for request, field in (
        ({"type": "close"}, "room"),
        ({"type": "close", "room": 5}, "room"),
        ({"type": "close", "room": "r", "reason": ["x"]}, "reason"),
        ({"type": "kill"}, "name"),
        ({"type": "kill", "name": "bob", "reason": 1}, "reason"),
        ({"type": "broadcast"}, "text"),
        ({"type": "broadcast", "text": None}, "text"),
        ({"type": "shutdown", "reason": False}, "reason"),
    ):
        cmds, out = ask(codec, {**request, "id": "x"})
        assert cmds == [], request
        assert out == [
            {
                "type": "error",
                "code": "bad_request",
                "text": f"{request['type']}: {field} must be a string",
                "re": "x",
            }
        ], request


def test_operator_requests_wait_for_the_welcome() -> None:
    cmds, out = ask(WebJson(1, "h", 1), {"type": "overview"})
    assert cmds == []
    assert [m["code"] for m in out] == ["not_registered"]


def test_overview_lists_rooms_and_people_as_the_listings_name_them() -> None:
    rooms = (
        RoomInfo("lobby", 2, None, "", False, False),
        RoomInfo("tas", 1, 5, "plans", True, True, "iklnt"),
    )
    people = (
        UserInfo(
            "ann", "ann", "::1", "[::1]:4000", "web", "ann", ("lobby",), 3.7, T, None, None, True
        ),
        UserInfo(
            "bob",
            "bob",
            "10.0.0.2",
            "10.0.0.2:5",
            "line",
            "bob",
            ("lobby", "tas"),
            61.2,
            T,
            "bob",
            "lunch",
            False,
        ),
    )
    codec = registered()
    cmds, _ = ask(codec, {"type": "overview", "id": 4})
    assert cmds == [c.Overview()]
    # While the request runs, its answer carries the request's id.
    [begin, _cmd, end] = codec.receive(b'{"type":"overview","id":4}')[0].resolve()  # type: ignore[union-attr]
    assert callable(begin) and callable(end)
    begin()
    got = msgs(codec.render(OverviewReply(rooms, people)))
    assert end() == b""  # answered: no "ok"
    assert got == [
        {
            "type": "overview",
            "rooms": [
                {
                    "name": "lobby",
                    "count": 2,
                    "limit": None,
                    "topic": "",
                    "private": False,
                    "keyed": False,
                    "permanent": False,
                },
                {
                    "name": "tas",
                    "count": 1,
                    "limit": 5,
                    "topic": "plans",
                    "private": True,
                    "keyed": True,
                    "permanent": False,
                },
            ],
            "users": [
                {
                    "name": "ann",
                    "door": "web",
                    "address": "[::1]:4000",
                    "rooms": ["lobby"],
                    "idle": 3,
                    "account": None,
                    "oper": True,
                    "away": None,
                },
                {
                    "name": "bob",
                    "door": "line",
                    "address": "10.0.0.2:5",
                    "rooms": ["lobby", "tas"],
                    "idle": 61,
                    "account": "bob",
                    "oper": False,
                    "away": "lunch",
                },
            ],
            "re": 4,
        }
    ]
    # The room fields are the room list's own.
    listed = msgs(registered().render(RoomList(rooms)))[0]["rooms"]
    assert listed == got[0]["rooms"]


def test_an_operator_request_refused_by_the_hub_is_an_error_with_its_id() -> None:
    codec = registered()
    [begin, cmd, end] = codec.receive(b'{"type":"close","room":"tas","id":9}')[0].resolve()  # type: ignore[union-attr]
    assert cmd == c.CloseRoom("tas")
    assert callable(begin) and callable(end)
    begin()
    got = msgs(codec.render(Failed(e.NotServerOperator(), c.CloseRoom("tas"))))
    end()
    assert got == [
        {
            "type": "error",
            "code": "not_server_operator",
            "text": "Only server operators can do that",
            "re": 9,
        }
    ]


def test_a_closed_room_and_a_removal_render_with_who_did_it() -> None:
    codec = registered()
    assert msgs(codec.render(Left("tas", ME, 0, "close", "done", BOB))) == [
        {
            "type": "left",
            "room": "tas",
            "who": "ann",
            "count": 0,
            "kind": "close",
            "reason": "done",
            "by": "bob",
            "own": True,
        }
    ]
    assert msgs(codec.render(Closing("Removed by bob: spam", "kill"))) == [
        {"type": "closing", "reason": "Removed by bob: spam", "kind": "kill"}
    ]
    assert msgs(codec.render(ServerNotice("restart at 5", "bob"))) == [
        {"type": "notice", "text": "restart at 5", "by": "bob"}
    ]

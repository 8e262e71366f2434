"""The line door's server-operator commands: what is typed becomes which command, what
operators and the people they act on read, and what a non-operator is told."""

from __future__ import annotations

import pytest
from websockets.client import ClientProtocol
from websockets.frames import Frame
from websockets.uri import parse_uri

from salas.core import commands as c
from salas.core import errors as e
from salas.core.events import (
    Closing,
    Event,
    Failed,
    Left,
    OperDone,
    OperGranted,
    OperRevoked,
    OverviewReply,
    ServerNotice,
    ShutdownAsked,
)
from salas.core.hub import Hub
from salas.core.model import UserRef
from salas.proto.door import Input
from salas.proto.http import HttpDoor, Site
from salas.proto.line import COMMANDS, LineDoor, help_text, parse_line


def ref(sid: int, name: str) -> UserRef:
    return UserRef(sid, name, name, "127.0.0.1")


ME = ref(1, "alice")
BOB = ref(2, "bob")
OPERATOR_COMMANDS = ("close", "kill", "broadcast", "shutdown")


def usage(name: str) -> bytes:
    return f"! Usage: /{name} {COMMANDS[name].args}".rstrip().encode() + b"\n"


@pytest.fixture
def door() -> LineDoor:
    d = LineDoor(1, "127.0.0.1", 5000)
    d.name = "alice"
    return d


# -- parsing ---------------------------------------------------------------------------

PARSE_CASES: list[tuple[bytes, Input | None]] = [
    (b"/oper operuser operpassword", c.OperUp("operuser", "operpassword")),
    (b"/OPER a b", c.OperUp("a", "b")),
    (b"/oper operuser", usage("oper")),
    (b"/oper a b c", usage("oper")),
    (b"/close tas", c.CloseRoom("tas", "")),
    (b"/close #tas", c.CloseRoom("tas", "")),
    (b"/close tas  end of term  ", c.CloseRoom("tas", "end of term")),
    (b"/close", usage("close")),
    (b"/close   ", usage("close")),
    (b"/kill bob", c.Kill("bob", "")),
    (b"/kill bob spamming the lobby", c.Kill("bob", "spamming the lobby")),
    (b"/KILL bob", c.Kill("bob", "")),
    (b"/kill", usage("kill")),
    (b"/broadcast back in five minutes", c.Broadcast("back in five minutes")),
    (b"/broadcast", usage("broadcast")),
    (b"/broadcast    ", usage("broadcast")),
    (b"/shutdown", c.Shutdown("")),
    (b"/shutdown upgrade to 2.0", c.Shutdown("upgrade to 2.0")),
    # The room kick is unchanged: the current room, by name.
    (b"/kick bob too chatty", c.Kick(None, "bob", "too chatty")),
]


@pytest.mark.parametrize(("raw", "expected"), PARSE_CASES)
def test_parse_operator_commands(raw: bytes, expected: Input | None) -> None:
    assert parse_line(raw) == expected


def test_help_marks_operator_commands() -> None:
    rows = help_text().decode().splitlines()
    for name in OPERATOR_COMMANDS:
        (row,) = [r for r in rows if r.startswith(f"  /{name} ")]
        assert row.endswith("(operators)"), row
    (oper,) = [r for r in rows if r.startswith("  /oper ")]
    assert "NAME PASSWORD" in oper
    assert parse_line(b"/help kill") == (
        b"> /kill NAME [REASON]: put someone off the server (operators)\n"
    )


def test_close_and_kill_come_with_a_confirmation_after_them(door: LineDoor) -> None:
    """The hub tells the operator it is done (OperDone); a refusal is the only answer."""
    assert door.receive_data(b"/close tas bye\n") == [c.CloseRoom("tas", "bye")]
    assert door.render(OperDone("close", "tas", "bye")) == b"> Room tas is closed\n"
    (cmd,) = door.receive_data(b"/kill bob\n")
    refusal = door.render(Failed(e.NotServerOperator(), cmd))  # type: ignore[arg-type]
    assert refusal == b"! Only server operators can do that\n"
    assert door.render(OperDone("kill", "bob")) == b"> bob was removed from the server\n"


# -- rendering -----------------------------------------------------------------------

RENDER_CASES: list[tuple[Event, str]] = [
    (OperGranted(ME), "> You are now a server operator\n"),
    (OperRevoked(ME), "> You are no longer a server operator\n"),
    (OverviewReply((), ()), ""),
    (
        Left("tas", ME, 0, "close", "end of term", BOB),
        "< Room tas was closed by bob: end of term\n",
    ),
    (Left("tas", ME, 0, "close", "", BOB), "< Room tas was closed by bob\n"),
    (Closing("Removed by bob: spam", "kill"), "! Disconnected: Removed by bob: spam\n"),
    (Closing("upgrade", "shutdown"), "! Server shutting down: upgrade\n"),
    (ServerNotice("back soon", "bob"), "! Notice from bob: back soon\n"),
    (ServerNotice("\x1b[2Jback", ""), "! Notice from the server: [2Jback\n"),
    (Failed(e.NotServerOperator(), c.CloseRoom("tas")), "! Only server operators can do that\n"),
    (Failed(e.NotServerOperator(), c.Kill("bob")), "! Only server operators can do that\n"),
    (Failed(e.NotServerOperator(), c.Broadcast("x")), "! Only server operators can do that\n"),
    (Failed(e.NotServerOperator(), c.Shutdown()), "! Only server operators can do that\n"),
    (Failed(e.NoSuchUser("nobody"), c.Kill("nobody")), "! Nobody here is called nobody\n"),
    (
        Failed(e.NoSuchRoom("nope"), c.CloseRoom("nope")),
        "! No room named nope. Create it with /create nope\n",
    ),
    (
        Failed(e.RoomProtected("lobby"), c.CloseRoom("lobby")),
        "! Room lobby can't be closed: it is where everyone lands\n",
    ),
    (Failed(e.LoginFailed(), c.OperUp("x", "y")), "! Wrong operator name or password\n"),
]


@pytest.mark.parametrize(("event", "expected"), RENDER_CASES)
def test_render(door: LineDoor, event: Event, expected: str) -> None:
    assert door.render(event).decode() == expected


# -- with the hub: what the operator, the others and a non-operator see --------------


class World:
    """A hub and line doors wired as the network adapter wires them."""

    def __init__(self) -> None:
        self.hub = Hub(seed=7)
        self.doors: dict[int, LineDoor] = {}
        self.screens: dict[int, list[str]] = {}
        self.now = 0.0
        self.asked: list[str] = []

    def connect(self, sid: int, name: str) -> None:
        door = self.doors[sid] = LineDoor(sid, "127.0.0.1", 5000 + sid)
        self.screens[sid] = []
        for item in door.start():
            self._run(sid, item)
        self.type(sid, f"/nick {name}")
        self.read(sid)

    def type(self, sid: int, line: str) -> None:
        for item in self.doors[sid].receive_data(line.encode() + b"\n"):
            self._run(sid, item)

    def _run(self, sid: int, item: Input) -> None:
        if callable(item):
            item = item()
        if isinstance(item, bytes):
            self.screens[sid] += item.decode().splitlines()
            return
        assert not isinstance(item, c.ACCOUNT_COMMANDS), item  # the server checks those
        assert isinstance(
            item,
            c.Register
            | c.Rename
            | c.Join
            | c.Create
            | c.CloseRoom
            | c.Kill
            | c.Broadcast
            | c.Shutdown,
        ), item
        self.now += 1.0
        for d in self.hub.handle(sid, item, self.now):
            if isinstance(d.event, ShutdownAsked):
                self.asked.append(d.event.reason)
            for to in d.to:
                if to != d.exclude and to in self.doors:
                    self.screens[to] += self.doors[to].render(d.event).decode().splitlines()

    def read(self, sid: int) -> list[str]:
        lines, self.screens[sid] = self.screens[sid], []
        return lines

    def make_oper(self, sid: int) -> None:
        for d in self.hub.handle(sid, c.BecomeOper("operuser"), self.now):
            for to in d.to:
                self.screens[to] += self.doors[to].render(d.event).decode().splitlines()


@pytest.fixture
def world() -> World:
    w = World()
    w.connect(1, "opal")
    w.connect(2, "bob")
    w.connect(3, "carol")
    for sid in (1, 2, 3):
        w.read(sid)
    return w


def test_non_operator_is_refused_in_one_line_and_nothing_changes(world: World) -> None:
    w = world
    w.type(3, "/create study")
    for sid in (1, 2, 3):
        w.read(sid)
    for line in ("/close study", "/kill bob", "/broadcast hello all", "/shutdown now"):
        w.type(2, line)
        assert w.read(2) == ["! Only server operators can do that"], line
    assert w.hub.room_named("study") is not None
    assert w.hub.user_named("bob") is not None
    assert w.read(1) == [] and w.read(3) == []
    assert w.asked == []


def test_operator_closes_a_room_its_members_are_told(world: World) -> None:
    w = world
    w.make_oper(1)
    assert w.read(1) == ["> You are now a server operator"]
    w.type(2, "/create study")
    w.type(3, "/join study")
    for sid in (1, 2, 3):
        w.read(sid)
    w.type(1, "/close study end of term")
    assert w.read(1) == ["> Room study is closed"]
    assert w.read(2) == ["< Room study was closed by opal: end of term"]
    assert w.read(3) == ["< Room study was closed by opal: end of term"]
    assert w.hub.room_named("study") is None
    w.type(1, "/close lobby")
    assert w.read(1) == ["! Room lobby can't be closed: it is where everyone lands"]


def test_operator_removes_someone_from_the_server(world: World) -> None:
    w = world
    w.make_oper(1)
    w.read(1)
    w.type(1, "/kill bob spamming")
    assert w.read(2) == ["< You left lobby", "! Disconnected: Removed by opal: spamming"]
    assert w.read(3) == ["< bob left lobby (2 users online): Removed by opal: spamming"]
    assert w.read(1) == [
        "< bob left lobby (2 users online): Removed by opal: spamming",
        "> bob was removed from the server",
    ]
    assert w.hub.user_named("bob") is None
    w.type(1, "/kill bob")
    assert w.read(1) == ["! Nobody here is called bob"]


def test_operator_broadcasts_and_asks_for_shutdown(world: World) -> None:
    w = world
    w.make_oper(1)
    w.read(1)
    w.type(1, "/broadcast back in five")
    for sid in (1, 2, 3):
        assert w.read(sid) == ["! Notice from opal: back in five"]
    w.type(1, "/shutdown upgrade")
    assert w.asked == ["upgrade"]


def test_operator_status_taken_away_is_told_and_powers_go(world: World) -> None:
    w = world
    w.make_oper(1)
    w.read(1)
    for d in w.hub.set_oper("opal", False, "console"):
        for to in d.to:
            w.screens[to] += w.doors[to].render(d.event).decode().splitlines()
    assert w.read(1) == ["> You are no longer a server operator"]
    w.type(1, "/broadcast still here?")
    assert w.read(1) == ["! Only server operators can do that"]
    assert w.read(2) == []


# -- the line protocol over WebSocket /chat ----------------------------------------------------


def test_over_websocket_chat_confirmation_and_refusal_are_text_frames() -> None:
    """The confirmation after ``/close`` and ``/kill`` and a refusal arrive on ``/chat``
    as text frames, like every other line."""
    ws = ClientProtocol(parse_uri("ws://localhost/chat"))
    ws.send_request(ws.connect())
    d = HttpDoor(1, "127.0.0.1", 5000, Site({}), ping_interval=10, ping_timeout=5)
    handshake = d.receive_data(b"".join(ws.data_to_send()))
    ws.receive_data(b"".join(x for x in handshake if isinstance(x, bytes)))
    ws.events_received()

    def texts(data: bytes) -> list[str]:
        ws.receive_data(data)
        return [bytes(f.data).decode() for f in ws.events_received() if isinstance(f, Frame)]

    ws.send_text(b"/kill bob spam")
    (cmd,) = d.receive_data(b"".join(ws.data_to_send()))
    assert cmd == c.Kill("bob", "spam")
    assert texts(d.render(OperDone("kill", "bob", "spam"))) == ["> bob was removed from the server"]
    ws.send_text(b"/close tas")
    (cmd,) = d.receive_data(b"".join(ws.data_to_send()))
    refusal = d.render(Failed(e.NotServerOperator(), cmd))  # type: ignore[arg-type]
    assert texts(refusal) == ["! Only server operators can do that"]

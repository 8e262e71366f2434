"""Server operators end to end: a real ``salas serve`` with the line, IRC and CS168 doors,
real sockets. An operator on one door closes a room, removes someone, broadcasts or stops
the server, and people on every door see it; a non-operator is refused and nothing
changes; the event log names who did what. Every wait is bounded (``support.TIME``)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from e2e.test_irc import IrcClient, Msg
from support import TIME, LineClient, RunningServer, start_server, welcome

SERVER = "ops.test"
CONFIG = f"""
[server]
name = "{SERVER}"

[limits]
flood_exempt = ["127.0.0.0/8"]

[[operators]]
name = "operuser"
password = "operpassword"
"""
REFUSED = "! Only server operators can do that"
FRAME = 200


class Cs168Client:
    """A raw CS168 connection: 200-byte frames both ways, the first one the name."""

    def __init__(self, port: int, name: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5 * TIME)
        self.buf = b""
        self.seen: list[str] = []
        self.sock.sendall(name.encode().ljust(FRAME))

    def send(self, text: str) -> None:
        self.sock.sendall(text.encode().ljust(FRAME))

    def next_frame(self, timeout: float = 5.0) -> str:
        deadline = time.monotonic() + timeout * TIME
        while len(self.buf) < FRAME:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no frame within {timeout}s; seen: {self.seen[-8:]}")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            if not data:
                raise ConnectionError(f"server closed the connection; seen: {self.seen[-8:]}")
            self.buf += data
        frame, self.buf = self.buf[:FRAME], self.buf[FRAME:]
        text = frame.decode("utf-8", "replace").rstrip()
        self.seen.append(text)
        return text

    def expect(self, needle: str, timeout: float = 5.0) -> str:
        deadline = time.monotonic() + timeout * TIME
        while True:
            left = (deadline - time.monotonic()) / TIME
            if left <= 0:
                raise TimeoutError(f"{needle!r} not seen; seen: {self.seen[-8:]}")
            text = self.next_frame(left)
            if needle in text:
                return text

    def drain(self, quiet: float = 0.3) -> list[str]:
        out = []
        with contextlib.suppress(TimeoutError):
            while True:
                out.append(self.next_frame(quiet))
        return out

    def closed(self, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout * TIME
        try:
            while time.monotonic() < deadline:
                self.next_frame(max(0.01, (deadline - time.monotonic()) / TIME))
        except ConnectionError:
            return True
        except TimeoutError:
            return False
        return False

    def close(self) -> None:
        self.sock.close()


# -- fixtures and helpers ------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    srv = start_server(tmp_path_factory.mktemp("ops"), ("line", "irc", "cs168"), config=CONFIG)
    yield srv
    srv.stop()


@pytest.fixture
def keep() -> Iterator[Callable[..., object]]:
    """Clients made in a test, closed after it."""
    made: list[LineClient | IrcClient | Cs168Client] = []

    def add(client: LineClient | IrcClient | Cs168Client) -> LineClient | IrcClient | Cs168Client:
        made.append(client)
        return client

    yield add
    for client in made:
        with contextlib.suppress(OSError):
            client.close()


def line_user(srv: RunningServer, name: str, keep: Callable[..., object]) -> LineClient:
    client = welcome(srv.ports["line"], name)
    keep(client)
    return client


def line_oper(srv: RunningServer, name: str, keep: Callable[..., object]) -> LineClient:
    client = line_user(srv, name, keep)
    client.send("/oper operuser operpassword")
    assert client.expect("server operator") == "> You are now a server operator"
    return client


def irc_user(srv: RunningServer, nick: str, keep: Callable[..., object]) -> IrcClient:
    client = IrcClient(srv.ports["irc"])
    keep(client)
    client.register(nick)
    return client


def irc_oper(srv: RunningServer, nick: str, keep: Callable[..., object]) -> IrcClient:
    client = irc_user(srv, nick, keep)
    client.send("OPER operuser operpassword")
    client.num("381")
    return client


def cs168_user(srv: RunningServer, name: str, keep: Callable[..., object]) -> Cs168Client:
    client = Cs168Client(srv.ports["cs168"], name)
    keep(client)
    srv.wait_log(rf"New user {name} ")
    return client


def is_notice_from(source: str, text: str) -> Callable[[Msg], bool]:
    return lambda m: m.command == "NOTICE" and m.source == source and text in m.last


CHANSERV = f"ChanServ!ChanServ@{SERVER}"


# -- closing a room ------------------------------------------------------------------------


def test_line_operator_closes_a_room_members_on_every_door_are_told(
    shared: RunningServer, keep: Callable[..., object]
) -> None:
    op = line_oper(shared, "opal1", keep)
    bob = line_user(shared, "bob1", keep)
    bob.send("/create study1")
    bob.expect("> You joined study1")
    irc = irc_user(shared, "ircm1", keep)
    irc.join("#study1")
    cs = cs168_user(shared, "kay1", keep)
    cs.send("/join study1")
    bob.expect("> kay1 joined study1")

    op.send("/close study1 end of term")
    assert op.expect("study1") == "> Room study1 is closed"
    assert bob.expect("< Room") == "< Room study1 was closed by opal1: end of term"
    kick = irc.expect(lambda m: m.command == "KICK")
    assert (kick.source, kick.params) == (SERVER, ["#study1", "ircm1", "end of term"])
    assert cs.expect("study1") == "Room study1 was closed: end of term"
    shared.wait_log(r"! opal1 closed room study1: end of term")

    bob.send("/join study1")
    assert bob.expect("!") == "! No room named study1. Create it with /create study1"
    irc.send("NAMES #study1")
    assert names_reply(irc, "#study1") == []


def names_reply(irc: IrcClient, chan: str) -> list[str]:
    got = irc.until(lambda m: m.command == "366")
    return [w for m in got if m.command == "353" for w in m.last.split()]


def test_irc_operator_closes_a_room_through_chanserv(
    shared: RunningServer, keep: Callable[..., object]
) -> None:
    op = irc_oper(shared, "ircop2", keep)
    owner = line_user(shared, "lin2", keep)
    owner.send("/create den2")
    owner.expect("> You joined den2")
    member = irc_user(shared, "ircm2", keep)
    member.join("#den2")
    cs = cs168_user(shared, "kay2", keep)
    cs.send("/join den2")
    owner.expect("> kay2 joined den2")

    op.send("PRIVMSG ChanServ :CLOSE #den2 moving house")
    op.expect(is_notice_from(CHANSERV, "#den2 is closed: moving house"))
    assert owner.expect("< Room") == "< Room den2 was closed by ircop2: moving house"
    kick = member.expect(lambda m: m.command == "KICK")
    assert (kick.source, kick.params) == (SERVER, ["#den2", "ircm2", "moving house"])
    assert cs.expect("den2") == "Room den2 was closed: moving house"
    shared.wait_log(r"! ircop2 closed room den2: moving house")
    # The lobby stays.
    op.send("PRIVMSG ChanServ :CLOSE #lobby")
    op.expect(is_notice_from(CHANSERV, "can't be closed"))
    owner.send("/join lobby")
    owner.expect("> You joined lobby")


# -- removing someone from the server ------------------------------------------------------


def test_operators_remove_people_on_every_door(
    shared: RunningServer, keep: Callable[..., object]
) -> None:
    op = line_oper(shared, "opal3", keep)
    watcher = line_user(shared, "watch3", keep)
    ircw = irc_user(shared, "ircw3", keep)
    ircw.join("#lobby")
    victim = line_user(shared, "vic3", keep)
    watcher.expect("is now known as vic3")

    op.send("/kill vic3 spamming")
    assert victim.expect("! Disconnected") == "! Disconnected: Removed by opal3: spamming"
    assert victim.closed()
    assert watcher.expect("< vic3").endswith("): Removed by opal3: spamming")
    quit_ = ircw.expect(lambda m: m.command == "QUIT" and m.nick == "vic3")
    assert quit_.last == "Removed by opal3: spamming"
    assert op.expect("> vic3") == "> vic3 was removed from the server"
    shared.wait_log(r"! opal3 removed vic3 from the server: spamming")

    # From IRC: an IRC user and a CS168 user.
    ircop = irc_oper(shared, "ircop3", keep)
    ircvic = irc_user(shared, "ircvic3", keep)
    ircvic.join("#lobby")
    watcher.expect("> ircvic3 joined lobby")
    ircop.send("KILL ircvic3 :flooding")
    err = ircvic.expect(lambda m: m.command == "ERROR")
    assert "Removed by ircop3: flooding" in err.last
    assert ircvic.closed()
    assert watcher.expect("< ircvic3").endswith("): Removed by ircop3: flooding")
    ircop.expect(is_notice_from(SERVER, "ircvic3 was removed from the server"))
    shared.wait_log(r"! ircop3 removed ircvic3 from the server: flooding")

    cs = cs168_user(shared, "csvic3", keep)
    ircop.send("KILL csvic3")
    assert cs.expect("Disconnected") == "Disconnected: Removed by ircop3"
    assert cs.closed()
    shared.wait_log(r"! ircop3 removed csvic3 from the server")
    ircop.send("KILL csvic3")
    ircop.num("401")


# -- broadcast -------------------------------------------------------------------------------


def test_broadcast_reaches_every_door(shared: RunningServer, keep: Callable[..., object]) -> None:
    op = line_oper(shared, "opal4", keep)
    other = line_user(shared, "other4", keep)
    irc = irc_user(shared, "ircm4", keep)
    cs = cs168_user(shared, "kay4", keep)

    op.send("/broadcast Maintenance at noon")
    assert op.expect("! Notice") == "! Notice from opal4: Maintenance at noon"
    assert other.expect("! Notice") == "! Notice from opal4: Maintenance at noon"
    irc.expect(is_notice_from(SERVER, "[opal4] Maintenance at noon"))
    assert cs.expect("Maintenance") == "[opal4] Maintenance at noon"
    shared.wait_log(r"! opal4 broadcast: Maintenance at noon")

    ircop = irc_oper(shared, "ircop4", keep)
    ircop.send("WALLOPS :Back in five minutes")
    assert other.expect("! Notice") == "! Notice from ircop4: Back in five minutes"
    irc.expect(is_notice_from(SERVER, "[ircop4] Back in five minutes"))
    assert cs.expect("Back in") == "[ircop4] Back in five minutes"
    shared.wait_log(r"! ircop4 broadcast: Back in five minutes")


# -- refusals --------------------------------------------------------------------------------


def test_non_operators_are_refused_and_nothing_changes(
    shared: RunningServer, keep: Callable[..., object]
) -> None:
    owner = line_user(shared, "own5", keep)
    owner.send("/create keep5")
    owner.expect("> You joined keep5")
    target = line_user(shared, "tgt5", keep)
    cs = cs168_user(shared, "csw5", keep)
    plain = line_user(shared, "norm5", keep)
    ircn = irc_user(shared, "ircn5", keep)
    ircn.join("#keep5")
    start = len(shared.log)

    for command in ("/close keep5", "/kill tgt5", "/broadcast nope5", "/shutdown now5"):
        plain.send(command)
        assert plain.expect("!") == REFUSED, command
    for command in ("KILL tgt5 :x", "WALLOPS :nope5", "DIE :now5"):
        ircn.send(command)
        assert ircn.num("481").last == "Permission Denied- You're not an IRC operator"
    ircn.send("PRIVMSG ChanServ :CLOSE #keep5")
    ircn.expect(is_notice_from(CHANSERV, "server operator"))

    # Nothing changed: the room, the person, no broadcast, the server runs.
    owner.send("/who")
    assert owner.expect("> Users in") == "> Users in keep5 (2):"
    target.send("/echo still here")
    target.expect("still here")
    assert not any("nope5" in line for line in owner.drain() + target.drain())
    assert not any("nope5" in m.raw for m in ircn.sync())
    assert not any("nope5" in text for text in cs.drain())
    assert shared.proc.poll() is None
    assert not any(
        "norm5" in line or "ircn5" in line for line in shared.log[start:] if "! " in line
    ), shared.log[start:]


# -- room powers in rooms an operator is not in ----------------------------------------------


def test_server_operator_kicks_and_sets_modes_in_a_room_they_are_not_in(
    shared: RunningServer, keep: Callable[..., object]
) -> None:
    owner = line_user(shared, "own6", keep)
    owner.send("/create club6")
    owner.expect("> You joined club6")
    member = irc_user(shared, "ircm6", keep)
    member.join("#club6")
    outsider = irc_user(shared, "plain6", keep)
    ircop = irc_oper(shared, "ircop6", keep)

    outsider.send("MODE #club6 +l 5")
    outsider.num("442")
    ircop.send("MODE #club6 +l 5")
    mode = member.expect(lambda m: m.command == "MODE")
    assert (mode.nick, mode.params) == ("ircop6", ["#club6", "+l", "5"])
    owner.send("/list")
    owner.expect("> Rooms")
    assert "  club6 - 2/5 users" in owner.drain()

    outsider.send("KICK #club6 ircm6 :no")
    outsider.num("442")
    ircop.send("KICK #club6 ircm6 :out you go")
    kick = member.expect(lambda m: m.command == "KICK")
    assert (kick.nick, kick.params) == ("ircop6", ["#club6", "ircm6", "out you go"])
    assert owner.expect("< ircm6") == (
        "< ircm6 was kicked from club6 by ircop6 (1 user online): out you go"
    )
    ircop.send("KICK #club6 own6 :you too")
    assert owner.expect("< You") == "< You were kicked from club6 by ircop6: you too"


# -- shutting the server down ------------------------------------------------------------------


def _expect_exit(srv: RunningServer) -> int:
    try:
        return srv.proc.wait(15 * TIME)
    except subprocess.TimeoutExpired:
        srv.stop()
        raise


@pytest.mark.parametrize("door", ["line", "irc"])
def test_operator_shutdown_tells_everyone_and_exits_zero(
    tmp_path: Path, keep: Callable[..., object], door: str
) -> None:
    srv = start_server(tmp_path, ("line", "irc", "cs168"), config=CONFIG)
    try:
        other = line_user(srv, "other7", keep)
        irc = irc_user(srv, "ircm7", keep)
        cs = cs168_user(srv, "kay7", keep)
        if door == "line":
            op_line = line_oper(srv, "opal7", keep)
            op_line.send("/shutdown upgrade to 2.0")
            assert op_line.expect("!") == "! Server shutting down: upgrade to 2.0"
            who = "opal7"
        else:
            op_irc = irc_oper(srv, "ircop7", keep)
            op_irc.send("DIE :upgrade to 2.0")
            err = op_irc.expect(lambda m: m.command == "ERROR")
            assert "Server shutting down: upgrade to 2.0" in err.last
            who = "ircop7"
        assert other.expect("!") == "! Server shutting down: upgrade to 2.0"
        assert other.closed()
        err = irc.expect(lambda m: m.command == "ERROR")
        assert "Server shutting down: upgrade to 2.0" in err.last
        assert cs.expect("shutting") == "Server shutting down: upgrade to 2.0"
        assert _expect_exit(srv) == 0
        srv.wait_log(rf"! {who} asked the server to shut down: upgrade to 2\.0")
        srv.wait_log(r"^stopped$")
    finally:
        if srv.proc.poll() is None:
            srv.stop()

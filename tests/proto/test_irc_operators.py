"""The IRC door's server-operator commands, sans I/O, against a real hub: KILL, WALLOPS,
DIE, ChanServ CLOSE, operator status taken away, and changes the server itself makes."""

from __future__ import annotations

import pytest

from salas.core import commands as c
from salas.core.events import ShutdownAsked
from salas.core.hub import Hub, HubSettings
from salas.core.model import UserRef
from salas.proto.door import Deferred, Input
from salas.proto.irc import chanserv
from salas.proto.irc.door import IrcDoor, IrcInfo, prefix
from salas.proto.irc.message import Line, parse

SERVER = "irc.test"


class Net:
    """A hub and IRC doors wired as the network adapter wires them."""

    def __init__(self) -> None:
        self.hub = Hub(HubSettings(server_name=SERVER), seed=3)
        self.doors: dict[int, IrcDoor] = {}
        self.out: dict[int, bytearray] = {}
        self.asked: list[str] = []
        self.now = 0.0

    def connect(self, sid: int, nick: str) -> None:
        self.doors[sid] = IrcDoor(sid, "10.0.0.1", 4000 + sid, IrcInfo(server=SERVER))
        self.out[sid] = bytearray()
        self.send(sid, f"NICK {nick}", f"USER {nick} 0 * :{nick}")
        assert self.doors[sid].registered
        self.read(sid)

    def send(self, sid: int, *lines: str) -> None:
        data = b"".join(x.encode() + b"\r\n" for x in lines)
        for item in self.doors[sid].receive_data(data):
            self._run(sid, item)

    def _run(self, sid: int, item: Input) -> None:
        if isinstance(item, bytes):
            self.out[sid] += item
        elif isinstance(item, Deferred):
            for sub in item.resolve():
                self._run(sid, sub)
        elif callable(item):
            self.out[sid] += item()
        else:
            assert not isinstance(item, c.ACCOUNT_COMMANDS), item
            assert not isinstance(item, bytes | Deferred)
            self.now += 1
            self.deliver(self.hub.handle(sid, item, self.now))  # type: ignore[arg-type]

    def deliver(self, deliveries: list) -> None:  # type: ignore[type-arg]
        for d in deliveries:
            if isinstance(d.event, ShutdownAsked):
                self.asked.append(d.event.reason)
            for to in d.to:
                if to != d.exclude and to in self.doors:
                    self.out[to] += self.doors[to].render(d.event)

    def read(self, sid: int) -> list[Line]:
        data, self.out[sid] = bytes(self.out[sid]), bytearray()
        return [parse(x) for x in data.split(b"\r\n") if x]

    def oper(self, sid: int) -> None:
        self.deliver(self.hub.handle(sid, c.BecomeOper("operuser"), self.now))
        assert self.doors[sid].oper
        self.read(sid)


@pytest.fixture
def net() -> Net:
    n = Net()
    n.connect(1, "opal")
    n.connect(2, "bob")
    return n


def test_prefix_of_the_server_is_its_name() -> None:
    hub = Hub(HubSettings(server_name=SERVER))
    assert prefix(hub.server_ref()) == SERVER
    # People read back from the store have sid 0 too, and keep their full prefix.
    assert prefix(UserRef(0, "ana", "~ana", "10.0.0.1", "ana")) == "ana!~ana@10.0.0.1"
    assert prefix(UserRef(5, "bob", "~bob", "h")) == "bob!~bob@h"


def test_server_made_mode_and_topic_changes_come_from_the_server_name(net: Net) -> None:
    net.send(2, "JOIN #den")
    net.read(2)
    net.deliver(
        net.hub.set_room("den", "console", net.now, (c.ModeChange(True, "l", "5"),), "quiet")
    )
    mode, topic = net.read(2)
    assert (mode.source, mode.command, mode.params) == (SERVER, "MODE", ["#den", "+l", "5"])
    assert (topic.source, topic.command, topic.params) == (SERVER, "TOPIC", ["#den", "quiet"])


def test_operator_status_taken_away_is_mode_minus_o(net: Net) -> None:
    net.oper(1)
    net.deliver(net.hub.set_oper("opal", False, "console"))
    (m,) = net.read(1)
    assert (m.source, m.command, m.params) == ("opal!~opal@10.0.0.1", "MODE", ["opal", "-o"])
    assert not net.doors[1].oper
    net.send(1, "MODE opal")
    assert net.read(1)[0].params[-1] == "+i"


@pytest.mark.parametrize("line", ["KILL bob :spam", "WALLOPS :hello all", "DIE :now", "DIE"])
def test_non_operators_get_481_and_nothing_changes(net: Net, line: str) -> None:
    net.send(1, line)
    (m,) = net.read(1)
    assert m.command == "481", m
    assert net.hub.user_named("bob") is not None
    assert net.read(2) == []
    assert net.asked == []


@pytest.mark.parametrize("line", ["KILL", "WALLOPS", "WALLOPS :"])
def test_operator_commands_without_arguments_are_461(net: Net, line: str) -> None:
    net.oper(1)
    net.send(1, line)
    (m,) = net.read(1)
    assert m.command == "461"


def test_kill_removes_and_confirms(net: Net) -> None:
    net.oper(1)
    net.send(1, "KILL bob :spamming")
    (err,) = net.read(2)
    assert err.command == "ERROR" and "Removed by opal: spamming" in err.params[-1]
    assert net.hub.user_named("bob") is None
    (notice,) = net.read(1)
    assert (notice.command, notice.params[-1]) == ("NOTICE", "bob was removed from the server")
    net.send(1, "KILL bob")
    (m,) = net.read(1)
    assert m.command == "401"


def test_wallops_is_a_notice_to_everyone_and_die_asks_to_stop(net: Net) -> None:
    net.oper(1)
    net.send(1, "WALLOPS :back in five")
    for sid in (1, 2):
        (m,) = net.read(sid)
        assert (m.source, m.command, m.params[-1]) == (SERVER, "NOTICE", "[opal] back in five")
    net.send(1, "DIE :upgrade")
    assert net.asked == ["upgrade"]


def test_chanserv_help_usage_and_unknown(net: Net) -> None:
    net.send(2, "PRIVMSG ChanServ :HELP")
    got = net.read(2)
    assert [m.params[-1] for m in got] == list(chanserv.HELP)
    assert all(m.source == f"ChanServ!ChanServ@{SERVER}" for m in got)
    net.send(2, "PRIVMSG ChanServ :CLOSE")
    assert [m.params[-1] for m in net.read(2)] == [chanserv.USAGE]
    net.send(2, "CS frob")
    assert "HELP" in net.read(2)[0].params[-1]


def test_chanserv_close_refused_for_non_operators(net: Net) -> None:
    net.send(2, "JOIN #den")
    net.read(2)
    net.send(1, "PRIVMSG ChanServ :CLOSE #den not yours")
    (m,) = net.read(1)
    assert (m.source, m.command) == (f"ChanServ!ChanServ@{SERVER}", "NOTICE")
    assert "server operator" in m.params[-1]
    assert net.hub.room_named("den") is not None
    assert net.read(2) == []


def test_chanserv_close_by_an_operator(net: Net) -> None:
    net.oper(1)
    net.send(2, "JOIN #den")
    net.read(2)
    net.send(1, "PRIVMSG chanserv :CLOSE #den end of term")
    (kick,) = net.read(2)
    assert (kick.source, kick.command, kick.params) == (
        SERVER,
        "KICK",
        ["#den", "bob", "end of term"],
    )
    (m,) = net.read(1)
    assert m.params[-1] == "#den is closed: end of term"
    assert net.hub.room_named("den") is None
    net.send(1, "CHANSERV CLOSE #den")
    assert net.read(1)[0].params[-1] == "#den does not exist."
    net.send(2, "JOIN #lobby")
    net.send(1, "PRIVMSG ChanServ :CLOSE lobby")
    assert "can't be closed" in net.read(1)[0].params[-1]
    assert net.hub.room_named("lobby") is not None


def test_chanserv_is_no_ones_nick(net: Net) -> None:
    net.send(2, "NICK ChanServ")
    (m,) = net.read(2)
    assert m.command == "432"
    net.send(2, "WHOIS ChanServ")
    assert net.read(2)[0].params[-1] == "Channel services"

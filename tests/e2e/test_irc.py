"""The IRC door end to end: a real ``salas serve``, raw sockets, RFC 2812 / modern IRC and
IRCv3 as clients (irssi, WeeChat, HexChat, bots) expect them.

Lines from the server are parsed here by a small parser of our own, so the checks do not
trust the code they check. Every wait is bounded (``support.TIME`` scales them).

Most tests share one server (flood-exempt, so a test may send quickly); each uses its own
nicks and channels. Servers with other settings (default flood limits; short ping and
registration timeouts) are separate.
"""

from __future__ import annotations

import contextlib
import itertools
import random
import re
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from support import TIME, RunningServer, start_server, welcome

SERVER = "irc.test"
NETWORK = "TestNet"
#: An operator whose password is in the config only as an argon2id hash (SPEC allows it).
OPER_HASH = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash("open-sesame")
SHARED_CONFIG = f"""
[server]
name = "{SERVER}"
network = "{NETWORK}"

[limits]
flood_exempt = ["127.0.0.0/8"]
sendq_bytes = 65536

[[operators]]
name = "root"
password = "hunter2"

[[operators]]
name = "hashed"
password = "{OPER_HASH}"

[irc]
motd = ["Welcome to the test network", "Be nice"]
"""
TIMEOUTS_CONFIG = """
[limits]
register_timeout = 0.5

[irc]
ping_interval = 1
ping_timeout = 1
"""
TIME_TAG = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\Z")
_UNESCAPE = {":": ";", "s": " ", "\\": "\\", "r": "\r", "n": "\n"}


# -- a minimal, independent IRC client --------------------------------------------------


@dataclass
class Msg:
    raw: str
    command: str
    params: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    source: str = ""

    @property
    def nick(self) -> str:
        return self.source.split("!", 1)[0]

    @property
    def last(self) -> str:
        return self.params[-1] if self.params else ""


def _unescape(value: str) -> str:
    out, chars = [], iter(value)
    for ch in chars:
        if ch == "\\":
            nxt = next(chars, "")
            out.append(_UNESCAPE.get(nxt, nxt))
        else:
            out.append(ch)
    return "".join(out)


def parse_msg(raw: str) -> Msg:
    rest = raw
    tags: dict[str, str] = {}
    if rest.startswith("@"):
        tag_part, _, rest = rest[1:].partition(" ")
        for item in tag_part.split(";"):
            key, _, value = item.partition("=")
            tags[key] = _unescape(value)
    source = ""
    if rest.startswith(":"):
        source, _, rest = rest[1:].partition(" ")
    trailing = None
    if " :" in rest:
        rest, _, trailing = rest.partition(" :")
    words = rest.split()
    params = words[1:] + ([trailing] if trailing is not None else [])
    return Msg(raw, words[0].upper() if words else "", params, tags, source)


Want = str | Callable[[Msg], bool]
_tokens = itertools.count()


class IrcClient:
    """One raw IRC connection. ``expect`` reads until a line matches (regex on the raw line,
    or a predicate on the parsed one) and returns it; it answers the server's PINGs on its
    way unless ``auto_pong`` is off."""

    def __init__(self, port: int, *, rcvbuf: int | None = None, auto_pong: bool = True) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(5 * TIME)
        self.sock.connect(("127.0.0.1", port))
        self.buf = b""
        self.seen: list[Msg] = []
        self.nick = ""
        self.auto_pong = auto_pong
        self.eof = False

    # -- sending --

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\r\n")

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    # -- receiving --

    def tail(self, n: int = 15) -> list[str]:
        return [m.raw if len(m.raw) < 160 else m.raw[:157] + "..." for m in self.seen[-n:]]

    def _fill(self, deadline: float) -> bool:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        if self.eof:
            raise ConnectionError(f"server closed the connection; last lines: {self.tail()}")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return False
        except OSError:
            data = b""
        if not data:
            self.eof = True
            raise ConnectionError(f"server closed the connection; last lines: {self.tail()}")
        self.buf += data
        return True

    def next_msg(self, timeout: float = 5.0) -> Msg:
        deadline = time.monotonic() + timeout * TIME
        while True:
            while b"\n" not in self.buf:
                if not self._fill(deadline):
                    raise TimeoutError(f"no line within {timeout}s; last lines: {self.tail()}")
            raw, self.buf = self.buf.split(b"\n", 1)
            assert raw.endswith(b"\r"), f"line not ended by CR LF: {raw!r}"
            body = raw.split(b" ", 1)[1] if raw.startswith(b"@") else raw
            assert len(body) + 1 <= 512, f"line over 512 bytes: {raw!r}"
            msg = parse_msg(raw[:-1].decode("utf-8"))
            self.seen.append(msg)
            if self.auto_pong and msg.command == "PING" and not msg.source:
                self.send(f"PONG :{msg.last}")
            return msg

    def expect(self, want: Want, timeout: float = 5.0) -> Msg:
        """The first line that matches ``want`` (a regex searched in the raw line, or a
        predicate on the parsed line); lines before it are skipped."""
        match = (lambda m: re.search(want, m.raw) is not None) if isinstance(want, str) else want
        deadline = time.monotonic() + timeout * TIME
        while True:
            left = (deadline - time.monotonic()) / TIME
            if left <= 0:
                raise AssertionError(f"{want!r} not seen in {timeout}s; last: {self.tail()}")
            try:
                msg = self.next_msg(left)
            except TimeoutError:
                continue
            if match(msg):
                return msg

    def num(self, code: str, timeout: float = 5.0) -> Msg:
        return self.expect(lambda m: m.command == code, timeout)

    def until(self, want: Want, timeout: float = 5.0) -> list[Msg]:
        """Every line up to and including the one matching ``want``."""
        start = len(self.seen)
        self.expect(want, timeout)
        return self.seen[start:]

    def sync(self, timeout: float = 5.0) -> list[Msg]:
        """Round trip a PING: every line the server sent before its PONG."""
        token = f"sync{next(_tokens)}"
        self.send(f"PING {token}")
        got = self.until(lambda m: m.command == "PONG" and m.last == token, timeout)
        return got[:-1]

    def closed(self, timeout: float = 5.0) -> bool:
        """True once the server has closed the connection (lines left are read)."""
        deadline = time.monotonic() + timeout * TIME
        try:
            while True:
                while b"\n" in self.buf:
                    raw, self.buf = self.buf.split(b"\n", 1)
                    self.seen.append(parse_msg(raw.rstrip(b"\r").decode("utf-8", "replace")))
                if not self._fill(deadline):
                    return False
        except ConnectionError:
            return True

    def close(self) -> None:
        self.sock.close()

    # -- registration --

    def cap_ls(self) -> set[str]:
        """``CAP LS 302`` (multi-line replies followed), the advertised capability names."""
        self.send("CAP LS 302")
        names: set[str] = set()
        for _ in range(20):
            m = self.expect(lambda m: m.command == "CAP" and m.params[1:2] == ["LS"])
            names.update(tok.split("=", 1)[0] for tok in m.last.split())
            if m.params[2] != "*":
                return names
        raise AssertionError("CAP LS never ended")

    def register(self, nick: str, caps: tuple[str, ...] = (), user: str = "") -> list[Msg]:
        """CAP negotiation (when ``caps``), NICK and USER; returns the welcome burst up to
        the end of the MOTD (376) or its absence (422)."""
        start = len(self.seen)
        if caps:
            self.cap_ls()
            self.send(f"CAP REQ :{' '.join(caps)}")
            ack = self.expect(lambda m: m.command == "CAP" and m.params[1] in ("ACK", "NAK"))
            assert ack.params[1] == "ACK", ack.raw
            assert set(ack.last.split()) == set(caps), ack.raw
        self.send(f"NICK {nick}")
        self.send(f"USER {user or nick} 0 * :{nick} Real")
        if caps:
            self.send("CAP END")
        self.expect(lambda m: m.command in ("376", "422"))
        self.nick = nick
        return self.seen[start:]

    def join(self, *chans: str) -> None:
        """JOIN and wait for the end of each channel's NAMES."""
        self.send(f"JOIN {','.join(chans)}")
        for chan in chans:
            self.expect(lambda m, c=chan: m.command == "366" and m.params[1].lower() == c.lower())


def pump(clients: list[IrcClient], done: Callable[[], bool], timeout: float) -> None:
    """Read from every client in turn (answering PINGs) until ``done()`` or the timeout."""
    deadline = time.monotonic() + timeout * TIME
    while not done() and time.monotonic() < deadline:
        for c in clients:
            if c.eof:
                continue
            with contextlib.suppress(TimeoutError, ConnectionError):
                c.next_msg(0.02)


def names_of(msgs: list[Msg], chan: str) -> list[str]:
    """The words of every 353 reply for ``chan``."""
    out: list[str] = []
    for m in msgs:
        if m.command == "353" and m.params[2].lower() == chan.lower():
            out += m.last.split()
    return out


def names(c: IrcClient, chan: str) -> list[str]:
    c.send(f"NAMES {chan}")
    return names_of(c.until(lambda m: m.command == "366"), chan)


def is_315(m: Msg) -> bool:
    return m.command == "315"


def isupport(burst: list[Msg]) -> dict[str, str]:
    out: dict[str, str] = {}
    for m in burst:
        if m.command == "005":
            for tok in m.params[1:-1]:
                key, _, value = tok.partition("=")
                out[key] = value
    return out


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    srv = start_server(tmp_path_factory.mktemp("irc"), ("line", "irc"), config=SHARED_CONFIG)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def default_srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """Embedded defaults: loopback is not flood-exempt, no MOTD."""
    srv = start_server(tmp_path_factory.mktemp("irc-default"), ("irc",))
    yield srv
    srv.stop()


@pytest.fixture
def clients() -> Iterator[list[IrcClient]]:
    made: list[IrcClient] = []
    yield made
    for c in made:
        c.close()


@pytest.fixture
def connect(shared: RunningServer, clients: list[IrcClient]) -> Callable[..., IrcClient]:
    """A fresh connection to the shared server, closed after the test."""

    def make(**kw: object) -> IrcClient:
        c = IrcClient(shared.ports["irc"], **kw)  # type: ignore[arg-type]
        clients.append(c)
        return c

    return make


@pytest.fixture
def user(connect: Callable[..., IrcClient]) -> Callable[..., IrcClient]:
    """A registered client on the shared server."""

    def make(nick: str, caps: tuple[str, ...] = ()) -> IrcClient:
        c = connect()
        c.register(nick, caps)
        return c

    return make


# -- registration ---------------------------------------------------------------------------


def test_registration_welcome_isupport_lusers_motd(connect: Callable[..., IrcClient]) -> None:
    c = connect()
    c.send("PASS ignored-password")
    burst = c.register("wendy", user="wen")
    codes = [m.command for m in burst]
    for code in ("001", "002", "003", "004", "005", "251", "255", "375", "372", "376"):
        assert code in codes, (code, codes)
    assert codes.index("001") < codes.index("002") < codes.index("003") < codes.index("004")
    assert codes.index("004") < codes.index("005") < codes.index("251") < codes.index("375")
    assert all(m.source == SERVER for m in burst if m.command.isdigit())
    assert all(m.params[0] == "wendy" for m in burst if m.command.isdigit())
    welcome_line = burst[codes.index("001")]
    assert welcome_line.last.startswith(f"Welcome to the {NETWORK} IRC Network")
    assert welcome_line.last.endswith("wendy!~wen@127.0.0.1")
    myinfo = burst[codes.index("004")]
    assert myinfo.params[1] == SERVER
    assert set("biklmnotv") <= set(myinfo.params[4])
    for m in burst:
        if m.command == "005":
            assert m.last == "are supported by this server"
    tokens = isupport(burst)
    assert tokens["CASEMAPPING"] == "ascii"
    assert tokens["CHANTYPES"] == "#"
    assert tokens["PREFIX"] == "(ov)@+"
    lists, always, when_set, flags = tokens["CHANMODES"].split(",")
    assert "b" in lists and "k" in always and "l" in when_set
    assert set("imnt") <= set(flags)
    assert re.fullmatch(r"#:\d+", tokens["CHANLIMIT"])
    assert int(tokens["NICKLEN"]) >= 9
    assert int(tokens["CHANNELLEN"]) >= 32
    assert int(tokens["TOPICLEN"]) >= 80
    assert int(tokens["MODES"]) >= 1
    assert tokens["NETWORK"] == NETWORK
    targmax = dict(t.split(":", 1) for t in tokens["TARGMAX"].split(","))
    assert {"PRIVMSG", "NOTICE", "JOIN"} <= set(targmax)
    motd = [m.last for m in burst if m.command == "372"]
    assert motd == ["- Welcome to the test network", "- Be nice"]


def test_lusers_and_motd_on_request(user: Callable[..., IrcClient]) -> None:
    c = user("lucy")
    c.send("LUSERS")
    got = c.until(lambda m: m.command == "266")
    codes = [m.command for m in got]
    assert {"251", "252", "254", "255", "265"} <= set(codes), codes
    assert re.search(r"There are \d+ users", got[codes.index("251")].last)
    c.send("MOTD")
    got = c.until(lambda m: m.command == "376")
    assert [m.command for m in got] == ["375", "372", "372", "376"]


def test_no_motd_is_422(default_srv: RunningServer, clients: list[IrcClient]) -> None:
    c = IrcClient(default_srv.ports["irc"])
    clients.append(c)
    burst = c.register("nomotd")
    assert burst[-1].command == "422"
    assert not any(m.command in ("375", "372", "376") for m in burst)
    c.send("MOTD")
    assert c.num("422").params[0] == "nomotd"


def test_cap_negotiation_holds_registration_until_cap_end(
    connect: Callable[..., IrcClient],
) -> None:
    c = connect()
    advertised = c.cap_ls()
    required = {
        "cap-notify",
        "message-tags",
        "server-time",
        "echo-message",
        "multi-prefix",
        "away-notify",
        "extended-join",
        "account-tag",
        "batch",
        "labeled-response",
        "userhost-in-names",
    }
    assert required <= advertised, required - advertised
    c.send("NICK capper")
    c.send("USER capper 0 * :Cap Per")
    c.send("CAP REQ :multi-prefix server-time cap-notify")
    ack = c.expect(lambda m: m.command == "CAP")
    assert ack.params[1:] == ["ACK", "multi-prefix server-time cap-notify"]
    before = c.sync()
    assert not any(m.command == "001" for m in before), "registered before CAP END"
    c.send("CAP LIST")
    listed = c.expect(lambda m: m.command == "CAP" and m.params[1] == "LIST")
    assert {"multi-prefix", "server-time"} <= set(listed.last.split())
    c.send("CAP END")
    welcome_line = c.num("001")
    assert welcome_line.params[0] == "capper"


def test_cap_req_unknown_is_nak_and_changes_nothing(connect: Callable[..., IrcClient]) -> None:
    c = connect()
    c.cap_ls()
    c.send("CAP REQ :echo-message no-such-cap")
    nak = c.expect(lambda m: m.command == "CAP")
    assert nak.params[1] == "NAK"
    assert nak.last == "echo-message no-such-cap"
    c.send("CAP LIST")
    listed = c.expect(lambda m: m.command == "CAP" and m.params[1] == "LIST")
    assert "echo-message" not in listed.last.split()
    c.send("CAP REQ :-echo-message")  # removing a cap one lacks is fine
    assert c.expect(lambda m: m.command == "CAP").params[1] == "ACK"


def test_commands_before_registration_get_451(connect: Callable[..., IrcClient]) -> None:
    c = connect()
    c.send("JOIN #early")
    m = c.num("451")
    assert m.source == SERVER and m.params[0] == "*"
    c.send("PRIVMSG someone :hi")
    c.num("451")
    c.register("late")  # and it may still register


def test_user_needs_four_params_461(connect: Callable[..., IrcClient]) -> None:
    c = connect()
    c.send("USER onlyone")
    m = c.num("461")
    assert m.params[1] == "USER" and m.params[0] == "*"


def test_reregistering_is_462(user: Callable[..., IrcClient]) -> None:
    c = user("rereg")
    c.send("USER again 0 * :Again")
    assert c.num("462").params[0] == "rereg"
    c.send("PASS late")
    assert c.num("462").params[0] == "rereg"


def test_nick_errors_431_432_433_before_registration(
    connect: Callable[..., IrcClient], user: Callable[..., IrcClient]
) -> None:
    user("takenick")
    c = connect()
    c.send("NICK")
    assert c.num("431").params[0] == "*"
    for bad in ("9lives", "bad!nick", "x" * 31, "a,b"):
        c.send(f"NICK {bad}")
        m = c.num("432")
        assert m.params[:2] == ["*", bad], m.raw
    c.send("NICK TakeNick")  # names compare case-insensitively
    c.send("USER t 0 * :T")
    m = c.num("433")
    assert m.params[:2] == ["*", "TakeNick"]
    c.send("NICK freenick")
    assert c.num("001").params[0] == "freenick"


def test_nick_change_is_seen_by_self_and_channel_peers(user: Callable[..., IrcClient]) -> None:
    a = user("nicka")
    b = user("nickb")
    a.join("#nickchan")
    b.join("#nickchan")
    a.send("NICK nicka2")
    m = a.expect(lambda m: m.command == "NICK")
    assert m.source == "nicka!~nicka@127.0.0.1" and m.params == ["nicka2"]
    m = b.expect(lambda m: m.command == "NICK")
    assert m.source.startswith("nicka!") and m.params == ["nicka2"]
    b.send("NICK NICKA2")
    assert b.num("433").params[:2] == ["nickb", "NICKA2"]
    b.send("NICK 1nope")
    assert b.num("432").params[:2] == ["nickb", "1nope"]
    b.send("NICK :")
    assert b.num("431").params[0] == "nickb"
    a.send("PRIVMSG #nickchan :renamed")
    assert b.expect(lambda m: m.command == "PRIVMSG").nick == "nicka2"


def test_unknown_command_421_and_missing_params_461(user: Callable[..., IrcClient]) -> None:
    c = user("errs")
    c.send("FROBNICATE now")
    m = c.num("421")
    assert m.params[:2] == ["errs", "FROBNICATE"]
    for cmd in ("JOIN", "PART", "MODE", "TOPIC", "KICK #x", "INVITE someone", "WHOIS"):
        c.send(cmd)
        m = c.num("461")
        assert m.params[:2] == ["errs", cmd.split()[0]], m.raw
    c.send("PRIVMSG")
    assert c.num("411").params[0] == "errs"
    c.send("PRIVMSG errs")
    assert c.num("412").params[0] == "errs"


def test_commands_pipelined_with_registration_are_not_refused(
    connect: Callable[..., IrcClient],
) -> None:
    c = connect()
    c.send_raw(b"NICK piper\r\nUSER piper 0 * :Piper\r\nJOIN #pipeline\r\n")
    got = c.until(lambda m: m.command == "366" or m.command == "451")
    assert got[-1].command == "366", [m.raw for m in got]


# -- PING / PONG, QUIT, ERROR ---------------------------------------------------------------


def test_client_ping_gets_pong_before_and_after_registration(
    connect: Callable[..., IrcClient],
) -> None:
    c = connect()
    c.send("PING :early bird")
    m = c.expect(lambda m: m.command == "PONG")
    assert m.source == SERVER and m.params == [SERVER, "early bird"]
    c.register("pinger")
    c.send("PING token123")
    m = c.expect(lambda m: m.command == "PONG")
    assert m.params == [SERVER, "token123"]
    c.send("PING")
    assert c.num("461").params[1] == "PING"


def test_quit_sends_error_closes_and_peers_see_quit(user: Callable[..., IrcClient]) -> None:
    a = user("quitter")
    b = user("stayer")
    a.join("#quitchan")
    b.join("#quitchan")
    a.send("QUIT :gone fishing")
    err = a.expect(lambda m: m.command == "ERROR")
    assert err.last.startswith("Closing Link:") and "gone fishing" in err.last
    assert a.closed()
    m = b.expect(lambda m: m.command == "QUIT")
    assert m.source == "quitter!~quitter@127.0.0.1"
    assert "gone fishing" in m.last


def test_unregistered_quit_gets_error(connect: Callable[..., IrcClient]) -> None:
    c = connect()
    c.send("QUIT")
    assert c.expect(lambda m: m.command == "ERROR").last.startswith("Closing Link:")
    assert c.closed()


# -- channels -------------------------------------------------------------------------------


def test_join_creates_channel_first_member_is_operator(user: Callable[..., IrcClient]) -> None:
    a = user("joinera")
    b = user("joinerb")
    a.send("JOIN #fresh")
    got = a.until(lambda m: m.command == "366")
    join = got[0]
    assert join.command == "JOIN" and join.source == "joinera!~joinera@127.0.0.1"
    assert join.params == ["#fresh"]
    assert names_of(got, "#fresh") == ["@joinera"]
    assert got[-1].params[:2] == ["joinera", "#fresh"]
    b.send("JOIN #FRESH")  # channel names compare case-insensitively
    got = b.until(lambda m: m.command == "366")
    assert sorted(names_of(got, "#fresh")) == ["@joinera", "joinerb"]
    assert got[-2].params[1] == "="
    m = a.expect(lambda m: m.command == "JOIN")
    assert m.nick == "joinerb" and m.params[0].lower() == "#fresh"
    b.send("JOIN #fresh")  # already there: nothing happens
    assert not [m for m in b.sync() if m.command in ("JOIN", "443")]


def test_join_several_channels_with_keys_and_join_0(user: Callable[..., IrcClient]) -> None:
    op = user("keyop")
    op.join("#keyed1", "#keyed2")
    op.send("MODE #keyed1 +k one")
    op.expect(lambda m: m.command == "MODE")
    op.send("MODE #keyed2 +k two")
    op.expect(lambda m: m.command == "MODE")
    c = user("keyuser")
    c.send("JOIN #keyed1 wrong")
    m = c.num("475")
    assert m.params[:2] == ["keyuser", "#keyed1"]
    c.send("JOIN #keyed1,#keyed2,#keyed3 one,two")
    got = c.until(lambda m: m.command == "366" and m.params[1] == "#keyed3")
    joined = [m.params[0] for m in got if m.command == "JOIN"]
    assert joined == ["#keyed1", "#keyed2", "#keyed3"]
    c.send("JOIN 0")
    parted = []
    for _ in range(3):
        parted.append(c.expect(lambda m: m.command == "PART").params[0])
    assert sorted(parted) == ["#keyed1", "#keyed2", "#keyed3"]
    m = op.expect(lambda m: m.command == "PART")
    assert m.nick == "keyuser"


def test_invalid_channel_names_are_403(user: Callable[..., IrcClient]) -> None:
    c = user("badchan")
    for bad in ("nohash", "#", "#bad*star", "#" + "x" * 60):
        c.send(f"JOIN {bad}")
        m = c.num("403")
        assert m.params[:2] == ["badchan", bad], m.raw
    c.send("PART #never-made")
    assert c.num("403").params[1] == "#never-made"


def test_part_with_reason_and_442(user: Callable[..., IrcClient]) -> None:
    a = user("partera")
    b = user("parterb")
    a.join("#partchan")
    b.join("#partchan")
    b.send("PART #partchan :see you")
    m = b.expect(lambda m: m.command == "PART")
    assert m.params == ["#partchan", "see you"] and m.nick == "parterb"
    m = a.expect(lambda m: m.command == "PART")
    assert m.params == ["#partchan", "see you"]
    b.send("PART #partchan")
    assert b.num("442").params[:2] == ["parterb", "#partchan"]


def test_privmsg_and_notice_to_channel_and_nick(user: Callable[..., IrcClient]) -> None:
    a = user("talka")
    b = user("talkb")
    a.join("#talk")
    b.join("#talk")
    a.send("PRIVMSG #talk :hello channel")
    m = b.expect(lambda m: m.command == "PRIVMSG")
    assert m.source == "talka!~talka@127.0.0.1" and m.params == ["#talk", "hello channel"]
    a.send("NOTICE #talk :a notice")
    m = b.expect(lambda m: m.command == "NOTICE")
    assert m.params == ["#talk", "a notice"]
    a.send("PRIVMSG talkb :just you")
    m = b.expect(lambda m: m.command == "PRIVMSG")
    assert m.params == ["talkb", "just you"] and m.nick == "talka"
    a.send("NOTICE talkb :private notice")
    assert b.expect(lambda m: m.command == "NOTICE").params == ["talkb", "private notice"]
    a.send("PRIVMSG talkb,#talk :to both")
    got = [m.params for m in b.until(lambda m: m.params == ["#talk", "to both"])]
    assert ["talkb", "to both"] in got
    a.send("PRIVMSG #talk :\x01ACTION waves\x01")
    assert b.expect(lambda m: m.command == "PRIVMSG").last == "\x01ACTION waves\x01"
    # Without echo-message the sender gets nothing back.
    assert not [m for m in a.sync() if m.command in ("PRIVMSG", "NOTICE")]


def test_privmsg_errors_401_403_404_and_notice_gets_no_errors(
    user: Callable[..., IrcClient],
) -> None:
    a = user("errsender")
    owner = user("errowner")
    owner.join("#closedchan")  # +n by default: no messages from outside
    a.send("PRIVMSG nosuchnick :hi")
    assert a.num("401").params[:2] == ["errsender", "nosuchnick"]
    a.send("PRIVMSG #nosuchchan :hi")
    m = a.expect(lambda m: m.command in ("401", "403"))
    assert m.params[:2] == ["errsender", "#nosuchchan"]
    a.send("PRIVMSG #closedchan :from outside")
    assert a.num("404").params[:2] == ["errsender", "#closedchan"]
    for target in ("nosuchnick", "#nosuchchan", "#closedchan"):
        a.send(f"NOTICE {target} :quiet")
    assert not [m for m in a.sync() if m.command.isdigit()], "NOTICE must never get errors"
    assert not [m for m in owner.sync() if "outside" in m.raw or "quiet" in m.raw]


def test_privmsg_to_away_user_gets_301(user: Callable[..., IrcClient]) -> None:
    a = user("awaysender")
    b = user("awaytarget")
    b.send("AWAY :out to lunch")
    b.num("306")
    a.send("PRIVMSG awaytarget :are you there?")
    got = a.sync()
    assert any(m.command == "301" and m.params[1:] == ["awaytarget", "out to lunch"] for m in got)


def test_topic_set_query_331_332_333_and_482(user: Callable[..., IrcClient]) -> None:
    op = user("topicop")
    other = user("topicother")
    op.join("#topics")
    op.send("TOPIC #topics")
    assert op.num("331").params[:2] == ["topicop", "#topics"]
    op.send("TOPIC #topics :All about topics")
    m = op.expect(lambda m: m.command == "TOPIC")
    assert m.params == ["#topics", "All about topics"] and m.nick == "topicop"
    other.send("TOPIC #topics :sneaky")
    assert other.num("442").params[1] == "#topics"
    other.send("JOIN #topics")
    got = other.until(lambda m: m.command == "366")
    assert [m.params[1:] for m in got if m.command == "332"] == [["#topics", "All about topics"]]
    whotime = next(m for m in got if m.command == "333")
    assert whotime.params[1:3] == ["#topics", "topicop"]
    assert abs(int(whotime.params[3]) - time.time()) < 120
    other.send("TOPIC #topics :sneaky")  # +t: operators only
    assert other.num("482").params[:2] == ["topicother", "#topics"]
    other.send("TOPIC #topics")
    assert other.num("332").last == "All about topics"


def test_names_list_who_whois(user: Callable[..., IrcClient]) -> None:
    a = user("infoa")
    b = user("infob")
    a.join("#infochan")
    b.join("#infochan")
    a.send("TOPIC #infochan :info here")
    a.expect(lambda m: m.command == "TOPIC")
    assert sorted(names(b, "#infochan")) == ["@infoa", "infob"]
    b.send("LIST")
    got = b.until(lambda m: m.command == "323")
    assert got[0].command == "321"
    rows = {m.params[1]: m for m in got if m.command == "322"}
    assert rows["#infochan"].params[2] == "2"
    assert "info here" in rows["#infochan"].last
    b.send("WHO #infochan")
    got = b.until(lambda m: m.command == "315")
    who = {m.params[5]: m for m in got if m.command == "352"}
    assert set(who) == {"infoa", "infob"}
    row = who["infoa"]
    assert row.params[1:5] == ["#infochan", "~infoa", "127.0.0.1", SERVER]
    assert row.params[6] == "H@"
    assert row.last == "0 infoa Real"
    assert who["infob"].params[6] == "H"
    assert got[-1].params[:2] == ["infob", "#infochan"]
    b.send("WHO infoa")
    got = b.until(lambda m: m.command == "315")
    assert [m.params[5] for m in got if m.command == "352"] == ["infoa"]
    b.send("WHOIS infoa")
    got = b.until(lambda m: m.command == "318")
    codes = [m.command for m in got]
    for code in ("311", "312", "317", "319"):
        assert code in codes, codes
    user_line = got[codes.index("311")]
    assert user_line.params[1:] == ["infoa", "~infoa", "127.0.0.1", "*", "infoa Real"]
    assert got[codes.index("319")].last.split() == ["@#infochan"]
    b.send("WHOIS ghostnick")
    assert b.num("401").params[:2] == ["infob", "ghostnick"]


@pytest.mark.parametrize(
    "mask",
    ["nobodyhere", "#nowhere"],
)
def test_who_matching_nobody_is_just_end_of_who(user: Callable[..., IrcClient], mask: str) -> None:
    c = user("whoasker" + str(len(mask)))
    c.send(f"WHO {mask}")
    got = c.sync()
    assert [m.command for m in got] == ["315"], [m.raw for m in got]
    assert got[-1].params[1] == mask


def test_names_of_missing_channel_is_just_end_of_names(user: Callable[..., IrcClient]) -> None:
    c = user("namesasker")
    c.send("NAMES #nosuchnames")
    got = c.sync()
    assert [m.command for m in got] == ["366"], [m.raw for m in got]
    assert got[0].params[1] == "#nosuchnames"


def test_userhost_of_another_user(user: Callable[..., IrcClient]) -> None:
    c = user("uhasker")
    user("uhtarget")
    c.send("USERHOST uhasker uhtarget")
    reply = c.num("302").last.split()
    assert sorted(reply) == ["uhasker=+~uhasker@127.0.0.1", "uhtarget=+~uhtarget@127.0.0.1"]


def test_ison(user: Callable[..., IrcClient]) -> None:
    c = user("isonasker")
    user("isontarget")
    c.send("ISON isontarget isonmissing")
    m = c.expect(lambda m: m.command in ("303", "421"))
    assert m.command == "303" and m.last.split() == ["isontarget"]


def test_user_modes(user: Callable[..., IrcClient]) -> None:
    c = user("umoder")
    user("umodeother")
    c.send("MODE umoder")
    m = c.num("221")
    assert m.params[0] == "umoder" and m.params[1].startswith("+")
    c.send("MODE umoder +Z")
    assert c.num("501").params[0] == "umoder"
    c.send("MODE umodeother")
    assert c.num("502").params[0] == "umoder"
    c.send("MODE bad!nick")
    assert c.num("401").params[:2] == ["umoder", "bad!nick"]


def test_user_mode_on_missing_nick_is_401(user: Callable[..., IrcClient]) -> None:
    c = user("umodeghost")
    c.send("MODE nosuchuser")
    m = c.expect(lambda m: m.command in ("401", "502"))
    assert m.command == "401" and m.params[:2] == ["umodeghost", "nosuchuser"]


def test_channel_mode_query_and_limit(user: Callable[..., IrcClient]) -> None:
    op = user("limop")
    b = user("limb")
    c = user("limc")
    op.join("#limited")
    op.send("MODE #limited")
    m = op.num("324")
    assert m.params[1] == "#limited" and set("nt") <= set(m.params[2])
    assert op.num("329").params[1] == "#limited"
    op.send("MODE #limited +l 2")
    m = op.expect(lambda m: m.command == "MODE")
    assert m.params == ["#limited", "+l", "2"] and m.nick == "limop"
    op.send("MODE #limited")
    m = op.num("324")
    assert "l" in m.params[2] and m.params[3:] == ["2"]
    b.join("#limited")
    c.send("JOIN #limited")
    assert c.num("471").params[:2] == ["limc", "#limited"]
    op.send("MODE #limited -l")
    assert op.expect(lambda m: m.command == "MODE").params == ["#limited", "-l"]
    c.join("#limited")
    b.send("MODE #limited +l 9")  # not an operator
    assert b.num("482").params[:2] == ["limb", "#limited"]
    op.send("MODE #limited +l")
    assert op.num("461").params[1] == "MODE"
    op.send("MODE #limited +X")
    assert op.num("472").params[:2] == ["limop", "X"]
    op.send("MODE #nosuchmodechan")
    assert op.num("403").params[1] == "#nosuchmodechan"


def test_channel_key_mode(user: Callable[..., IrcClient]) -> None:
    op = user("kop")
    b = user("kb")
    op.join("#kchan")
    op.send("MODE #kchan +k sesame")
    assert op.expect(lambda m: m.command == "MODE").params == ["#kchan", "+k", "sesame"]
    b.send("JOIN #kchan")
    assert b.num("475").params[:2] == ["kb", "#kchan"]
    b.send("MODE #kchan")  # outsiders see that there is a key, not the key
    m = b.num("324")
    assert "k" in m.params[2] and "sesame" not in m.params
    b.send("JOIN #kchan sesame")
    b.expect(lambda m: m.command == "366")
    op.send("MODE #kchan -k *")
    m = op.expect(lambda m: m.command == "MODE")
    assert m.params[:2] == ["#kchan", "-k"]


def test_invite_only_and_invite(user: Callable[..., IrcClient]) -> None:
    op = user("invop")
    member = user("invmember")
    guest = user("invguest")
    op.join("#inv")
    member.join("#inv")
    op.send("MODE #inv +i")
    assert op.expect(lambda m: m.command == "MODE").params == ["#inv", "+i"]
    guest.send("JOIN #inv")
    assert guest.num("473").params[:2] == ["invguest", "#inv"]
    member.send("INVITE invguest #inv")  # +i: only operators may invite
    assert member.num("482").params[:2] == ["invmember", "#inv"]
    op.send("INVITE invguest #inv")
    m = op.num("341")
    assert m.params == ["invop", "invguest", "#inv"]
    m = guest.expect(lambda m: m.command == "INVITE")
    assert m.source == "invop!~invop@127.0.0.1" and m.params == ["invguest", "#inv"]
    guest.join("#inv")
    op.send("INVITE invmember #inv")
    assert op.num("443").params[:3] == ["invop", "invmember", "#inv"]
    op.send("INVITE nobodyatall #inv")
    assert op.num("401").params[:2] == ["invop", "nobodyatall"]
    outsider = user("invout")
    outsider.send("INVITE invop #inv")
    assert outsider.num("442").params[:2] == ["invout", "#inv"]


def test_invite_notify_reaches_channel_operators(user: Callable[..., IrcClient]) -> None:
    op = user("inop", caps=("invite-notify",))
    member = user("inmember")
    user("inguest")
    op.join("#invnotify")
    member.join("#invnotify")
    member.send("INVITE inguest #invnotify")
    member.num("341")
    invites = [m for m in op.sync() if m.command == "INVITE"]
    assert [(m.nick, m.params) for m in invites] == [("inmember", ["inguest", "#invnotify"])]


def test_bans(user: Callable[..., IrcClient]) -> None:
    op = user("banop")
    bad = user("badguy")
    bad.join("#banned")
    op.join("#banned")  # bad came first: it is the operator there
    bad.send("MODE #banned +o banop")
    bad.expect(lambda m: m.command == "MODE" and m.params[1] == "+o")
    bad.send("MODE #banned -o badguy")
    bad.expect(lambda m: m.command == "MODE" and m.params[1] == "-o")
    op.send("MODE #banned +b badguy!*@*")
    m = op.expect(lambda m: m.command == "MODE" and m.params[1] == "+b")
    assert m.params == ["#banned", "+b", "badguy!*@*"] and m.nick == "banop"
    op.send("MODE #banned +b")
    got = op.until(lambda m: m.command == "368")
    assert [m.params[1:3] for m in got if m.command == "367"] == [["#banned", "badguy!*@*"]]
    bad.send("PRIVMSG #banned :can I talk?")  # banned members may not speak
    assert bad.num("404").params[1] == "#banned"
    bad.send("PART #banned")
    bad.expect(lambda m: m.command == "PART")
    bad.send("JOIN #banned")
    assert bad.num("474").params[:2] == ["badguy", "#banned"]
    op.send("MODE #banned -b badguy!*@*")
    m = op.expect(lambda m: m.command == "MODE" and m.params[1] == "-b")
    assert m.params == ["#banned", "-b", "badguy!*@*"]
    bad.join("#banned")
    # A change beside a bare "b" is made, and the list follows it.
    op.send("MODE #banned +vb badguy")
    m = op.expect(lambda m: m.command == "MODE")
    assert m.params == ["#banned", "+v", "badguy"]
    op.num("368")
    # A ban mask past its bound, and a key with a space, are refused with 696.
    op.send("MODE #banned +b " + "m" * 151)
    assert op.num("696").params[1:4] == ["#banned", "b", "m" * 151]
    op.send("MODE #banned +k :a b")
    assert op.num("696").params[1:4] == ["#banned", "k", "a_b"]


def test_op_voice_and_multi_prefix(user: Callable[..., IrcClient]) -> None:
    op = user("prefop")
    plain = user("prefplain")
    multi = user("prefmulti", caps=("multi-prefix",))
    op.join("#prefixes")
    plain.join("#prefixes")
    multi.join("#prefixes")
    op.send("MODE #prefixes +ov prefmulti prefmulti")
    m = op.expect(lambda m: m.command == "MODE")
    assert m.params[1] == "+ov" and m.params[2:] == ["prefmulti", "prefmulti"]
    assert "@prefmulti" in names(plain, "#prefixes")
    assert "@+prefmulti" in names(multi, "#prefixes")
    multi.send("WHO #prefixes")
    rows = {m.params[5]: m.params[6] for m in multi.until(is_315) if m.command == "352"}
    assert rows["prefmulti"] == "H@+"
    plain.send("MODE #prefixes +v prefplain")  # not an operator
    assert plain.num("482").params[1] == "#prefixes"
    op.send("MODE #prefixes +o nosuchnick")
    assert op.num("401").params[1] == "nosuchnick"
    user("prefoutside")
    op.send("MODE #prefixes +v prefoutside")
    assert op.num("441").params[1:3] == ["prefoutside", "#prefixes"]


def test_kick(user: Callable[..., IrcClient]) -> None:
    op = user("kickop")
    victim = user("kickvictim")
    watcher = user("kickwatch")
    op.join("#kicks")
    victim.join("#kicks")
    watcher.join("#kicks")
    watcher.send("KICK #kicks kickvictim")
    assert watcher.num("482").params[:2] == ["kickwatch", "#kicks"]
    op.send("KICK #kicks kickvictim :behave")
    for c in (op, victim, watcher):
        m = c.expect(lambda m: m.command == "KICK")
        assert m.source == "kickop!~kickop@127.0.0.1"
        assert m.params == ["#kicks", "kickvictim", "behave"]
    op.send("KICK #kicks kickvictim")
    assert op.num("441").params[1:3] == ["kickvictim", "#kicks"]
    op.send("KICK #kicks ghostuser")
    assert op.num("401").params[1] == "ghostuser"
    victim.send("KICK #kicks kickop")
    assert victim.num("442").params[1] == "#kicks"
    victim.send("PRIVMSG #kicks :let me in")
    assert victim.num("404").params[1] == "#kicks"


def test_whois_of_someone_in_many_channels_and_long_away_stays_in_512_byte_lines(
    user: Callable[..., IrcClient],
) -> None:
    busy = user("manychan")
    chans = [f"#channel-number-{i:03d}-long" for i in range(30)]
    busy.join(*chans[:15])
    busy.join(*chans[15:])
    busy.send("AWAY :" + "é" * 250)  # 500 bytes: a 301 with it would pass 512
    busy.num("306")
    looker = user("looker")
    looker.send("WHOIS manychan")
    got = looker.until(lambda m: m.command == "318")
    listed = [w.lstrip("@") for m in got if m.command == "319" for w in m.last.split()]
    assert sorted(listed) == chans
    assert all(len(m.raw.encode()) + 2 <= 512 for m in got), max(len(m.raw.encode()) for m in got)
    (away,) = [m for m in got if m.command == "301"]
    assert away.last and set(away.last) == {"é"}


def test_one_kick_puts_out_several_people(user: Callable[..., IrcClient]) -> None:
    op = user("mkop")
    tokens = isupport(op.seen)
    assert "KICK:4" in tokens["TARGMAX"].split(",")
    others = [user(f"mkv{i}") for i in range(3)]
    op.join("#mkick")
    for o in others:
        o.join("#mkick")
    op.sync()
    op.send("KICK #mkick mkv0,mkv1,ghost :both of you")
    kicked = [op.expect(lambda m: m.command == "KICK").params for _ in range(2)]
    assert kicked == [["#mkick", "mkv0", "both of you"], ["#mkick", "mkv1", "both of you"]]
    assert op.num("401").params[1] == "ghost"
    op.send("NAMES #mkick")
    assert op.num("353").last.split() == ["@mkop", "mkv2"]


def test_away_305_306_whois_who_and_away_notify(user: Callable[..., IrcClient]) -> None:
    a = user("awaya")
    notified = user("awaynotified", caps=("away-notify",))
    plain = user("awayplain")
    for c in (a, notified, plain):
        c.join("#awaychan")
    a.send("AWAY :brb")
    assert a.num("306").params[0] == "awaya"
    m = notified.expect(lambda m: m.command == "AWAY")
    assert m.source == "awaya!~awaya@127.0.0.1" and m.params == ["brb"]
    plain.send("WHOIS awaya")
    got = plain.until(lambda m: m.command == "318")
    assert [m.params[1:] for m in got if m.command == "301"] == [["awaya", "brb"]]
    plain.send("WHO #awaychan")
    rows = {m.params[5]: m.params[6] for m in plain.until(is_315) if m.command == "352"}
    assert rows["awaya"].startswith("G") and rows["awayplain"].startswith("H")
    a.send("AWAY")
    assert a.num("305").params[0] == "awaya"
    m = notified.expect(lambda m: m.command == "AWAY")
    assert m.nick == "awaya" and m.params == []
    assert not [m for m in plain.sync() if m.command == "AWAY"]


# -- IRCv3 ------------------------------------------------------------------------------------


def test_message_tags_server_time_msgid(user: Callable[..., IrcClient]) -> None:
    sender = user("tagsender")
    tagged = user("tagged", caps=("message-tags", "server-time"))
    plain = user("tagplain")
    for c in (sender, tagged, plain):
        c.join("#tags")
    sender.send("PRIVMSG #tags :tagged hello")
    m = tagged.expect(lambda m: m.command == "PRIVMSG")
    assert m.params == ["#tags", "tagged hello"]
    assert m.tags.get("msgid"), m.raw
    assert TIME_TAG.match(m.tags["time"]), m.raw
    sent = datetime.strptime(m.tags["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert abs(sent.timestamp() - time.time()) < 60
    sender.send("PRIVMSG #tags :second")
    m2 = tagged.expect(lambda m: m.command == "PRIVMSG")
    assert m2.tags["msgid"] != m.tags["msgid"]
    p = plain.expect(lambda m: m.command == "PRIVMSG")
    assert p.raw.startswith(":") and not p.tags, "tags sent to a client that did not ask"


def test_tagmsg_is_relayed_with_client_tags(user: Callable[..., IrcClient]) -> None:
    a = user("typer", caps=("message-tags",))
    b = user("typewatch", caps=("message-tags",))
    a.join("#typing")
    b.join("#typing")
    a.send("@+typing=active TAGMSG #typing")
    a.sync()
    got = [m for m in b.sync() if m.command == "TAGMSG"]
    assert len(got) == 1 and got[0].params == ["#typing"], [m.raw for m in got]
    assert got[0].tags.get("+typing") == "active" and got[0].nick == "typer"


def test_echo_message(user: Callable[..., IrcClient]) -> None:
    a = user("echoer", caps=("echo-message", "message-tags"))
    b = user("echoed", caps=("message-tags",))
    a.join("#echo")
    b.join("#echo")
    a.send("PRIVMSG #echo :echo me")
    mine = a.expect(lambda m: m.command == "PRIVMSG")
    theirs = b.expect(lambda m: m.command == "PRIVMSG")
    assert mine.source == "echoer!~echoer@127.0.0.1" and mine.params == ["#echo", "echo me"]
    assert mine.tags["msgid"] == theirs.tags["msgid"]
    a.send("PRIVMSG echoed :privately")
    mine = a.expect(lambda m: m.command == "PRIVMSG")
    assert mine.nick == "echoer" and mine.params == ["echoed", "privately"]
    a.send("CAP REQ :-echo-message")
    a.expect(lambda m: m.command == "CAP")
    a.send("PRIVMSG #echo :no echo now")
    b.expect("no echo now")
    assert not [m for m in a.sync() if m.command == "PRIVMSG"]


def test_extended_join_and_account_tag(user: Callable[..., IrcClient]) -> None:
    watcher = user("extwatch", caps=("extended-join", "account-tag", "message-tags"))
    watcher.join("#extjoin")
    j = user("extjoiner")
    j.join("#extjoin")
    m = watcher.expect(lambda m: m.command == "JOIN")
    assert m.source == "extjoiner!~extjoiner@127.0.0.1"
    assert m.params == ["#extjoin", "*", "extjoiner Real"]  # "*": not logged in
    j.send("PRIVMSG #extjoin :no account")
    m = watcher.expect(lambda m: m.command == "PRIVMSG")
    assert "account" not in m.tags


def test_userhost_in_names(user: Callable[..., IrcClient]) -> None:
    a = user("uhnop")
    b = user("uhnames", caps=("userhost-in-names",))
    a.join("#uhnames")
    b.send("JOIN #uhnames")
    got = b.until(lambda m: m.command == "366")
    assert sorted(names_of(got, "#uhnames")) == [
        "@uhnop!~uhnop@127.0.0.1",
        "uhnames!~uhnames@127.0.0.1",
    ]


def test_labeled_response_single_none_and_batch(user: Callable[..., IrcClient]) -> None:
    c = user("labeler", caps=("labeled-response", "batch", "message-tags"))
    c.send("@label=one PING single")
    m = c.expect(lambda m: m.command == "PONG")
    assert m.tags.get("label") == "one" and m.params == [SERVER, "single"]
    c.send("@label=none PONG whatever")
    m = c.expect(lambda m: "label" in m.tags)
    assert m.command == "ACK" and m.tags["label"] == "none" and m.source == SERVER
    c.send("@label=many JOIN #labeled")
    start = c.expect(lambda m: m.command == "BATCH")
    assert start.tags.get("label") == "many"
    assert start.params[0].startswith("+") and start.params[1] == "labeled-response"
    ref = start.params[0][1:]
    body = c.until(lambda m: m.command == "BATCH")
    end = body.pop()
    assert end.params == ["-" + ref]
    assert [m.command for m in body] == ["JOIN", "353", "366"]
    assert all(m.tags.get("batch") == ref and "label" not in m.tags for m in body)
    assert not [m for m in c.sync() if "label" in m.tags or m.command == "BATCH"]


def test_labeled_response_on_errors_and_echo(user: Callable[..., IrcClient]) -> None:
    c = user("labeler2", caps=("labeled-response", "batch", "echo-message"))
    c.join("#labeled2")
    c.send("@label=err1 JOIN #bad*name")
    m = c.expect(lambda m: "label" in m.tags)
    assert m.command == "403" and m.tags["label"] == "err1"
    c.send("@label=say PRIVMSG #labeled2 :labeled words")
    m = c.expect(lambda m: "label" in m.tags)
    assert m.command == "PRIVMSG" and m.tags["label"] == "say" and m.last == "labeled words"


@pytest.mark.parametrize("kicker_first", [True, False])
def test_a_labeled_kick_reaches_every_member_and_only_the_kicker_sees_the_label(
    user: Callable[..., IrcClient], kicker_first: bool
) -> None:
    n = int(kicker_first)
    chan = f"#lkick{n}"
    op = user(f"lkop{n}", caps=("labeled-response", "batch"))
    # Plain clients render kicks the same way: one rendering is shared among them.
    first, second, victim = (user(f"lk{who}{n}") for who in ("a", "b", "v"))
    if kicker_first:
        op.join(chan)
    first.join(chan)
    if not kicker_first:
        op.join(chan)
        first.send(f"MODE {chan} +o {op.nick}")
        op.expect(lambda m: m.command == "MODE")
    second.join(chan)
    victim.join(chan)
    op.sync()
    op.send(f"@label=K1 KICK {chan} {victim.nick} :out")
    for member in (first, second, victim):
        kick = member.expect(lambda m: m.command == "KICK")
        assert kick.params[:2] == [chan, victim.nick] and "label" not in kick.tags
    labeled = op.expect(lambda m: "label" in m.tags)
    assert labeled.command == "KICK" and labeled.tags["label"] == "K1", labeled.raw
    assert not [m for m in op.sync() if m.command in ("KICK", "ACK")]


def test_one_join_line_can_not_pass_the_channel_limit(user: Callable[..., IrcClient]) -> None:
    c = user("chanlimit")
    tokens = isupport(c.seen)
    limit = int(tokens["CHANLIMIT"].split(":")[1])
    names = [f"#{i:02x}" for i in range(limit + 5)]  # one line: within 512 bytes
    c.send("JOIN " + ",".join(names))
    got = c.until(lambda m: m.command == "405" and m.params[1] == names[-1], timeout=20)
    joined = [m.params[0] for m in got if m.command == "JOIN"]
    refused = [m.params[1] for m in got if m.command == "405"]
    assert joined == names[:limit]
    assert refused == names[limit:]


def test_labeled_response_escapes_the_label(user: Callable[..., IrcClient]) -> None:
    c = user("labelesc", caps=("labeled-response", "batch"))
    c.send("@label=a\\:b\\sc PING esc")
    m = c.expect(lambda m: m.raw.endswith(" esc"))
    assert m.command == "PONG" and m.tags == {"label": "a;b c"}, m.raw


# -- rooms are rooms: the line door and IRC share them --------------------------------------


def test_line_and_irc_share_rooms(shared: RunningServer, user: Callable[..., IrcClient]) -> None:
    liner = welcome(shared.ports["line"], "liner")
    try:
        liner.send("/create tas 2")
        liner.expect("> You joined tas")
        irc = user("ircer")
        irc.send("JOIN #tas")
        got = irc.until(lambda m: m.command == "366")
        assert sorted(names_of(got, "#tas")) == ["@liner", "ircer"]
        liner.expect("ircer joined tas")
        irc.send("MODE #tas")
        m = irc.num("324")
        assert "l" in m.params[2] and "2" in m.params[3:], m.raw
        liner.send("hello irc")
        m = irc.expect(lambda m: m.command == "PRIVMSG")
        assert m.raw == ":liner!liner@127.0.0.1 PRIVMSG #tas :hello irc"
        irc.send("PRIVMSG #tas :hello line")
        assert liner.expect("[ircer]") == "[ircer] hello line"
        irc.send("PRIVMSG liner :psst")
        assert liner.expect("psst") == "[ircer -> you] psst"
        liner.send("/msg ircer back at you")
        m = irc.expect(lambda m: m.command == "PRIVMSG")
        assert m.source == "liner!liner@127.0.0.1" and m.params == ["ircer", "back at you"]
        irc.send("WHO #tas")
        rows = {m.params[5]: m for m in irc.until(is_315) if m.command == "352"}
        assert set(rows) == {"liner", "ircer"}
        assert rows["liner"].params[6] == "H@"
        third = user("thirdwheel")
        third.send("JOIN #tas")
        assert third.num("471").params[:2] == ["thirdwheel", "#tas"]
        irc.send("PART #tas :bye")
        assert "ircer left tas" in liner.expect("ircer left tas")
    finally:
        liner.close()


# -- bad input --------------------------------------------------------------------------------


def test_line_over_512_bytes_is_417_and_the_connection_lives(
    user: Callable[..., IrcClient],
) -> None:
    a = user("longa")
    b = user("longb")
    a.join("#long")
    b.join("#long")
    head = "PRIVMSG #long :"
    text = "y" * (510 - len(head))
    a.send(head + text)  # 510 bytes + CR LF: the most RFC 1459 allows
    # Relayed with a prefix it would pass 512 bytes: cut in parts (each line is checked
    # against 512 bytes as it is read), nothing lost.
    parts = [b.expect(lambda m: m.command == "PRIVMSG").last]
    parts += [m.last for m in b.sync() if m.command == "PRIVMSG"]
    assert "".join(parts) == text
    a.send(head + "x" * 600)
    assert a.num("417").params[0] == "longa"
    a.send_raw(b"PRIVMSG #long :" + b"z" * 20_000 + b"\r\n")  # past any buffer
    assert a.num("417").params[0] == "longa"
    a.send("@" + "t=" + "v" * 5000 + " PRIVMSG #long :tags too big")
    assert a.num("417").params[0] == "longa"
    a.send("PRIVMSG #long :still here")
    assert b.expect(lambda m: m.command == "PRIVMSG").last == "still here"
    assert not [m for m in b.sync() if "xxx" in m.raw or "zzz" in m.raw or "big" in m.raw]


def test_garbage_invalid_utf8_and_nul_never_hurt(
    shared: RunningServer, user: Callable[..., IrcClient], connect: Callable[..., IrcClient]
) -> None:
    a = user("garba")
    b = user("garbb")
    a.join("#garbage")
    b.join("#garbage")
    a.send_raw(b"PRIVMSG #garbage :caf\xe9 au lait\r\n")  # Latin-1, not UTF-8
    m = b.expect(lambda m: m.command == "PRIVMSG")  # the client decodes strictly as UTF-8
    assert m.last == "café au lait"
    a.send_raw(b"PRIVMSG #garbage :nul\x00here\r\n\r\n   \r\n\x01\x02\x03\r\n")
    a.sync()
    a.send_raw(b"PING bare-newline\n")  # a lone LF ends a line too
    assert a.expect(lambda m: m.command == "PONG").last == "bare-newline"
    a.send_raw(b"PRIVMSG #gar")  # a line split across writes is put back together
    time.sleep(0.05)
    a.send_raw(b"bage :split line\r\n")
    assert b.expect(lambda m: m.command == "PRIVMSG").last == "split line"
    rng = random.Random(2812)
    for _ in range(10):
        g = connect()
        g.send_raw(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 3000))))
        g.close()
    a.send("PRIVMSG #garbage :survived")
    assert b.expect(lambda m: m.command == "PRIVMSG" and m.last == "survived")
    assert shared.proc.poll() is None


def test_a_client_that_never_reads_is_cut_off_others_feel_nothing(
    shared: RunningServer, user: Callable[..., IrcClient], connect: Callable[..., IrcClient]
) -> None:
    watcher = user("sqwatch")
    watcher.join("#sendq")
    victim = connect(rcvbuf=4096)
    victim.register("sqvictim")
    victim.join("#sendq")
    start = len(shared.log)
    chunk = b"VERSION\r\n" * 2000  # each one answers with ~700 bytes the client never reads
    deadline = time.monotonic() + 15 * TIME
    cut = False
    for _ in range(60):
        with contextlib.suppress(OSError):  # the server may already have hung up
            victim.send_raw(chunk)
        t0 = time.monotonic()
        watcher.sync(timeout=2.0)  # others are served meanwhile, and quickly
        assert time.monotonic() - t0 < 1.0 * TIME
        if any("SendQ exceeded" in line for line in shared.log[start:]):
            cut = True
            break
        if time.monotonic() > deadline:
            break
    assert cut, "the client that never reads was not cut off"
    watcher.sync()
    quits = [m for m in watcher.seen if m.command == "QUIT"]
    assert [m.nick for m in quits] == ["sqvictim"] and "SendQ exceeded" in quits[0].last
    watcher.send("PRIVMSG #sendq :fine")
    assert not [m for m in watcher.sync() if m.command.isdigit()]


# -- servers with other settings ------------------------------------------------------------


def test_flood_is_delayed_then_cut_off_with_excess_flood(
    default_srv: RunningServer, clients: list[IrcClient]
) -> None:
    port = default_srv.ports["irc"]
    flooder, listener, bystander = (IrcClient(port) for _ in range(3))
    clients += [flooder, listener, bystander]
    flooder.register("flooder")
    listener.register("floodlisten")
    bystander.register("bystander")
    flooder.join("#flood")
    listener.join("#flood")
    flooder.send_raw(b"".join(b"PRIVMSG #flood :spam %d\r\n" % i for i in range(200)))
    notice = flooder.expect(lambda m: m.command == "NOTICE")
    assert "too fast" in notice.last
    err = flooder.expect(lambda m: m.command == "ERROR")
    assert err.last.startswith("Closing Link:") and err.last.endswith("(Excess flood)")
    assert flooder.closed()
    quit_msg = listener.expect(lambda m: m.command == "QUIT")
    assert quit_msg.nick == "flooder" and "Excess flood" in quit_msg.last
    spam = [m for m in listener.seen if m.command == "PRIVMSG"]
    assert 1 <= len(spam) <= 13, len(spam)  # the burst at most
    t0 = time.monotonic()
    bystander.sync()
    assert time.monotonic() - t0 < 1.0 * TIME
    bystander.send("PRIVMSG floodlisten :still served")
    assert listener.expect(lambda m: m.command == "PRIVMSG").last == "still served"


def test_registration_timeout_and_dead_peer_ping_timeout(tmp_path: Path) -> None:
    """[limits] register_timeout and [irc] ping_interval / ping_timeout (1 s each here)."""
    srv = start_server(tmp_path, ("irc",), config=TIMEOUTS_CONFIG)
    port = srv.ports["irc"]
    made: list[IrcClient] = []
    try:
        silent, nick_only, capping = IrcClient(port), IrcClient(port), IrcClient(port)
        alive, dead = IrcClient(port), IrcClient(port, auto_pong=False)
        made += [silent, nick_only, capping, alive, dead]
        nick_only.send("NICK halfway")
        capping.send("CAP LS 302")  # negotiation opened and never ended
        capping.send("NICK capstuck")
        capping.send("USER capstuck 0 * :never sends CAP END")
        alive.register("alive")
        dead.register("dead")
        alive.join("#pings")
        dead.join("#pings")
        gone = (silent, nick_only, capping, dead)
        pump(made, lambda: all(c.eof for c in gone), timeout=8.0)
        for c in (silent, nick_only, capping):
            assert c.eof, c.tail()
            errors = [m.last for m in c.seen if m.command == "ERROR"]
            assert errors == ["Closing Link: 127.0.0.1 (Registration timed out)"], c.tail()
        assert dead.eof, dead.tail()
        cmds = [m.command for m in dead.seen]
        assert "PING" in cmds and "ERROR" in cmds, dead.tail()
        assert cmds.index("PING") < cmds.index("ERROR")
        ping = dead.seen[cmds.index("PING")]
        assert ping.last, ping.raw
        err = dead.seen[cmds.index("ERROR")]
        assert err.last.startswith("Closing Link: 127.0.0.1 (Ping timeout"), err.raw
        assert not alive.eof
        alive.sync()  # the one that answered its PINGs is still served
        assert any(m.command == "PING" for m in alive.seen), "the server never pinged"
        quits = [m for m in alive.seen if m.command == "QUIT"]
        assert [m.nick for m in quits] == ["dead"] and "Ping timeout" in quits[0].last
    finally:
        for c in made:
            c.close()
        srv.stop()


# -- operators, the lobby, list modes, labels on QUIT ---------------------------------------


def test_oper_then_mode_minus_o_gives_the_power_up(user: Callable[..., IrcClient]) -> None:
    """OPER with [[operators]] credentials gives 381 and +o; MODE nick -o takes it back
    everywhere (WHOIS no longer says 313), and a wrong password is 464."""
    op = user("operone")
    op.send("OPER root wrong")
    op.num("464")
    op.send("OPER root hunter2")
    op.num("381")
    op.send("WHOIS operone")
    got = op.until(lambda m: m.command == "318")
    assert any(m.command == "313" for m in got)
    op.send("MODE operone -o")
    op.expect(lambda m: m.command == "MODE" and m.params[-1] == "-o")
    op.send("WHOIS operone")
    got = op.until(lambda m: m.command == "318")
    assert not any(m.command == "313" for m in got), [m.raw for m in got]


def test_oper_with_a_hashed_password(user: Callable[..., IrcClient]) -> None:
    """[[operators]] password may be an argon2id hash: the password works, the hash itself
    and a wrong one are 464."""
    op = user("hashop")
    op.send("OPER hashed wrong")
    op.num("464")
    op.send(f"OPER hashed {OPER_HASH}")
    op.num("464")
    op.send("OPER hashed open-sesame")
    op.num("381")


def test_the_lobby_cannot_be_closed_off(
    shared: RunningServer, user: Callable[..., IrcClient]
) -> None:
    """The lobby is where line users land: even an operator can't make it +i, +k or +l."""
    line = welcome(shared.ports["line"], "lobbyline")
    op = user("lobbyop")
    op.send("OPER root hunter2")
    op.num("381")
    op.join("#lobby")
    op.send("MODE #lobby +i")
    assert op.num("482").params[1] == "#lobby"
    op.send("MODE #lobby +l 1")
    op.num("482")
    fresh = welcome(shared.ports["line"], "lobbyfresh")
    fresh.send("/who")
    assert fresh.expect("> Users in").startswith("> Users in lobby")
    line.close()
    fresh.close()


def test_list_shows_each_rooms_real_modes(user: Callable[..., IrcClient]) -> None:
    a = user("listmodes")
    a.join("#moded")
    a.send("MODE #moded +mk-t sekrit")
    a.expect(lambda m: m.command == "MODE" and m.params[0] == "#moded")
    a.send("LIST")
    rows = [m for m in a.until(lambda m: m.command == "323") if m.command == "322"]
    row = next(m for m in rows if m.params[1] == "#moded")
    assert row.last.startswith("[+kmn] "), row.raw


def test_ban_list_is_bounded(user: Callable[..., IrcClient]) -> None:
    """MAXLIST=b:100 is enforced: the 101st ban is 478."""
    a = user("banfiller")
    a.join("#manybans")
    for i in range(0, 100, 5):
        masks = " ".join(f"x{j}!*@*" for j in range(i, i + 5))
        a.send(f"MODE #manybans +bbbbb {masks}")
    a.sync()
    a.send("MODE #manybans +b toomany!*@*")
    assert a.num("478").params[1:3] == ["#manybans", "b"]


def test_labeled_quit_still_gets_error(user: Callable[..., IrcClient]) -> None:
    a = user("labelquit", ("labeled-response", "batch"))
    a.send("@label=bye QUIT :done")
    a.expect(lambda m: m.command == "ERROR")
    assert a.closed()

"""``salas admin`` end to end: the admin socket in the data dir, every command run
as a subprocess against a real ``salas serve``, and its effect seen by real clients
on two doors (a line client and a raw IRC client in the same room).

Most tests share one server; each uses its own names and rooms. Tests that start
or stop servers (the socket's safety checks, a restart, shutdown) have their own.
Every wait is bounded (``support.TIME`` scales them).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pexpect
import pytest

from e2e.test_irc import IrcClient
from salas.console.link import AdminLink
from support import (
    TIME,
    LineClient,
    ProcLines,
    RunningServer,
    salas_cmd,
    start_server,
    test_env,
    welcome,
)

SERVER = "irc.test"
CONFIG = f"""
[server]
name = "{SERVER}"

[limits]
flood_exempt = ["127.0.0.0/8"]
"""
#: Who the server says did what: the user running the tests, from the socket's peer credentials.
BY = f"admin console ({pwd.getpwuid(os.getuid()).pw_name})"
PASSWORD = "correct-horse-42"


# -- running the command line ---------------------------------------------------------


def admin(data: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        salas_cmd("admin", "--data-dir", str(data), *args),
        input=stdin,
        capture_output=True,
        text=True,
        env=test_env(data.parent),
        timeout=30 * TIME,
    )


def ok(data: Path, *args: str, stdin: str = "") -> str:
    """stdout of a command that must succeed (exit 0, nothing on stderr)."""
    r = admin(data, *args, stdin=stdin)
    assert r.returncode == 0, (args, r.returncode, r.stdout, r.stderr)
    assert r.stderr == "", (args, r.stderr)
    return r.stdout


def refused(data: Path, *args: str, stdin: str = "") -> str:
    """stderr of a command that must be refused (exit 1, nothing on stdout)."""
    r = admin(data, *args, stdin=stdin)
    assert r.returncode == 1, (args, r.returncode, r.stdout, r.stderr)
    assert r.stdout == "", (args, r.stdout)
    assert r.stderr.startswith("salas admin: "), r.stderr
    return r.stderr.removeprefix("salas admin: ").rstrip("\n")


def as_json(data: Path, *args: str) -> Any:
    return json.loads(ok(data, *args, "--json"))


def logged(data: Path, action: str) -> str:
    """The latest line of ``logs`` that records ``action`` done by this console."""
    lines = ok(data, "logs", "--lines", "20").splitlines()
    assert len(lines) <= 20, lines
    for line in reversed(lines):
        if f"! {BY} {action}" in line:
            return line
    raise AssertionError(f"{action!r} by {BY} not in the log:\n" + "\n".join(lines))


def query(data: Path, cmd: str, **args: Any) -> Any:
    """A request straight over the socket, for checks around the command under test."""
    with AdminLink(data / "admin.sock", timeout=10 * TIME) as link:
        return link.request(cmd, **args)


def room(data: Path, name: str) -> dict[str, Any] | None:
    return next((r for r in query(data, "rooms.list") if r["name"] == name), None)


def user(data: Path, name: str) -> dict[str, Any] | None:
    return next((u for u in query(data, "users.list") if u["name"] == name), None)


def row(text: str, first: str) -> list[str]:
    """The words of the table row whose first cell is ``first``."""
    for line in text.splitlines():
        words = line.split()
        if words and words[0] == first:
            return words
    raise AssertionError(f"no row for {first!r} in:\n{text}")


# -- IRC clients (test_irc.py's) -------------------------------------------------------


def registered(port: int, nick: str) -> IrcClient:
    c = IrcClient(port)
    c.register(nick)
    return c


# -- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    srv = start_server(tmp_path_factory.mktemp("admin"), ("line", "irc"), config=CONFIG)
    yield srv
    srv.stop()


@pytest.fixture
def data(shared: RunningServer) -> Path:
    return shared.data_dir


@pytest.fixture
def people(
    shared: RunningServer,
) -> Iterator[tuple[Callable[..., LineClient], Callable[..., IrcClient]]]:
    """Makers of line and IRC clients on the shared server, all closed after the test."""
    made: list[LineClient | IrcClient] = []

    def line(name: str) -> LineClient:
        c = welcome(shared.port, name)
        made.append(c)
        return c

    def irc(nick: str) -> IrcClient:
        c = registered(shared.ports["irc"], nick)
        made.append(c)
        return c

    yield line, irc
    for c in made:
        c.close()


def two_doors(
    people: Any, room_name: str, line_name: str, irc_name: str
) -> tuple[LineClient, IrcClient]:
    """A line client and an IRC client, both in ``room_name``."""
    line, irc = people
    a = line(line_name)
    a.send(f"/join {room_name}")
    a.expect(f"> You joined {room_name}")
    b = irc(irc_name)
    b.join(f"#{room_name}")
    a.expect(f"> {irc_name} joined {room_name}")
    return a, b


# -- the socket --------------------------------------------------------------------------


def serve_once(data: Path) -> subprocess.CompletedProcess[str]:
    """``salas serve`` expected to refuse to start."""
    return subprocess.run(
        salas_cmd("serve", "--data-dir", str(data), "--listen", "line:127.0.0.1:0"),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=test_env(data.parent),
        timeout=20 * TIME,
    )


def test_the_socket_is_private(data: Path) -> None:
    st = os.lstat(data / "admin.sock")
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == os.getuid()


def test_no_server_running(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    err = refused(empty, "rooms", "list")
    assert "no server is running" in err, err
    assert str(empty) in err
    assert list(empty.iterdir()) == []


def test_refuses_a_data_dir_others_may_write(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o777)
    r = serve_once(data)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "can be written by others" in r.stderr, r.stderr
    assert str(data) in r.stderr
    assert not (data / "admin.sock").exists()


def test_refuses_a_regular_file_where_the_socket_goes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    (data / "admin.sock").write_text("not mine to remove\n")
    r = serve_once(data)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "admin.sock exists and is not a socket" in r.stderr, r.stderr
    assert (data / "admin.sock").read_text() == "not mine to remove\n"


def test_a_stale_socket_is_replaced_and_the_socket_goes_on_exit(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    path = data / "admin.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(path))  # bound, never listening, closed: what a killed server leaves
    assert stat.S_ISSOCK(os.lstat(path).st_mode)
    srv = start_server(tmp_path, ("line",))
    try:
        assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600
        assert ok(data, "rooms", "list") == "No rooms\n"
    finally:
        code = srv.stop()
    assert code == 0
    assert not path.exists()
    assert "no server is running" in refused(data, "rooms", "list")


def test_a_console_room_lasts_until_closed(tmp_path: Path) -> None:
    """Owned by the server: it outlives the empty-room timeout and a restart."""
    config = CONFIG + "empty_room_ttl = 1\n"
    srv = start_server(tmp_path, ("line",), config=config)
    data = srv.data_dir
    try:
        ok(data, "rooms", "create", "Teste", "--limit", "2", "--topic", "kept")
        a = welcome(srv.port, "passer")
        a.send("/create Passing")
        a.expect("> You joined Passing")
        a.close()
        srv.wait_log(r"> forgot 1 empty room\(s\): passing", timeout=10)
        rooms = ok(data, "rooms", "list").splitlines()
        assert "Teste - 0/2  kept" in rooms
        assert not any(r.startswith("Passing") for r in rooms), rooms
    finally:
        assert srv.stop() == 0
    srv = start_server(tmp_path, ("line",), config=config)
    try:
        assert "Teste - 0/2  kept" in ok(data, "rooms", "list").splitlines()
        b = welcome(srv.port, "back")
        b.send("/join Teste")
        b.expect("> You joined Teste")
        assert b.expect("Teste") == "> Topic of Teste: kept (set by irc.test)"
        b.close()
    finally:
        assert srv.stop() == 0


# -- rooms -------------------------------------------------------------------------------


def test_rooms_create_join_full_list_who(data: Path, people: Any) -> None:
    line, irc = people
    out = ok(data, "rooms", "create", "Teste", "--limit", "2", "--topic", "T")
    assert out == "Created: Teste - 0/2  T\n"
    assert "created room Teste: limit 2" in logged(data, "created room Teste")
    assert refused(data, "rooms", "create", "teste") == "Room Teste already exists"

    ana = line("ana")
    ana.send("/join Teste")
    ana.expect("> You joined Teste")
    ivan = irc("ivan")
    ivan.send("JOIN #Teste")
    ivan.expect(r"^:\S+ 332 ivan #Teste :?T$")
    ivan.expect(r" 366 ivan #Teste ")
    ana.expect("> ivan joined Teste (2 users online)")

    zoe = line("zoe")
    zoe.send("/join Teste")
    assert zoe.expect("!") == "! Room Teste is full (2/2)"
    ian = irc("ian")
    ian.send("JOIN #Teste")
    ian.expect(r"^:\S+ 471 ian #Teste :")

    assert "Teste - 2/2  T" in ok(data, "rooms", "list").splitlines()
    [info] = [r for r in as_json(data, "rooms", "list") if r["name"] == "Teste"]
    assert (info["count"], info["limit"], info["topic"]) == (2, 2, "T")
    assert (info["private"], info["keyed"]) == (False, False)

    who = ok(data, "rooms", "who", "Teste")
    head, columns, *rows = who.splitlines()
    assert head == '***** PARTICIPANTS OF ROOM "Teste" (2) *****'
    assert columns.split() == ["NAME", "DOOR", "ADDRESS", "ROOMS", "IDLE", "ACCOUNT"]
    assert len(rows) == 2
    for name, door in (("ana", "line"), ("ivan", "irc")):
        words = row(who, name)
        assert words[1] == door
        assert re.fullmatch(r"127\.0\.0\.1:\d+", words[2]), words
        assert "Teste" in words[3].split(","), words
        assert re.fullmatch(r"\d+s", words[4]), words
        assert words[5] == "-"
    members = as_json(data, "rooms", "who", "Teste")
    assert sorted((u["name"], u["door"]) for u in members) == [("ana", "line"), ("ivan", "irc")]
    assert refused(data, "rooms", "who", "Nowhere") == "There is no room named Nowhere"


def test_rooms_set_is_seen_on_both_doors(data: Path, people: Any) -> None:
    line, irc = people
    ok(data, "rooms", "create", "Ajuste", "--limit", "2")
    ana, ivan = two_doors(people, "Ajuste", "ana2", "ivan2")

    out = ok(data, "rooms", "set", "Ajuste", "--limit", "3", "--topic", "NEW")
    assert out == "Changed: Ajuste - 2/3  NEW\n"
    ivan.expect(rf"^:{SERVER} MODE #Ajuste \+l 3$")
    ivan.expect(rf"^:{SERVER} TOPIC #Ajuste :?NEW$")
    assert ana.expect("topic") == f"> {SERVER} set the topic of Ajuste: NEW"
    assert "changed room Ajuste: limit 3" in logged(data, "changed room Ajuste")

    out = ok(data, "rooms", "set", "Ajuste", "--private", "--key", "sekrit")
    assert out == "Changed: Ajuste - 2/3 (private, key)  NEW\n"
    ivan.expect(rf"^:{SERVER} MODE #Ajuste \+ik sekrit$")
    info = room(data, "Ajuste")
    assert info is not None and info["private"] and info["keyed"]
    assert "changed room Ajuste: limit 3, private, key" in logged(data, "changed room Ajuste")
    outsider = line("outsider2")
    outsider.send("/join Ajuste sekrit")
    assert outsider.expect("!") == "! Room Ajuste is private: you need an invitation"
    stranger = irc("stranger2")
    stranger.send("JOIN #Ajuste sekrit")
    stranger.expect(r"^:\S+ 473 stranger2 #Ajuste :")

    out = ok(data, "rooms", "set", "Ajuste", "--public", "--no-key", "--no-limit")
    assert out == "Changed: Ajuste - 2  NEW\n"
    ivan.expect(rf"^:{SERVER} MODE #Ajuste -lik")
    outsider.send("/join Ajuste")
    outsider.expect("> You joined Ajuste")
    ana.expect("> outsider2 joined Ajuste (3 users online)")
    ivan.expect(r"^:outsider2!\S+ JOIN #Ajuste")

    assert refused(data, "rooms", "set", "Ajuste", "--limit", "0").startswith("0 is not a valid")
    err = refused(data, "rooms", "set", "Nowhere", "--topic", "x")
    assert err == "There is no room named Nowhere"


def test_rooms_set_modes_are_seen_on_the_line_door(data: Path, people: Any) -> None:
    ok(data, "rooms", "create", "Modos")
    ana, _ = two_doors(people, "Modos", "ana5", "ivan5")
    ok(data, "rooms", "set", "Modos", "--limit", "3", "--topic", "NEW")
    # Modes are delivered before the topic: the first line from the server is about them.
    said = ana.expect(f"> {SERVER} ")
    assert "topic" not in said and "Modos" in said and "3" in said, said


def test_rooms_close_tells_both_doors(data: Path, people: Any) -> None:
    ok(data, "rooms", "create", "Fechar")
    ana, ivan = two_doors(people, "Fechar", "ana3", "ivan3")
    assert ok(data, "rooms", "close", "Fechar", "--reason", "R") == "Room Fechar closed\n"
    assert ana.expect("< Room") == "< Room Fechar was closed: R"
    ivan.expect(rf"^:{SERVER} KICK #Fechar ivan3 :?R$")
    assert room(data, "Fechar") is None
    assert "Fechar" not in ok(data, "rooms", "list")
    assert "closed room Fechar: R" in logged(data, "closed room Fechar")
    assert refused(data, "rooms", "close", "Fechar") == "There is no room named Fechar"
    # ana is still in the lobby, the room everyone lands in: that one stays.
    err = refused(data, "rooms", "close", "lobby")
    assert err == "Room lobby can't be closed: it is where everyone lands"
    assert room(data, "lobby") is not None
    ana.send("/echo still here")
    ana.expect("still here")


# -- users -------------------------------------------------------------------------------


def test_users_list_oper_and_kick(data: Path, people: Any) -> None:
    ok(data, "rooms", "create", "Gente")
    ulla, ivo = two_doors(people, "Gente", "ulla", "ivo")

    table = ok(data, "users", "list")
    assert table.splitlines()[0].split() == ["NAME", "DOOR", "ADDRESS", "ROOMS", "IDLE", "ACCOUNT"]
    for name, door in (("ulla", "line"), ("ivo", "irc")):
        words = row(table, name)
        assert words[1] == door
        assert re.fullmatch(r"127\.0\.0\.1:\d+", words[2]), words
        assert "Gente" in words[3].split(",")
        assert words[5] == "-"
    [u] = [u for u in as_json(data, "users", "list") if u["name"] == "ulla"]
    assert u["door"] == "line" and "Gente" in u["rooms"]
    assert u["address"].startswith("127.0.0.1:")
    assert isinstance(u["idle"], int) and 0 <= u["idle"] < 60
    assert (u["account"], u["oper"]) == (None, False)

    assert ok(data, "users", "oper", "ulla") == "ulla is a server operator\n"
    ulla.expect("> You are now a server operator")
    assert row(ok(data, "users", "list"), "ulla")[1] == "*"
    assert user(data, "ulla")["oper"] is True  # type: ignore[index]
    logged(data, "made ulla a server operator")
    assert ok(data, "users", "deoper", "ulla") == "ulla is no longer a server operator\n"
    assert user(data, "ulla")["oper"] is False  # type: ignore[index]
    logged(data, "took operator status from ulla")

    assert ok(data, "users", "kick", "ulla", "--reason", "R") == "ulla was put off the server\n"
    assert ulla.expect("!") == f"! Disconnected: Removed by {BY}: R"
    assert ulla.closed()
    ivo.expect(rf"^:ulla!\S+ QUIT :?Removed by {re.escape(BY)}: R$")
    assert user(data, "ulla") is None
    logged(data, "removed ulla from the server: R")
    assert refused(data, "users", "kick", "ulla") == "Nobody here is called ulla"
    assert refused(data, "users", "oper", "ghost") == "Nobody here is called ghost"

    ok(data, "users", "kick", "ivo")
    ivo.expect(rf"^ERROR :Closing Link: \S+ \(Removed by {re.escape(BY)}\)$")
    assert ivo.closed()


def test_broadcast_reaches_both_doors(data: Path, people: Any) -> None:
    line, irc = people
    bia, ico = line("bia"), irc("ico")
    assert re.fullmatch(r"Sent to \d+ user\(s\)\n", ok(data, "broadcast", "hello", "everyone"))
    assert bia.expect("hello") == "! Notice from the server: hello everyone"
    ico.expect(rf"^:{SERVER} NOTICE ico :?hello everyone$")
    logged(data, "broadcast: hello everyone")


# -- logs ----------------------------------------------------------------------------------


def test_a_server_stopping_under_a_follower_ends_it_cleanly(tmp_path: Path) -> None:
    srv = start_server(tmp_path, ("line",), config=CONFIG)
    proc = subprocess.Popen(
        salas_cmd("admin", "--data-dir", str(srv.data_dir), "logs", "--follow"),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=test_env(tmp_path),
    )
    try:
        ProcLines(proc).expect("admin console")  # following: the start-up lines came
        assert srv.stop() == 0
        assert proc.wait(10 * TIME) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(5)
        assert proc.stdout is not None
        proc.stdout.close()
    assert not [line for line in srv.log if "Traceback" in line or "internal error" in line]


def test_logs_and_follow(data: Path, people: Any) -> None:
    ok(data, "broadcast", "before following")
    lines = ok(data, "logs", "--lines", "3").splitlines()
    assert len(lines) == 3
    assert f"! {BY} broadcast: before following" in lines[-1]
    proc = subprocess.Popen(
        salas_cmd("admin", "--data-dir", str(data), "logs", "--follow", "--lines", "1"),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=test_env(data.parent),
    )
    try:
        out = ProcLines(proc)
        out.expect("broadcast: before following")
        line, _ = people
        line("fola")
        out.expect("fola")  # a rename, as the server's log shows it
        ok(data, "broadcast", "while following")
        assert f"! {BY} broadcast: while following" in out.expect("while following")
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(5 * TIME)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
            raise
        assert proc.stdout is not None
        proc.stdout.close()
    assert code == 0
    ok(data, "rooms", "list")  # the server noticed the follower leave and goes on


# -- accounts ------------------------------------------------------------------------------


def test_accounts(data: Path, people: Any) -> None:
    line, _ = people
    out = ok(data, "accounts", "create", "bob", "--oper", stdin=PASSWORD + "\n")
    assert out == "Account bob created\n"
    assert logged(data, "created account bob").endswith(f"! {BY} created account bob: operator")
    words = row(ok(data, "accounts", "list"), "bob")
    assert words[1] == "yes" and words[-1] == "-", words
    assert refused(data, "accounts", "create", "BOB", stdin=PASSWORD) == "BOB is already registered"
    err = refused(data, "accounts", "create", "shorty", stdin="x\n")
    assert err.startswith("That password won't do"), err

    c = line("")
    c.send(f"/login bob {PASSWORD}")
    c.expect("> You are now known as bob")
    c.expect("> You are logged in as bob")
    c.expect("> You are now a server operator")
    [acct] = [a for a in as_json(data, "accounts", "list") if a["name"] == "bob"]
    assert (acct["oper"], acct["online"]) == (True, True)
    assert row(ok(data, "accounts", "list"), "bob")[-1] == "online"
    me = user(data, "bob")
    assert me is not None and (me["account"], me["oper"]) == ("bob", True)

    out = ok(data, "accounts", "deoper", "bob")
    assert out == "Account bob no longer has the operator flag\n"
    assert row(ok(data, "accounts", "list"), "bob")[1] == "-"
    assert user(data, "bob")["oper"] is False  # type: ignore[index]
    logged(data, "took the operator flag from account bob")
    assert ok(data, "accounts", "oper", "bob") == "Account bob has the operator flag\n"
    c.expect("> You are now a server operator")
    logged(data, "made account bob an operator")

    assert ok(data, "accounts", "delete", "bob") == "Account bob deleted\n"
    assert [a for a in query(data, "accounts.list") if a["name"] == "bob"] == []
    assert user(data, "bob")["account"] is None  # type: ignore[index]
    logged(data, "deleted account bob")
    for verb in ("delete", "oper", "deoper"):
        assert refused(data, "accounts", verb, "bob") == "There is no account named bob"
    c.send("/echo alive")
    c.expect("alive")


# -- bad requests on the socket --------------------------------------------------------------


class Console:
    """A raw connection to the admin socket."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5 * TIME)
        self.sock.connect(str(path))
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> dict[str, Any] | None:
        """The next line as JSON, or None at the end of the connection."""
        while b"\n" not in self.buf:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                assert self.buf == b"", self.buf
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        obj = json.loads(line)
        assert isinstance(obj, dict)
        return obj

    def ask(self, data: bytes) -> dict[str, Any] | None:
        self.send(data)
        return self.reply()

    def close(self) -> None:
        self.sock.close()


def rooms_list_works(c: Console) -> None:
    reply = c.ask(b'{"cmd": "rooms.list"}\n')
    assert reply is not None and reply["ok"] is True, reply
    assert any(r["name"] == "lobby" for r in reply["result"]), reply


BAD_REQUESTS = [
    (b"garbage", "not a JSON object"),
    (b"\xff\xfe\x00\x80", "not a JSON object"),
    (b"[1, 2]", "not a JSON object"),
    (b'"rooms.list"', "not a JSON object"),
    (b"[" * 60_000, "not a JSON object"),
    (b"{}", "no command"),
    (b'{"cmd": 7}', "no command"),
    (b'{"cmd": "rooms.destroy"}', "unknown command 'rooms.destroy'"),
    (b'{"cmd": "rooms.who"}', "rooms.who needs 'room'"),
    (b'{"cmd": "rooms.who", "args": ["lobby"]}', "args must be an object"),
    (b'{"cmd": "rooms.list", "args": {"all": true}}', "rooms.list takes no argument 'all'"),
    (
        b'{"cmd": "rooms.create", "args": {"room": "X", "limit": "2"}}',
        "rooms.create: 'limit' has the wrong type",
    ),
    (
        b'{"cmd": "rooms.create", "args": {"room": "X", "limit": true}}',
        "rooms.create: 'limit' has the wrong type",
    ),
    (b'{"cmd": "broadcast", "args": {"text": null}}', "broadcast: 'text' has the wrong type"),
    (b'{"cmd": "logs", "args": {"lines": 1.5}}', "logs: 'lines' has the wrong type"),
    # well formed, refused by the server
    (b'{"cmd": "rooms.who", "args": {"room": "nowhere"}}', "There is no room named nowhere"),
    (
        b'{"cmd": "rooms.create", "args": {"room": "X", "limit": 0}}',
        "0 is not a valid limit: a whole number from 1 to",
    ),
    (b'{"cmd": "users.kick", "args": {"name": "ghost"}}', "Nobody here is called ghost"),
    (b'{"cmd": "broadcast", "args": {"text": "two\\nlines"}}', "Not sent: "),
    (b'{"cmd": "rooms.create", "args": {"room": "two words"}}', "two words is not a valid room"),
    (b'{"cmd": "rooms.close", "args": {"room": "lobby"}}', "Room lobby can't be closed"),
]


def test_bad_requests_get_one_error_each(shared: RunningServer, people: Any) -> None:
    line, _ = people
    line("lobbyist")  # the lobby exists while someone is in it
    path = shared.data_dir / "admin.sock"
    c = Console(path)
    try:
        for bad, error in BAD_REQUESTS:
            c.send(b"\n")  # an empty line is no request: no answer
            reply = c.ask(bad + b"\n")
            assert reply is not None and reply["ok"] is False, (bad[:40], reply)
            assert set(reply) == {"ok", "error"}, reply
            assert reply["error"].startswith(error), (bad[:40], reply)
            rooms_list_works(c)  # the same connection goes on
        huge = b'{"cmd": "broadcast", "args": {"text": "' + b"x" * 70_000 + b'"}}\n'
        c.send(huge)
        assert c.reply() == {"ok": False, "error": "request longer than 65536 bytes"}
        assert c.reply() is None  # and the connection is closed
    finally:
        c.close()
    assert shared.proc.poll() is None
    again = Console(path)
    try:
        rooms_list_works(again)
    finally:
        again.close()
    assert room(shared.data_dir, "X") is None


TOO_MANY = {"ok": False, "error": "too many admin consoles connected"}


def welcomed_console(path: Path) -> Console:
    """A console the server answers. Consoles just closed may still count for a moment
    (the server sees them go soon): until then a new one is turned away."""
    deadline = time.monotonic() + 5 * TIME
    while True:
        c = Console(path)
        reply = c.ask(b'{"cmd": "rooms.list"}\n')
        if reply is not None and reply["ok"]:
            return c
        c.close()
        assert reply == TOO_MANY, reply
        assert time.monotonic() < deadline, "the server still counts consoles long closed"
        time.sleep(0.05)


def test_too_many_consoles_are_turned_away(shared: RunningServer) -> None:
    path = shared.data_dir / "admin.sock"
    consoles: list[Console] = []
    try:
        for _ in range(16):
            consoles.append(welcomed_console(path))
        extra = Console(path)
        consoles.append(extra)
        assert extra.reply() == TOO_MANY
        assert extra.reply() is None
        rooms_list_works(consoles[0])  # the others go on
    finally:
        for c in consoles:
            c.close()
    welcomed_console(path).close()


# -- shutdown ------------------------------------------------------------------------------


def test_shutdown_tells_every_door_and_stops(tmp_path: Path) -> None:
    srv = start_server(tmp_path, ("line", "irc"), config=CONFIG)
    data = srv.data_dir
    carol: pexpect.spawn | None = None
    ivan: IrcClient | None = None
    try:
        env = test_env(tmp_path)
        env.update(TERM="xterm-256color", PROMPT_TOOLKIT_NO_CPR="1")
        cmd = salas_cmd("chat", f"line://127.0.0.1:{srv.port}", "--name", "carol")
        carol = pexpect.spawn(cmd[0], cmd[1:], env=env, dimensions=(24, 100), timeout=10 * TIME)
        ivan = registered(srv.ports["irc"], "ivan")
        deadline = time.monotonic() + 10 * TIME
        while user(data, "carol") is None:
            assert time.monotonic() < deadline, "carol never came online"
            time.sleep(0.05)

        r = admin(data, "shutdown", "--reason", "maintenance")
        assert (r.returncode, r.stderr) == (0, ""), (r.stdout, r.stderr)
        assert r.stdout == "The server is shutting down\nThe server has stopped\n"
        assert srv.proc.wait(10 * TIME) == 0

        carol.expect_exact("Server shutting down: maintenance")
        carol.expect(pexpect.EOF)
        carol.close()
        assert carol.exitstatus == 0, (carol.exitstatus, carol.signalstatus)
        ivan.expect(r"^ERROR :Closing Link: \S+ \(Server shutting down: maintenance\)$")
        assert ivan.closed()
        srv.wait_log(rf"! {re.escape(BY)} shut the server down: maintenance")
        assert not (data / "admin.sock").exists()
    finally:
        if carol is not None and carol.isalive():
            carol.terminate(force=True)
        if ivan is not None:
            ivan.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            srv.stop()

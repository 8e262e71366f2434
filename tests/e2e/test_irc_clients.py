"""Real IRC client software in salas rooms, with line and CS168 users beside them.

SPEC: "#tas on IRC is room tas everywhere else: an IRC user sees line and
CS168 users' messages as PRIVMSG from their names, sees them in NAMES/WHO,
and they see the IRC user."
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import irc.client
import irc.client_aio
import pytest

from support import TIME, RunningServer, start_server, welcome


@pytest.fixture
def three_doors(tmp_path: Path) -> Iterator[RunningServer]:
    srv = start_server(tmp_path, ("line", "irc", "cs168"))
    yield srv
    srv.stop()


def _cs168(port: int, name: str) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5 * TIME)
    s.sendall(name.encode().ljust(200))
    return s


def _frames_until(s: socket.socket, needle: str, timeout: float = 5.0) -> list[str]:
    data = b""
    deadline = time.monotonic() + timeout * TIME
    while time.monotonic() < deadline:
        texts = [data[i : i + 200].decode().rstrip() for i in range(0, len(data) - 199, 200)]
        if any(needle in t for t in texts):
            return texts
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = s.recv(4096)
        except TimeoutError:
            break
        if not chunk:
            break
        data += chunk
    raise AssertionError(f"{needle!r} never came on the CS168 door; got {data[:600]!r}")


async def test_irc_library_line_and_cs168_users_share_a_room(three_doors: RunningServer) -> None:
    srv = three_doors
    bob = await asyncio.to_thread(welcome, srv.port, "bob")
    bob.send("/create tas")
    await asyncio.to_thread(bob.expect, "> You joined tas")
    kay = _cs168(srv.ports["cs168"], "Kay")
    kay.sendall(b"/join tas".ljust(200))
    await asyncio.to_thread(bob.expect, "> Kay joined tas")

    loop = asyncio.get_running_loop()
    reactor = irc.client_aio.AioReactor(loop=loop)
    events: asyncio.Queue[tuple[str, str, str]] = asyncio.Queue()

    def on(kind: str) -> None:
        def handler(conn: irc.client.ServerConnection, ev: irc.client.Event) -> None:
            nick = ev.source.nick if ev.source else ""
            events.put_nowait((kind, nick, " ".join(str(a) for a in ev.arguments)))

        reactor.add_global_handler(kind, handler)

    for kind in ("welcome", "join", "namreply", "pubmsg", "privmsg", "part", "quit"):
        on(kind)

    async def wait_for(kind: str, nick: str = "", text: str = "") -> tuple[str, str, str]:
        deadline = loop.time() + 5 * TIME
        while True:
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError(f"no {kind} {nick} {text!r} from the IRC library")
            ev = await asyncio.wait_for(events.get(), left)
            if ev[0] == kind and (not nick or ev[1] == nick) and text in ev[2]:
                return ev

    conn = await reactor.server().connect("127.0.0.1", srv.ports["irc"], "ann")
    try:
        await wait_for("welcome")
        conn.join("#tas")
        names = await wait_for("namreply")
        assert set(names[2].split()[-3:]) >= {"@bob", "Kay", "ann"} or {"@bob", "Kay"} <= set(
            names[2].replace("= #tas ", "").split()
        ), names
        joined = await asyncio.to_thread(bob.expect, "> ann joined tas")
        assert joined == "> ann joined tas (3 users online)"
        _frames_until(kay, "ann has joined")

        bob.send("hello from the line door")
        assert await wait_for("pubmsg", "bob") == ("pubmsg", "bob", "hello from the line door")
        kay.sendall(b"hi from cs168".ljust(200))
        assert await wait_for("pubmsg", "Kay") == ("pubmsg", "Kay", "hi from cs168")

        conn.privmsg("#tas", "greetings from IRC")
        assert await asyncio.to_thread(bob.expect, "[ann]") == "[ann] greetings from IRC"
        assert "[ann] greetings from IRC" in _frames_until(kay, "[ann] greetings from IRC")

        conn.privmsg("bob", "a private word")
        assert await asyncio.to_thread(bob.expect, "->") == "[ann -> you] a private word"
        bob.send("/msg ann back to you")
        assert await wait_for("privmsg", "bob") == ("privmsg", "bob", "back to you")

        bob.send("/who tas")
        await asyncio.to_thread(bob.expect, "> Users in tas (3):")
        rows = await asyncio.to_thread(bob.drain)
        assert any(
            r.startswith("  ann [127.0.0.1:") and r.endswith(" irc, idle 0s") for r in rows
        ), rows
        assert any(r.startswith("  Kay [127.0.0.1:") for r in rows), rows

        kay.close()
        assert await wait_for("quit", "Kay")
        conn.part("#tas", "bye")
        assert await asyncio.to_thread(bob.expect, "ann left") == (
            "< ann left tas (1 user online): bye"
        )
    finally:
        conn.disconnect("done")


IRSSI_CONFIG = """settings = {
  core = { real_name = "Carol"; user_name = "carol"; nick = "carol"; };
  "irc/core" = { cmd_queue_speed = "0msec"; cmds_max_at_once = "1000"; };
  "fe-common/core" = { theme = "default"; };
};
"""


def _pane(sock: str) -> str:
    return subprocess.run(
        ["tmux", "-L", sock, "capture-pane", "-p", "-t", "carol"], capture_output=True, text=True
    ).stdout


def _wait_pane(sock: str, needle: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout * TIME
    text = ""
    while time.monotonic() < deadline:
        text = _pane(sock)
        if needle in text:
            return text
        time.sleep(0.1)
    raise AssertionError(f"{needle!r} not on irssi's screen:\n{text}")


@pytest.mark.skipif(
    not (shutil.which("irssi") and shutil.which("tmux")),
    reason="needs irssi and tmux (./test installs them)",
)
def test_irssi_talks_with_a_line_user(three_doors: RunningServer, tmp_path: Path) -> None:
    """A real IRC program, irssi, joins #tas and talks with a line user."""
    srv = three_doors
    home = tmp_path / "irssi"
    home.mkdir()
    (home / "config").write_text(IRSSI_CONFIG)
    sock = f"salas-{srv.proc.pid}"
    bob = welcome(srv.port, "bob")
    bob.send("/create tas")
    bob.expect("> You joined tas")
    cmd = f"irssi --home={home} -c 127.0.0.1 -p {srv.ports['irc']} -n carol"
    subprocess.run(
        ["tmux", "-L", sock, "new-session", "-d", "-s", "carol", "-x", "150", "-y", "40", cmd],
        check=True,
    )
    try:
        _wait_pane(sock, "MOTD File is missing")
        subprocess.run(
            ["tmux", "-L", sock, "send-keys", "-t", "carol", "/join #tas", "Enter"], check=True
        )
        _wait_pane(sock, "has joined #tas")
        assert bob.expect("carol joined") == "> carol joined tas (2 users online)"
        bob.send("hello irssi")
        screen = _wait_pane(sock, "hello irssi")
        assert "bob> hello irssi" in screen
        subprocess.run(
            ["tmux", "-L", sock, "send-keys", "-t", "carol", "hello line door", "Enter"], check=True
        )
        assert bob.expect("[carol]") == "[carol] hello line door"
        bob.send("/topic")
        subprocess.run(
            ["tmux", "-L", sock, "send-keys", "-t", "carol", "/quit leaving", "Enter"], check=True
        )
        assert bob.expect("carol left") == "< carol left tas (1 user online): Quit: leaving"
    finally:
        subprocess.run(["tmux", "-L", sock, "kill-server"], capture_output=True)


def test_irc_library_logs_in_with_sasl(three_doors: RunningServer) -> None:
    """jaraco's irc library, with its SASL PLAIN login, takes a registered nick."""
    srv = three_doors
    owner = welcome(srv.port, "dora")
    owner.send("/register pw-dora-1")
    owner.expect("> The name dora is now your account")
    owner.send("/quit")
    assert owner.closed()

    reactor = irc.client.Reactor()
    seen: list[tuple[str, list[str]]] = []

    def note(conn: irc.client.ServerConnection, ev: irc.client.Event) -> None:
        seen.append((ev.type, [str(a) for a in ev.arguments]))

    for kind in ("welcome", "loggedin", "saslsuccess", "saslfail", "login_failed", "whoisaccount"):
        reactor.add_global_handler(kind, note)

    def wait_for(kind: str) -> list[str]:
        deadline = time.monotonic() + 10 * TIME
        while time.monotonic() < deadline:
            for k, args in seen:
                if k == kind:
                    return args
            reactor.process_once(0.05)
        raise AssertionError(f"no {kind} from the IRC library; saw {seen}")

    conn = reactor.server().connect(
        "127.0.0.1", srv.ports["irc"], "dora", password="pw-dora-1", sasl_login="dora"
    )
    try:
        assert wait_for("loggedin")[1:] == ["dora", "You are now logged in as dora"]
        wait_for("saslsuccess")
        wait_for("welcome")
        assert conn.get_nickname() == "dora"
        conn.whois(["dora"])
        assert wait_for("whoisaccount")[:2] == ["dora", "dora"]
        assert not [k for k, _ in seen if k in ("saslfail", "login_failed")]
    finally:
        conn.close()


IRSSI_SASL_CONFIG = """servers = (
  { address = "127.0.0.1"; port = "{port}"; chatnet = "salas"; autoconnect = "yes"; }
);
chatnets = {
  salas = {
    type = "IRC";
    sasl_mechanism = "PLAIN";
    sasl_username = "erin";
    sasl_password = "pw-erin-1";
  };
};
settings = {
  core = { real_name = "Erin"; user_name = "erin"; nick = "erin"; };
  "fe-common/core" = { theme = "default"; };
};
"""


@pytest.mark.skipif(
    not (shutil.which("irssi") and shutil.which("tmux")),
    reason="needs irssi and tmux (./test installs them)",
)
def test_irssi_logs_in_with_sasl(three_doors: RunningServer, tmp_path: Path) -> None:
    """irssi, set up for SASL PLAIN as its users do, logs in while connecting."""
    srv = three_doors
    owner = welcome(srv.port, "erin")
    owner.send("/register pw-erin-1")
    owner.expect("> The name erin is now your account")
    owner.send("/quit")
    assert owner.closed()
    home = tmp_path / "irssi-sasl"
    home.mkdir()
    (home / "config").write_text(IRSSI_SASL_CONFIG.replace("{port}", str(srv.ports["irc"])))
    sock = f"salas-sasl-{srv.proc.pid}"
    cmd = f"irssi --home={home}"
    subprocess.run(
        ["tmux", "-L", sock, "new-session", "-d", "-s", "carol", "-x", "150", "-y", "40", cmd],
        check=True,
    )
    try:
        screen = _wait_pane(sock, "MOTD File is missing")
        assert "You are now logged in as erin" in screen
        assert "IRC Network erin!~erin@127.0.0.1" in screen  # the registered nick, not erin_
    finally:
        subprocess.run(["tmux", "-L", sock, "kill-server"], capture_output=True)

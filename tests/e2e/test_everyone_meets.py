"""SPEC: "People in one room talk to each other from our terminal client, netcat,
a real IRC client or a browser, with the same names, rooms and history" — one
room, one person on each door (web JSON, line, CS168, IRC): each sees the
others' messages, joins and leaves, and a newcomer on any door is shown what
was said before.

Each client here is a few lines over a raw socket (or the websockets client),
so the checks do not trust the code they check.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from websockets.sync.client import connect

from support import TIME, RunningServer, start_server, welcome

ROOM = "meet"
FRAME = 200


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    s = start_server(
        tmp_path_factory.mktemp("meet"),
        ("line", "irc", "cs168", "http"),
        config='[limits]\nflood_exempt = ["127.0.0.0/8"]\n',
    )
    yield s
    s.stop()


def until(
    get: Callable[[], list[str]], queued: list[str], want: Callable[[str], bool], what: str
) -> str:
    """The first line ``want`` accepts, from ``queued`` (lines read but not yet
    looked at) and then from ``get``, for at most 5 s; later lines stay queued."""
    deadline = time.monotonic() + 5 * TIME
    seen: list[str] = []
    while True:
        while queued:
            line = queued.pop(0)
            seen.append(line)
            if want(line):
                return line
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what}; saw {seen[-10:]}")
        queued.extend(get())


class Irc:
    def __init__(self, port: int, nick: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), 5 * TIME)
        self.sock.settimeout(0.2)
        self.buf = b""
        self.queued: list[str] = []
        self.sock.sendall(f"NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\n".encode())
        self.expect(lambda line: " 001 " in line, "welcome")

    def lines(self) -> list[str]:
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            return []
        self.buf += chunk
        *done, self.buf = self.buf.split(b"\r\n")
        for raw in done:
            if raw.startswith(b"PING "):
                self.sock.sendall(b"PONG " + raw[5:] + b"\r\n")
        return [raw.decode() for raw in done]

    def expect(self, want: Callable[[str], bool], what: str) -> str:
        return until(self.lines, self.queued, want, what)

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\r\n")


class Cs168:
    def __init__(self, port: int, name: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), 5 * TIME)
        self.sock.settimeout(0.2)
        self.buf = b""
        self.queued: list[str] = []
        self.send(name)

    def send(self, text: str) -> None:
        self.sock.sendall(text.encode().ljust(FRAME))

    def lines(self) -> list[str]:
        try:
            self.buf += self.sock.recv(65536)
        except TimeoutError:
            return []
        out = []
        while len(self.buf) >= FRAME:
            out.append(self.buf[:FRAME].decode().rstrip(" "))
            self.buf = self.buf[FRAME:]
        return out

    def expect(self, want: Callable[[str], bool], what: str) -> str:
        return until(self.lines, self.queued, want, what)


class Web:
    def __init__(self, port: int, name: str) -> None:
        # Entered by hand: newer releases want connect() used as a context.
        self.ws = connect(f"ws://127.0.0.1:{port}/ws", open_timeout=5 * TIME).__enter__()
        self.queued: list[str] = []
        self.send("hello", name=name)

    def send(self, type_: str, **fields: Any) -> None:
        self.ws.send(json.dumps({"type": type_, **fields}))

    def events(self) -> list[str]:
        try:
            return [str(self.ws.recv(timeout=0.2))]
        except TimeoutError:
            return []

    def expect(self, type_: str, **match: Any) -> dict[str, Any]:
        def fits(raw: str) -> bool:
            msg = json.loads(raw)
            return msg.get("type") == type_ and all(msg.get(k) == v for k, v in match.items())

        return dict(json.loads(until(self.events, self.queued, fits, f"{type_} {match}")))


def test_one_room_four_doors(srv: RunningServer) -> None:
    web = Web(srv.ports["http"], "webby")
    web.send("create", room=ROOM)
    web.expect("joined", room=ROOM, own=True)
    web.send("say", room=ROOM, text="said before anyone came <i>")

    line = welcome(srv.port, "liney")
    line.send(f"/join {ROOM}")
    line.expect("> You joined meet")
    # History on joining, on the line door: what the web user said before.
    line.expect("[webby] said before anyone came <i>")
    assert web.expect("joined", who="liney")["count"] == 2

    irc = Irc(srv.ports["irc"], "ircy")
    irc.send(f"JOIN #{ROOM}")
    irc.expect(lambda s: " 366 " in s, "end of NAMES")
    # History on joining, on IRC (a client without chathistory gets playback).
    irc.expect(lambda s: "said before anyone came <i>" in s and "webby" in s, "playback")
    line.expect("> ircy joined meet (3 users online)")

    cs = Cs168(srv.ports["cs168"], "csy")
    cs.send(f"/join {ROOM}")
    line.expect("> csy joined meet (4 users online)")
    irc.expect(lambda s: s.startswith(":csy!") and "JOIN" in s, "csy's JOIN")
    assert web.expect("joined", who="csy")["count"] == 4

    # Each says something; each of the others sees it.
    line.send("from the line")
    irc.expect(lambda s: "PRIVMSG #meet :from the line" in s, "line's message on IRC")
    cs.expect(lambda s: s == "[liney] from the line", "line's message on CS168")
    assert web.expect("message", text="from the line")["from"] == "liney"

    irc.send(f"PRIVMSG #{ROOM} :from irc")
    line.expect("[ircy] from irc")
    cs.expect(lambda s: s == "[ircy] from irc", "IRC's message on CS168")
    assert web.expect("message", text="from irc")["from"] == "ircy"

    cs.send("from cs168")
    line.expect("[csy] from cs168")
    irc.expect(lambda s: s.startswith(":csy!") and "from cs168" in s, "CS168's message on IRC")
    assert web.expect("message", text="from cs168")["from"] == "csy"

    web.send("say", room=ROOM, text="from the web")
    line.expect("[webby] from the web")
    irc.expect(lambda s: s.startswith(":webby!") and "from the web" in s, "web's message on IRC")
    cs.expect(lambda s: s == "[webby] from the web", "web's message on CS168")

    # Leaves, seen on every other door.
    irc.send(f"PART #{ROOM} :bye")
    line.expect("< ircy left meet (3 users online)")
    cs.expect(lambda s: s == "ircy has left", "IRC's part on CS168")
    assert web.expect("left", who="ircy")["count"] == 3
    cs.sock.close()
    line.expect("< csy left meet (2 users online)")
    assert web.expect("left", who="csy")["count"] == 2
    web.ws.close()
    line.expect("< webby left meet (1 user online)")
    line.close()
    irc.sock.close()

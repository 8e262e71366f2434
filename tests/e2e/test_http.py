"""The http door end to end: a real ``salas serve``, real sockets, the ``websockets``
client library (and its command-line client, seed 000's), and raw sockets for
what no polite client sends. Each test quotes the SPEC or seed line it checks."""

from __future__ import annotations

import http.client
import json
import os
import re
import select
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.sync.client import ClientConnection, connect
from websockets.uri import parse_uri

from support import (
    PYTHON,
    TIME,
    RunningServer,
    salas_cmd,
    start_server,
    test_env,
    welcome,
)

EXEMPT = '[limits]\nflood_exempt = ["127.0.0.0/8"]\n'


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One server for the tests that need nothing special (each uses its own names;
    no flood limit from here, the flood tests have their own server)."""
    s = start_server(tmp_path_factory.mktemp("http"), ("line", "http"), config=EXEMPT)
    yield s
    s.stop()


def url(server: RunningServer, path: str) -> str:
    return f"ws://127.0.0.1:{server.ports['http']}{path}"


def open_ws(address: str) -> ClientConnection:
    """A connected sync client (entered: newer releases want connect() as a context)."""
    return connect(address, open_timeout=5 * TIME).__enter__()


class Chat:
    """A well-behaved /chat client: the websockets library's sync client."""

    def __init__(self, server: RunningServer, name: str | None = None) -> None:
        self.ws = open_ws(url(server, "/chat"))
        self.seen: list[str] = []
        self.expect("> You joined lobby")
        if name:
            self.send(f"/nick {name}")
            self.expect(f"> You are now known as {name}")

    def send(self, text: str) -> None:
        self.ws.send(text)

    def next(self, timeout: float = 5.0) -> str:
        try:
            msg = self.ws.recv(timeout=timeout * TIME)
        except TimeoutError:
            raise TimeoutError(f"nothing within {timeout}s; seen: {self.seen[-10:]}") from None
        assert isinstance(msg, str), msg
        self.seen.append(msg)
        return msg

    def expect(self, needle: str, timeout: float = 5.0) -> str:
        deadline = time.monotonic() + timeout * TIME
        while True:
            left = (deadline - time.monotonic()) / TIME
            if left <= 0:
                raise TimeoutError(f"{needle!r} not seen; seen: {self.seen[-12:]}")
            text = self.next(left)
            if needle in text:
                return text

    def close(self) -> None:
        self.ws.close()


class Web:
    """A /ws client speaking the JSON protocol."""

    def __init__(self, server: RunningServer, name: str | None = None, hello: bool = True) -> None:
        self.ws = open_ws(url(server, "/ws"))
        self.seen: list[dict[str, Any]] = []
        if hello:
            self.send("hello", **({"name": name} if name else {}))
            self.welcome = self.expect("welcome")
            self.expect("joined", room="lobby", own=True)

    def send(self, type_: str, **fields: Any) -> None:
        self.ws.send(json.dumps({"type": type_, **fields}))

    def expect(self, type_: str, timeout: float = 5.0, **match: Any) -> dict[str, Any]:
        deadline = time.monotonic() + timeout * TIME
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {type_} {match}; seen: {self.seen[-8:]}")
            try:
                raw = self.ws.recv(timeout=left)
            except TimeoutError:
                continue
            msg = json.loads(raw)
            self.seen.append(msg)
            if msg["type"] == type_ and all(msg.get(k) == v for k, v in match.items()):
                return msg

    def close(self) -> None:
        self.ws.close()


class RawWs:
    """A WebSocket over a plain socket, framed by the library's sans-I/O client:
    for frames and behaviours a polite client won't produce."""

    def __init__(
        self,
        server: RunningServer,
        path: str = "/chat",
        rcvbuf: int | None = None,
        answer_pings: bool = True,
    ) -> None:
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(5 * TIME)
        self.sock.connect(("127.0.0.1", server.ports["http"]))
        self.ws = ClientProtocol(parse_uri(url(server, path)), max_size=None)
        self.ws.send_request(self.ws.connect())
        self.answer_pings = answer_pings
        self.frames: list[Frame] = []
        self.eof = False
        self._flush()
        deadline = time.monotonic() + 5 * TIME
        while self.ws.state is not State.OPEN:
            assert self._pump(deadline), "no handshake"

    def _flush(self) -> None:
        for data in self.ws.data_to_send():
            if data:
                self.sock.sendall(data)

    def _pump(self, deadline: float) -> bool:
        left = deadline - time.monotonic()
        if left <= 0 or self.eof:
            return False
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return False
        except OSError:
            data = b""
        if not data:
            self.eof = True
            self.ws.receive_eof()
            return False
        self.ws.receive_data(data)
        self.frames += [f for f in self.ws.events_received() if isinstance(f, Frame)]
        if self.answer_pings:
            self._flush()
        else:
            self.ws.data_to_send()  # a dead peer answers nothing
        return True

    def send(self, frame: Frame) -> None:
        self.ws.send_frame(frame)
        self._flush()

    def texts(self) -> list[str]:
        return [bytes(f.data).decode() for f in self.frames if f.opcode is Opcode.TEXT]

    def expect(self, needle: str, timeout: float = 5.0) -> str:
        deadline = time.monotonic() + timeout * TIME
        while True:
            found = [t for t in self.texts() if needle in t]
            if found:
                return found[0]
            if not self._pump(deadline):
                raise TimeoutError(f"{needle!r} not seen; seen: {self.texts()[-10:]}")

    def close_code(self, timeout: float = 5.0) -> int | None:
        """The code of the server's close frame, once the server has closed."""
        deadline = time.monotonic() + timeout * TIME
        while not self.eof and self._pump(deadline):
            pass
        assert self.eof, "the server did not close the connection"
        return self.ws.close_rcvd.code if self.ws.close_rcvd is not None else None


def http_get(
    server: RunningServer, path: str, method: str = "GET"
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.ports["http"], timeout=5 * TIME)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def raw_http(server: RunningServer, data: bytes, timeout: float = 5.0) -> bytes:
    """Send ``data``, read until the server closes: the whole answer."""
    with socket.create_connection(("127.0.0.1", server.ports["http"]), 5 * TIME) as s:
        s.sendall(data)
        out = b""
        deadline = time.monotonic() + timeout * TIME
        while time.monotonic() < deadline:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                return out
            out += chunk
        raise AssertionError(f"the server did not close; got {out[:200]!r}")


# -- seed 000: /chat, /echo, the pages ------------------------------------------------


def test_chat_speaks_the_line_protocol_in_text_frames(srv: RunningServer) -> None:
    """SPEC http: WebSocket /chat (line protocol in text frames). On connect: a
    welcome line, a guest name valid in every protocol, and the lobby."""
    ws = open_ws(url(srv, "/chat"))
    try:
        assert ws.recv(timeout=5 * TIME).startswith("> Welcome to salas.local")
        line = ws.recv(timeout=5 * TIME)
        assert isinstance(line, str)
        m = re.match(r"> Connected to the chat server as (guest\d{5}) \(\d+ users? online\)$", line)
        assert m, line
        assert str(ws.recv(timeout=5 * TIME)).startswith("> You joined lobby (")
        ws.send("/echo one frame, one line")
        got = ws.recv(timeout=5 * TIME)
        while got != "one frame, one line":
            assert isinstance(got, str) and "\n" not in got
            got = ws.recv(timeout=5 * TIME)
    finally:
        ws.close()


def test_chat_join_and_leave_notices(srv: RunningServer) -> None:
    """Seed 000: a relay with join/leave notices; SPEC: notices carry who and how many."""
    a = Chat(srv, "wsann")
    a.send("/create seedroom")
    a.expect("> You joined seedroom (1 user online)")
    b = Chat(srv, "wsbob")
    b.send("/join seedroom")
    b.expect("> You joined seedroom (2 users online)")
    assert a.expect("wsbob joined") == "> wsbob joined seedroom (2 users online)"
    b.send("hello from the bottom tab")
    assert a.expect("[wsbob]") == "[wsbob] hello from the bottom tab"
    b.close()
    assert a.expect("< wsbob") == "< wsbob left seedroom (1 user online): Connection closed"
    a.close()


def test_line_chat_and_web_users_share_a_room(srv: RunningServer) -> None:
    """SPEC: people in the same room talk to each other whichever door they came in by."""
    line = welcome(srv.port, "liner")
    line.send("/create mixed")
    line.expect("> You joined mixed")
    chat = Chat(srv, "chatter")
    chat.send("/join mixed")
    chat.expect("> You joined mixed (2 users online)")
    assert line.expect("chatter joined") == "> chatter joined mixed (2 users online)"
    web = Web(srv, "webber")
    web.send("join", room="mixed", id="j")
    joined = web.expect("joined", room="mixed", own=True)
    assert joined == {
        "type": "joined",
        "room": "mixed",
        "who": "webber",
        "account": None,
        "count": 3,
        "own": True,
        "re": "j",
    }
    members = web.expect("members", room="mixed")
    assert {m["name"] for m in members["members"]} == {"liner", "chatter", "webber"}
    assert line.expect("webber joined") == "> webber joined mixed (3 users online)"
    assert chat.expect("webber joined") == "> webber joined mixed (3 users online)"

    line.send("from the line door <b>")
    assert chat.expect("[liner]") == "[liner] from the line door <b>"
    got = web.expect("message", **{"from": "liner"})
    assert got["text"] == "from the line door <b>" and got["own"] is False
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", got["time"])
    first_id = got["id"]

    chat.send("from the chat socket")
    assert line.expect("[chatter]") == "[chatter] from the chat socket"
    assert web.expect("message", **{"from": "chatter"})["text"] == "from the chat socket"

    web.send("say", room="mixed", text="from the web", id=7)
    mine = web.expect("message", own=True)
    assert mine["re"] == 7 and mine["id"] > first_id and mine["room"] == "mixed"
    assert line.expect("[webber]") == "[webber] from the web"
    assert chat.expect("[webber]") == "[webber] from the web"
    web.send("say", room="mixed", text="waves", kind="action")
    assert line.expect("webber waves") == "* webber waves"

    chat.send("/leave")
    assert line.expect("chatter left") == "< chatter left mixed (2 users online)"
    left = web.expect("left", who="chatter")
    assert (left["count"], left["kind"]) == (2, "leave")
    web.close()
    assert line.expect("webber left") == "< webber left mixed (1 user online): Connection closed"
    chat.close()
    line.close()


def test_echo_echoes_every_frame(srv: RunningServer) -> None:
    """Seed 000: /echo echoes (text and binary)."""
    with connect(url(srv, "/echo"), open_timeout=5 * TIME) as ws:
        ws.send("hello echo")
        assert ws.recv(timeout=5 * TIME) == "hello echo"
        ws.send(b"\x00\x01\xff")
        assert ws.recv(timeout=5 * TIME) == b"\x00\x01\xff"
        ws.send("é ✓ 𝄞")
        assert ws.recv(timeout=5 * TIME) == "é ✓ 𝄞"


@pytest.mark.parametrize(
    ("path", "ctype", "needle"),
    [
        ("/", "text/html; charset=utf-8", b'src="/app.js"'),
        ("/app.js", "text/javascript; charset=utf-8", b"/ws"),
        ("/app.css", "text/css; charset=utf-8", b"prefers-color-scheme: dark"),
        ("/ui-chat", "text/html; charset=utf-8", b'src="/ui-chat.js"'),
        ("/ui-echo", "text/html; charset=utf-8", b'src="/ui-echo.js"'),
        ("/ui-chat.js", "text/javascript; charset=utf-8", b"/chat"),
        ("/ui-echo.js", "text/javascript; charset=utf-8", b"/echo"),
        ("/seed.css", "text/css; charset=utf-8", b"focus-visible"),
    ],
)
def test_pages_are_served_with_types_and_security_headers(
    srv: RunningServer, path: str, ctype: str, needle: bytes
) -> None:
    """SPEC http: the web client at /, seed pages /ui-chat /ui-echo; pages show
    text, never the sender's HTML (no inline script: CSP)."""
    status, headers, body = http_get(srv, path)
    assert status == 200
    assert headers["content-type"] == ctype
    assert needle in body
    csp = headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert headers["x-content-type-options"] == "nosniff"
    assert int(headers["content-length"]) == len(body)
    status, headers, body = http_get(srv, path, "HEAD")
    assert (status, body) == (200, b"")
    assert headers["content-type"] == ctype


@pytest.mark.parametrize(
    "path",
    [
        "/../pyproject.toml",
        "/../../../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/%2E%2E%2Fpyproject.toml",
        "/..%2f..%2fetc%2fpasswd",
        "/web%2findex.html",
        "/index.html%00.js",
        "/index.html\x00",
        "//etc/passwd",
        "/etc/passwd",
        "/salas/web/index.html",
        "/./index.html",
        "/.\\index.html",
        "/..\\..\\pyproject.toml",
        "/__init__.py",
        "/cli.py",
        "http://127.0.0.1/../pyproject.toml",
    ],
)
def test_paths_cannot_escape_the_site(srv: RunningServer, path: str) -> None:
    answer = raw_http(srv, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode("latin-1"))
    assert answer.startswith(b"HTTP/1.1 404 "), answer[:100]
    assert b"root:" not in answer and b"[project]" not in answer


def test_only_get_and_head(srv: RunningServer) -> None:
    answer = raw_http(srv, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
    assert answer.startswith(b"HTTP/1.1 405 ")
    assert b"\r\nAllow: GET, HEAD\r\n" in answer


def test_seed_cli_python_m_websockets(srv: RunningServer, tmp_path: Path) -> None:
    """Seed 000: CLI via ``python -m websockets ws://host:8080/chat``."""
    line = welcome(srv.port, "seedline")
    line.send("/create clitest")
    line.expect("> You joined clitest")
    proc = subprocess.Popen(
        [PYTHON, "-m", "websockets", url(srv, "/chat")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=test_env(tmp_path),
    )
    assert proc.stdin is not None and proc.stdout is not None
    out = b""

    def until(needle: bytes, timeout: float = 10.0) -> None:
        nonlocal out
        deadline = time.monotonic() + timeout * TIME
        while needle not in out:
            left = deadline - time.monotonic()
            assert left > 0, f"{needle!r} not printed: {out[-600:]!r}"
            ready, _, _ = select.select([proc.stdout], [], [], left)
            if ready:
                chunk = os.read(proc.stdout.fileno(), 65536)
                assert chunk, f"the client exited: {out[-600:]!r}"
                out += chunk

    try:
        until(b"Connected to ws://")
        until(b"< > You joined lobby (")
        proc.stdin.write(b"/nick seedcli\n/join clitest\n")
        proc.stdin.flush()
        until(b"< > You joined clitest (2 users online)")
        assert line.expect("seedcli joined") == "> seedcli joined clitest (2 users online)"
        proc.stdin.write(b"Hello, I'm from the central tab\n")
        proc.stdin.flush()
        assert line.expect("[seedcli]") == "[seedcli] Hello, I'm from the central tab"
        line.send("Nice! I'm coming from netcat")
        until(b"< [seedline] Nice! I'm coming from netcat")
        proc.stdin.close()  # ^D: the client closes with 1000
        until(b"Connection closed: 1000 (OK).")
        assert proc.wait(5 * TIME) == 0
        left = line.expect("seedcli left")
        assert left == "< seedcli left clitest (1 user online): Connection closed"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        proc.stdout.close()


def test_salas_chat_ws_url(srv: RunningServer, tmp_path: Path) -> None:
    """SPEC: salas chat URL takes ws://HOST:PORT/chat; plain lines with pipes."""
    line = welcome(srv.port, "wsfriend")
    line.send("/create pipews")
    line.expect("> You joined pipews")
    proc = subprocess.Popen(
        salas_cmd("chat", url(srv, "/chat"), "--name", "piper", "--room", "pipews"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=test_env(tmp_path),
        text=True,
    )
    try:
        assert line.expect("piper joined") == "> piper joined pipews (2 users online)"
        out, err = proc.communicate("over the websocket\n", timeout=15 * TIME)
        assert proc.returncode == 0, err
        assert "> You joined pipews (2 users online)" in out
        assert line.expect("[piper]") == "[piper] over the websocket"
        assert "> Bye" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    sent = subprocess.run(
        salas_cmd("send", url(srv, "/chat"), "--room", "pipews", "--name", "notifier", "done"),
        capture_output=True,
        text=True,
        timeout=15 * TIME,
        env=test_env(tmp_path),
    )
    assert sent.returncode == 0, sent.stderr
    assert line.expect("[notifier]") == "[notifier] done"


# -- the JSON protocol ------------------------------------------------------------------


def test_json_protocol_history_lists_and_errors(srv: RunningServer) -> None:
    """SPEC: history is shown on join and on request, in every protocol."""
    web = Web(srv, "jsonist")
    assert web.welcome["name"] == "jsonist" and web.welcome["server"] == "salas.local"
    web.send("create", room="jsonroom", limit=2, id="c")
    assert web.expect("joined", room="jsonroom")["re"] == "c"
    for i in range(5):
        web.send("say", room="jsonroom", text=f"m{i}")
        web.expect("message", own=True, text=f"m{i}")
    ids = [m["id"] for m in web.seen if m["type"] == "message" and m["room"] == "jsonroom"]
    web.send("history", room="jsonroom", before=ids[3], limit=2, id=1)
    hist = web.expect("history", re=1)
    assert hist["reason"] == "request" and hist["target"] == "jsonroom"
    assert [m["text"] for m in hist["messages"]] == ["m1", "m2"]
    assert [m["id"] for m in hist["messages"]] == ids[1:3]
    other = Web(srv, "latecomer")
    other.send("join", room="jsonroom")
    playback = other.expect("history", reason="join")
    assert [m["text"] for m in playback["messages"]][-5:] == [f"m{i}" for i in range(5)]
    third = Web(srv, "toomany")
    third.send("join", room="jsonroom", id="full")
    err = third.expect("error", re="full")
    assert err["code"] == "room_full" and err["room"] == "jsonroom" and err["limit"] == 2
    third.send("list", id="l")
    rooms = {r["name"]: r for r in third.expect("rooms", re="l")["rooms"]}
    assert rooms["jsonroom"] == {
        "name": "jsonroom",
        "count": 2,
        "limit": 2,
        "topic": "",
        "private": False,
        "keyed": False,
        "permanent": False,
    }
    web.send("topic", room="jsonroom", text="plans", id="t")
    assert other.expect("topic", room="jsonroom")["text"] == "plans"
    web.send("msg", to="latecomer", text="psst")
    assert other.expect("private")["text"] == "psst"
    web.send("nick", name="jsonista")
    assert other.expect("renamed") == {
        "type": "renamed",
        "old": "jsonist",
        "new": "jsonista",
        "own": False,
    }
    web.send("who", room="jsonroom", id="w")
    who = web.expect("members", re="w")
    assert {m["name"] for m in who["members"]} == {"jsonista", "latecomer"}
    web.ws.send("{not json")
    assert web.expect("error")["code"] == "bad_json"
    web.send("ping", id="p")
    assert web.expect("pong")["re"] == "p"
    for w in (web, other, third):
        w.close()


def test_json_accounts(srv: RunningServer) -> None:
    """SPEC: a registered name can't be taken by a guest; passwords are stored hashed."""
    web = Web(srv, "acctweb")
    web.send("register", password="s3cret-pw", id="r")
    assert web.expect("account_registered", re="r")["account"] == "acctweb"
    web.close()
    guest = Web(srv, hello=False)
    guest.send("hello", name="acctweb", id="h")
    assert guest.expect("error", re="h")["code"] == "name_reserved"
    guest.send("hello", id="h2")
    guest.expect("welcome", re="h2")
    guest.send("login", name="acctweb", password="wrong", id="bad")
    assert guest.expect("error", re="bad")["code"] == "login_failed"
    # A failure slows the next check down (the server waits, then checks).
    guest.send("login", name="acctweb", password="s3cret-pw", id="ok")
    logged = guest.expect("logged_in", re="ok", timeout=10)
    assert logged["account"] == "acctweb" and logged["name"] == "acctweb"
    guest.close()


def test_json_before_hello_and_after_close(srv: RunningServer) -> None:
    web = Web(srv, hello=False)
    web.send("say", room="lobby", text="sneaky", id=1)
    assert web.expect("error", re=1)["code"] == "not_registered"
    web.send("hello", name="carefulweb", id=2)
    assert web.expect("welcome", re=2)["name"] == "carefulweb"
    web.send("quit", reason="done here")
    assert web.expect("closing") == {"type": "closing", "reason": "done here", "kind": "quit"}
    with pytest.raises(ConnectionClosed):
        web.ws.recv(timeout=5 * TIME)
    assert web.ws.close_code == 1000


# -- bad input ------------------------------------------------------------------------


def test_binary_and_oversized_frames(srv: RunningServer) -> None:
    """SPEC: oversize frames get a clear error or a disconnect, never a crash."""
    chat = Chat(srv, "bigsender")
    chat.ws.send(b"\x00\x01binary")
    assert chat.expect("!") == "! Binary frames are not read here: send text"
    chat.send("x" * 20_000)
    assert chat.expect("!") == "! Frame too long (over 16384 bytes), so it was not sent"
    chat.send("/echo still fine")
    assert chat.expect("still fine") == "still fine"
    web = Web(srv, "bigweb")
    web.ws.send(b"\x00")
    assert web.expect("error")["code"] == "binary"
    web.ws.send(json.dumps({"type": "say", "room": "lobby", "text": "y" * 20_000}))
    assert web.expect("error")["code"] == "too_long"
    web.send("ping", id="alive")
    web.expect("pong", re="alive")
    raw = RawWs(srv, "/chat")
    # A frame that says it carries 70,000 bytes (past 64 KiB): refused on its
    # header with 1009, before any of it is held. (Only the start is sent: a
    # socket closed with unread input is reset, and the close frame may be lost.)
    raw.sock.sendall(b"\x81\xff" + (70_000).to_bytes(8, "big") + b"mask" + b"z" * 100)
    assert raw.close_code() == 1009
    chat.close()
    web.close()


def test_invalid_utf8_closes_with_1007_and_others_carry_on(srv: RunningServer) -> None:
    watcher = welcome(srv.port, "utfwatch")
    raw = RawWs(srv, "/chat")
    raw.expect("> You joined lobby")
    raw.send(Frame(Opcode.TEXT, b"/nick utfbad"))
    raw.expect("> You are now known as utfbad")
    raw.send(Frame(Opcode.TEXT, b"caf\xe9 latin-1"))
    assert raw.close_code() == 1007
    left = watcher.expect("utfbad left")
    why = "Invalid UTF-8 in a text frame"
    assert re.fullmatch(rf"< utfbad left lobby \(\d+ users? online\): {why}", left)
    assert not any("latin-1" in s for s in watcher.seen)
    echo = RawWs(srv, "/echo")
    echo.send(Frame(Opcode.TEXT, b"\xed\xa0\x80"))  # an encoded surrogate is not UTF-8
    assert echo.close_code() == 1007
    watcher.send("/echo fine")
    assert watcher.expect("fine") == "fine"


def test_garbage_instead_of_http_is_400_and_nobody_else_notices(srv: RunningServer) -> None:
    import random

    rng = random.Random(1151)
    chat = Chat(srv, "bystander")
    tls_hello = bytes.fromhex("160301020001") + bytes(rng.randrange(256) for _ in range(500))
    assert raw_http(srv, tls_hello).startswith(b"HTTP/1.1 400 ")
    assert raw_http(srv, b"hello there\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert raw_http(srv, b"GET / HTTP/1.1\r\nNo colon here\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", srv.ports["http"]), 5 * TIME) as s:
            s.sendall(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 3000))))
    big = b"GET / HTTP/1.1\r\n" + b"X-Pad: " + b"p" * 20_000 + b"\r\n\r\n"
    assert raw_http(srv, big).startswith(b"HTTP/1.1 431 ")
    plain = raw_http(srv, b"GET /chat HTTP/1.1\r\nHost: x\r\n\r\n")
    assert plain.startswith(b"HTTP/1.1 426 ")
    chat.send("/echo still here")
    assert chat.expect("still here") == "still here"
    assert srv.proc.poll() is None
    chat.close()


def test_flood_is_delayed_then_disconnected(tmp_path: Path) -> None:
    """SPEC: floods get a clear error or a disconnect, never slow other users;
    each frame costs a flood token."""
    config = "[limits]\nflood_rate = 5.0\nflood_burst = 5\nflood_queue = 10\n"
    s = start_server(tmp_path, ("line", "http"), config=config)
    try:
        other = welcome(s.port, "floodwatch")
        flooder = RawWs(s, "/chat")
        flooder.expect("> You joined lobby")
        flooder.send(Frame(Opcode.TEXT, b"/nick wsflood"))
        flooder.expect("> You are now known as wsflood")
        time.sleep(1.2)  # the bucket refills
        for i in range(100):
            flooder.send(Frame(Opcode.TEXT, b"spam %d" % i))
        assert flooder.expect("! You are sending too fast").startswith("! You are sending too fast")
        assert flooder.expect("! Disconnected") == "! Disconnected: Excess flood"
        assert flooder.close_code() == 1008
        assert other.expect("wsflood left") == "< wsflood left lobby (1 user online): Excess flood"
        spam = [line for line in other.seen if line.startswith("[wsflood]")]
        assert 1 <= len(spam) <= 6, spam
        pinger = RawWs(s, "/echo")
        for i in range(60):  # pings are frames too
            pinger.send(Frame(Opcode.PING, b"%d" % i))
        assert pinger.close_code() == 1008
        other.send("/echo unaffected")
        assert other.expect("unaffected") == "unaffected"
    finally:
        s.stop()


def test_slow_reader_is_cut_off(tmp_path: Path) -> None:
    """SPEC: a client that stops reading is cut off once its outgoing buffer passes a bound."""
    s = start_server(tmp_path, ("line", "http"), config=EXEMPT + "sendq_bytes = 65536\n")
    try:
        slow = RawWs(s, "/chat", rcvbuf=4096)
        slow.send(Frame(Opcode.TEXT, b"/nick wsslow"))
        talker = welcome(s.port, "talker")
        reader = welcome(s.port, "reader")
        text = "z" * 3900
        cut = False
        for i in range(3000):
            talker.send(f"{i} {text}")
            assert reader.expect("[talker]").startswith(f"[talker] {i} ")
            if i % 50 == 49 and any("cut off: SendQ exceeded" in x for x in s.log):
                cut = True
                break
        assert cut, "the WebSocket that never reads was not cut off"
        reader.drain()
        assert "< wsslow left lobby (2 users online): SendQ exceeded" in reader.seen
    finally:
        s.stop()


def test_half_open_and_slow_requests_meet_the_registration_timeout(tmp_path: Path) -> None:
    """SPEC: idle half-open sockets get a disconnect; a slow HTTP request head too,
    and a /ws client that never says hello. An /echo socket needs no name."""
    config = "[limits]\nregister_timeout = 1.0\n[http]\nping_interval = 1\nping_timeout = 1\n"
    s = start_server(tmp_path, ("line", "http"), config=config)
    try:
        silent = socket.create_connection(("127.0.0.1", s.ports["http"]), 5 * TIME)
        slow = socket.create_connection(("127.0.0.1", s.ports["http"]), 5 * TIME)
        slow.sendall(b"GET / HTTP/1.1\r\n")
        nameless = RawWs(s, "/ws")
        echo = RawWs(s, "/echo")
        started = time.monotonic()
        for _ in range(6):  # a header every so often, never the end
            time.sleep(0.25)
            slow.sendall(b"X-Slow: 1\r\n")
        for sock in (silent, slow):
            sock.settimeout(5 * TIME)
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 408 "), answer[:80]
            sock.close()
        assert nameless.close_code() == 1008
        assert "Registration timed out" in nameless.texts()[0]
        assert time.monotonic() - started < 4 * TIME
        # The echo socket is still served (it answers the server's pings).
        echo.send(Frame(Opcode.TEXT, b"still echoing"))
        deadline = time.monotonic() + 5 * TIME
        while b"still echoing" not in [bytes(f.data) for f in echo.frames]:
            assert echo._pump(deadline), "no echo"
        assert not echo.eof
    finally:
        s.stop()


def test_a_peer_that_vanishes_is_dropped_by_the_keepalive(tmp_path: Path) -> None:
    """SPEC: idle half-open sockets get a disconnect (here: pings go unanswered)."""
    config = "[http]\nping_interval = 1\nping_timeout = 1\n"
    s = start_server(tmp_path, ("line", "http"), config=config)
    try:
        watcher = welcome(s.port, "pingwatch")
        ghost = RawWs(s, "/chat", answer_pings=False)
        ghost.send(Frame(Opcode.TEXT, b"/nick ghost"))
        watcher.expect("is now known as ghost")
        deadline = time.monotonic() + 8 * TIME
        while time.monotonic() < deadline and not ghost.eof:
            ghost._pump(deadline)
        assert ghost.eof, "the silent WebSocket was not dropped"
        assert any(f.opcode is Opcode.PING for f in ghost.frames)
        left = watcher.expect("ghost left")
        assert re.fullmatch(
            r"< ghost left lobby \(1 user online\): Ping timeout: \d+ seconds", left
        )
    finally:
        s.stop()


def test_shutdown_tells_websocket_users(tmp_path: Path) -> None:
    """SPEC: Ctrl-C / SIGTERM: clients are told, exit 0."""
    s = start_server(tmp_path, ("line", "http"))
    chat = RawWs(s, "/chat")
    chat.expect("> You joined lobby")
    web = Web(s, "leaving")
    echo = RawWs(s, "/echo")
    assert s.stop() == 0
    assert chat.expect("! Server shutting down") == "! Server shutting down"
    assert chat.close_code() == 1001
    assert web.expect("closing")["kind"] == "shutdown"
    assert echo.close_code() == 1001


def test_line_client_sees_web_user_in_who(srv: RunningServer) -> None:
    web = Web(srv, "whoweb")
    chat = Chat(srv, "whochat")
    line = welcome(srv.port, "wholine")
    line.send("/who")
    line.expect("> Users in lobby")
    rows = line.drain()
    assert any(re.match(r"  whoweb \[127\.0\.0\.1:\d+\] web, idle", r) for r in rows), rows
    assert any(re.match(r"  whochat \[127\.0\.0\.1:\d+\] ws, idle", r) for r in rows), rows
    web.close()
    chat.close()
    line.close()


def test_welcome_names_the_servers_lobby(tmp_path: Path) -> None:
    """The lobby's name is a setting: the web client learns it from ``welcome``
    (so a login, which joins no room by itself, can go there)."""
    s = start_server(tmp_path, ("http",), config='[server]\nlobby = "hall"\n')
    try:
        web = Web(s, "hallguest", hello=False)
        web.send("hello", name="hallguest")
        assert web.expect("welcome")["lobby"] == "hall"
        assert web.expect("joined", own=True)["room"] == "hall"
        web.close()
    finally:
        s.stop()

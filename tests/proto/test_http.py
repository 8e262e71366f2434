"""The http door's codec (proto/http.py) without a server: requests and frames in,
inputs and bytes out, with the ``websockets`` library's own sans-I/O client on
the other side."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from salas.core import commands as c
from salas.core.events import Closing, Joined, Left, Message, Welcome
from salas.core.model import UserRef
from salas.proto.door import INTRODUCED, Deferred, Input
from salas.proto.http import (
    CHAT_VARIANT,
    CSP,
    JSON_VARIANT,
    MAX_FRAME,
    MAX_REQUEST_HEAD,
    MAX_TEXT_FRAME,
    HttpDoor,
    Site,
    safe_path,
)

SITE = Site(
    {
        "index.html": b"<!doctype html><title>salas</title>",
        "ui-chat.html": b"<!doctype html><title>chat</title>",
        "ui-chat.js": b"'use strict';",
        "seed.css": b"body{}",
        "img/logo.svg": b"<svg/>",
    }
)
ME = UserRef(1, "ann", "ann", "127.0.0.1")
BOB = UserRef(2, "bob", "bob", "127.0.0.1")


def door() -> HttpDoor:
    return HttpDoor(1, "127.0.0.1", 5000, SITE, ping_interval=10, ping_timeout=5)


def wire(items: list[Input]) -> bytes:
    """The bytes among the inputs (what goes straight back), in order."""
    return b"".join(x for x in items if isinstance(x, bytes))


def get(path: str, method: str = "GET", headers: str = "") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n".encode()


def response(items: list[Input]) -> tuple[int, dict[str, str], bytes]:
    raw = wire(items)
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v for k, _, v in (line.partition(": ") for line in lines[1:])}
    return status, headers, body


def closes(items: list[Input]) -> bool:
    return any(isinstance(x, c.Quit) for x in items)


# -- pages ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "ctype"),
    [
        ("/", b"<!doctype html><title>salas</title>", "text/html; charset=utf-8"),
        ("/index.html", b"<!doctype html><title>salas</title>", "text/html; charset=utf-8"),
        ("/ui-chat", b"<!doctype html><title>chat</title>", "text/html; charset=utf-8"),
        ("/ui-chat?x=1", b"<!doctype html><title>chat</title>", "text/html; charset=utf-8"),
        ("/ui-chat.js", b"'use strict';", "text/javascript; charset=utf-8"),
        ("/seed.css", b"body{}", "text/css; charset=utf-8"),
        ("/img/logo.svg", b"<svg/>", "image/svg+xml"),
    ],
)
def test_pages_are_served_with_their_type_and_the_security_headers(
    path: str, body: bytes, ctype: str
) -> None:
    items = door().receive_data(get(path))
    status, headers, got = response(items)
    assert (status, got) == (200, body)
    assert headers["content-type"] == ctype
    assert headers["content-length"] == str(len(body))
    assert headers["content-security-policy"] == CSP
    assert "script-src 'self'" in CSP and "'unsafe-inline'" not in CSP
    assert "frame-ancestors 'none'" in CSP
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["connection"] == "close"
    assert closes(items)


def test_head_has_the_headers_and_no_body() -> None:
    status, headers, body = response(door().receive_data(get("/", "HEAD")))
    assert status == 200
    assert headers["content-length"] == str(len(b"<!doctype html><title>salas</title>"))
    assert body == b""


@pytest.mark.parametrize(
    "path",
    [
        "/nope",
        "/../pyproject.toml",
        "/img/../index.html",
        "/./index.html",
        "/%2e%2e/etc/passwd",
        "/%2e%2e%2fetc%2fpasswd",
        "/img%2flogo.svg",
        "/index.html%00",
        "/index.html\x00",
        "//etc/passwd",
        "/etc/passwd",
        "/img/",
        "/.hidden",
        "\\index.html",
        "/img\\logo.svg",
        "http://localhost/index.html",
        "*",
    ],
)
def test_paths_outside_the_site_are_404(path: str) -> None:
    items = door().receive_data(get(path))
    assert response(items)[0] == 404, path
    assert closes(items)


def test_safe_path() -> None:
    assert safe_path("/") and safe_path("/a/b.c") and safe_path("/a/")
    for bad in ("", "a", "//", "/..", "/a/..", "/.a", "/%41", "/a\\b", "/a\x00", "/a b"):
        assert not safe_path(bad), bad


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH", "BREW"])
def test_only_get_and_head(method: str) -> None:
    items = door().receive_data(get("/", method, "Content-Length: 0\r\n"))
    status, headers, _ = response(items)
    assert status == 405
    assert headers["allow"] == "GET, HEAD"
    assert closes(items)


@pytest.mark.parametrize(
    "raw",
    [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello
        b"\x00\x01\x02",
        b"hello there\r\n\r\n",
        b"SSH-2.0-OpenSSH_9.6\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET /\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
        b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET /\xff HTTP/1.1\r\n\r\n",
        b"VERYLONGMETHODNAMETHATGOESON / HTTP/1.1\r\n\r\n",
    ],
)
def test_garbage_instead_of_http_is_400(raw: bytes) -> None:
    items = door().receive_data(raw)
    assert response(items)[0] == 400
    assert closes(items)


def test_a_head_past_the_bound_is_431_with_or_without_its_end() -> None:
    d = door()
    assert d.receive_data(b"GET / HTTP/1.1\r\n") == []
    items: list[Input] = []
    for _ in range(MAX_REQUEST_HEAD // 1000 + 2):
        items = d.receive_data(b"X-Filler: " + b"a" * 988 + b"\r\n")
        if items:
            break
    assert response(items)[0] == 431
    whole = get("/", headers="X-Big: " + "b" * MAX_REQUEST_HEAD + "\r\n")
    assert response(door().receive_data(whole))[0] == 431


def test_a_request_byte_at_a_time() -> None:
    d = door()
    raw = get("/ui-chat")
    for byte in raw[:-1]:
        assert d.receive_data(bytes([byte])) == []
    assert response(d.receive_data(raw[-1:]))[0] == 200


def test_a_slow_request_is_told_408_when_cut_off() -> None:
    d = door()
    d.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n")
    assert d.render_error_close("Registration timed out").startswith(b"HTTP/1.1 408 ")
    assert door().render_error_close("Server shutting down").startswith(b"HTTP/1.1 503 ")


def test_a_plain_get_of_a_websocket_path_is_426() -> None:
    items = door().receive_data(get("/chat"))
    status, headers, _ = response(items)
    assert status == 426
    assert headers["upgrade"] == "websocket"
    assert headers["content-security-policy"] == CSP
    assert headers["x-frame-options"] == "DENY"
    assert closes(items)


def test_a_bad_handshake_is_400_with_the_security_headers_and_nothing_of_the_request() -> None:
    bad = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
    items = door().receive_data(get("/ws", headers=bad + "Sec-WebSocket-Key: <b>short</b>\r\n"))
    status, headers, body = response(items)
    assert status == 400
    assert headers["content-security-policy"] == CSP
    assert b"short" not in body
    assert closes(items)


@pytest.mark.parametrize(
    "raw",
    [b"GET / HTTP/1.0\n\n", b"GET / HTTP/1.1\nHost: x\n\n", b"GET / HTTP/1.1\r\nHost: x\n\r\n"],
)
def test_a_request_typed_into_netcat_with_bare_line_feeds_is_answered(raw: bytes) -> None:
    status, _, body = response(door().receive_data(raw))
    assert (status, body) == (200, SITE.pages["/"].body)


def test_a_bad_header_line_ended_by_bare_line_feeds_is_400_at_once() -> None:
    assert response(door().receive_data(b"GET / HTTP/1.0\nHost x\n\n"))[0] == 400


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=6))
def test_any_bytes_before_the_request_never_raise(chunks: list[bytes]) -> None:
    d = door()
    for chunk in chunks:
        for item in d.receive_data(chunk):
            assert isinstance(item, bytes | c.Command) or item is INTRODUCED


# -- WebSockets ------------------------------------------------------------------------


class Client:
    """The other end: websockets' sans-I/O client, talking to one door."""

    def __init__(self, path: str, d: HttpDoor | None = None, deflate: bool = False) -> None:
        self.door = d or door()
        exts = [ClientPerMessageDeflateFactory()] if deflate else None
        self.ws = ClientProtocol(parse_uri(f"ws://localhost{path}"), extensions=exts)
        self.request = self.ws.connect()
        self.ws.send_request(self.request)
        self.items = self.door.receive_data(b"".join(self.ws.data_to_send()))
        self.frames(self.items)

    def frames(self, items: list[Input] | bytes) -> list[Frame]:
        data = items if isinstance(items, bytes) else wire(items)
        self.ws.receive_data(data)
        return [f for f in self.ws.events_received() if isinstance(f, Frame)]

    def send(self, data: bytes | str, fin: bool = True) -> list[Input]:
        if isinstance(data, str):
            self.ws.send_text(data.encode(), fin)
        else:
            self.ws.send_binary(data, fin)
        return self.door.receive_data(b"".join(self.ws.data_to_send()))

    def texts(self, items: list[Input] | bytes) -> list[str]:
        return [bytes(f.data).decode() for f in self.frames(items) if f.opcode is Opcode.TEXT]


def commands(items: list[Input]) -> list[c.Command]:
    out: list[c.Command] = []
    for item in items:
        if isinstance(item, Deferred):
            out += commands(item.resolve())
        elif not isinstance(item, bytes) and not callable(item) and item is not INTRODUCED:
            out.append(item)  # type: ignore[arg-type]
    return out


def test_chat_handshake_registers_a_guest_in_the_lobby_without_compression() -> None:
    cl = Client("/chat", deflate=True)
    assert cl.ws.state is State.OPEN
    assert cl.ws.extensions == []  # permessage-deflate offered, not taken
    assert commands(cl.items) == [c.Register(None, "ws", "127.0.0.1", 5000, lobby=True)]
    assert cl.door.variant == CHAT_VARIANT


def test_chat_frames_are_lines_both_ways() -> None:
    cl = Client("/chat")
    assert commands(cl.send("hello all")) == [c.Say(None, "hello all")]
    assert commands(cl.send("/join tas")) == [c.Join("tas", None, switch=True)]
    assert commands(cl.send("two\nlines")) == [c.Say(None, "two"), c.Say(None, "lines")]
    assert cl.texts(cl.send("/nosuch")) == ["! Unknown command /nosuch; /help lists them"]
    cl.door.render(Welcome(ME, 1, "salas.local"))
    said = cl.door.render(Message(1, 0.0, "lobby", BOB, "hi <b>"))
    assert cl.texts(said) == ["[bob] hi <b>"]
    help_frames = cl.texts(cl.send("/help"))
    assert help_frames[0].startswith("> Commands") and len(help_frames) > 10
    assert not any("\n" in f for f in help_frames)


def test_chat_fragmented_message_is_one_line() -> None:
    cl = Client("/chat")
    assert commands(cl.send("part one, ", fin=False)) == []
    cl.ws.send_continuation(b"part two", fin=True)
    items = cl.door.receive_data(b"".join(cl.ws.data_to_send()))
    assert commands(items) == [c.Say(None, "part one, part two")]


def test_binary_and_oversized_frames_are_refused_and_the_connection_lives() -> None:
    cl = Client("/chat")
    assert cl.texts(cl.send(b"\x00\x01")) == ["! Binary frames are not read here: send text"]
    big = cl.texts(cl.send("x" * (MAX_TEXT_FRAME + 1)))
    assert big == [f"! Frame too long (over {MAX_TEXT_FRAME} bytes), so it was not sent"]
    assert cl.texts(cl.send("y" * 5000)) == [
        "! Line too long (over 4096 bytes), so it was not sent"
    ]
    assert commands(cl.send("still here")) == [c.Say(None, "still here")]
    j = Client("/ws")
    (got,) = j.texts(j.send(b"\x00"))
    assert json.loads(got)["code"] == "binary"
    (got,) = j.texts(j.send(" " * (MAX_TEXT_FRAME + 1)))
    assert json.loads(got)["code"] == "too_long"


def test_invalid_utf8_closes_with_1007() -> None:
    cl = Client("/chat")
    cl.ws.send_frame(Frame(Opcode.TEXT, b"caf\xe9"))
    items = cl.door.receive_data(b"".join(cl.ws.data_to_send()))
    cl.frames(items)
    assert cl.ws.close_rcvd is not None and cl.ws.close_rcvd.code == 1007
    (quit_,) = [x for x in items if isinstance(x, c.Quit)]
    assert quit_.reason == "Invalid UTF-8 in a text frame"
    assert cl.door.receive_data(b"more") == []


def test_a_message_over_the_frame_bound_closes_with_1009() -> None:
    cl = Client("/echo")
    items = cl.send(b"z" * (MAX_FRAME + 1))
    cl.frames(items)
    assert cl.ws.close_rcvd is not None and cl.ws.close_rcvd.code == 1009
    assert closes(items)


def test_broken_framing_closes_with_1002() -> None:
    cl = Client("/chat")
    items = cl.door.receive_data(b"\x8f\x80\x00\x00\x00\x00")  # a reserved opcode, masked
    cl.frames(items)
    assert cl.ws.close_rcvd is not None and cl.ws.close_rcvd.code == 1002
    assert closes(items)
    unmasked = Client("/chat")
    items = unmasked.door.receive_data(b"\x81\x02hi")  # clients must mask
    assert closes(items)


def test_echo_echoes_text_and_binary_and_needs_no_name() -> None:
    cl = Client("/echo")
    assert INTRODUCED in cl.items
    assert commands(cl.items) == []
    (f,) = cl.frames(cl.send("hello"))
    assert (f.opcode, bytes(f.data)) == (Opcode.TEXT, b"hello")
    (f,) = cl.frames(cl.send(b"\x00\xff"))
    assert (f.opcode, bytes(f.data)) == (Opcode.BINARY, b"\x00\xff")


def test_every_frame_costs_a_flood_token() -> None:
    cl = Client("/chat")
    cl.ws.send_ping(b"p")
    items = cl.door.receive_data(b"".join(cl.ws.data_to_send()))
    assert items and all(isinstance(x, bytes) for x in items)  # the pong
    cl.ws.send_pong(b"unasked")
    assert cl.door.receive_data(b"".join(cl.ws.data_to_send())) == [b""]
    assert cl.send("", fin=True) == [b""]  # an empty line asks for nothing, still counts


def test_ping_is_answered_by_the_library() -> None:
    cl = Client("/ws")
    cl.ws.send_ping(b"are you there")
    (pong,) = cl.frames(cl.door.receive_data(b"".join(cl.ws.data_to_send())))
    assert (pong.opcode, bytes(pong.data)) == (Opcode.PONG, b"are you there")


def test_client_close_is_answered_and_quits() -> None:
    cl = Client("/chat")
    cl.ws.send_close(1000, "bye")
    items = cl.door.receive_data(b"".join(cl.ws.data_to_send()))
    cl.frames(items)
    assert cl.ws.close_rcvd is not None and cl.ws.close_rcvd.code == 1000
    assert [x for x in items if isinstance(x, c.Quit)] == [c.Quit("Connection closed")]
    assert cl.door.render(Closing("Connection closed", "quit")) == b""


@pytest.mark.parametrize(
    ("kind", "code"), [("quit", 1000), ("shutdown", 1001), ("kill", 1008), ("error", 1011)]
)
def test_closing_says_why_then_closes_the_websocket(kind: str, code: int) -> None:
    cl = Client("/chat")
    cl.door.render(Welcome(ME, 1, "s"))
    got = cl.frames(cl.door.render(Closing("going", kind)))  # type: ignore[arg-type]
    assert got[0].opcode is Opcode.TEXT
    assert cl.ws.close_rcvd is not None and cl.ws.close_rcvd.code == code
    assert cl.door.render(Closing("again", kind)) == b""  # type: ignore[arg-type]
    j = Client("/ws")
    got = j.frames(j.door.render(Closing("going", kind)))  # type: ignore[arg-type]
    assert json.loads(bytes(got[0].data)) == {"type": "closing", "reason": "going", "kind": kind}
    assert j.ws.close_rcvd is not None and j.ws.close_rcvd.code == code


def test_cut_off_says_why() -> None:
    cl = Client("/chat")
    got = cl.frames(cl.door.render_error_close("Excess flood"))
    assert bytes(got[0].data) == b"! Disconnected: Excess flood"
    assert cl.ws.close_rcvd is not None and cl.ws.close_rcvd.code == 1008
    j = Client("/ws")
    got = j.frames(j.door.render_error_close("Server shutting down"))
    assert json.loads(bytes(got[0].data))["kind"] == "kill"
    assert j.ws.close_rcvd is not None and j.ws.close_rcvd.code == 1001
    e = Client("/echo")
    e.frames(e.door.render_error_close("x" * 300))  # a reason past 123 bytes is cut
    assert e.ws.close_rcvd is not None and len(e.ws.close_rcvd.reason) == 123


def test_flood_notice() -> None:
    cl = Client("/chat")
    assert cl.texts(cl.door.render_flood_notice())[0].startswith("! You are sending too fast")
    j = Client("/ws")
    assert json.loads(j.texts(j.door.render_flood_notice())[0])["code"] == "flood"
    assert door().render_flood_notice() == b""


def test_keepalive_pings_then_quits_a_silent_peer() -> None:
    cl = Client("/ws")
    assert cl.door.tick(9) == []
    (ping,) = cl.frames(cl.door.tick(10))
    assert ping.opcode is Opcode.PING
    assert cl.door.tick(12) == []  # waiting for anything at all
    assert cl.door.tick(15) == [c.Quit("Ping timeout: 15 seconds")]
    cl.door.receive_data(b"".join(cl.ws.data_to_send()))  # the pong: alive again
    assert cl.door.tick(3) == []
    assert door().tick(100) == []  # no WebSocket yet: the registration deadline applies


def test_json_door_speaks_webjson() -> None:
    cl = Client("/ws")
    assert cl.door.variant == JSON_VARIANT
    assert commands(cl.items) == []  # waits for hello
    assert commands(cl.send('{"type":"hello","name":"ann"}')) == [
        c.Register("ann", "web", "127.0.0.1", 5000, echo=True, lobby=True)
    ]
    (welcome,) = cl.texts(cl.door.render(Welcome(ME, 1, "salas.local")))
    assert json.loads(welcome)["type"] == "welcome"
    assert commands(cl.send('{"type":"say","room":"r","text":"hi"}')) == [c.Say("r", "hi")]


def test_room_messages_render_the_same_whatever_the_door_state() -> None:
    """A room message is rendered by one member's door for all members of its variant."""
    a, b = Client("/chat"), Client("/chat")
    said = Message(1, 0.0, "lobby", BOB, "hello")
    before = a.door.render(said)
    a.door.render_error_close("Excess flood")  # a's WebSocket is now closing
    assert a.door.render(said) == before == b.door.render(said)
    ja, jb = Client("/ws"), Client("/ws")
    for cl in (ja, jb):
        cl.send('{"type":"hello"}')
    ja.door.render_error_close("x")
    assert ja.door.render(said) == jb.door.render(said)


def test_shared_keys() -> None:
    cl = Client("/chat")
    cl.door.render(Welcome(ME, 1, "s"))
    assert cl.door.shared_key(Joined("lobby", BOB, 2)) == CHAT_VARIANT
    assert cl.door.shared_key(Joined("lobby", ME, 2)) is None
    assert cl.door.shared_key(Left("lobby", BOB, 1)) == CHAT_VARIANT
    cl.door.render_error_close("x")
    assert cl.door.shared_key(Joined("lobby", BOB, 2)) is None  # done: never for others
    assert door().shared_key(Joined("lobby", BOB, 2)) is None


def test_pipelined_frames_after_the_handshake_are_read() -> None:
    ws = ClientProtocol(parse_uri("ws://localhost/chat"))
    ws.send_request(ws.connect())
    ws.state = State.OPEN  # pretend the 101 came, to send frames at once
    ws.send_text(b"early bird")
    d = door()
    items = d.receive_data(b"".join(ws.data_to_send()))
    assert commands(items) == [
        c.Register(None, "ws", "127.0.0.1", 5000, lobby=True),
        c.Say(None, "early bird"),
    ]


def test_upgrade_response_is_101_with_the_accept_key() -> None:
    cl = Client("/chat")
    raw = wire(cl.items)
    assert raw.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert re.search(rb"Sec-WebSocket-Accept: \S+\r\n", raw)
    assert b"Sec-WebSocket-Extensions" not in raw


# -- the files that ship ------------------------------------------------------------------


def test_the_shipped_site_has_the_client_and_seed_pages_and_no_inline_script() -> None:
    from salas.net.doors import load_site

    site = load_site()
    index = site.lookup("/")
    assert index is not None and b'src="/app.js"' in index.body
    for path in (
        "/app.js",
        "/app.css",
        "/ui-chat",
        "/ui-echo",
        "/ui-chat.js",
        "/ui-echo.js",
        "/seed.css",
    ):
        assert site.lookup(path) is not None, path
    for path, page in site.pages.items():
        if page.content_type.startswith("text/html"):
            html = page.body.decode()
            # CSP allows scripts and styles only from files: nothing inline.
            assert re.findall(r"<script(?![^>]*\bsrc=)", html) == [], path
            assert not re.search(r"\son[a-z]+=|\sstyle=|<style", html), path
            assert not re.search(r"(src|href)=\"(https?:)?//", html), path  # nothing elsewhere
        if page.content_type.startswith("text/javascript"):
            js = page.body.decode()
            assert "innerHTML" not in js and "textContent" in js, path


def test_the_web_client_is_small_zoomable_and_never_writes_html() -> None:
    """SPEC http: a small payload (aim under 100 kB), no build step and no
    framework download: the page loads its three files and nothing else;
    zoom is allowed; what people write goes in as text, never as HTML."""
    from salas.net.doors import load_site

    site = load_site()
    files = {path: site.lookup(path) for path in ("/", "/app.js", "/app.css")}
    sizes = {path: len(page.body) for path, page in files.items() if page is not None}
    assert len(sizes) == 3, sizes
    print("web client payload:", sizes, "total", sum(sizes.values()), "bytes")
    assert sum(sizes.values()) < 100_000, sizes
    html = files["/"].body.decode()  # type: ignore[union-attr]
    assert re.findall(r'(?:src|href)="([^"]+)"', html) == [
        "/app.css",
        "/app.js",
        "/ui-chat",
        "/ui-echo",
    ]
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert "maximum-scale" not in html and "user-scalable" not in html
    js = files["/app.js"].body.decode()  # type: ignore[union-attr]
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in js, sink

"""The CS168 door and the ``salas chat cs168://`` client, byte-exact (SPEC, seed 002).

This ports the idea of the course's grading harness (``simple_test.py``): real client
processes are started with pipes, their stdout is read one character at a time until
a newline or a deadline, and ``"".join(chars).replace("[Me]", "").strip()`` must equal
the expected text exactly. An expected ``""`` means "prints nothing".
"""

from __future__ import annotations

import os
import re
import select
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from support import TIME, RunningServer, salas_cmd, test_env, welcome

#: How long a check waits for a line that should come (only a failure waits this long).
CHECK = 2.0
#: How long a check waits to be sure that nothing comes.
QUIET = 0.5
FRAME = 200

INVALID = "{0} is not a valid control message. Valid messages are /create, /list, and /join."
NO_CHANNEL = "No channel named {0} exists. Try '/create {0}'?"
JOIN_NEEDS_ARG = "/join command must be followed by the name of a channel to join."
CREATE_NEEDS_ARG = "/create command must be followed by the name of a channel to create"
EXISTS = "Room {0} already exists, so cannot be created."
NOT_IN_CHANNEL = "Not currently in any channel. Must join a channel before sending messages."


class ChatProc:
    """One ``salas chat cs168://...`` process with its stdin and stdout on pipes."""

    def __init__(self, url: str, name: str, tmp: Path) -> None:
        self.name = name
        self.tmp = tmp
        log = (tmp / f"chat-{name}.stderr").open("wb")
        self.proc = subprocess.Popen(
            salas_cmd("chat", url, "--name", name),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            env=test_env(tmp),
        )
        log.close()
        assert self.proc.stdout is not None
        self.fd = self.proc.stdout.fileno()

    def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode() + b"\n")
        self.proc.stdin.flush()

    def read_line(self, timeout: float) -> str:
        """Characters up to a newline, EOF or the deadline, one ``os.read(fd, 1)`` at a time."""
        deadline = time.monotonic() + timeout * TIME
        buf: list[bytes] = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready, _, _ = select.select([self.fd], [], [], left)
            if not ready:
                break
            ch = os.read(self.fd, 1)
            if not ch or ch == b"\n":
                break
            buf.append(ch)
        return b"".join(buf).decode("utf-8", "replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)
        for f in (self.proc.stdin, self.proc.stdout):
            if f is not None:
                f.close()


def check_for_output(client: ChatProc, expected: str) -> None:
    """The course harness's check: one line (or nothing), ``[Me]`` removed, stripped."""
    raw = client.read_line(QUIET if expected == "" else CHECK)
    message = raw.replace("[Me]", "").strip()
    assert message == expected, f"{client.name} printed {raw!r}, expected {expected!r}"


@pytest.fixture
def chat(server: RunningServer, tmp_path: Path) -> Iterator[Callable[..., ChatProc]]:
    """A factory of CS168 client processes on the server's cs168 door; all killed at the end."""
    procs: list[ChatProc] = []

    def start(name: str, host: str = "127.0.0.1", port: int | None = None) -> ChatProc:
        p = ChatProc(f"cs168://{host}:{port or server.ports['cs168']}", name, tmp_path)
        procs.append(p)
        return p

    yield start
    for p in procs:
        p.stop()


def test_two_clients_talk_in_a_channel(chat) -> None:
    """simple_test.py, two clients: create, a failed join, a join notice, both ways."""
    alice = chat("Alice")
    kay = chat("Kay")
    alice.send("/create tas")
    check_for_output(alice, "")  # creating prints nothing to its creator
    kay.send("/join tas")
    check_for_output(alice, "Kay has joined")
    check_for_output(kay, "")  # joining prints nothing to the joiner
    kay.send("/join tass")
    check_for_output(kay, NO_CHANNEL.format("tass"))
    # The failed join changed nothing: Kay is still in tas.
    kay.send("Hi!")
    check_for_output(alice, "[Kay] Hi!")
    alice.send("Hi!")
    check_for_output(kay, "[Alice] Hi!")
    check_for_output(kay, "")  # nobody hears their own message back
    check_for_output(alice, "")
    # Creating a channel moves its creator out of the old one.
    kay.send("/create tas2")
    check_for_output(alice, "Kay has left")
    alice.send("/join tas2")
    check_for_output(kay, "Alice has joined")
    # End of input: the client leaves (after a short linger) and exits cleanly.
    assert alice.proc.stdin is not None
    alice.proc.stdin.close()
    check_for_output(kay, "Alice has left")
    assert alice.proc.wait(5 * TIME) == 0


def test_three_clients_channels_and_errors(chat) -> None:
    """simple_test.py, three clients: list, create, join, move, errors, a killed client."""
    alice = chat("Alice")
    kay = chat("Kay")
    rodhika = chat("Rodhika")

    alice.send("/list")
    check_for_output(alice, "")  # no channels yet: nothing at all
    kay.send("list my ramen")
    check_for_output(kay, NOT_IN_CHANNEL)

    alice.send("/create dinner")
    check_for_output(alice, "")
    kay.send("/list")
    check_for_output(kay, "dinner")

    rodhika.send("/join dinner")
    check_for_output(alice, "Rodhika has joined")
    check_for_output(rodhika, "")

    kay.send("/create dessert")
    check_for_output(kay, "")
    alice.send("/list")
    check_for_output(alice, "dessert")  # sorted, one channel per line
    check_for_output(alice, "dinner")

    kay.send("/joir dinner")
    check_for_output(kay, INVALID.format("/joir"))

    kay.send("/join dinner")
    check_for_output(alice, "Kay has joined")
    check_for_output(rodhika, "Kay has joined")
    check_for_output(kay, "")

    # Moving to another channel: the old one is told.
    kay.send("/join dessert")
    check_for_output(alice, "Kay has left")
    check_for_output(rodhika, "Kay has left")
    check_for_output(kay, "")
    kay.send("/join dinner")
    check_for_output(alice, "Kay has joined")
    check_for_output(rodhika, "Kay has joined")

    rodhika.send("Who wants ramen?")
    check_for_output(alice, "[Rodhika] Who wants ramen?")
    check_for_output(kay, "[Rodhika] Who wants ramen?")

    # A client that dies is seen leaving.
    rodhika.proc.kill()
    check_for_output(alice, "Rodhika has left")
    check_for_output(kay, "Rodhika has left")

    kay.send("/create")
    check_for_output(kay, CREATE_NEEDS_ARG)
    kay.send("/create dessert")
    check_for_output(kay, EXISTS.format("dessert"))
    kay.send("/join ")
    check_for_output(kay, JOIN_NEEDS_ARG)

    # None of the failed commands moved Kay out of dinner.
    alice.send("still here?")
    check_for_output(kay, "[Alice] still here?")
    kay.send("yes")
    check_for_output(alice, "[Kay] yes")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["killed", "stopped"])
def test_server_going_away_is_reported(server: RunningServer, chat, sig: int) -> None:
    """The client names the server exactly as it was given on the command line."""
    port = server.ports["cs168"]
    by_ip = chat("Alice")
    by_name = chat("Kay", host="localhost")
    by_ip.send("/create tas")
    check_for_output(by_ip, "")
    by_name.send("/join tas")
    check_for_output(by_ip, "Kay has joined")
    server.stop(sig)
    if sig == signal.SIGTERM:  # a polite stop says so first (salas's own notice)
        check_for_output(by_ip, "Server shutting down")
        check_for_output(by_name, "Server shutting down")
    check_for_output(by_ip, f"Server at 127.0.0.1:{port} has disconnected")
    check_for_output(by_name, f"Server at localhost:{port} has disconnected")
    for c in (by_ip, by_name):
        c.proc.wait(5 * TIME)


def test_client_exits_0_when_the_server_goes_away(server: RunningServer, chat) -> None:
    alice = chat("Alice")
    check_for_output(alice, "")
    server.stop(signal.SIGKILL)
    check_for_output(alice, f"Server at 127.0.0.1:{server.ports['cs168']} has disconnected")
    assert alice.proc.wait(5 * TIME) == 0
    stderr = (alice.tmp / "chat-Alice.stderr").read_text()
    assert "Fatal Python error" not in stderr, stderr


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unable_to_connect(tmp_path: Path) -> None:
    port = closed_port()
    client = ChatProc(f"cs168://127.0.0.1:{port}", "Alice", tmp_path)
    try:
        check_for_output(client, f"Unable to connect to 127.0.0.1:{port}")
        assert client.proc.wait(5 * TIME) != 0
    finally:
        client.stop()


# -- raw sockets against the door -------------------------------------------------------


def pad(text: str) -> bytes:
    data = text.encode()
    assert len(data) <= FRAME
    return data.ljust(FRAME, b" ")


class RawClient:
    """A CS168 client on a bare socket, checking every frame the server sends."""

    def __init__(self, port: int, name: str | None) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5 * TIME)
        self.buf = b""
        if name is not None:
            self.sock.sendall(pad(name))

    def frames(self, count: int = 0, quiet: float = 0.3) -> list[bytes]:
        """Whole frames: at least ``count`` of them (waiting up to CHECK s), or with ``count``
        0, every frame that arrives within ``quiet`` s. Bytes that do not add up to whole
        200-byte frames fail the test."""
        deadline = time.monotonic() + (CHECK if count else quiet) * TIME
        while not count or len(self.buf) < count * FRAME or len(self.buf) % FRAME:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                break
            if not data:
                break
            self.buf += data
        assert len(self.buf) % FRAME == 0, f"not whole 200-byte frames: {self.buf!r}"
        out = [self.buf[i : i + FRAME] for i in range(0, len(self.buf), FRAME)]
        self.buf = b""
        return out

    def expect(self, *texts: str) -> None:
        """Exactly these frames next, byte for byte: each text padded with spaces to 200
        bytes. With no texts: nothing arrives for a while."""
        got = self.frames(len(texts))
        assert got == [pad(t) for t in texts], [f.rstrip() for f in got]

    def close(self) -> None:
        self.sock.close()


def send_in_pieces(sock: socket.socket, data: bytes, size: int) -> None:
    """Each piece its own TCP segment, with short pauses so the server reads them apart."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    every = max(1, 10 // size)
    for n, i in enumerate(range(0, len(data), size)):
        sock.sendall(data[i : i + size])
        if n % every == 0:
            time.sleep(0.001)


@pytest.mark.parametrize("size", [7, 1, 150, 333])
def test_frames_split_into_pieces(server: RunningServer, size: int) -> None:
    """client_split_messages.py: the server holds partial frames until they are whole."""
    port = server.ports["cs168"]
    alice = RawClient(port, "alice")
    kay = RawClient(port, None)  # its name frame arrives in pieces too
    try:
        alice.sock.sendall(pad("/create tas"))
        alice.expect()
        stream = pad("kay") + pad("/join tas") + pad("hello in pieces") + pad("/list")
        send_in_pieces(kay.sock, stream, size)
        alice.expect("kay has joined", "[kay] hello in pieces")
        kay.expect("tas")
    finally:
        alice.close()
        kay.close()


def test_several_frames_in_one_send(server: RunningServer) -> None:
    port = server.ports["cs168"]
    alice = RawClient(port, "alice")
    kay = RawClient(port, "kay")
    try:
        alice.sock.sendall(pad("/create tas") + pad("/create dinner") + pad("/list"))
        alice.expect("dinner\ntas")
        # One send: a join, three messages, an error, an empty frame (ignored) and a half frame.
        burst = b"".join(pad(t) for t in ("/join dinner", "one", "two", "three", "/nope", ""))
        kay.sock.sendall(burst + pad("four")[:120])
        alice.expect("kay has joined", "[kay] one", "[kay] two", "[kay] three")
        kay.expect(INVALID.format("/nope"))
        kay.sock.sendall(pad("four")[120:])
        alice.expect("[kay] four")
        kay.expect()
    finally:
        alice.close()
        kay.close()


def test_every_server_frame_is_200_bytes(server: RunningServer) -> None:
    """Errors, notices, lists and messages (short, long, non-ASCII) all come as whole frames."""
    port = server.ports["cs168"]
    alice = RawClient(port, "alice")
    kay = RawClient(port, "kay")
    try:
        kay.sock.sendall(pad("hi") + pad("/join") + pad("/create") + pad("/join nowhere"))
        kay.expect(NOT_IN_CHANNEL, JOIN_NEEDS_ARG, CREATE_NEEDS_ARG, NO_CHANNEL.format("nowhere"))
        alice.sock.sendall(pad("/create tas"))
        alice.expect()
        kay.sock.sendall(pad("/create tas") + pad("/join tas"))
        kay.expect(EXISTS.format("tas"))
        alice.expect("kay has joined")
        text = "é" * 99  # 198 bytes: "[kay] " + text is longer than one frame
        kay.sock.sendall(pad(text))
        got = alice.frames()
        assert len(got) == 2 and all(f.startswith(b"[kay] ") for f in got), got
        joined = "".join(f.decode("utf-8").rstrip()[len("[kay] ") :] for f in got)
        assert joined == text
    finally:
        alice.close()
        kay.close()


# -- one room, two doors ---------------------------------------------------------------


def test_cs168_and_line_users_share_a_room(server: RunningServer, chat) -> None:
    alice = chat("alice")
    alice.send("/create tas")
    check_for_output(alice, "")
    kay = welcome(server.ports["line"], "Kay")
    kay.send("/join tas")
    kay.expect("> You joined tas (2 users online)")
    check_for_output(alice, "Kay has joined")

    alice.send("hi")
    assert kay.expect("[alice]") == "[alice] hi"
    kay.send("hello")
    check_for_output(alice, "[Kay] hello")

    kay.send("/who tas")
    kay.expect("> Users in tas (2):")
    rows = sorted([kay.next_line(), kay.next_line()])
    assert re.fullmatch(r"  @alice \[127\.0\.0\.1:\d+\] cs168, idle \d+s", rows[0]), rows
    assert re.fullmatch(r"  Kay \[127\.0\.0\.1:\d+\] line, idle \d+s", rows[1]), rows
    kay.send("/list")
    kay.expect("> Rooms (")
    assert kay.expect("  tas") == "  tas - 2 users"

    alice.send("/create other")  # a CS168 user moving out and back in
    assert kay.expect("< alice") == "< alice left tas (1 user online)"
    alice.send("/join tas")
    assert kay.expect("> alice") == "> alice joined tas (2 users online)"
    check_for_output(alice, "")

    kay.send("/leave")
    kay.expect("< You left tas")
    check_for_output(alice, "Kay has left")
    kay.send("/join tas")
    kay.expect("> You joined tas")
    check_for_output(alice, "Kay has joined")

    alice.proc.kill()
    assert kay.expect("< alice").startswith("< alice left tas (1 user online)")
    kay.close()

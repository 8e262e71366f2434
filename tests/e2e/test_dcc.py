"""Direct transfers and chats between real ``salas chat`` processes (and with an IRC
client library), by DCC through a real ``salas serve``: the server carries only
the offers; the bytes go peer to peer. Every wait is bounded."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import irc.client
import pytest

from support import (
    TIME,
    LineClient,
    PipeChat,
    RunningServer,
    sha_of,
    start_server,
    welcome,
)

OFFER_RE = re.compile(r'^> DCC from (\S+): SEND ("[^"]*"|\S+) (\d+) (\d+) (\d+)(?: (\S+))?$')


@pytest.fixture
def chat(tmp_path: Path) -> Iterator[Callable[..., PipeChat]]:
    procs: list[PipeChat] = []

    def start(server: RunningServer, name: str, *args: str) -> PipeChat:
        down = tmp_path / f"down-{name}"
        down.mkdir(exist_ok=True)
        url = f"line://127.0.0.1:{server.port}"
        p = PipeChat([url, "--name", name, "--downloads", str(down), *args], tmp_path)
        procs.append(p)
        p.expect(f"> You are now known as {name}")
        return p

    yield start
    for p in procs:
        p.stop()


def random_file(path: Path, size: int) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = os.urandom(size)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def transfer(alice: PipeChat, bob: PipeChat, src: Path, tmp: Path, *, reverse: bool) -> None:
    want = random_file(src, 3 * 1024 * 1024 + 17)
    alice.send(f"/send bob {src}")
    alice.expect('> dcc: offered "big report.bin" (3.0 MiB) to bob')
    offer = bob.expect("> dcc: alice offers")
    assert offer == '> dcc: alice offers "big report.bin" (3.0 MiB): /accept 1 or /decline 1'
    bob.send("/accept")
    if reverse:
        bob.expect("asking alice to connect here instead")
    got = bob.expect('> dcc: received "big report.bin"', 20)
    sent = alice.expect('> dcc: sent "big report.bin"', 20)
    assert sha_of(got) == sha_of(sent) == want
    saved = tmp / "down-bob" / "big report.bin"
    assert hashlib.sha256(saved.read_bytes()).hexdigest() == want


def test_a_file_goes_straight_from_one_client_to_another(
    server: RunningServer, chat: Callable[..., PipeChat], tmp_path: Path
) -> None:
    alice = chat(server, "alice")
    bob = chat(server, "bob")
    transfer(alice, bob, tmp_path / "src" / "big report.bin", tmp_path, reverse=False)


def test_when_the_sender_cannot_be_reached_the_receiver_listens(
    server: RunningServer, chat: Callable[..., PipeChat], tmp_path: Path
) -> None:
    # alice announces an address nobody listens on: bob's connection is refused,
    # so bob listens and alice connects to him (the reverse offer).
    alice = chat(server, "alice", "--dcc-address", "127.0.0.2")
    bob = chat(server, "bob")
    transfer(alice, bob, tmp_path / "src" / "big report.bin", tmp_path, reverse=True)


def test_a_passive_offer_has_the_receiver_listen(
    server: RunningServer, chat: Callable[..., PipeChat], tmp_path: Path
) -> None:
    alice = chat(server, "alice", "--dcc-passive")
    bob = chat(server, "bob")
    src = tmp_path / "src" / "notes.txt"
    want = random_file(src, 100_000)
    alice.send(f"/send bob {src}")
    bob.expect('> dcc: alice offers "notes.txt"')
    bob.send("/accept 1")
    assert sha_of(bob.expect('> dcc: received "notes.txt"', 10)) == want
    assert sha_of(alice.expect('> dcc: sent "notes.txt"', 10)) == want


def test_a_direct_chat_both_ways(server: RunningServer, chat: Callable[..., PipeChat]) -> None:
    alice = chat(server, "alice")
    bob = chat(server, "bob")
    alice.send("/dcc chat bob")
    bob.expect("> dcc: alice offers a direct chat: /accept 1 or /decline 1")
    bob.send("/accept 1")
    alice.expect("> dcc: direct chat with bob open")
    bob.expect("> dcc: direct chat with alice open")
    alice.send("/dcc msg bob hello straight from alice")
    assert bob.expect("[=alice]") == "[=alice] hello straight from alice"
    bob.send("/dcc msg alice and back from bob")
    assert alice.expect("[=bob]") == "[=bob] and back from bob"
    bob.send("/dcc close alice")
    alice.expect("> dcc: direct chat with bob closed")
    bob.expect("> dcc: direct chat with alice closed")


def test_a_declined_offer_is_withdrawn(server: RunningServer, chat, tmp_path: Path) -> None:
    alice = chat(server, "alice")
    bob = chat(server, "bob")
    src = tmp_path / "src" / "a.txt"
    random_file(src, 10)
    alice.send(f"/send bob {src}")
    bob.expect("> dcc: alice offers")
    bob.send("/decline")
    bob.expect("> dcc: declined offer 1 from alice")
    alice.expect('> dcc: bob declined "a.txt" for bob')


# -- safety ------------------------------------------------------------------------


def read_all(sock: socket.socket, timeout: float = 5.0) -> bytes:
    sock.settimeout(timeout * TIME)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_a_receiver_that_hangs_up_early_is_no_success_for_the_sender(
    server: RunningServer, chat: Callable[..., PipeChat], tmp_path: Path
) -> None:
    # The reset of a connection closed with data unread may not reach the
    # sender; then the silence after the last acknowledgement tells it.
    alice = chat(server, "alice", "--dcc-stall", "2")
    bob = welcome(server.port, "bob")  # a bare line client that takes part of the file
    src = tmp_path / "src" / "big.bin"
    random_file(src, 300_000)  # all of it fits in loopback's socket buffers
    alice.send(f"/send bob {src}")
    m = OFFER_RE.match(bob.expect("> DCC from alice: SEND"))
    assert m, bob.tail()
    port, token = int(m.group(4)), m.group(6)
    with socket.create_connection(("127.0.0.1", port), 5) as receiver:
        receiver.sendall(token.encode() + b"\n")
        receiver.settimeout(5 * TIME)
        got = receiver.recv(10_000)
        assert got
        receiver.sendall(len(got).to_bytes(4, "big"))
    alice.expect('> dcc: sending "big.bin" to bob')
    assert "failed after" in alice.expect('"big.bin" to bob', timeout=10)
    bob.close()


def test_a_stranger_on_the_port_gets_nothing(
    server: RunningServer, chat: Callable[..., PipeChat], tmp_path: Path
) -> None:
    alice = chat(server, "alice")
    bob = welcome(server.port, "bob")  # a bare line client: it sees the offer itself
    src = tmp_path / "src" / "secret.bin"
    want = random_file(src, 50_000)
    alice.send(f"/send bob {src}")
    m = OFFER_RE.match(bob.expect("> DCC from alice: SEND"))
    assert m, bob.tail()
    port, size, token = int(m.group(4)), int(m.group(5)), m.group(6)
    assert (int(m.group(3)), size) == (0x7F000001, 50_000) and token
    for attempt in (b"", b"wrong\n", b"s" + b"0" * 24 + b"\n"):
        with socket.create_connection(("127.0.0.1", port), 5) as stranger:
            stranger.sendall(attempt)
            if not attempt:
                stranger.shutdown(socket.SHUT_WR)
            assert read_all(stranger) == b""
        alice.expect("had no valid token; it got nothing")
    with socket.create_connection(("127.0.0.1", port), 5) as rightful:
        rightful.sendall(token.encode() + b"\n")
        got = b""
        rightful.settimeout(5 * TIME)
        while len(got) < size:
            chunk = rightful.recv(65536)
            assert chunk
            got += chunk
            rightful.sendall(len(got).to_bytes(4, "big"))
    assert hashlib.sha256(got).hexdigest() == want
    assert sha_of(alice.expect('> dcc: sent "secret.bin"')) == want
    bob.close()


class FakeSender:
    """A line client that offers a file from its own socket and sends what it likes."""

    def __init__(self, server: RunningServer, name: str = "mallory") -> None:
        self.line = welcome(server.port, name)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(10 * TIME)
        self.port = self.listener.getsockname()[1]
        self.token = "s" + "ab" * 12

    def offer(self, to: str, name: str, size: int) -> None:
        self.line.send(f"/ctcp {to} DCC SEND {name} 2130706433 {self.port} {size} {self.token}")

    def accept(self) -> socket.socket:
        conn, _ = self.listener.accept()
        conn.settimeout(5 * TIME)
        got = b""
        while not got.endswith(b"\n"):
            got += conn.recv(100)
        assert got == self.token.encode() + b"\n"
        return conn

    def close(self) -> None:
        self.listener.close()
        self.line.close()


def test_more_bytes_than_offered_stop_the_transfer_and_remove_the_file(
    server: RunningServer, chat: Callable[..., PipeChat], tmp_path: Path
) -> None:
    bob = chat(server, "bob")
    mallory = FakeSender(server)
    mallory.offer("bob", "big.bin", 1000)
    bob.expect('> dcc: mallory offers "big.bin" (1000 B)')
    bob.send("/accept")
    conn = mallory.accept()
    conn.sendall(os.urandom(5000))
    bob.expect("mallory sent more than the 1000 bytes offered; the partial file was removed")
    assert list((tmp_path / "down-bob").iterdir()) == []
    conn.close()
    mallory.close()


def test_a_stalled_transfer_is_stopped_and_the_file_removed(
    server: RunningServer, chat: Callable[..., PipeChat], tmp_path: Path
) -> None:
    bob = chat(server, "bob", "--dcc-stall", "1")
    mallory = FakeSender(server)
    mallory.offer("bob", "slow.bin", 1000)
    bob.expect('> dcc: mallory offers "slow.bin"')
    bob.send("/accept")
    conn = mallory.accept()
    conn.sendall(b"x" * 100)
    bob.expect("nothing came for 1 s; the partial file was removed")
    assert list((tmp_path / "down-bob").iterdir()) == []
    conn.close()
    mallory.close()


PASSIVE_TOKEN = "s" + "cd" * 12


def accept_passively(server: RunningServer, bob: PipeChat, name: str) -> tuple[int, LineClient]:
    """mallory offers ``name`` passively (port 0): bob accepts, listens, and answers
    with his port, which is returned."""
    mallory = welcome(server.port, "mallory")
    mallory.send(f"/ctcp bob DCC SEND {name} 2130706433 0 1000 {PASSIVE_TOKEN}")
    bob.expect(f'> dcc: mallory offers "{name}" (1000 B)')
    bob.send("/accept")
    m = OFFER_RE.match(mallory.expect("> DCC from bob: SEND"))
    assert m and m.group(6) == PASSIVE_TOKEN, mallory.tail()
    return int(m.group(4)), mallory


def test_quitting_before_the_sender_connects_leaves_no_empty_file(
    server: RunningServer, chat: Callable[..., PipeChat], tmp_path: Path
) -> None:
    bob = chat(server, "bob")
    port, mallory = accept_passively(server, bob, "never.bin")
    down = tmp_path / "down-bob"
    assert [p.name for p in down.iterdir()] == ["never.bin"]  # made when accepted
    bob.send("/quit")
    assert bob.proc.wait(5 * TIME) == 0
    assert list(down.iterdir()) == []
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), 2).close()
    mallory.close()


@pytest.mark.parametrize(
    ("how", "code"),
    [("/quit", 0), (signal.SIGTERM, 128 + signal.SIGTERM), (signal.SIGHUP, 128 + signal.SIGHUP)],
)
def test_leaving_mid_transfer_removes_the_partial_file(
    server: RunningServer,
    chat: Callable[..., PipeChat],
    tmp_path: Path,
    how: str | signal.Signals,
    code: int,
) -> None:
    bob = chat(server, "bob")
    port, mallory = accept_passively(server, bob, "half.bin")
    with socket.create_connection(("127.0.0.1", port), 5) as conn:
        conn.settimeout(5 * TIME)
        conn.sendall(PASSIVE_TOKEN.encode() + b"\n" + b"x" * 500)
        acked = b""
        while acked[-4:] != (500).to_bytes(4, "big"):
            chunk = conn.recv(4)
            assert chunk
            acked += chunk
        down = tmp_path / "down-bob"
        assert [p.name for p in down.iterdir()] == ["half.bin"]
        if isinstance(how, str):
            bob.send(how)
        else:  # stopped, or its terminal window closed: the same clean-up
            bob.proc.send_signal(how)
        assert bob.proc.wait(5 * TIME) == code
        assert list(down.iterdir()) == []
        assert read_all(conn) == b""
    mallory.close()


def test_a_flood_of_connections_gets_closed_and_wrong_tokens_withdraw_the_offer(
    server: RunningServer, chat: Callable[..., PipeChat], tmp_path: Path
) -> None:
    alice = chat(server, "alice")
    bob = welcome(server.port, "bob")
    src = tmp_path / "src" / "guarded.bin"
    random_file(src, 1000)
    alice.send(f"/send bob {src}")
    m = OFFER_RE.match(bob.expect("> DCC from alice: SEND"))
    assert m, bob.tail()
    port = int(m.group(4))
    # Connections that send nothing: a few are kept waiting for a token, the rest are
    # closed at once (not held for the token wait, 10 s).
    idle = [socket.create_connection(("127.0.0.1", port), 5) for _ in range(4)]
    time.sleep(0.2 * TIME)
    start = time.monotonic()
    for _ in range(30):
        with socket.create_connection(("127.0.0.1", port), 5) as extra:
            assert read_all(extra, 3) == b""
    assert time.monotonic() - start < 3 * TIME
    for s in idle:
        s.close()
    for _ in idle:
        alice.expect("had no valid token; it got nothing")
    # Four wrong tokens so far (the idle ones): one more and the offer is withdrawn.
    with socket.create_connection(("127.0.0.1", port), 5) as guess:
        guess.sendall(b"s" + b"1" * 24 + b"\n")
        assert read_all(guess) == b""
    alice.expect(
        '! dcc: withdrew the offer of "guarded.bin" for bob: 5 connections came with wrong tokens'
    )
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), 2).close()
    bob.close()


def test_unsafe_names_are_cleaned_and_nothing_is_overwritten(
    server: RunningServer, chat: Callable[..., PipeChat], tmp_path: Path
) -> None:
    bob = chat(server, "bob")
    down = tmp_path / "down-bob"
    (down / "profile").write_bytes(b"mine")
    (tmp_path / "etc_passwd").write_bytes(b"outside")
    for i, name in enumerate(("../../etc/passwd", '".. /etc/passwd"', ".profile")):
        mallory = FakeSender(server, f"mallory{i}")
        mallory.offer("bob", name, 4)
        bob.expect(f"> dcc: mallory{i} offers")
        bob.send("/accept")
        conn = mallory.accept()
        conn.sendall(b"evil")
        conn.shutdown(socket.SHUT_WR)  # all sent: bob need not wait to see if more comes
        assert read_all(conn) == (4).to_bytes(4, "big")
        bob.expect(f"> dcc: received {name.strip(chr(34))!r}".replace("'", '"')[:20])
        conn.close()
        mallory.close()
    names = sorted(p.name for p in down.iterdir())
    # No slash, no "..", no leading dot; the file already there is kept.
    assert names == ["_ _etc_passwd", "____etc_passwd", "profile", "profile (1)"], names
    assert (down / "profile").read_bytes() == b"mine"
    assert (tmp_path / "etc_passwd").read_bytes() == b"outside"
    assert all(p.read_bytes() == b"evil" for p in down.iterdir() if p.name != "profile")


def test_offers_expire(
    server: RunningServer, chat: Callable[..., PipeChat], tmp_path: Path
) -> None:
    alice = chat(server, "alice", "--dcc-ttl", "1")
    bob = welcome(server.port, "bob")
    src = tmp_path / "src" / "late.txt"
    random_file(src, 10)
    alice.send(f"/send bob {src}")
    m = OFFER_RE.match(bob.expect("> DCC from alice: SEND"))
    assert m
    alice.expect('! dcc: nobody took "late.txt" for bob within 1 s: the offer expired', 5)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", int(m.group(4))), 2).close()
    # And on the receiving side: an offer not answered in time can't be accepted.
    carol = chat(server, "carol", "--dcc-ttl", "1")
    bob.send("/ctcp carol DCC SEND late.txt 2130706433 5000 10")
    carol.expect('> dcc: bob offers "late.txt"')
    carol.expect("> dcc: offer 1 from bob expired", 5)
    carol.send("/accept 1")
    carol.expect("! dcc: no offer 1")
    bob.close()


def test_with_direct_connections_off_the_offer_is_refused(
    tmp_path: Path, chat: Callable[..., PipeChat]
) -> None:
    srv = start_server(tmp_path, ("line",), config="[direct]\nenabled = false\n")
    try:
        alice = chat(srv, "alice")
        bob = chat(srv, "bob")
        src = tmp_path / "src" / "a.txt"
        random_file(src, 10)
        alice.send(f"/send bob {src}")
        alice.expect(
            "! Direct connections (calls and file transfers) are turned off on this server"
        )
        alice.expect("! dcc: the offer to bob did not go out")
        alice.send("/dcc list")
        alice.expect("> dcc: nothing going on")
        assert not any("dcc" in line for line in bob.seen)
    finally:
        srv.stop()


# -- IRC ---------------------------------------------------------------------------


def test_an_irc_client_receives_a_file_by_dcc(tmp_path: Path, chat) -> None:
    srv = start_server(tmp_path, ("line", "irc"))
    src = tmp_path / "src" / "for irc.bin"
    want = random_file(src, 1024 * 1024 + 5)
    reactor = irc.client.Reactor()
    state: dict[str, object] = {"got": b"", "offer": None, "joined": False}
    received = bytearray()

    def on_welcome(conn: irc.client.ServerConnection, ev: irc.client.Event) -> None:
        state["joined"] = True

    def on_ctcp(conn: irc.client.ServerConnection, ev: irc.client.Event) -> None:
        if ev.arguments[0] == "DCC":
            state["offer"] = (ev.source.nick, ev.arguments[1])

    def on_dccmsg(conn: irc.client.DCCConnection, ev: irc.client.Event) -> None:
        received.extend(ev.arguments[0])
        conn.send_bytes(len(received).to_bytes(4, "big"))

    reactor.add_global_handler("welcome", on_welcome)
    reactor.add_global_handler("ctcp", on_ctcp)
    reactor.add_global_handler("dccmsg", on_dccmsg)

    def pump(until: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout * TIME
        while not until():
            assert time.monotonic() < deadline, state
            reactor.process_once(0.05)

    try:
        server_conn = reactor.server().connect("127.0.0.1", srv.ports["irc"], "ircbob")
        pump(lambda: bool(state["joined"]))
        alice = chat(srv, "alice")
        alice.send(f"/send ircbob {src}")
        pump(lambda: state["offer"] is not None)
        nick, text = state["offer"]  # type: ignore[misc]
        assert nick == "alice"
        parts = str(text).rsplit(" ", 3)  # SEND "for irc.bin" IP PORT SIZE: no token for IRC
        assert parts[0] == 'SEND "for irc.bin"', text
        ip, port, size = (int(x) for x in parts[1:])
        assert size == src.stat().st_size
        dcc = reactor.dcc("raw")
        dcc.connect(irc.client.ip_numstr_to_quad(str(ip)), port)
        pump(lambda: len(received) >= size)
        assert hashlib.sha256(bytes(received)).hexdigest() == want
        assert sha_of(alice.expect('> dcc: sent "for irc.bin" to ircbob', 10)) == want
        dcc.disconnect()
        server_conn.disconnect("bye")
    finally:
        srv.stop()


def test_irc_ctcp_reaches_a_line_client_unchanged(tmp_path: Path) -> None:
    srv = start_server(tmp_path, ("line", "irc"))
    try:
        bob = welcome(srv.port, "bob")
        with socket.create_connection(("127.0.0.1", srv.ports["irc"]), 5) as s:
            s.sendall(b"NICK ann\r\nUSER ann 0 * :ann\r\n")
            s.settimeout(5 * TIME)
            buf = b""
            while b" 001 " not in buf:
                buf += s.recv(4096)
            s.sendall(b'PRIVMSG bob :\x01DCC SEND "a b.txt" 2130706433 4000 12\x01\r\n')
            line = bob.expect("> DCC from ann:")
            assert line == '> DCC from ann: SEND "a b.txt" 2130706433 4000 12'
            bob.send("/ctcp ann DCC CHAT chat 2130706433 4001")
            while b"DCC CHAT" not in buf:
                buf += s.recv(4096)
            assert b":bob!" in buf
            assert b"PRIVMSG ann :\x01DCC CHAT chat 2130706433 4001\x01\r\n" in buf
        bob.close()
    finally:
        srv.stop()


def test_an_irc_user_sends_a_file_to_salas_chat(tmp_path: Path, chat) -> None:
    srv = start_server(tmp_path, ("line", "irc"))
    try:
        bob = chat(srv, "bob")
        data = os.urandom(200_000)
        listener = socket.create_server(("127.0.0.1", 0))
        listener.settimeout(10 * TIME)
        port = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", srv.ports["irc"]), 5) as s:
            s.sendall(b"NICK ann\r\nUSER ann 0 * :ann\r\n")
            s.settimeout(5 * TIME)
            buf = b""
            while b" 001 " not in buf:
                buf += s.recv(4096)
            offer = f"DCC SEND from-irc.bin 2130706433 {port} {len(data)}"  # no token: IRC
            s.sendall(f"PRIVMSG bob :\x01{offer}\x01\r\n".encode())
            bob.expect('> dcc: ann offers "from-irc.bin"')
            bob.send("/accept")
            conn, _ = listener.accept()
            conn.settimeout(5 * TIME)
            conn.sendall(data)  # a plain DCC sender: no token, the bytes at once
            acked = b""
            while acked[-4:] != len(data).to_bytes(4, "big"):
                chunk = conn.recv(4096)
                assert chunk
                acked += chunk
            conn.close()
            got = bob.expect('> dcc: received "from-irc.bin" from ann', 10)
            assert sha_of(got) == hashlib.sha256(data).hexdigest()
            assert (tmp_path / "down-bob" / "from-irc.bin").read_bytes() == data
        listener.close()
    finally:
        srv.stop()


def test_with_direct_connections_off_an_irc_offer_gets_a_clear_notice(tmp_path: Path) -> None:
    srv = start_server(tmp_path, ("line", "irc"), config="[direct]\nenabled = false\n")
    try:
        bob = welcome(srv.port, "bob")
        with socket.create_connection(("127.0.0.1", srv.ports["irc"]), 5) as s:
            s.sendall(b"NICK ann\r\nUSER ann 0 * :ann\r\n")
            s.settimeout(5 * TIME)
            buf = b""
            while b" 001 " not in buf:
                buf += s.recv(4096)
            s.sendall(b"PRIVMSG bob :\x01DCC SEND a.txt 2130706433 4000 12\x01\r\n")
            while b"turned off" not in buf:
                buf += s.recv(4096)
            assert b"NOTICE ann :Direct connections (calls and file transfers) are turned" in buf
            bob.send("/echo done")
            assert bob.expect("done") == "done"
            assert not any("DCC" in line for line in bob.tail(50))
        bob.close()
    finally:
        srv.stop()

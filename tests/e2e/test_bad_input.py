"""SPEC, bad input and trust: every parser is total; garbage, invalid UTF-8,
oversize lines, floods and idle or half-open sockets get a clear error or a
disconnect, never a crash, and never slow other users. A client that stops
reading is cut off once its outgoing buffer passes a bound."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from support import TIME, LineClient, RunningServer, start_server, welcome

EXEMPT = '[limits]\nflood_exempt = ["127.0.0.0/8"]\n'


def test_line_over_bound_is_refused_and_the_connection_lives(server: RunningServer) -> None:
    a = welcome(server.port, "alice")
    b = welcome(server.port, "bob")
    a.send("x" * 5000)
    assert a.expect("!") == "! Line too long (over 4096 bytes), so it was not sent"
    a.send("short and fine")
    assert b.expect("[alice]") == "[alice] short and fine"
    assert not any("xxxx" in line for line in b.seen)


def test_endless_line_without_newline_keeps_memory_bounded(server: RunningServer) -> None:
    """A client streaming one never-ending line: one error, nothing kept, still served."""
    a = welcome(server.port, "streamer")
    b = welcome(server.port, "listener")
    before = server.rss_kb()
    chunk = b"y" * 65536
    for _ in range(160):  # 10 MiB without a newline
        a.send_raw(chunk)
    a.send_raw(b"\nafter the flood\n")
    assert a.expect("!") == "! Line too long (over 4096 bytes), so it was not sent"
    assert b.expect("[streamer]") == "[streamer] after the flood"
    assert server.rss_kb() - before < 8 * 1024, "server memory grew with the endless line"


def test_invalid_utf8_and_control_characters(server: RunningServer) -> None:
    a = welcome(server.port, "alice")
    b = welcome(server.port, "bob")
    a.send_raw(b"caf\xe9 latin-1\n")
    assert a.expect("!") == "! That line was not valid UTF-8, so it was not sent"
    a.send("\x1b[2J\x1b[31mred alert")
    assert a.expect("!") == "! Control characters are not allowed, so that line was not sent"
    a.send("tabs\tbecome spaces")
    assert b.expect("[alice]") == "[alice] tabs    become spaces"
    assert not any("\x1b" in line or "latin" in line for line in b.seen)


def test_garbage_bytes_never_crash_the_server(server: RunningServer) -> None:
    import random

    rng = random.Random(168)
    a = welcome(server.port, "victim")
    for _ in range(20):
        g = LineClient(server.port)
        g.send_raw(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 3000))))
        g.close()
        cs = socket.create_connection(("127.0.0.1", server.ports["cs168"]), timeout=5 * TIME)
        cs.sendall(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 1000))))
        cs.close()
    a.send("/echo still alive")
    assert a.expect("still alive") == "still alive"
    assert server.proc.poll() is None


def test_silent_line_client_harms_nobody(server: RunningServer) -> None:
    """A client that connects and sends nothing is a lurker in the lobby, nothing more."""
    silent = socket.create_connection(("127.0.0.1", server.port), timeout=5 * TIME)
    a = welcome(server.port, "alice")
    b = welcome(server.port, "bob")
    a.send("hi bob")
    assert b.expect("[alice]") == "[alice] hi bob"
    silent.close()


def test_nameless_cs168_client_is_closed_after_the_registration_timeout(tmp_path: Path) -> None:
    srv = start_server(tmp_path, ("line", "cs168"), config="[limits]\nregister_timeout = 0.5\n")
    try:
        cs = socket.create_connection(("127.0.0.1", srv.ports["cs168"]), timeout=5 * TIME)
        cs.sendall(b"Half")  # a partial first frame, never finished
        data = b""
        deadline = time.monotonic() + 5 * TIME
        while time.monotonic() < deadline:
            chunk = cs.recv(400)
            if not chunk:
                break
            data += chunk
        assert data == b"Disconnected: Registration timed out".ljust(200)
        a = welcome(srv.port, "alice")
        a.send("/echo fine")
        assert a.expect("fine") == "fine"
    finally:
        srv.stop()


def test_flood_is_delayed_with_a_notice_then_disconnected(tmp_path: Path) -> None:
    """A configurable rate limit with a notice, then a disconnect if it goes on."""
    config = "[limits]\nflood_rate = 5.0\nflood_burst = 5\nflood_queue = 10\n"
    srv = start_server(tmp_path, config=config)
    try:
        flooder = welcome(srv.port, "flooder")
        calm = welcome(srv.port, "calm")
        other = welcome(srv.port, "other")
        flooder.send_raw(b"".join(b"spam %d\n" % i for i in range(100)))
        assert flooder.expect("!") == (
            "! You are sending too fast: your lines are being delayed;"
            " keep on and you will be disconnected"
        )
        assert flooder.expect("! Disconnected") == "! Disconnected: Excess flood"
        assert flooder.closed()
        assert other.expect("flooder left") == "< flooder left lobby (2 users online): Excess flood"
        spam = [line for line in other.seen if line.startswith("[flooder]")]
        assert 1 <= len(spam) <= 5 + 1, spam  # the burst at most, then nothing
        calm.send("unaffected")
        assert other.expect("[calm]") == "[calm] unaffected"
    finally:
        srv.stop()


def test_a_short_burst_is_only_delayed_not_lost(tmp_path: Path) -> None:
    config = "[limits]\nflood_rate = 20.0\nflood_burst = 3\nflood_queue = 40\n"
    srv = start_server(tmp_path, config=config)
    try:
        a = welcome(srv.port, "paster")
        b = welcome(srv.port, "reader")
        a.send_raw(b"".join(b"line %d\n" % i for i in range(20)))
        for i in range(20):
            assert b.expect("[paster]") == f"[paster] line {i}"
        assert a.expect("!").startswith("! You are sending too fast")
    finally:
        srv.stop()


def test_flood_exempt_addresses_are_not_limited(tmp_path: Path) -> None:
    """[limits] flood_exempt: CIDRs with no flood limit (tests, benchmarks, bridges)."""
    config = EXEMPT + "flood_rate = 1.0\nflood_burst = 1\nflood_queue = 2\n"
    srv = start_server(tmp_path, config=config)
    try:
        a = welcome(srv.port, "bench")
        b = welcome(srv.port, "sink")
        a.send_raw(b"".join(b"m%d\n" % i for i in range(300)))
        for i in range(300):
            assert b.next_line() == f"[bench] m{i}"
        assert not any(line.startswith("!") for line in a.drain())
    finally:
        srv.stop()


def test_slow_reader_is_cut_off_and_memory_stays_flat(tmp_path: Path) -> None:
    """A client that sends but never reads is cut off at its send-queue bound;
    the room keeps flowing and the server's memory stays flat."""
    srv = start_server(tmp_path, config=EXEMPT + "sendq_bytes = 262144\n")
    try:
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.connect(("127.0.0.1", srv.port))
        slow.sendall(b"/nick slowpoke\n")
        talker = welcome(srv.port, "talker")
        reader = welcome(srv.port, "reader")
        before = srv.rss_kb()
        text = "z" * 3900
        cut = False
        for i in range(12_000):  # at most ~47 MB to everyone in the lobby
            talker.send(f"{i} {text}")
            # The attentive reader keeps up and gets everything, in order.
            assert reader.expect("[talker]").startswith(f"[talker] {i} ")
            if i % 200 == 199 and any("cut off: SendQ exceeded" in x for x in srv.log):
                cut = True
                break
        assert cut, "the reader that never reads was not cut off"
        reader.drain()
        assert "< slowpoke left lobby (2 users online): SendQ exceeded" in reader.seen
        assert srv.rss_kb() - before < 30 * 1024, "server memory grew with the slow reader"
        slow.close()
    finally:
        srv.stop()

"""The ordering rules of batched fan-out.

A room's messages in one loop turn are appended once to a shared batch. That
is only correct if order holds per sender and per room: a batch goes out
before any membership change and before any later message from the same
sender, and nobody gets their own message back (unless they asked for echo).
Everything each client sends here goes in one write, so it lands in one turn.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import TIME, LineClient, RunningServer, start_server, welcome

CONFIG = '[limits]\nflood_exempt = ["127.0.0.0/8"]\n'


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    s = start_server(tmp_path_factory.mktemp("order"), ("line", "irc"), config=CONFIG)
    yield s
    s.stop()


def in_room(port: int, name: str, room: str) -> LineClient:
    c = welcome(port, name)
    c.send(f"/join {room}")
    c.expect(f"> You joined {room}")
    return c


def settle(*clients: LineClient) -> None:
    """Read everything each client has been sent so far (an /echo round trip)."""
    for c in clients:
        c.send("/echo settled")
        c.expect("settled")


def test_room_private_room_from_one_sender_keep_their_order(srv: RunningServer) -> None:
    a = welcome(srv.port, "ord_a")
    a.send("/create ordroom")
    a.expect("> You joined ordroom")
    b = in_room(srv.port, "ord_b", "ordroom")
    c = in_room(srv.port, "ord_c", "ordroom")
    settle(a, b, c)
    a.send_raw(b"m1\n/msg ord_b p1\nm2\n/me m3\nm4\n")
    got = [b.next_line() for _ in range(5)]
    assert got == [
        "[ord_a] m1",
        "[ord_a -> you] p1",
        "[ord_a] m2",
        "* ord_a m3",
        "[ord_a] m4",
    ]
    got_c = [c.next_line() for _ in range(4)]
    assert got_c == ["[ord_a] m1", "[ord_a] m2", "* ord_a m3", "[ord_a] m4"]


def test_membership_change_splits_the_batch(srv: RunningServer) -> None:
    """A message said before someone leaves reaches them; one said after does not."""
    a = welcome(srv.port, "mem_a")
    a.send("/create memroom")
    a.expect("> You joined memroom")
    b = in_room(srv.port, "mem_b", "memroom")
    settle(a, b)
    b.send_raw(b"before\n/leave\nafter\n")
    assert a.next_line() == "[mem_b] before"
    assert a.next_line() == "< mem_b left memroom (1 user online)"
    # b's "after" went nowhere (b is in no room) and came back as an error.
    assert b.expect("!") == "! You are not in a room: /list shows them, /join ROOM enters one"
    a.send("/echo sync")
    assert a.expect("sync") == "sync"
    assert "[mem_b] after" not in a.seen


def test_rename_between_messages_keeps_order(srv: RunningServer) -> None:
    a = welcome(srv.port, "ren_a")
    a.send("/create renroom")
    a.expect("> You joined renroom")
    b = in_room(srv.port, "ren_b", "renroom")
    settle(a, b)
    a.send_raw(b"one\n/nick ren_a2\ntwo\n")
    assert [b.next_line() for _ in range(3)] == [
        "[ren_a] one",
        "> ren_a is now known as ren_a2",
        "[ren_a2] two",
    ]


def _irc(port: int, nick: str, caps: str = "") -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5 * TIME)
    if caps:
        s.sendall(f"CAP REQ :{caps}\r\n".encode())
    s.sendall(f"NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\n".encode())
    if caps:
        s.sendall(b"CAP END\r\n")
    return s


def _read_until(s: socket.socket, pred: object, timeout: float = 5.0) -> list[str]:
    buf = b""
    lines: list[str] = []
    deadline = time.monotonic() + timeout * TIME
    while time.monotonic() < deadline:
        while b"\r\n" in buf:
            raw, buf = buf.split(b"\r\n", 1)
            lines.append(raw.decode())
            if callable(pred) and pred(lines[-1]):
                return lines
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = s.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            break
        buf += chunk
    raise AssertionError(f"never matched; got {lines[-10:]}")


def test_senders_in_one_room_get_everyone_elses_messages_not_their_own(
    srv: RunningServer,
) -> None:
    """Several senders burst into one room in the same turn: each hears the others,
    in each sender's order, and never itself; an echo-message client hears itself
    in its place among the others."""
    port = srv.ports["irc"]
    names = ["burst0", "burst1", "burst2"]
    socks = [_irc(port, n) for n in names]
    echo = _irc(port, "burstecho", "echo-message")
    for s in [*socks, echo]:
        _read_until(s, lambda ln: " 422 " in ln or " 376 " in ln)
        s.sendall(b"JOIN #burst\r\n")
        _read_until(s, lambda ln: " 366 " in ln)
    for s in [*socks, echo]:
        s.sendall(b"PING :ready\r\n")
        _read_until(s, lambda ln: "PONG" in ln)
    n = 30
    for i, s in enumerate(socks):
        s.sendall(b"".join(b"PRIVMSG #burst :%d-%d\r\n" % (i, k) for k in range(n)))
    echo.sendall(b"".join(b"PRIVMSG #burst :e-%d\r\n" % k for k in range(n)))
    for s in [*socks, echo]:
        s.sendall(b"PING :done\r\n")
    pat = re.compile(r"^:(\w+)!\S+ PRIVMSG #burst :?(\S+)$")
    for i, s in enumerate([*socks, echo]):
        me = [*names, "burstecho"][i]
        got: list[tuple[str, str]] = []
        deadline = time.monotonic() + 5 * TIME
        buf = b""
        want = 3 * n if me != "burstecho" else 4 * n
        while len(got) < want and time.monotonic() < deadline:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                break
            buf += chunk
            while b"\r\n" in buf:
                raw, buf = buf.split(b"\r\n", 1)
                m = pat.match(raw.decode())
                if m:
                    got.append((m.group(1), m.group(2)))
        senders = {who for who, _ in got}
        assert len(got) == want, (me, len(got))
        if me == "burstecho":
            assert senders == {*names, "burstecho"}
        else:
            assert me not in senders and senders == ({*names} - {me}) | {"burstecho"}
        for who in senders:
            texts = [t for w, t in got if w == who]
            assert texts == sorted(texts, key=lambda t: int(t.rsplit("-", 1)[1])), (me, who)
    for s in [*socks, echo]:
        s.close()


def _privmsgs(s: socket.socket, channel: str, want: int) -> list[tuple[str, str]]:
    """(nick, text) of the PRIVMSGs to ``channel`` read until ``want`` came (or 10 s)."""
    pat = re.compile(rf"^:(\w+)!\S+ PRIVMSG {re.escape(channel)} :?(\S+)$")
    got: list[tuple[str, str]] = []

    def enough(line: str) -> bool:
        m = pat.match(line)
        if m:
            got.append((m[1], m[2]))
        return len(got) >= want

    _read_until(s, enough, timeout=10)
    return got


def test_bursts_with_stragglers_reach_everyone_whole_and_in_order(
    srv: RunningServer,
) -> None:
    """Bursts like a busy room's: a few senders at once, and one a moment
    later, so its message often arrives while the others' turn is being kept.
    The server may then hold the first turn for the straggler's commit and
    give each member both in one write; either way every member gets every
    message once, in each sender's order, and never its own."""
    port = srv.ports["irc"]
    names = [f"strag{i}" for i in range(4)]
    listeners = [f"stragl{i}" for i in range(6)]
    socks = {n: _irc(port, n) for n in [*names, *listeners]}
    for s in socks.values():
        _read_until(s, lambda ln: " 422 " in ln or " 376 " in ln)
        s.sendall(b"JOIN #strag\r\n")
        _read_until(s, lambda ln: " 366 " in ln)
    for s in socks.values():
        s.sendall(b"PING :ready\r\n")
        _read_until(s, lambda ln: "PONG" in ln)
    bursts = 40
    for b in range(bursts):
        for n in names[:3]:
            socks[n].sendall(b"PRIVMSG #strag :%s-%d\r\n" % (n.encode(), b))
        time.sleep(0.0003)  # the straggler
        socks[names[3]].sendall(b"PRIVMSG #strag :%s-%d\r\n" % (names[3].encode(), b))
        time.sleep(0.01)
    for me, s in socks.items():
        want = bursts * (len(names) - (me in names))
        got = _privmsgs(s, "#strag", want)
        assert len(got) == want, (me, len(got))
        assert me not in {who for who, _ in got}
        for who in names:
            if who != me:
                assert [t for w, t in got if w == who] == [f"{who}-{b}" for b in range(bursts)]
    for s in socks.values():
        s.close()


def test_flood_of_one_room_then_private_message_to_a_member(tmp_path: Path) -> None:
    """The room batch a member has is out before a later private message to it."""
    s = start_server(tmp_path, ("line",), config=CONFIG)
    try:
        a = welcome(s.port, "fl_a")
        a.send("/create flroom")
        a.expect("> You joined flroom")
        b = in_room(s.port, "fl_b", "flroom")
        c = in_room(s.port, "fl_c", "flroom")
        settle(a, b, c)
        c.send_raw(b"".join(b"c%d\n" % i for i in range(20)))
        a.send_raw(b"".join(b"a%d\n" % i for i in range(20)) + b"/msg fl_b after-a\n")
        got = [b.next_line() for _ in range(41)]
        from_a = [g for g in got if g.startswith("[fl_a")]
        assert from_a == [*(f"[fl_a] a{i}" for i in range(20)), "[fl_a -> you] after-a"]
        assert [g for g in got if g.startswith("[fl_c]")] == [f"[fl_c] c{i}" for i in range(20)]
    finally:
        s.stop()

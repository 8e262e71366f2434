"""DCC offers in and out (``salas.client.dcc``), and two ``Direct`` controllers
wired together by a stand-in server that passes ``/ctcp`` on as the line door does."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from salas.client import dcc, direct
from salas.client.dcc import Offer, OfferError, Reject
from salas.client.direct import ACK_BUFFER, MAX_BAD_TOKENS, MAX_PENDING, Direct, DirectSettings
from salas.client.link import Link

# -- the wire form -------------------------------------------------------------------


def test_offers_round_trip() -> None:
    offers = [
        Offer("SEND", "report.pdf", "127.0.0.1", 5000, 1048576, None),
        Offer("SEND", "two words.txt", "10.1.2.3", 0, 7, "s" + "0f" * 12),
        Offer("CHAT", "chat", "::1", 4000, 0, "123"),
    ]
    for offer in offers:
        assert dcc.parse(dcc.format_offer(offer)) == offer
    assert dcc.format_offer(offers[0]) == "SEND report.pdf 2130706433 5000 1048576"
    assert dcc.format_offer(offers[1]).startswith('SEND "two words.txt" 167838211 0 7 s0f')
    assert dcc.format_offer(offers[2]) == "CHAT chat ::1 4000 123"


def test_what_irc_clients_send_parses() -> None:
    assert dcc.parse("SEND file.txt 3232235777 1234 99") == Offer(
        "SEND", "file.txt", "192.168.1.1", 1234, 99, None
    )
    assert dcc.parse("SEND file.txt 3232235777 0 99 42").passive  # mIRC/irssi passive
    assert dcc.parse("send a 1 2 3").kind == "SEND"
    assert dcc.parse('REJECT SEND "a b"') == Reject("SEND", "a b")
    assert dcc.parse("REJECT CHAT chat") == Reject("CHAT", "chat")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "SEND",
        "SEND a 1 2",
        "SEND a 1 2 3 4 5",
        "SEND a x 2 3",
        "SEND a 4294967296 2 3",
        "SEND a 1 65536 3",
        "SEND a 1 2 -3",
        "SEND a 1 0 3",  # passive needs a token
        'SEND "a 1 2 3',
        "SEND a 1 2 3 to/ken",
        "CHAT chat 1",
        "RESUME a 1 2",
        "REJECT",
    ],
)
def test_bad_offers_are_refused(text: str) -> None:
    with pytest.raises(OfferError):
        dcc.parse(text)


@given(st.text(max_size=200))
def test_parse_is_total(text: str) -> None:
    with contextlib.suppress(OfferError):
        dcc.parse(text)


def test_tokens() -> None:
    a, b = dcc.new_token(), dcc.new_token()
    assert a != b and dcc.is_salas_token(a) and not dcc.is_salas_token("12345")
    assert dcc.token_matches(a, a) and not dcc.token_matches(a, b)
    assert dcc.parse(f"SEND x 1 2 3 {a}").salas
    assert not dcc.parse("SEND x 1 0 3 77").salas


def test_acks_are_four_bytes_big_endian_modulo_2_32() -> None:
    assert dcc.ack(1) == b"\x00\x00\x00\x01"
    assert dcc.ack((1 << 32) + 5) == b"\x00\x00\x00\x05"


def test_sizes_in_words() -> None:
    assert dcc.size_text(10) == "10 B"
    assert dcc.size_text(3 * 1024 * 1024 + 17) == "3.0 MiB"
    assert dcc.size_text(1536) == "1.5 KiB"


# -- saving -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offered", "saved"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd", "____etc_passwd"),
        ("/etc/passwd", "_etc_passwd"),
        ("..", "_"),
        (".bashrc", "bashrc"),
        ("...", "_"),
        ("a\\..\\b", "a___b"),
        ("bell\x07\x1b[31mred", "bell[31mred"),
        ("\x00", "download"),
        ("   ", "download"),
        ("a..b.txt", "a_b.txt"),
        ("rep\u202etxt.exe", "reptxt.exe"),  # would show as "repexe.txt"
        ("in\u200bvisible.pdf", "invisible.pdf"),
    ],
)
def test_names_are_cleaned(offered: str, saved: str) -> None:
    assert dcc.clean_name(offered) == saved


@given(st.text(max_size=300))
def test_a_cleaned_name_is_one_harmless_component(name: str) -> None:
    out = dcc.clean_name(name)
    assert out and "/" not in out and "\\" not in out and ".." not in out
    assert not out.startswith(".") and len(out.encode()) <= dcc.MAX_NAME
    assert not any(ord(ch) < 32 or 0x7F <= ord(ch) <= 0x9F for ch in out)


def test_long_names_keep_their_extension() -> None:
    out = dcc.clean_name("x" * 500 + ".tar")
    assert out.endswith(".tar") and len(out.encode()) <= dcc.MAX_NAME


def test_nothing_is_overwritten(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("mine")
    paths = []
    for _ in range(3):
        path, fd = dcc.open_new(tmp_path, "a.txt")
        os.close(fd)
        paths.append(path.name)
    assert paths == ["a (1).txt", "a (2).txt", "a (3).txt"]
    assert (tmp_path / "a.txt").read_text() == "mine"
    path, fd = dcc.open_new(tmp_path, "../a.txt")
    os.close(fd)
    assert path.parent == tmp_path.resolve() and path.name == "__a.txt"


def test_a_symlink_in_the_way_is_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_text("keep")
    down = tmp_path / "down"
    down.mkdir()
    (down / "x").symlink_to(outside)
    path, fd = dcc.open_new(down, "x")
    os.close(fd)
    assert path.name == "x (1)" and outside.read_text() == "keep"


# -- two controllers, a stand-in server between them ------------------------------------


class Relay:
    """What the server does for DCC: ``/ctcp NAME TEXT`` reaches NAME as
    ``> DCC from ME: ...``; ``/whois`` says everyone is on the line door. What is
    sent to someone who is not a ``Direct`` here is kept in ``sent``."""

    def __init__(self) -> None:
        self.clients: dict[str, Direct] = {}
        self.sent: list[tuple[str, str]] = []
        self.shown: dict[str, list[str]] = {}
        self.events: dict[str, asyncio.Event] = {}

    def show_for(self, name: str) -> tuple[list[str], asyncio.Event]:
        return self.shown.setdefault(name, []), self.events.setdefault(name, asyncio.Event())


class FakeLink(Link):
    def __init__(self, relay: Relay, name: str) -> None:
        self.relay = relay
        self.name = name

    def local_host(self) -> str | None:
        return "127.0.0.1"

    def send(self, text: str) -> None:
        loop = asyncio.get_running_loop()
        me = self.relay.clients[self.name]
        word, _, rest = text.partition(" ")
        if word == "/ctcp":
            peer, _, body = rest.partition(" ")
            other = self.relay.clients.get(peer)
            assert body.startswith("DCC ")
            if other is None:
                self.relay.sent.append((peer, body[4:]))
            else:
                loop.call_soon(other.on_server_line, f"> DCC from {self.name}: {body[4:]}")
        elif word == "/whois":
            loop.call_soon(me.on_server_line, f"> {rest} [127.0.0.1:1] via line, idle 0s")
        elif word == "/echo":
            loop.call_soon(me.on_server_line, rest)


def pair(tmp_path: Path, **kw: object) -> tuple[Relay, Direct, Direct]:
    relay = Relay()
    for name in ("alice", "bob"):
        shown, event = relay.show_for(name)

        def show(text: str, shown: list[str] = shown, event: asyncio.Event = event) -> None:
            shown.append(text)
            event.set()

        settings = DirectSettings(downloads=tmp_path / f"down-{name}", **kw)  # type: ignore[arg-type]
        relay.clients[name] = Direct(FakeLink(relay, name), show, settings)
    return relay, relay.clients["alice"], relay.clients["bob"]


async def seen(relay: Relay, name: str, needle: str, within: float = 5.0) -> str:
    shown, event = relay.show_for(name)

    async def look() -> str:
        while True:
            for line in shown:
                if needle in line:
                    return line
            event.clear()
            await event.wait()

    return await asyncio.wait_for(look(), within)


@pytest.mark.parametrize("passive", [False, True])
async def test_a_file_both_ways_round(tmp_path: Path, passive: bool) -> None:
    relay, alice, bob = pair(tmp_path, passive=passive)
    data = os.urandom(300_000)
    src = tmp_path / "data.bin"
    src.write_bytes(data)
    assert alice.on_user_line(f"/send bob {src}")
    await seen(relay, "bob", '> dcc: alice offers "data.bin" (293.0 KiB): /accept 1')
    assert bob.on_user_line("/accept")
    got = await seen(relay, "bob", "> dcc: received")
    sent = await seen(relay, "alice", "> dcc: sent")
    want = hashlib.sha256(data).hexdigest()
    assert got.endswith(want) and sent.endswith(want)
    assert (tmp_path / "down-bob" / "data.bin").read_bytes() == data
    await alice.close()
    await bob.close()


async def test_a_chat(tmp_path: Path) -> None:
    relay, alice, bob = pair(tmp_path)
    alice.on_user_line("/dcc chat bob")
    await seen(relay, "bob", "offers a direct chat")
    bob.on_user_line("/accept 1")
    await seen(relay, "alice", "direct chat with bob open")
    await seen(relay, "bob", "direct chat with alice open")
    assert bob.busy()
    bob.on_user_line("/dcc msg alice hi \x1b[2J")
    assert await seen(relay, "alice", "[=bob]") == "[=bob] hi [2J"
    alice.on_user_line("/dcc close bob")
    await seen(relay, "bob", "direct chat with alice closed")
    await alice.close()
    await bob.close()


async def test_commands_that_make_no_sense_say_so(tmp_path: Path) -> None:
    relay, alice, _ = pair(tmp_path)
    alice.on_user_line("/accept")
    alice.on_user_line("/decline 7")
    alice.on_user_line("/send bob")
    alice.on_user_line(f"/send bob {tmp_path / 'missing'}")
    alice.on_user_line("/dcc msg bob hi")
    assert not alice.on_user_line("/msg bob hi")
    await seen(relay, "alice", "can't send")
    assert relay.shown["alice"][:4] == [
        "! dcc: no offers waiting",
        "! dcc: no offer 7 (expired, or answered already?)",
        "! Usage: /send NAME FILE",
        "! dcc: no direct chat with bob: /dcc chat bob offers one",
    ]
    await alice.close()


async def test_a_nonsense_offer_is_reported_not_acted_on(tmp_path: Path) -> None:
    relay, _, bob = pair(tmp_path)
    assert bob.on_server_line("> DCC from eve: SEND a 1 99999 3")
    why = "! dcc: eve sent an offer this client can't use (99999: not a port)"
    assert relay.shown["bob"] == [why]
    assert not bob.incoming
    assert not bob.on_server_line("[eve] > DCC from x: SEND a 1 2 3")
    await bob.close()


# -- nothing left behind --------------------------------------------------------------

TOKEN = "s" + "ab" * 12


async def sent_to(relay: Relay, name: str, within: float = 5.0) -> str:
    """The first CTCP a controller sent to ``name`` (someone outside the relay)."""

    async def look() -> str:
        while True:
            for peer, body in relay.sent:
                if peer == name:
                    return body
            await asyncio.sleep(0.01)

    return await asyncio.wait_for(look(), within)


def listening_port(d: Direct) -> int:
    (w,) = d.waiting
    assert w.server is not None
    return int(w.server.sockets[0].getsockname()[1])


async def test_quitting_before_the_sender_connects_leaves_no_file_and_no_descriptor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[tuple[int, tuple[int, int]]] = []
    open_new = dcc.open_new

    def recording_open_new(directory: Path, name: str, limit: int = 1000) -> tuple[Path, int]:
        path, fd = open_new(directory, name, limit)
        st = os.fstat(fd)
        opened.append((fd, (st.st_dev, st.st_ino)))
        return path, fd

    monkeypatch.setattr(dcc, "open_new", recording_open_new)
    relay, _, bob = pair(tmp_path)
    # mallory can't be reached (port 0): bob listens and answers with his own port.
    bob.on_server_line(f"> DCC from mallory: SEND wait.bin 2130706433 0 1000 {TOKEN}")
    bob.on_user_line("/accept")
    reply = dcc.parse(await sent_to(relay, "mallory"))
    assert isinstance(reply, Offer) and reply.port and reply.token == TOKEN
    down = tmp_path / "down-bob"
    assert [p.name for p in down.iterdir()] == ["wait.bin"]
    await bob.close()  # /quit, before mallory connects
    assert list(down.iterdir()) == []
    ((fd, ident),) = opened
    with contextlib.suppress(OSError):  # closed, or (reused) some other file now
        st = os.fstat(fd)
        assert (st.st_dev, st.st_ino) != ident
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", reply.port), 1).close()


@pytest.mark.parametrize("passive", [False, True])
async def test_quitting_mid_transfer_removes_the_partial_file(
    tmp_path: Path, passive: bool
) -> None:
    relay, _, bob = pair(tmp_path)
    conns: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()

    async def on_connect(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await conns.put((r, w))

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    bob.on_server_line(
        f"> DCC from mallory: SEND part.bin 2130706433 {0 if passive else port} 1000 {TOKEN}"
    )
    bob.on_user_line("/accept")
    if passive:  # bob listens (the transfer runs from his listener), mallory connects
        reply = dcc.parse(await sent_to(relay, "mallory"))
        assert isinstance(reply, Offer)
        reader, writer = await asyncio.open_connection("127.0.0.1", reply.port)
        writer.write(TOKEN.encode() + b"\n")
    else:  # bob connects and sends the token
        reader, writer = await asyncio.wait_for(conns.get(), 5)
        assert await asyncio.wait_for(reader.readline(), 5) == TOKEN.encode() + b"\n"
    writer.write(b"x" * 100)
    assert await asyncio.wait_for(reader.readexactly(4), 5) == dcc.ack(100)  # it is written
    down = tmp_path / "down-bob"
    assert [p.name for p in down.iterdir()] == ["part.bin"]
    await asyncio.wait_for(bob.close(), 5)  # /quit, or Ctrl-C, mid-transfer
    assert list(down.iterdir()) == []
    assert await asyncio.wait_for(reader.read(), 5) == b""  # the connection is closed too
    assert not bob.busy()
    writer.close()
    server.close()


# -- strangers on a listening port -----------------------------------------------------


async def offered(tmp_path: Path, **kw: object) -> tuple[Relay, Direct, Direct, int]:
    """alice has offered bob a file; the port she listens on."""
    relay, alice, bob = pair(tmp_path, **kw)
    src = tmp_path / "data.bin"
    src.write_bytes(os.urandom(10_000))
    alice.on_user_line(f"/send bob {src}")
    await seen(relay, "bob", '> dcc: alice offers "data.bin"')
    return relay, alice, bob, listening_port(alice)


async def test_a_listener_holds_only_a_few_connections_without_a_token(tmp_path: Path) -> None:
    relay, alice, bob, port = await offered(tmp_path, token_wait=60.0)
    idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(MAX_PENDING)]
    (w,) = alice.waiting

    for _ in range(500):  # until the listener has them all
        if len(w.pending) == MAX_PENDING:
            break
        await asyncio.sleep(0.01)
    assert len(w.pending) == MAX_PENDING
    # Any more are closed at once, not held for the token wait.
    for _ in range(3 * MAX_PENDING):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(reader.read(), 2) == b""
        writer.close()
    assert len(w.pending) == MAX_PENDING
    for _, writer in idle:
        writer.close()
    for _ in range(500):  # each counts as a wrong token
        if sum("had no valid token" in line for line in relay.shown["alice"]) == MAX_PENDING:
            break
        await asyncio.sleep(0.01)
    assert not w.pending
    # The offer still stands (fewer wrong tokens than it takes to withdraw it).
    assert MAX_PENDING < MAX_BAD_TOKENS
    bob.on_user_line("/accept")
    await seen(relay, "bob", '> dcc: received "data.bin"')
    await alice.close()
    await bob.close()


async def test_repeated_wrong_tokens_withdraw_the_offer(tmp_path: Path) -> None:
    relay, alice, bob, port = await offered(tmp_path)
    for i in range(MAX_BAD_TOKENS):
        assert alice.waiting
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"s" + b"%024x" % i + b"\n")
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
    await seen(
        relay,
        "alice",
        f'! dcc: withdrew the offer of "data.bin" for bob: {MAX_BAD_TOKENS} connections came'
        " with wrong tokens",
    )
    assert not alice.waiting and not alice.busy()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), 1).close()
    await alice.close()
    await bob.close()


# -- acknowledgements -----------------------------------------------------------------


async def test_a_sender_that_reads_no_acks_does_not_make_the_receiver_buffer_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small reads (many acknowledgements) and small socket buffers: acknowledgements
    # nobody reads pile up in the receiver's own buffer unless it leaves them out.
    monkeypatch.setattr(direct, "CHUNK", 16)
    size = 1024 * 1024  # 65536 acks, 256 KiB of them
    data = os.urandom(size)
    loop = asyncio.get_running_loop()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    mine = socket.socket()
    mine.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    mine.setblocking(False)
    await loop.sock_connect(mine, listener.getsockname())
    sender, _ = listener.accept()
    listener.close()
    sender.setblocking(False)
    reader, writer = await asyncio.open_connection(sock=mine)
    shown: list[str] = []
    bob = Direct(FakeLink(Relay(), "bob"), shown.append, DirectSettings(downloads=tmp_path))
    path, fd = dcc.open_new(tmp_path, "x.bin")
    offer = Offer("SEND", "x.bin", "127.0.0.1", 1, size, None)

    async def send() -> None:
        await loop.sock_sendall(sender, data)
        sender.shutdown(socket.SHUT_WR)

    await asyncio.wait_for(
        asyncio.gather(send(), bob._receive_file("mallory", offer, path, fd, reader, writer)), 30
    )
    assert shown[-1].startswith('> dcc: received "x.bin"'), shown[-1]
    assert path.read_bytes() == data
    assert writer.transport.get_write_buffer_size() <= ACK_BUFFER + 8
    # What was sent ends with the last count: the sender learns everything arrived.
    writer.close()
    acks = b""
    while chunk := await asyncio.wait_for(loop.sock_recv(sender, 65536), 5):
        acks += chunk
    assert acks[-4:] == dcc.ack(size)
    sender.close()


@pytest.mark.parametrize(
    ("asked", "line"), [("send", "  /send NAME FILE"), ("/accept", "  /accept [N]")]
)
async def test_help_on_a_client_command_is_answered_by_the_client(
    tmp_path: Path, asked: str, line: str
) -> None:
    shown: list[str] = []
    link = FakeLink(Relay(), "bob")
    bob = Direct(link, shown.append, DirectSettings(downloads=tmp_path))
    assert bob.on_user_line(f"/help {asked}")  # taken here: the server doesn't know it
    assert shown[0].startswith("> Direct connections") and shown[1].startswith(line)
    assert not bob.on_user_line("/help join")  # the server's own commands: its help

"""DCC offers in and out (``salas.client.dcc``), and two ``Direct`` controllers
wired together by a stand-in server that passes ``/ctcp`` on as the line door does."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from salas.client import dcc
from salas.client.dcc import Offer, OfferError, Reject
from salas.client.direct import Direct, DirectSettings
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
    ``> DCC from ME: ...``; ``/whois`` says everyone is on the line door."""

    def __init__(self) -> None:
        self.clients: dict[str, Direct] = {}
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
            other = self.relay.clients[peer]
            assert body.startswith("DCC ")
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

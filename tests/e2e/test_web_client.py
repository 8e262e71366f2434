"""The web client at ``/`` in real headless Chromium (Playwright for Python
with Debian's ``chromium``), against a real ``salas serve``: pages talk to each
other and to a line-door client, survive a server restart, show HTML as text,
and are usable by keyboard alone, on a phone-sized screen, and with no critical
or serious axe-core finding (SPEC, http: the web client must beat The Lounge).

One browser serves the whole module; each test opens its own pages (one
browser context per person) and uses its own names and rooms. Every wait is
bounded. Screenshots for people to look at go to ``tests/e2e/artifacts/``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import (
    Browser,
    BrowserContext,
    Dialog,
    Locator,
    Page,
    expect,
)

from support import TIME, RunningServer, start_server, welcome
from webpage import (
    ARGS,
    ARTIFACTS,
    AXE_JS,
    WAIT,
    Contexts,
    axe,
    base,
    chromium,
    line_expect,
    require_chromium,
)

require_chromium()

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

EXEMPT = '[limits]\nflood_exempt = ["127.0.0.0/8"]\n'
#: A message's time, as the protocol gives it: ISO 8601, UTC, milliseconds.
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
expect.set_options(timeout=WAIT)

#: What counts as focusable for the keyboard checks (visible ones only).
FOCUSABLE_JS = """() => [...document.querySelectorAll(
  'a[href], button, input, select, textarea, summary, [tabindex]:not([tabindex="-1"])')]
  .filter(e => !e.disabled && e.getClientRects().length > 0
          && getComputedStyle(e).visibility !== 'hidden').length"""
#: Where the focus is, and whether it shows: an outline or a ring at least 2px wide.
FOCUS_JS = """() => {
  const e = document.activeElement;
  if (!e || e === document.body) return null;
  const s = getComputedStyle(e);
  const outline = s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2;
  const ring = s.boxShadow !== 'none';
  const text = (e.getAttribute('aria-label') || e.textContent || '').trim().slice(0, 30);
  const label = e.id ? '#' + e.id : e.tagName.toLowerCase() + ':' + text;
  return {label, visible: outline || ring, self: e.dataset.seen || ''};
}"""


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    s = start_server(
        tmp_path_factory.mktemp("web"), ("line", "http", "irc", "cs168"), config=EXEMPT
    )
    yield s
    s.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium(ARGS) as b:
        yield b


class Person:
    """One browser context and page: someone using the web client."""

    def __init__(self, context: BrowserContext, page: Page) -> None:
        self.context = context
        self.page = page
        self.dialogs: list[str] = []
        page.on("dialog", self._dialog)

    async def _dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        await dialog.dismiss()

    @property
    def log(self) -> Locator:
        """The message list in view."""
        return self.page.locator(".log:not([hidden])")

    def messages(self, text: str | None = None) -> Locator:
        items = self.log.locator("li.msg")
        return items if text is None else items.filter(has_text=text)


Open = Callable[..., Awaitable[Person]]


@pytest_asyncio.fixture(loop_scope="module")
async def open_person(browser: Browser) -> AsyncIterator[Open]:
    contexts = Contexts(browser)

    async def open_(**options: Any) -> Person:
        page = await contexts.page(**options)
        return Person(page.context, page)

    yield open_
    await contexts.close()


async def enter(person: Person, server: RunningServer, name: str) -> None:
    """Load the page and come in as guest ``name``, by keyboard: the name box
    has the focus on load, Enter sends it, and then the message box has it."""
    page = person.page
    await page.goto(base(server))
    await expect(page.locator("#login-name")).to_be_focused()
    await page.keyboard.type(name)
    await page.keyboard.press("Enter")
    await expect(page.locator("#status")).to_have_text(f"Connected as {name} (guest)")
    await expect(page.locator("#message")).to_be_focused()
    await expect(page.locator("#title")).to_have_text("#lobby")


async def say(person: Person, text: str) -> None:
    await person.page.locator("#message").fill(text)
    await person.page.keyboard.press("Enter")
    await expect(person.page.locator("#message")).to_have_value("")


async def go(person: Person, command: str) -> None:
    """``/join ROOM`` or ``/create ROOM [LIMIT]`` typed in the message box; wait
    until the room is in view."""
    await say(person, command)
    await expect(person.page.locator("#title")).to_have_text("#" + command.split()[1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# -- talking ---------------------------------------------------------------------------------


async def test_two_pages_and_a_line_client_talk_in_one_room(
    srv: RunningServer, open_person: Open
) -> None:
    """Two browsers and netcat in one room: messages both ways with names and
    times, own messages marked, joins and leaves shown, members listed."""
    line = await asyncio.to_thread(welcome, srv.port, "liner")
    try:
        line.send("/create talk")
        await line_expect(line, "> You joined talk")
        ann, bea = await open_person(), await open_person()
        await enter(ann, srv, "ann")
        await enter(bea, srv, "bea")
        await go(ann, "/join talk")
        await expect(ann.page.locator("#title")).to_have_text("#talk")
        await line_expect(line, "> ann joined talk")
        await go(bea, "/join talk")
        await line_expect(line, "> bea joined talk")
        await expect(ann.log).to_contain_text("bea joined")
        await expect(ann.page.locator("#count")).to_have_text("3 members")
        await expect(ann.page.locator("#members li")).to_have_count(3)

        await say(ann, "hello from ann")
        await line_expect(line, "[ann] hello from ann")
        mine = ann.messages("hello from ann")
        await expect(mine).to_have_class("msg own")
        await expect(mine.locator(".from")).to_have_text("ann")
        await expect(mine.locator("time")).to_have_attribute("datetime", ISO)
        theirs = bea.messages("hello from ann")
        await expect(theirs).to_have_class("msg")
        await expect(theirs.locator(".from")).to_have_text("ann")

        line.send("hi from the line")
        for person in (ann, bea):
            item = person.messages("hi from the line")
            await expect(item.locator(".from")).to_have_text("liner")
            await expect(item.locator(".text")).to_have_text("hi from the line")

        await say(bea, "/me waves")
        await line_expect(line, "bea waves")
        await expect(ann.messages("waves")).to_have_class("msg action")

        await say(bea, "/leave")
        await line_expect(line, "< bea left talk")
        await expect(ann.log).to_contain_text("bea left")
        await expect(ann.page.locator("#count")).to_have_text("2 members")
        await expect(bea.page.locator("#title")).to_have_text("#lobby")
        line.send("/leave")
        await expect(ann.log).to_contain_text("liner left")
        assert ann.dialogs == [] and bea.dialogs == []
    finally:
        line.close()


async def test_a_browser_an_irc_client_and_a_cs168_client_in_one_room(
    srv: RunningServer, open_person: Open
) -> None:
    """SPEC: everyone meets: a browser user, an IRC user and a CS168 user in one
    room see each other's messages, joins and leaves (raw sockets for the two)."""
    irc = socket.create_connection(("127.0.0.1", srv.ports["irc"]), 5)
    cs = socket.create_connection(("127.0.0.1", srv.ports["cs168"]), 5)
    seen = {"irc": b"", "cs": b""}

    async def wait_for(which: str, sock: socket.socket, needle: bytes) -> None:
        deadline = asyncio.get_running_loop().time() + 5
        while needle not in seen[which]:
            assert asyncio.get_running_loop().time() < deadline, (needle, seen[which][-400:])
            sock.settimeout(0.1)
            with contextlib.suppress(TimeoutError):
                chunk = await asyncio.to_thread(sock.recv, 65536)
                seen[which] += chunk
                if which == "irc" and b"PING " in chunk:
                    irc.sendall(b"PONG :x\r\n")

    def frame(text: str) -> bytes:
        return text.encode().ljust(200)

    try:
        irc.sendall(b"NICK ircer\r\nUSER ircer 0 * :ircer\r\nJOIN #meetweb\r\n")
        await wait_for("irc", irc, b" 366 ")
        cs.sendall(frame("csone") + frame("/join meetweb"))
        await wait_for("irc", irc, b":csone!")
        ann = await open_person()
        await enter(ann, srv, "annweb")
        await go(ann, "/join meetweb")
        await wait_for("irc", irc, b":annweb!")
        await wait_for("cs", cs, b"annweb has joined")
        await expect(ann.page.locator("#count")).to_have_text("3 members")

        await say(ann, "hello irc and cs168")
        await wait_for("irc", irc, b"PRIVMSG #meetweb :hello irc and cs168")
        await wait_for("cs", cs, frame("[annweb] hello irc and cs168"))
        irc.sendall(b"PRIVMSG #meetweb :hi from irc\r\n")
        await expect(ann.messages("hi from irc").locator(".from")).to_have_text("ircer")
        await wait_for("cs", cs, frame("[ircer] hi from irc"))
        cs.sendall(frame("hi from cs168"))
        await expect(ann.messages("hi from cs168").locator(".from")).to_have_text("csone")
        await wait_for("irc", irc, b"PRIVMSG #meetweb :hi from cs168")

        irc.sendall(b"PART #meetweb\r\n")
        await expect(ann.log).to_contain_text("ircer left")
        await wait_for("cs", cs, frame("ircer has left"))
        cs.close()
        await expect(ann.log).to_contain_text("csone quit")
        await expect(ann.page.locator("#count")).to_have_text("1 member")
    finally:
        irc.close()
        cs.close()


async def test_html_in_a_message_is_shown_as_text(srv: RunningServer, open_person: Open) -> None:
    """SPEC: web pages show text, never the sender's HTML; no script runs."""
    line = await asyncio.to_thread(welcome, srv.port, "mallory")
    try:
        line.send("/create html")
        await line_expect(line, "> You joined html")
        vic = await open_person()
        await enter(vic, srv, "victor")
        await go(vic, "/join html")
        await line_expect(line, "> victor joined html")
        evil = ["<img src=x onerror=alert(1)>", "<b>bold</b>", "<script>alert(2)</script>"]
        for text in evil:
            line.send(text)
        await say(vic, "<i>mine</i> & <u>too</u>")
        await line_expect(line, "[victor] <i>mine</i> & <u>too</u>")
        for text in [*evil, "<i>mine</i> & <u>too</u>"]:
            await expect(vic.messages(text).locator(".text")).to_have_text(text)
        for tag in ("img", "b", "script", "i", "u"):
            await expect(vic.log.locator(tag)).to_have_count(0)
        await vic.page.wait_for_timeout(300)  # time for an onerror to have fired
        assert vic.dialogs == []
    finally:
        line.close()


async def test_a_private_conversation_between_two_pages(
    srv: RunningServer, open_person: Open
) -> None:
    pia, quin = await open_person(), await open_person()
    await enter(pia, srv, "pia")
    await enter(quin, srv, "quin")
    await go(pia, "/create pv")
    await go(quin, "/join pv")
    await expect(pia.page.locator("#members")).to_contain_text("quin")
    # Choosing someone in the members list opens a conversation with them.
    await pia.page.get_by_role("button", name="quin: write privately").click()
    await expect(pia.page.locator("#title")).to_have_text("quin")
    await expect(pia.page.locator("#message")).to_be_focused()
    await expect(pia.page.locator("#topic-form")).to_be_hidden()  # rooms only
    await expect(pia.page.locator("#pm-info")).to_have_text("Only you and quin see these messages.")
    await say(pia, "psst, quin")
    await expect(pia.messages("psst, quin")).to_have_class("msg own")
    # quin is looking at the room: the conversation appears with an unread count.
    conv = quin.page.locator("#conv-list button", has_text="pia")
    await expect(conv.locator(".unread")).to_have_text("1 unread")
    await conv.click()
    await expect(quin.page.locator("#title")).to_have_text("pia")
    await expect(conv.locator(".unread")).to_have_text("")
    await expect(quin.messages("psst, quin").locator(".from")).to_have_text("pia")
    await say(quin, "yes, pia?")
    await expect(pia.messages("yes, pia?").locator(".from")).to_have_text("quin")
    # The room did not see any of it.
    await quin.page.locator("#room-list button", has_text="pv").click()
    await expect(quin.messages()).to_have_count(0)


async def test_create_a_room_with_a_limit_shows_count_and_limit(
    srv: RunningServer, open_person: Open
) -> None:
    """Seed 001: rooms have a participant limit, listed as n/limit."""
    rex = await open_person()
    await enter(rex, srv, "rex")
    page = rex.page
    await page.locator("#new-room summary").click()
    await page.locator("#create-name").fill("small")
    await page.locator("#create-limit").fill("5")
    await page.locator("#create-limit").press("Enter")
    await expect(page.locator("#title")).to_have_text("#small")
    await expect(page.locator("#count")).to_have_text("1/5 members")
    await expect(page.locator("#message")).to_be_focused()
    line = await asyncio.to_thread(welcome, srv.port, "sid")
    try:
        line.send("/join small")
        await line_expect(line, "> You joined small")
        await expect(page.locator("#count")).to_have_text("2/5 members")
        # The topic, set from the side panel, reaches the line client and the header.
        await page.locator("#topic-input").fill("Five at most, please")
        await page.get_by_role("button", name="Set topic").click()
        await line_expect(line, "Five at most, please")
        await expect(page.locator("#topic")).to_have_text("Five at most, please")
        await expect(rex.log).to_contain_text("rex set the topic: Five at most, please")
        await page.locator("#browse summary").click()
        row = page.locator("#all-rooms li", has_text="small")
        await expect(row.locator(".size")).to_have_text("2/5")
        await expect(page.locator("#all-rooms li", has_text="lobby")).to_be_visible()
        # The list joins rooms too.
        await page.locator("#all-rooms button", has_text="lobby").click()
        await expect(page.locator("#title")).to_have_text("#lobby")
    finally:
        line.close()


async def test_unread_counts_on_rooms_not_in_view(srv: RunningServer, open_person: Open) -> None:
    uma = await open_person()
    await enter(uma, srv, "uma")
    await go(uma, "/create quiet")
    await go(uma, "/create busy")
    await expect(uma.page.locator("#title")).to_have_text("#busy")
    line = await asyncio.to_thread(welcome, srv.port, "talker")
    try:
        line.send("/join quiet")
        await line_expect(line, "> You joined quiet")
        line.send("one")
        line.send("two")
        quiet = uma.page.locator("#room-list button", has_text="quiet")
        await expect(quiet.locator(".unread")).to_have_text("2 unread")
        await expect(uma.page).to_have_title("(2) #busy · salas")
        busy = uma.page.locator("#room-list button", has_text="busy")
        await expect(busy.locator(".unread")).to_have_text("")
        await quiet.click()
        await expect(quiet.locator(".unread")).to_have_text("")
        await expect(uma.messages()).to_have_count(2)
        await expect(uma.page).to_have_title("#quiet · salas")
    finally:
        line.close()


async def test_history_on_join_and_older_messages_on_scrolling_up(
    srv: RunningServer, open_person: Open
) -> None:
    """History is shown on joining (the last history.on_join = 20), and scrolling
    up asks for older messages with `history` before the oldest id shown."""
    line = await asyncio.to_thread(welcome, srv.port, "scribe")
    try:
        line.send("/create annals")
        await line_expect(line, "> You joined annals")
        for i in range(1, 61):
            line.send(f"entry {i:02d}")
        line.send("/echo all sent")
        await line_expect(line, "all sent")
    finally:
        line.close()
    hal = await open_person(viewport={"width": 1000, "height": 500})
    sent: list[dict[str, Any]] = []
    hal.page.on(
        "websocket",
        lambda ws: ws.on("framesent", lambda data: sent.append(json.loads(data))),
    )
    await enter(hal, srv, "hal")
    await go(hal, "/join annals")
    await expect(hal.messages()).to_have_count(20)
    await expect(hal.messages().first).to_contain_text("entry 41")
    await expect(hal.messages().last).to_contain_text("entry 60")
    await expect(hal.messages().last).to_be_in_viewport()
    # Scroll to the top: the older 40 come, in order, and what was in view stays put.
    await hal.log.evaluate("e => { e.scrollTop = 0; }")
    await expect(hal.messages()).to_have_count(60)
    texts = await hal.messages().locator(".text").all_text_contents()
    assert texts == [f"entry {i:02d}" for i in range(1, 61)]
    asks = [m for m in sent if m.get("type") == "history" and m.get("room") == "annals"]
    assert asks and isinstance(asks[0].get("before"), int), asks
    await expect(hal.messages("entry 01")).not_to_be_in_viewport()
    await expect(hal.log.locator("li.day")).to_have_count(1)


async def test_register_then_log_in(srv: RunningServer, open_person: Open) -> None:
    reg = await open_person()
    page = reg.page
    await page.goto(base(srv))
    await page.locator("#login-name").fill("regina")
    await page.locator("#login-password").fill("correct horse")
    await page.locator("#register-go").click()
    await expect(page.locator("#login-error")).to_contain_text("no spaces")
    await page.locator("#login-password").fill("correct-horse-9")
    await page.locator("#register-go").click()
    await expect(page.locator("#status")).to_have_text("Connected as regina")
    await expect(page.locator("#me")).to_have_text("regina, logged in as regina")
    await page.locator("#logout").click()
    await expect(page.locator("#login-name")).to_be_focused()

    # A guest can't take a registered name.
    await page.locator("#login-name").fill("regina")
    await page.keyboard.press("Enter")
    await expect(page.locator("#login-error")).to_contain_text("belongs to an account")
    # A wrong password is refused.
    await page.locator("#login-password").fill("wrong-password")
    await page.keyboard.press("Enter")
    await expect(page.locator("#login-error")).to_contain_text("Login failed")
    await page.locator("#login-password").fill("correct-horse-9")
    await page.keyboard.press("Enter")
    await expect(page.locator("#status")).to_have_text("Connected as regina")
    await expect(page.locator("#me")).to_have_text("regina, logged in as regina")
    await expect(page.locator("#title")).to_have_text("#lobby")


class Proxy:
    """A TCP relay between the browser and the server that can drop the
    browser's side of its connections while the server's side stays open:
    a network that fails without a word, leaving the server a ghost."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = 0
        self.pairs: list[dict[str, Any]] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        sr, sw = await asyncio.open_connection("127.0.0.1", self.target)
        pair: dict[str, Any] = {"cw": cw, "sw": sw, "ghost": False}
        pair["tasks"] = [
            asyncio.create_task(self._pipe(pair, cr, sw)),
            asyncio.create_task(self._pipe(pair, sr, cw)),
        ]
        self.pairs.append(pair)

    async def _pipe(
        self, pair: dict[str, Any], r: asyncio.StreamReader, w: asyncio.StreamWriter
    ) -> None:
        try:
            while data := await r.read(65536):
                w.write(data)
                await w.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            if not pair["ghost"]:
                w.close()

    def drop_browsers(self) -> None:
        """Cut the browser off; the server's sockets stay open, unread."""
        for pair in self.pairs:
            if not pair["cw"].is_closing():
                pair["ghost"] = True
                for task in pair["tasks"]:
                    task.cancel()
                pair["cw"].transport.abort()

    def free_ghosts(self) -> None:
        for pair in self.pairs:
            if pair["ghost"]:
                pair["sw"].close()

    async def close(self) -> None:
        for pair in self.pairs:
            for task in pair["tasks"]:
                task.cancel()
            pair["cw"].transport.abort()
            pair["sw"].close()
        if self._server is not None:
            self._server.close()


async def test_after_a_silent_drop_the_page_takes_its_name_back(
    srv: RunningServer, open_person: Open
) -> None:
    """The network fails without closing anything: the server still holds the
    old connection, and with it the name. The page comes back at once as a
    guest, keeps what was typed, and takes its name back once it is free."""
    proxy = Proxy(srv.ports["http"])
    await proxy.start()
    try:
        wes = await open_person()
        page = wes.page
        await page.goto(f"http://127.0.0.1:{proxy.port}/")
        await page.locator("#login-name").fill("wes")
        await page.keyboard.press("Enter")
        await expect(page.locator("#status")).to_have_text("Connected as wes (guest)")
        await go(wes, "/create ghosts")
        await page.locator("#message").fill("still here")
        proxy.drop_browsers()
        await expect(page.locator("#alert")).to_contain_text(
            "Your name wes is still held by the dropped connection"
        )
        await expect(page.locator("#status")).to_have_text(re.compile(r"^Connected as guest"))
        await expect(page.locator("#title")).to_have_text("#ghosts")
        proxy.free_ghosts()  # the server sees the old connection end: the name is free
        await expect(page.locator("#status")).to_have_text(
            "Connected as wes (guest)", timeout=15_000 * TIME
        )
        await expect(page.locator("#message")).to_have_value("still here")
        await page.keyboard.press("Enter")
        await expect(wes.messages("still here").locator(".from")).to_have_text("wes")
    finally:
        await proxy.close()


async def test_reconnects_after_a_server_restart_keeping_the_typed_text(
    tmp_path: Path, open_person: Open
) -> None:
    """The server goes away and comes back on the same port with the same data:
    the page reconnects by itself, rejoins its rooms, and what was being typed
    is still in the message box."""
    port = free_port()
    first = start_server(tmp_path, ("http",), config=EXEMPT, ports={"http": port})
    second: RunningServer | None = None
    try:
        rita = await open_person()
        await enter(rita, first, "rita")
        await go(rita, "/create stay")
        await say(rita, "said before the restart")
        await expect(rita.messages("said before the restart")).to_have_count(1)
        await rita.page.locator("#message").fill("half-typed thou")
        await asyncio.to_thread(first.stop)
        await expect(rita.page.locator("#status")).to_contain_text("Connection lost")
        await expect(rita.page.locator("#message")).to_have_value("half-typed thou")
        second = await asyncio.to_thread(
            start_server, tmp_path, ("http",), EXEMPT, (), {"http": port}
        )
        await expect(rita.page.locator("#status")).to_have_text(
            "Connected as rita (guest)", timeout=20_000 * TIME
        )
        await expect(rita.page.locator("#message")).to_have_value("half-typed thou")
        await expect(rita.page.locator("#title")).to_have_text("#stay")
        await expect(rita.log).to_contain_text("Back in stay")
        await rita.page.locator("#message").press("End")
        await rita.page.keyboard.type("ght, finished")
        await rita.page.keyboard.press("Enter")
        await expect(rita.messages("half-typed thought, finished")).to_have_class("msg own")
        # The history that came with the rejoin is not shown twice.
        await expect(rita.messages("said before the restart")).to_have_count(1)
        await expect(rita.page.locator("#room-list button")).to_have_count(2)
    finally:
        first.stop()
        if second is not None:
            second.stop()


async def test_a_reload_comes_back_as_the_same_guest_in_the_same_rooms(
    srv: RunningServer, open_person: Open
) -> None:
    ola = await open_person()
    await enter(ola, srv, "ola")
    await go(ola, "/create again")
    await say(ola, "before the reload")
    await expect(ola.messages("before the reload")).to_have_count(1)
    await ola.page.reload()
    await expect(ola.page.locator("#status")).to_have_text("Connected as ola (guest)")
    await expect(ola.page.locator("#room-list button")).to_have_count(2)
    await expect(ola.page.locator("#title")).to_have_text("#again")
    await expect(ola.messages("before the reload")).to_have_class("msg own")


# -- keyboard, small screens, accessibility ----------------------------------------------------


async def _walk_focus(page: Page, limit: int = 80) -> list[dict[str, Any]]:
    """Tab through the page once round, noting where the focus goes."""
    seen: list[dict[str, Any]] = []
    for i in range(limit):
        await page.keyboard.press("Tab")
        info = await page.evaluate(FOCUS_JS)
        if info is None:
            continue
        if info["self"]:
            break  # back at the first element: once round
        await page.evaluate(f"() => {{ document.activeElement.dataset.seen = '{i + 1}'; }}")
        seen.append(info)
    await page.evaluate(
        "() => document.querySelectorAll('[data-seen]').forEach(e => delete e.dataset.seen)"
    )
    return seen


async def _tabs_from_the_top(page: Page, target: str) -> int:
    """Tab presses from the start of the document until ``target`` has the focus."""
    await page.evaluate(
        """() => { const s = document.createElement('span'); s.tabIndex = -1; s.id = 'tab-start';
                   document.body.prepend(s); s.focus(); }"""
    )
    for presses in range(1, 30):
        await page.keyboard.press("Tab")
        if await page.evaluate(f"() => document.activeElement.matches({target!r})"):
            await page.evaluate("() => document.getElementById('tab-start').remove()")
            return presses
    raise AssertionError(f"{target} never got the focus")


async def test_keyboard_alone_with_visible_focus_everywhere(
    srv: RunningServer, open_person: Open
) -> None:
    """SPEC: the message box reachable by keyboard in a few presses from load
    (The Lounge: 20), and visible focus on every focusable element."""
    kay = await open_person()
    page = kay.page
    await page.goto(base(srv))
    login_stops = await _walk_focus(page)
    assert [s["label"] for s in login_stops if not s["visible"]] == [], login_stops
    assert len(login_stops) == await page.evaluate(FOCUSABLE_JS), login_stops

    await enter(kay, srv, "kay")  # the name box has the focus on load; Enter; then the message box
    await go(kay, "/create keys")
    await say(kay, "typed without a mouse")
    await expect(kay.messages("typed without a mouse")).to_have_count(1)
    presses = await _tabs_from_the_top(page, "#message")
    print("Tab presses from the top of the chat view to the message box:", presses)
    assert presses <= 3
    for details in ("#browse", "#new-room"):
        await page.locator(f"{details} summary").focus()
        await page.keyboard.press("Enter")  # open both, so their contents are in the round
    stops = await _walk_focus(page)
    print("tab stops in the chat view:", [s["label"] for s in stops])
    assert [s["label"] for s in stops if not s["visible"]] == [], stops
    assert len(stops) == await page.evaluate(FOCUSABLE_JS), stops
    labels = [s["label"] for s in stops]
    for control in ("#message", "#send", "#create-name", "#create-limit", "#topic-input", "#leave"):
        assert control in labels, labels
    # Rooms switch from the message box: Alt+Up / Alt+Down.
    await page.locator("#message").focus()
    await page.keyboard.press("Alt+ArrowUp")
    await expect(page.locator("#title")).to_have_text("#lobby")


async def test_a_phone_sized_screen(srv: RunningServer, open_person: Open) -> None:
    """375x667: the message box is on screen, and the room list opens from the
    menu button (and closes with Escape, giving the focus back)."""
    ivy = await open_person(viewport={"width": 375, "height": 667}, is_mobile=True, has_touch=True)
    page = ivy.page
    await enter(ivy, srv, "ivy")
    await go(ivy, "/create phone")
    await say(ivy, "small screens work")
    await expect(page.locator("#message")).to_be_in_viewport()
    box = await page.locator("#composer").bounding_box()
    assert box is not None and box["y"] + box["height"] <= 667 and box["width"] <= 375, box
    width = await page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 375, f"the page scrolls sideways: {width}px"
    assert await _tabs_from_the_top(page, "#message") <= 3
    rooms = page.locator("#room-list")
    await expect(rooms).to_be_hidden()
    menu = page.locator("#menu")
    await expect(menu).to_have_attribute("aria-expanded", "false")
    await menu.click()
    await expect(menu).to_have_attribute("aria-expanded", "true")
    await expect(rooms).to_be_visible()
    await expect(page.locator("#close-drawer")).to_be_focused()
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=ARTIFACTS / "web-client-phone-menu.png")
    await page.keyboard.press("Escape")
    await expect(rooms).to_be_hidden()
    await expect(menu).to_be_focused()
    # Choosing a room in the drawer closes it and goes there.
    await menu.click()
    await page.locator("#room-list button", has_text="lobby").click()
    await expect(rooms).to_be_hidden()
    await expect(page.locator("#title")).to_have_text("#lobby")
    await page.screenshot(path=ARTIFACTS / "web-client-phone.png")


async def test_no_critical_or_serious_axe_violations(srv: RunningServer, open_person: Open) -> None:
    """SPEC: no critical or serious axe-core violations on any view (The Lounge
    has 10 in its chat view), in the light and the dark theme."""
    if not AXE_JS.exists():
        pytest.skip(f"axe-core is not vendored at {AXE_JS}")
    found: dict[str, list[dict[str, Any]]] = {}
    for scheme in ("light", "dark"):
        amy = await open_person(color_scheme=scheme, bypass_csp=True)
        page = amy.page
        await page.goto(base(srv))
        found[f"{scheme} sign-in"] = await axe(page)
        await page.locator("#login-password").fill("x")
        await page.locator("#register-go").click()  # no name: an error shows
        await expect(page.locator("#login-error")).not_to_be_empty()
        found[f"{scheme} sign-in error"] = await axe(page)
        await page.locator("#login-password").fill("")
        name = f"amy{scheme}"
        await page.locator("#login-name").fill(name)
        await page.keyboard.press("Enter")
        await expect(page.locator("#status")).to_have_text(f"Connected as {name} (guest)")
        await go(amy, f"/create axe{scheme} 9")
        await say(amy, "a message to check")
        await say(amy, "/me checks the contrast")
        await say(amy, "/msg nobody-here hi")
        await expect(page.locator("#alert")).to_contain_text("nobody-here")
        found[f"{scheme} conversation"] = await axe(page)
        await page.locator("#room-list button", has_text="lobby").click()
        await page.locator("#browse summary").click()
        await page.locator("#new-room summary").click()
        await expect(page.locator("#all-rooms li").first).to_be_visible()
        found[f"{scheme} chat"] = await axe(page)
        await page.set_viewport_size({"width": 375, "height": 667})
        found[f"{scheme} phone"] = await axe(page)
        await page.locator("#menu").click()
        found[f"{scheme} phone menu"] = await axe(page)
    print("axe critical/serious violations per view:", {k: len(v) for k, v in found.items()})
    assert all(not v for v in found.values()), found


async def test_a_screenshot_for_people(srv: RunningServer, open_person: Open) -> None:
    """Writes tests/e2e/artifacts/web-client.png (and a dark one) to look at."""
    line = await asyncio.to_thread(welcome, srv.port, "nell")
    try:
        line.send("/create show")
        await line_expect(line, "> You joined show")
        line.send("/topic Where salas shows itself off")
        line.send("/echo topic set")
        await line_expect(line, "topic set")
        for scheme in ("light", "dark"):
            who = await open_person(color_scheme=scheme, viewport={"width": 1200, "height": 700})
            await enter(who, srv, f"sam{scheme}")
            await go(who, "/join show")
            await line_expect(line, f"sam{scheme} joined show")
            line.send(f"Hello sam{scheme}! <b>tags</b> stay as text.")
            await say(who, "Hi nell, this is the web client.")
            await say(who, "/me waves")
            await expect(who.messages().last).to_contain_text(f"sam{scheme} waves")
            ARTIFACTS.mkdir(exist_ok=True)
            name = "web-client.png" if scheme == "light" else "web-client-dark.png"
            await who.page.screenshot(path=ARTIFACTS / name)
            print("screenshot:", ARTIFACTS / name)
    finally:
        line.close()

"""The web client's admin view for server operators, in real headless Chromium
against a real ``salas serve`` (with a line-door client to act on): becoming an
operator with ``/oper``, the live list of rooms and people, closing a room,
removing someone and broadcasting, each confirmed and refused where it must be;
a page that is no operator sees none of it and is refused when it asks anyway.
Checked with axe-core in both themes and on a phone-sized screen. Every wait is
bounded; a screenshot goes to ``tests/e2e/artifacts/``."""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, expect

from support import TIME, LineClient, RunningServer, start_server, welcome
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

CONFIG = """\
[limits]
flood_exempt = ["127.0.0.0/8"]

[[operators]]
name = "operuser"
password = "operpassword"
"""
expect.set_options(timeout=WAIT)

#: Where the focus is, and whether it shows: an outline or a ring at least 2px wide.
FOCUS_JS = """() => {
  const e = document.activeElement;
  if (!e || e === document.body) return null;
  const s = getComputedStyle(e);
  const outline = s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2;
  const text = (e.getAttribute('aria-label') || e.textContent || '').trim().slice(0, 30);
  return {label: e.id ? '#' + e.id : e.tagName.toLowerCase() + ':' + text,
          visible: outline || s.boxShadow !== 'none', seen: e.dataset.seen || ''};
}"""
#: Keeps the page's own WebSockets in reach, so a test can send on them by hand.
KEEP_SOCKETS_JS = """(() => {
  const Native = window.WebSocket;
  window.__sockets = [];
  window.WebSocket = class extends Native {
    constructor(...args) { super(...args); window.__sockets.push(this); }
  };
})();"""


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    s = start_server(tmp_path_factory.mktemp("admin"), ("line", "http"), config=CONFIG)
    yield s
    s.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium(ARGS) as b:
        yield b


@pytest_asyncio.fixture(loop_scope="module")
async def new_page(browser: Browser) -> AsyncIterator[Any]:
    contexts = Contexts(browser)
    yield contexts.page
    await contexts.close()


async def enter(page: Page, server: RunningServer, name: str) -> None:
    await page.goto(base(server))
    await page.locator("#login-name").fill(name)
    await page.keyboard.press("Enter")
    await expect(page.locator("#status")).to_have_text(f"Connected as {name} (guest)")
    await expect(page.locator("#message")).to_be_focused()


async def say(page: Page, text: str) -> None:
    await page.locator("#message").fill(text)
    await page.keyboard.press("Enter")
    await expect(page.locator("#message")).to_have_value("")


async def become_oper(page: Page) -> None:
    await say(page, "/oper operuser operpassword")
    await expect(page.locator("#admin-open")).to_be_visible()
    await expect(page.locator(".log:not([hidden])")).to_contain_text("You are a server operator")


async def open_admin(page: Page) -> None:
    """By keyboard: focus the Server admin entry, Enter; the view takes the focus."""
    await page.locator("#admin-open").focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("#admin")).to_be_visible()
    await expect(page.locator("#admin")).to_be_focused()
    await expect(page.locator("#title")).to_have_text("Server admin")
    await expect(page.locator("#composer")).to_be_hidden()


def room_item(page: Page, room: str) -> Any:
    return page.locator("#admin-rooms li").filter(
        has=page.locator("strong", has_text=re.compile(f"^{re.escape(room)}$"))
    )


def admin_console(server: RunningServer, cmd: str, **args: Any) -> Any:
    """One request on the server's admin socket (what ``salas admin`` does)."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5 * TIME)
        s.connect(str(server.data_dir / "admin.sock"))
        s.sendall(json.dumps({"cmd": cmd, "args": args}).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    answer = json.loads(data)
    assert answer["ok"], answer
    return answer.get("result")


async def member_of_new_room(srv: RunningServer, name: str, create: str) -> LineClient:
    """A line client who made a room (``/create`` with ``create``'s words) and is in it."""
    line = await asyncio.to_thread(welcome, srv.port, name)
    line.send(f"/create {create}")
    await line_expect(line, f"> You joined {create.split()[0]}")
    return line


async def _walk_focus(page: Page, limit: int = 80) -> list[dict[str, Any]]:
    """Tab through the page once round, noting where the focus goes."""
    seen: list[dict[str, Any]] = []
    for i in range(limit):
        await page.keyboard.press("Tab")
        info = await page.evaluate(FOCUS_JS)
        if info is None:
            continue
        if info["seen"]:
            break
        await page.evaluate(f"() => {{ document.activeElement.dataset.seen = '{i + 1}'; }}")
        seen.append(info)
    await page.evaluate(
        "() => document.querySelectorAll('[data-seen]').forEach(e => delete e.dataset.seen)"
    )
    return seen


# -- an operator ------------------------------------------------------------------------------


async def test_an_operator_closes_a_room_removes_someone_and_broadcasts(
    srv: RunningServer, new_page: Any
) -> None:
    line = await member_of_new_room(srv, "lina", "shut")
    try:
        page = await new_page()
        await enter(page, srv, "opal")
        # No operator yet: no admin view.
        await expect(page.locator("#admin-open")).to_be_hidden()
        await become_oper(page)
        await open_admin(page)

        rooms, users = page.locator("#admin-rooms"), page.locator("#admin-users")
        await expect(room_item(page, "shut")).to_contain_text("1 person")
        await expect(room_item(page, "lobby")).to_be_visible()
        lina = users.locator("li", has_text="lina")
        await expect(lina).to_contain_text("line")
        await expect(lina).to_contain_text("127.0.0.1:")
        await expect(lina).to_contain_text("in shut")
        await expect(lina).to_contain_text("guest")
        opal = users.locator("li", has_text="opal (you)")
        await expect(opal).to_contain_text("web")
        await expect(opal).to_contain_text("server operator")
        await expect(opal.locator("button")).to_have_count(0)  # no removing yourself
        await expect(page.locator("#admin-rooms-h")).to_have_text("Rooms (2)")

        # The list follows the server by itself: a room made now shows up.
        other = await asyncio.to_thread(welcome, srv.port, "lena")
        other.send("/create later 4")
        await line_expect(other, "> You joined later")
        await expect(room_item(page, "later")).to_contain_text("1/4 people", timeout=3 * WAIT)
        other.close()

        # Closing asks first; Cancel (here: Escape) changes nothing.
        close = rooms.get_by_role("button", name="Close room shut")
        await close.focus()
        await page.keyboard.press("Enter")
        dialog = page.locator("#confirm")
        await expect(dialog).to_be_visible()
        await expect(page.locator("#confirm-title")).to_have_text("Close room shut?")
        await expect(page.locator("#confirm-reason")).to_be_focused()
        await page.keyboard.press("Escape")
        await expect(dialog).to_be_hidden()
        await expect(close).to_be_focused()
        await expect(room_item(page, "shut")).to_be_visible()

        await page.keyboard.press("Enter")
        await expect(dialog).to_be_visible()
        await page.keyboard.type("tidying up")
        await page.keyboard.press("Enter")
        await expect(dialog).to_be_hidden()
        # The page's own word first: if the request never went out or was
        # refused, the failure says so here rather than as a silent member.
        await expect(page.locator("#admin-error")).to_be_empty()
        await expect(page.locator("#admin-note")).to_have_text("Room shut was closed.")
        closed = await line_expect(line, "< Room shut was closed")
        assert closed.endswith(": tidying up"), closed
        await expect(room_item(page, "shut")).to_have_count(0)
        await expect(lina).to_contain_text("in no room")

        # The lobby is everyone's room: it can't be closed, so it offers no Close.
        await expect(room_item(page, "lobby")).to_contain_text("everyone's room")
        await expect(rooms.get_by_role("button", name="Close room lobby")).to_have_count(0)

        # Broadcast: everyone online sees it, on every door.
        await page.locator("#broadcast-text").fill("server restarts at noon")
        await page.keyboard.press("Enter")
        await line_expect(line, "! Notice from opal: server restarts at noon")
        await expect(page.locator("#admin-error")).to_be_empty()
        await expect(page.locator("#admin-note")).to_have_text("Broadcast sent to everyone online.")

        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=ARTIFACTS / "web-admin.png")

        # Removing someone: confirmed, with a reason they are told.
        await users.get_by_role("button", name="Remove lina from the server").click()
        await expect(page.locator("#confirm-title")).to_have_text("Remove lina from the server?")
        await page.locator("#confirm-reason").fill("flooding")
        await page.locator("#confirm-go").click()
        await line_expect(line, "! Disconnected: Removed by opal: flooding")
        assert await asyncio.to_thread(line.closed), "the line client is still connected"
        await expect(users.locator("li", has_text="lina")).to_have_count(0)
        await expect(page.locator("#admin-note")).to_have_text("lina was removed from the server.")

        # Back to chat: the room in view and the message box again.
        await page.locator("#admin-back").click()
        await expect(page.locator("#admin")).to_be_hidden()
        await expect(page.locator("#title")).to_have_text("#lobby")
        await expect(page.locator("#message")).to_be_focused()
        await expect(page.locator(".log:not([hidden])")).to_contain_text(
            "Notice from opal: server restarts at noon"
        )
    finally:
        line.close()


async def test_reopening_the_confirmation_at_once_still_acts(
    srv: RunningServer, new_page: Any
) -> None:
    """A dialog's close event comes a moment after it closes: cancelling and
    asking again at once (Escape, then Enter on the same button) must leave
    the new question standing, so answering it acts."""
    line = await member_of_new_room(srv, "rita", "quick")
    try:
        page = await new_page()
        await enter(page, srv, "otto")
        await become_oper(page)
        await open_admin(page)
        close = page.locator("#admin-rooms").get_by_role("button", name="Close room quick")
        await close.click()
        await expect(page.locator("#confirm")).to_be_visible()
        # Cancel and ask again within one task: the first close event runs after both.
        await page.evaluate(
            """() => {
                document.getElementById('confirm').close();
                [...document.querySelectorAll('#admin-rooms button')]
                    .find((b) => b.getAttribute('aria-label') === 'Close room quick').click();
            }"""
        )
        await expect(page.locator("#confirm")).to_be_visible()
        await page.locator("#confirm-reason").fill("at once")
        await page.keyboard.press("Enter")
        await expect(page.locator("#confirm")).to_be_hidden()
        await expect(page.locator("#admin-note")).to_have_text("Room quick was closed.")
        closed = await line_expect(line, "< Room quick was closed")
        assert closed.endswith(": at once"), closed
    finally:
        line.close()


async def test_commands_in_the_message_box_and_losing_operator_status(
    srv: RunningServer, new_page: Any
) -> None:
    line = await member_of_new_room(srv, "lucy", "typed")
    try:
        page = await new_page()
        await enter(page, srv, "oscar")
        log = page.locator(".log:not([hidden])")
        await say(page, "/oper operuser wrong")
        await expect(page.locator("#alert")).to_contain_text("Could not become a server operator")
        await expect(page.locator("#admin-open")).to_be_hidden()
        await say(page, "/help")
        await expect(log).to_contain_text("/oper NAME PASSWORD")
        await become_oper(page)
        await say(page, "/close #typed bedtime")
        closed = await line_expect(line, "< Room typed was closed")
        assert closed.endswith(": bedtime"), closed
        await expect(log).to_contain_text("Room typed was closed.")
        await say(page, "/broadcast typed notice")
        await line_expect(line, "! Notice from oscar: typed notice")
        await say(page, "/close nowhere")
        await expect(page.locator("#alert")).to_contain_text("nowhere")

        # The server's console takes operator status away: the admin view goes.
        await open_admin(page)
        await asyncio.to_thread(admin_console, srv, "users.deoper", name="oscar")
        await expect(page.locator("#admin")).to_be_hidden()
        await expect(page.locator("#admin-open")).to_be_hidden()
        await expect(page.locator("#composer")).to_be_visible()
        await expect(log).to_contain_text("You are no longer a server operator.")
        await say(page, "/kill lucy")
        await expect(page.locator("#alert")).to_have_text("Only server operators can do that")
        line.send("/echo still here")
        await line_expect(line, "still here")
    finally:
        line.close()


async def test_an_account_with_the_operator_flag_is_an_operator_on_login(
    srv: RunningServer, new_page: Any
) -> None:
    await asyncio.to_thread(
        admin_console, srv, "accounts.create", name="olga", password="olgas-secret", oper=True
    )
    page = await new_page()
    await page.goto(base(srv))
    await page.locator("#login-name").fill("olga")
    await page.locator("#login-password").fill("olgas-secret")
    await page.keyboard.press("Enter")
    await expect(page.locator("#status")).to_have_text("Connected as olga")
    await expect(page.locator("#admin-open")).to_be_visible()
    await open_admin(page)
    await expect(page.locator("#admin-users li", has_text="olga (you)")).to_contain_text(
        "account olga"
    )


@pytest.fixture
def fresh(tmp_path: Any) -> Iterator[RunningServer]:
    """A server nobody has entered yet: no lobby until someone joins it."""
    s = start_server(tmp_path, ("line", "http"), config=CONFIG)
    yield s
    s.stop()


async def test_the_admin_view_opened_before_the_lobby_is_joined_stays_open(
    fresh: RunningServer, new_page: Any
) -> None:
    """The first to log in on a new server lands in the lobby (the client logs
    in, then joins it). An operator quick enough to open Server admin before
    that join is answered stays in it; the lobby is there behind it."""
    srv = fresh
    await asyncio.to_thread(
        admin_console, srv, "accounts.create", name="quinn", password="quinns-secret", oper=True
    )
    page = await new_page()
    held: list[str | bytes] = []
    holding = True
    routes: list[Any] = []

    def route(ws: Any) -> None:
        server = ws.connect_to_server()
        routes.append(ws)

        def from_server(message: str | bytes) -> None:
            nonlocal holding
            if holding and (held or json.loads(message).get("type") == "joined"):
                held.append(message)  # the join's answer, and everything after it
            else:
                ws.send(message)

        server.on_message(from_server)

    await page.route_web_socket(re.compile(r"/ws$"), route)
    await page.goto(base(srv))
    await page.locator("#login-name").fill("quinn")
    await page.locator("#login-password").fill("quinns-secret")
    await page.keyboard.press("Enter")
    await expect(page.locator("#status")).to_have_text("Connected as quinn")
    await expect(page.locator("#admin-open")).to_be_visible()
    await open_admin(page)
    assert held, "the lobby's join was answered before the view opened"
    holding = False
    for message in held:
        routes[-1].send(message)
    await expect(page.locator("#admin-users li", has_text="quinn (you)")).to_be_visible()
    await expect(page.locator("#admin")).to_be_visible()
    await expect(page.locator("#title")).to_have_text("Server admin")
    await page.locator("#admin-back").click()
    await expect(page.locator("#title")).to_contain_text("lobby")
    await expect(page.locator(".log:not([hidden])")).to_contain_text("You joined lobby")


async def test_closing_the_room_in_view_from_the_admin_view_stays_in_it(
    srv: RunningServer, new_page: Any
) -> None:
    page = await new_page()
    await enter(page, srv, "otto")
    await say(page, "/create doomed")
    await expect(page.locator("#title")).to_contain_text("doomed")
    await become_oper(page)
    await open_admin(page)
    await room_item(page, "doomed").get_by_role("button", name="Close room doomed").click()
    await expect(page.locator("#confirm")).to_be_visible()
    await page.locator("#confirm-go").click()
    await expect(page.locator("#admin-note")).to_have_text("Room doomed was closed.")
    await expect(room_item(page, "doomed")).to_have_count(0)
    await expect(page.locator("#admin")).to_be_visible()
    await expect(page.locator("#title")).to_have_text("Server admin")
    await page.locator("#admin-back").click()
    # Behind it, the room's page says what became of it.
    await expect(page.locator("#title")).to_contain_text("doomed")
    await expect(page.locator(".log:not([hidden])")).to_contain_text("closed")


# -- everyone else ----------------------------------------------------------------------------


async def test_a_non_operator_sees_no_admin_view_and_is_refused(
    srv: RunningServer, new_page: Any
) -> None:
    line = await member_of_new_room(srv, "lino", "stays")
    try:
        page = await new_page()
        await page.add_init_script(KEEP_SOCKETS_JS)
        received: list[dict[str, Any]] = []
        ids = {"h1", "h2", "h3", "h4", "h5"}
        all_answered = asyncio.Event()

        def on_frame(data: str | bytes) -> None:
            received.append(json.loads(data))
            if len([m for m in received if m.get("re") in ids]) == len(ids):
                all_answered.set()

        def on_socket(ws: Any) -> None:
            ws.on("framereceived", on_frame)

        page.on("websocket", on_socket)
        await enter(page, srv, "norma")
        await expect(page.locator("#admin-open")).to_be_hidden()
        await expect(page.locator("#server-h")).to_be_hidden()
        await expect(page.locator("#admin")).to_be_hidden()

        # By hand, on the page's own WebSocket: every operator request is refused.
        requests = [
            {"type": "close", "room": "stays", "reason": "mine now", "id": "h1"},
            {"type": "kill", "name": "lino", "id": "h2"},
            {"type": "broadcast", "text": "hear me", "id": "h3"},
            {"type": "overview", "id": "h4"},
            {"type": "shutdown", "id": "h5"},
        ]
        await page.evaluate(
            """(reqs) => { const ws = window.__sockets[window.__sockets.length - 1];
                          for (const r of reqs) ws.send(JSON.stringify(r)); }""",
            requests,
        )
        assert {r["id"] for r in requests} == ids
        await asyncio.wait_for(all_answered.wait(), WAIT / 1000)
        answers = [m for m in received if m.get("re") in ids]
        assert [(m["type"], m["code"]) for m in answers] == [
            ("error", "not_server_operator")
        ] * len(ids), answers
        assert not any(m["type"] == "overview" for m in received)
        await expect(page.locator("#alert")).to_have_text("Only server operators can do that")
        await expect(page.locator("#admin")).to_be_hidden()

        # Nothing changed: the room is there with its member, who is still online.
        line.send("/list")
        await line_expect(line, "stays")
        line.send("/echo still here")
        await line_expect(line, "still here")
        assert not any("was closed" in s or "hear me" in s for s in line.seen), line.seen
    finally:
        line.close()


# -- accessibility and small screens ----------------------------------------------------------


async def test_admin_view_on_a_phone_and_with_axe(srv: RunningServer, new_page: Any) -> None:
    """No critical or serious axe-core finding on the admin view (light, dark,
    phone, and with the confirmation open); usable at 375x667."""
    if not AXE_JS.exists():
        pytest.skip(f"axe-core is not vendored at {AXE_JS}")
    line = await member_of_new_room(srv, "lars", "axeroom 7")
    try:
        line.send("/topic <b>tags</b> stay text")
        found: dict[str, list[dict[str, Any]]] = {}
        for scheme in ("light", "dark"):
            page = await new_page(color_scheme=scheme, bypass_csp=True)
            await enter(page, srv, f"ops{scheme}")
            await become_oper(page)
            await open_admin(page)
            await expect(room_item(page, "axeroom")).to_contain_text("<b>tags</b> stay text")
            await expect(page.locator("#admin-users li", has_text="lars")).to_be_visible()
            found[f"{scheme} admin"] = await axe(page)
            if scheme == "light":
                stops = await _walk_focus(page)
                labels = [s["label"] for s in stops]
                assert [s["label"] for s in stops if not s["visible"]] == [], stops
                for control in ("#admin-refresh", "#admin-back", "#broadcast-text"):
                    assert control in labels, labels
                assert "button:Close room axeroom" in labels, labels
                assert "button:Remove lars from the server" in labels, labels
            await page.get_by_role("button", name="Remove lars from the server").click()
            await expect(page.locator("#confirm")).to_be_visible()
            found[f"{scheme} confirm"] = await axe(page, 10)
            await page.locator("#confirm-cancel").click()
            await expect(page.locator("#confirm")).to_be_hidden()

            await page.set_viewport_size({"width": 375, "height": 667})
            await page.locator("#admin-back").click()
            await expect(page.locator("#admin")).to_be_hidden()
            await page.locator("#menu").click()
            await expect(page.locator("#admin-open")).to_be_visible()
            await page.locator("#admin-open").click()
            await expect(page.locator("#admin")).to_be_visible()
            await expect(page.locator("#drawer")).to_be_hidden()
            width = await page.evaluate("() => document.documentElement.scrollWidth")
            assert width <= 375, f"the page scrolls sideways: {width}px"
            for control in ("#broadcast-text", "#admin-back"):
                await expect(page.locator(control)).to_be_in_viewport()
            found[f"{scheme} phone admin"] = await axe(page)
            if scheme == "dark":
                ARTIFACTS.mkdir(exist_ok=True)
                await page.screenshot(path=ARTIFACTS / "web-admin-phone-dark.png")
        print("axe critical/serious violations per view:", {k: len(v) for k, v in found.items()})
        assert all(not v for v in found.values()), found
        # The line client is still there: Cancel removed nobody.
        line.send("/echo still here")
        await line_expect(line, "still here")
    finally:
        line.close()

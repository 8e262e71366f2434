"""Calls in the web client, in real headless Chromium with fake media
(TESTING.md section 2): two pages ring, accept or decline, and hang up; a video
call connects straight between the two browsers while salas passes on only the
signalling; someone outside the call can't push signalling into it; and
operators can turn calls off.

The call that connects runs in a network namespace with only loopback (so
Chromium finds no other interface to try): the test re-runs itself under
``unshare -n`` as root, with ``SALAS_CALLS_NETNS=1`` telling the child to do the
real work. Every wait is bounded."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, expect

from support import TIME, RunningServer, start_server
from webpage import ARGS, ARTIFACTS, WAIT, Contexts, axe, base, chromium, require_chromium

require_chromium()

pytestmark = [pytest.mark.slow]
in_loop = pytest.mark.asyncio(loop_scope="module")

#: TESTING.md sections 1 and 2: Debian's Chromium with a fake camera and
#: microphone, permission granted, and ICE candidates on loopback allowed.
CALL_ARGS = [
    *ARGS,
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
]
EXEMPT = '[limits]\nflood_exempt = ["127.0.0.0/8"]\n'
CONNECT_WAIT = 25_000 * TIME  # ms: the page itself gives up after 20 s
expect.set_options(timeout=WAIT)
#: Set in the child that runs inside the loopback-only network namespace.
NETNS_ENV = "SALAS_CALLS_NETNS"
IN_NETNS = os.environ.get(NETNS_ENV) == "1"
#: Most bytes salas may move (both ways, all its http sockets) while a call runs
#: for a few seconds: signalling is a few KiB; media would be hundreds.
SERVER_BYTES_MAX = 300_000


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    s = start_server(tmp_path_factory.mktemp("calls"), ("http",), config=EXEMPT)
    yield s
    s.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium(CALL_ARGS) as b:
        yield b


Open = Callable[..., Awaitable[Page]]


@pytest_asyncio.fixture(loop_scope="module")
async def open_page(browser: Browser) -> AsyncIterator[Open]:
    contexts = Contexts(browser)

    async def open_(**options: Any) -> Page:
        options.setdefault("bypass_csp", True)  # axe-core is added as an inline script
        return await contexts.page(**options)

    yield open_
    await contexts.close()


async def enter(page: Page, server: RunningServer, name: str) -> None:
    await page.goto(base(server))
    await page.locator("#login-name").fill(name)
    await page.keyboard.press("Enter")
    await expect(page.locator("#status")).to_have_text(f"Connected as {name} (guest)")


def call_button(page: Page, media: str, name: str) -> Any:
    return page.locator(f'#members button[aria-label="{media} call with {name}"]')


async def call_state(page: Page) -> dict[str, Any]:
    state: dict[str, Any] = await page.evaluate("() => window.salasCall")
    return state


async def raw_request(page: Page, server: RunningServer, name: str, req: dict[str, Any]) -> Any:
    """From ``page``, a WebSocket of its own to /ws: hello as ``name``, then
    ``req`` (with id 77); the answer to it."""
    url = f"ws://127.0.0.1:{server.ports['http']}/ws"
    script = """async ([url, name, req]) => {
      const ws = new WebSocket(url);
      const got = [];
      const answer = new Promise((resolve) => {
        ws.onmessage = (e) => {
          const m = JSON.parse(e.data);
          got.push(m);
          if (m.type === 'welcome') ws.send(JSON.stringify({...req, id: 77}));
          if (m.re === 77) resolve(m);
        };
      });
      ws.onopen = () => ws.send(JSON.stringify({type: 'hello', name, lobby: false}));
      const timeout = new Promise((resolve) => setTimeout(() => resolve({timeout: got}), 8000));
      const m = await Promise.race([answer, timeout]);
      ws.close();
      return m;
    }"""
    return await page.evaluate(script, [url, name, req])


# -- byte counters --------------------------------------------------------------------

_BYTES = re.compile(r"\bbytes_(?:acked|received):(\d+)")


def server_socket_bytes(port: int) -> int:
    """Bytes salas has sent (acknowledged) and received on every TCP connection
    to its http port, from the kernel's per-socket counters (``ss -ti``). These
    count socket traffic; /proc/PID/io's rchar and wchar do not (send and recv
    bypass them)."""
    out = subprocess.run(
        ["ss", "-tinH", "state", "established", f"( sport = :{port} )"],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    ).stdout
    return sum(int(n) for n in _BYTES.findall(out))


def loopback_bytes() -> int:
    """Bytes through ``lo`` (received; on loopback every byte sent is received)."""
    for line in Path("/proc/net/dev").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name.strip() == "lo":
            return int(rest.split()[0])
    raise AssertionError("no lo in /proc/net/dev")


def proc_io(pid: int) -> dict[str, int]:
    lines = Path(f"/proc/{pid}/io").read_text().splitlines()
    return {k: int(v) for k, _, v in (line.partition(": ") for line in lines)}


def server_has_no_udp(pid: int) -> bool:
    out = subprocess.run(
        ["ss", "-uanpH"], capture_output=True, text=True, check=True, timeout=10
    ).stdout
    return f"pid={pid}," not in out


# -- a video call straight between two browsers ---------------------------------------------


def test_a_video_call_connects_browser_to_browser_on_loopback_only() -> None:
    """Runs ``_video_call`` (below) in a child pytest inside a fresh network
    namespace that has only ``lo``: the only way the two pages can meet."""
    if IN_NETNS:
        interfaces = Path("/proc/net/dev").read_text()
        assert not re.search(r"^\s*(?!lo:)\w[\w.-]*:", interfaces, re.M), interfaces
        asyncio.run(_in_namespace())
        return
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs root, unshare and ip for a loopback-only network namespace")
    here = Path(__file__)
    cmd = [
        "unshare",
        "-n",
        "sh",
        "-c",
        'ip link set lo up && exec "$0" -m pytest -q -s -p no:cacheprovider "$1" -k "$2"',
        sys.executable,
        str(here),
        "test_a_video_call_connects_browser_to_browser_on_loopback_only",
    ]
    env = {**os.environ, NETNS_ENV: "1"}
    started = time.monotonic()
    done = subprocess.run(
        cmd,
        cwd=here.parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=240 * TIME,
    )
    print(done.stdout[-6000:])
    print(done.stderr[-3000:])
    print(f"child run in the namespace: {time.monotonic() - started:.1f} s")
    assert done.returncode == 0, "the call in the loopback-only namespace failed (output above)"
    assert re.search(r"^1 passed", done.stdout, re.M), done.stdout[-2000:]


async def _in_namespace() -> None:
    """The real test, in the child: its own server and browser (pytest-asyncio
    fixtures are not at hand inside asyncio.run)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp), ("http",), config=EXEMPT)
        try:
            async with chromium(CALL_ARGS) as b:
                await _video_call(b, server)
        finally:
            server.stop()


async def _video_call(browser: Browser, server: RunningServer) -> None:
    async def page_for(init: str | None = None) -> Page:
        context = await browser.new_context(
            viewport={"width": 1280, "height": 800}, bypass_csp=True
        )
        context.set_default_timeout(WAIT)
        if init is not None:
            await context.add_init_script(init)
        return await context.new_page()

    ann, bea, cy = await page_for(), await page_for(), await page_for()
    await enter(ann, server, "ann")
    await enter(bea, server, "bea")

    # ann calls bea with video, from the members list.
    await call_button(ann, "Video", "bea").click()
    await expect(ann.locator("#call-state")).to_have_text("Ringing bea…")
    await expect(ann.locator("#call-title")).to_have_text("Video call with bea")
    incoming = bea.locator("#incoming")
    await expect(incoming).to_be_visible()
    await expect(bea.locator("#incoming-title")).to_have_text("Incoming video call")
    await expect(bea.locator("#incoming-text")).to_have_text("ann is calling you.")
    await expect(bea.locator("#call-announce")).to_contain_text("ann is calling you")
    found = {"incoming call": await axe(bea)}

    # bea accepts, by keyboard.
    await bea.locator("#incoming-accept").focus()
    await bea.keyboard.press("Enter")
    for page in (ann, bea):
        await expect(page.locator("#call-state")).to_have_text("Connected", timeout=CONNECT_WAIT)
    for page in (ann, bea):
        await page.wait_for_function(
            "() => window.salasCall && window.salasCall.connectionState === 'connected'"
            " && window.salasCall.remoteWidth > 0",
            timeout=WAIT,
        )
    a, b = await call_state(ann), await call_state(bea)
    print("ann:", {k: a[k] for k in ("state", "connectionState", "remoteWidth", "localTracks")})
    print("bea:", {k: b[k] for k in ("state", "connectionState", "remoteWidth", "localTracks")})
    assert a["remoteWidth"] > 0 and b["remoteWidth"] > 0
    assert sorted(a["localTracks"]) == sorted(b["localTracks"]) == ["audio", "video"]
    # Every candidate passed on is on loopback: there is nothing else here.
    cands = [s for s in a["lastSignals"] + b["lastSignals"] if '"cand"' in s]
    assert cands and all(
        " 127.0.0.1 " in s or " ::1 " in s or '"candidate":""' in s for s in cands
    ), cands

    # While the call runs, salas moves next to nothing: the media goes around it.
    port = server.ports["http"]
    pid = server.proc.pid
    io0 = proc_io(pid)
    s0, lo0, t0 = server_socket_bytes(port), loopback_bytes(), time.monotonic()
    await asyncio.sleep(3)
    s1, lo1, t1 = server_socket_bytes(port), loopback_bytes(), time.monotonic()
    io1 = proc_io(pid)
    print(
        "salas's /proc/PID/io over the same time (files and pipes: logs, the store):",
        {k: io1[k] - io0[k] for k in ("rchar", "wchar")},
    )
    print(
        f"over {t1 - t0:.1f} s of the call: salas's sockets {s1 - s0} bytes "
        f"(since they opened: {s1}); all loopback traffic {lo1 - lo0} bytes"
    )
    assert s1 - s0 < SERVER_BYTES_MAX
    assert s1 < SERVER_BYTES_MAX  # the whole call's signalling, ringing included
    assert lo1 - lo0 > 10 * max(s1 - s0, 1000), "the media did not flow on loopback"
    assert server_has_no_udp(server.proc.pid)

    # cy was never offered this call: its signalling is refused and goes nowhere.
    await cy.goto(base(server))
    before = (await call_state(ann))["signalsIn"], (await call_state(bea))["signalsIn"]
    call_id = a["id"]
    req = {"type": "call_signal", "call": call_id, "data": {"cand": "from-cy"}}
    answer = await raw_request(cy, server, "cy", req)
    assert answer.get("code") == "no_such_call", answer
    await asyncio.sleep(1)
    after = (await call_state(ann))["signalsIn"], (await call_state(bea))["signalsIn"]
    assert after == before
    for page in (ann, bea):
        assert not any("from-cy" in s for s in (await call_state(page))["lastSignals"])

    found["call view"] = await axe(ann)
    ARTIFACTS.mkdir(exist_ok=True)
    await ann.screenshot(path=ARTIFACTS / "web-call.png")
    print("screenshot:", ARTIFACTS / "web-call.png")

    # ann hangs up: both see it.
    await ann.locator("#call-hangup").click()
    await expect(ann.locator("#call-state")).to_have_text("Call ended: you hung up")
    await expect(bea.locator("#call-state")).to_have_text("Call ended: ann hung up")
    await expect(bea.locator("#call-hangup")).to_be_hidden()
    found["ended call"] = await axe(bea)
    await bea.locator("#call-close").click()
    await expect(bea.locator("#call")).to_be_hidden()

    # dee's camera and microphone are refused: she is told, and still sees ann.
    dee = await page_for(
        "navigator.mediaDevices.getUserMedia = () =>"
        " Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));"
    )
    await enter(dee, server, "dee")
    await call_button(ann, "Video", "dee").click()
    await expect(dee.locator("#incoming")).to_be_visible()
    await dee.locator("#incoming-accept").click()
    await expect(dee.locator("#call-note")).to_contain_text(
        "Camera or microphone not available: Permission denied"
    )
    for page in (ann, dee):
        await expect(page.locator("#call-state")).to_have_text("Connected", timeout=CONNECT_WAIT)
    await dee.wait_for_function("() => window.salasCall.remoteWidth > 0", timeout=WAIT)
    assert (await call_state(dee))["localTracks"] == []
    found["receive-only call"] = await axe(dee)
    await dee.locator("#call-hangup").click()
    await expect(ann.locator("#call-state")).to_have_text("Call ended: dee hung up")

    print("axe critical/serious violations per view:", {k: len(v) for k, v in found.items()})
    assert all(not v for v in found.values()), found


# -- ringing, declining, hanging up before an answer ------------------------------------------


@in_loop
async def test_a_declined_call_and_one_given_up_while_ringing(
    srv: RunningServer, open_page: Open
) -> None:
    """From a private conversation's header: bea declines and both see it; then
    ann gives up while it rings and bea's incoming call goes away."""
    ann, bea = await open_page(), await open_page()
    await enter(ann, srv, "amy")
    await enter(bea, srv, "bo")
    await ann.locator("#message").fill("/msg bo hello")
    await ann.keyboard.press("Enter")
    await expect(ann.locator("#title")).to_have_text("bo")
    await expect(ann.locator("#pm-audio")).to_have_attribute("aria-label", "Audio call with bo")
    await ann.locator("#pm-audio").click()
    await expect(ann.locator("#call-state")).to_have_text("Ringing bo…")
    await expect(bea.locator("#incoming-title")).to_have_text("Incoming audio call")
    await expect(bea.locator("#incoming-text")).to_have_text("amy is calling you.")
    violations = await axe(bea)
    assert violations == [], violations
    await bea.locator("#incoming-decline").click()
    await expect(bea.locator("#incoming")).to_be_hidden()
    await expect(bea.locator("#call-state")).to_have_text("Call ended: you declined")
    await expect(ann.locator("#call-state")).to_have_text("Call ended: bo declined")
    await expect(ann.locator("#call-close")).to_be_focused()  # the hang-up button went away
    # The conversation notes it.
    await expect(ann.locator(".log:not([hidden])")).to_contain_text("Call ended: bo declined")

    # A second call, given up by amy while it rings.
    await ann.locator("#pm-video").click()
    await expect(bea.locator("#incoming")).to_be_visible()
    await expect(ann.locator("#call-state")).to_have_text("Ringing bo…")
    await ann.locator("#call-hangup").click()
    await expect(ann.locator("#call-state")).to_have_text("Call ended: you hung up")
    await expect(bea.locator("#incoming")).to_be_hidden()
    await expect(bea.locator("#call-state")).to_have_text("Call ended: amy hung up")


@in_loop
async def test_calling_someone_who_cannot_be_called_says_why(
    srv: RunningServer, open_page: Open
) -> None:
    page = await open_page()
    await enter(page, srv, "cal")
    await page.locator("#message").fill("/msg nobody-here hi")
    await page.keyboard.press("Enter")
    await page.locator("#pm-video").click()
    await expect(page.locator("#call-state")).to_have_text(
        "Could not call nobody-here: Nobody here is called nobody-here"
    )


#: Pages whose peer connections may use relays only, and there are none: a
#: call that can never connect (and gathers no address at all). The page gives
#: up after 2 s instead of 20.
NO_PATH = """
window.salasConnectMs = 2000;
const Real = window.RTCPeerConnection;
window.RTCPeerConnection = function (config) {
  return new Real({...(config || {}), iceTransportPolicy: 'relay'});
};
"""


@in_loop
async def test_a_call_that_cannot_connect_says_so_on_both_sides(
    srv: RunningServer, open_page: Open
) -> None:
    ann, bea = await open_page(), await open_page()
    for page in (ann, bea):
        await page.context.add_init_script(NO_PATH)
    await enter(ann, srv, "nat")
    await enter(bea, srv, "ned")
    await call_button(ann, "Audio", "ned").click()
    await bea.locator("#incoming-accept").click()
    for page in (ann, bea):
        await expect(page.locator("#call-state")).to_contain_text(
            "Could not connect: no connection within 2 seconds"
        )
    texts = [await p.locator("#call-state").text_content() for p in (ann, bea)]
    print("could not connect:", texts)
    # Whichever side gave up first told the other why; neither is left hanging.
    assert all(t and "Could not connect" in t for t in texts), texts
    for page in (ann, bea):
        await expect(page.locator("#call-hangup")).to_be_hidden()


# -- calls turned off -----------------------------------------------------------------


@pytest.fixture(scope="module")
def srv_off(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    config = EXEMPT + "[direct]\nenabled = false\n"
    s = start_server(tmp_path_factory.mktemp("calls-off"), ("http",), config=config)
    yield s
    s.stop()


@in_loop
async def test_with_direct_connections_off_there_are_no_call_buttons(
    srv_off: RunningServer, open_page: Open
) -> None:
    ann, bea = await open_page(), await open_page()
    await enter(ann, srv_off, "ann")
    await enter(bea, srv_off, "bea")
    await expect(ann.locator("#members li")).to_have_count(2)
    await expect(call_button(ann, "Video", "bea")).to_be_hidden()
    await expect(call_button(ann, "Audio", "bea")).to_be_hidden()
    await ann.locator("#members button", has_text="bea").first.click()
    await expect(ann.locator("#title")).to_have_text("bea")
    await expect(ann.locator("#pm-audio")).to_be_hidden()
    await expect(ann.locator("#pm-video")).to_be_hidden()
    answer = await raw_request(ann, srv_off, "annex", {"type": "call", "to": "bea"})
    assert answer["code"] == "direct_off", answer
    assert "turned off" in answer["text"]
    await expect(bea.locator("#incoming")).to_be_hidden()

"""What the web client's browser tests share: Debian's Chromium through
Playwright (TESTING.md section 1: no ``playwright install``), fresh browser
contexts, the page's address, and axe-core's serious findings."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from support import TIME, LineClient, RunningServer

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--disable-gpu", "--disable-quic", "--disable-dev-shm-usage"]
E2E = Path(__file__).parent / "e2e"
ARTIFACTS = E2E / "artifacts"
AXE_JS = E2E / "vendor" / "axe.min.js"
WAIT = 10_000 * TIME  # ms, for every expectation


def require_chromium() -> None:
    """Skip the calling test module when Debian's Chromium is missing."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(
            "Debian's chromium is not installed"
            " (scripts/system-deps.sh installs it when run as root)",
            allow_module_level=True,
        )


@asynccontextmanager
async def chromium(args: list[str]) -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=args)
        yield b
        await b.close()


class Contexts:
    """Browser contexts a test opens, each 1280×800 unless told, closed together."""

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.opened: list[BrowserContext] = []

    async def page(self, **options: Any) -> Page:
        options.setdefault("viewport", {"width": 1280, "height": 800})
        context = await self.browser.new_context(**options)
        context.set_default_timeout(WAIT)
        self.opened.append(context)
        return await context.new_page()

    async def close(self) -> None:
        for context in self.opened:
            await context.close()


def base(server: RunningServer) -> str:
    return f"http://127.0.0.1:{server.ports['http']}/"


#: Seconds a line client waits for what a page did: the browser is the slow
#: side on a busy machine, so longer than a socket test would.
PAGE_TO_LINE = 10.0


async def line_expect(client: LineClient, needle: str) -> str:
    return await asyncio.to_thread(client.expect, needle, PAGE_TO_LINE)


async def axe(page: Page, least: int = 20) -> list[dict[str, Any]]:
    """axe-core's critical and serious violations on the page as it is now (having
    checked more than ``least`` things: a modal dialog leaves fewer to check)."""
    if not await page.evaluate("() => typeof window.axe === 'object'"):
        # The page's CSP forbids scripts from elsewhere: inject it past the CSP.
        await page.add_script_tag(content=AXE_JS.read_text())
    report = json.loads(await page.evaluate("async () => JSON.stringify(await axe.run(document))"))
    assert len(report["passes"]) > least, "axe-core checked next to nothing"
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]]}
        for v in report["violations"]
        if v["impact"] in ("critical", "serious")
    ]

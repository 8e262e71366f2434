"""Reading standard input without blocking the event loop, whatever it is
(a pipe, a file, a terminal): a thread does the blocking reads."""

from __future__ import annotations

import asyncio
import sys
import threading


def start_stdin_reader(loop: asyncio.AbstractEventLoop) -> asyncio.Queue[str | None]:
    """Lines from stdin without their newline; None at end of input."""
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def pump() -> None:
        stream = sys.stdin.buffer
        while True:
            try:
                raw = stream.readline()
            except (OSError, ValueError):
                raw = b""
            if not raw:
                loop.call_soon_threadsafe(queue.put_nowait, None)
                return
            text = raw.decode("utf-8", "replace").rstrip("\r\n")
            loop.call_soon_threadsafe(queue.put_nowait, text)

    threading.Thread(target=pump, name="stdin", daemon=True).start()
    return queue

"""Reading standard input without blocking the event loop, whatever it is
(a pipe, a file, a terminal): a thread does the blocking reads.

The thread reads the file descriptor itself (``os.read``), not
``sys.stdin.buffer``: a daemon thread blocked inside a buffered reader holds
its lock, and the interpreter then aborts at exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading

#: Longest line kept; the rest of a longer line is dropped (the server would refuse it).
MAX_LINE = 1 << 16


def start_stdin_reader(loop: asyncio.AbstractEventLoop) -> asyncio.Queue[str | None]:
    """Lines from stdin without their newline; None at end of input."""
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    fd = sys.stdin.fileno()

    def put(item: str | None) -> None:
        # A closed loop means nobody is listening any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(queue.put_nowait, item)

    def pump() -> None:
        pending = b""
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                if pending:
                    put(pending.decode("utf-8", "replace").rstrip("\r"))
                put(None)
                return
            pending += chunk
            *lines, pending = pending.split(b"\n")
            pending = pending[-MAX_LINE:]
            for raw in lines:
                put(raw.decode("utf-8", "replace").rstrip("\r"))

    threading.Thread(target=pump, name="stdin", daemon=True).start()
    return queue

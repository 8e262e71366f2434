"""``salas chat`` with pipes: plain lines in and out, for scripts and harnesses.

On the CS168 door it prints exactly what the seed's client prints: a
``[Me] `` prompt, and each line the server sends; nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from typing import TextIO

from salas.client.direct import Direct, DirectSettings
from salas.client.link import Target, connect
from salas.client.stdin import start_stdin_reader
from salas.proto.cs168 import (
    CLIENT_CANNOT_CONNECT,
    CLIENT_MESSAGE_PREFIX,
    CLIENT_SERVER_DISCONNECTED,
)

#: After stdin ends on the CS168 door (which has no /quit), how long replies may still come.
CS168_LINGER = 1.0
#: After stdin ends on the line door, how long to wait for the server to say goodbye.
QUIT_WAIT = 5.0
#: While waiting for direct transfers to end after stdin has, how often to look.
DRAIN_POLL = 0.2


async def run_pipe(
    target: Target,
    name: str | None,
    room: str | None,
    out: TextIO | None = None,
    direct_settings: DirectSettings | None = None,
) -> int:
    out = out or sys.stdout
    cs168 = target.scheme == "cs168"
    try:
        link = await connect(target, name)
    except (OSError, TimeoutError):
        out.write(CLIENT_CANNOT_CONNECT.format(target.host, target.port) + "\n")
        out.flush()
        return 1
    if room:
        link.send(f"/join {room}")

    def show(text: str) -> None:
        out.write(text + "\n" + (CLIENT_MESSAGE_PREFIX if cs168 else ""))
        out.flush()

    # Direct offers and transfers (not on the CS168 door, which has no private messages).
    direct = None if cs168 else Direct(link, show, direct_settings)
    #: stdin has ended, but an offer or transfer is still going on: /quit once it is over.
    draining = False
    if cs168:
        out.write(CLIENT_MESSAGE_PREFIX)
        out.flush()
    lines = start_stdin_reader(asyncio.get_running_loop())
    recv: asyncio.Task[str | None] = asyncio.ensure_future(link.recv())
    read: asyncio.Task[str | None] | None = asyncio.ensure_future(lines.get())
    quitting = False
    deadline: float | None = None
    loop = asyncio.get_running_loop()
    try:
        while True:
            waiting: set[asyncio.Task[str | None]] = {recv} | ({read} if read else set())
            timeout = None if deadline is None else max(0.0, deadline - loop.time())
            if draining:
                timeout = DRAIN_POLL
            done, _ = await asyncio.wait(
                waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if draining and direct is not None and not direct.busy():
                draining, quitting = False, True
                link.send("/quit")
                deadline = loop.time() + QUIT_WAIT
                continue
            if not done:
                if draining:
                    continue
                return 0  # stdin ended and the server has had its time to answer
            if recv in done:
                text = recv.result()
                if text is None:
                    if not quitting:
                        show(CLIENT_SERVER_DISCONNECTED.format(target.host, target.port))
                    return 0
                for part in text.split("\n") if direct is not None else (text,):
                    if direct is None or not direct.on_server_line(part):
                        show(part)
                recv = asyncio.ensure_future(link.recv())
            if read is not None and read in done:
                line = read.result()
                if line is None:
                    read = None
                    if cs168:
                        deadline = loop.time() + CS168_LINGER
                    elif direct is not None and direct.busy():
                        draining = True
                    else:
                        quitting = True
                        link.send("/quit")
                        deadline = loop.time() + QUIT_WAIT
                    continue
                if not cs168 and line.lower().split(" ", 1)[0] == "/quit":
                    quitting = True
                if direct is not None and direct.on_user_line(line):
                    read = asyncio.ensure_future(lines.get())
                    continue
                link.send(line)
                if cs168:
                    out.write(CLIENT_MESSAGE_PREFIX)
                    out.flush()
                read = asyncio.ensure_future(lines.get())
    finally:
        for task in (recv, read):
            if task is not None:
                task.cancel()
        if direct is not None:
            await direct.close()
        with contextlib.suppress(Exception):
            await link.close()

"""``salas send``: say one thing in one room and leave (a notifier for scripts)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sys

from salas.client.link import Link, Target, connect
from salas.proto.cs168 import CLIENT_CANNOT_CONNECT, CLIENT_NOT_IN_CHANNEL

#: How refusals begin on the CS168 door (course texts and salas's own).
CS168_ERRORS = ("No channel named ", "Room ", "You are banned", "You can't send", "Not sent:")

#: How long the whole exchange may take before we give up.
SEND_TIMEOUT = 10.0
#: CS168 has no way to confirm; errors, if any, come within this.
CS168_SETTLE = 0.5


async def send_one(target: Target, room: str, message: str, name: str | None) -> int:
    if target.scheme == "cs168" and any(line.startswith("/") for line in message.splitlines()):
        # The door would run it as a command, and it has no escape to say it.
        print(
            "salas send: the CS168 door takes a line that starts with / as a command,"
            " so it can't be said there",
            file=sys.stderr,
        )
        return 2
    try:
        link = await connect(target, name)
    except (OSError, TimeoutError):
        print(CLIENT_CANNOT_CONNECT.format(target.host, target.port), file=sys.stderr)
        return 1
    try:
        return await asyncio.wait_for(_exchange(link, target, room, message), SEND_TIMEOUT)
    except TimeoutError:
        print("salas send: the server did not answer in time", file=sys.stderr)
        return 1
    finally:
        with contextlib.suppress(Exception):
            await link.close()


async def _barrier(link: Link) -> list[str]:
    """Wait until the server has handled everything sent so far; return its errors."""
    token = "salas-send-" + secrets.token_hex(6)
    link.send(f"/echo {token}")
    errors: list[str] = []
    while True:
        text = await link.recv()
        if text is None:
            return [*errors, "the server closed the connection"]
        if text == token:
            return errors
        if text.startswith("! ") and not text.startswith("! You are already in"):
            errors.append(text[2:])


async def _exchange(link: Link, target: Target, room: str, message: str) -> int:
    link.send(f"/join {room}")
    cs168 = target.scheme == "cs168"
    # The line door's // says a line that starts with /; CS168 has no such escape.
    lines = [
        ("/" + line if line.startswith("/") and not cs168 else line)
        for line in message.splitlines()
        if line.strip()
    ]
    if not lines:
        print("salas send: the message is empty", file=sys.stderr)
        return 1
    if cs168:
        for line in lines:
            link.send(line)
        # No acknowledgement exists on this door: report any error that comes back soon.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CS168_SETTLE
        while (left := deadline - loop.time()) > 0:
            try:
                text = await asyncio.wait_for(link.recv(), left)
            except TimeoutError:
                break
            if text is None:
                break
            if text.startswith(CS168_ERRORS) or text == CLIENT_NOT_IN_CHANNEL:
                print(f"salas send: {text}", file=sys.stderr)
                return 1
        return 0
    # Only speak once the join is known to have worked: never into the wrong room.
    errors = await _barrier(link)
    if not errors:
        for line in lines:
            link.send(line)
        errors = await _barrier(link)
    for err in errors:
        print(f"salas send: {err}", file=sys.stderr)
    link.send("/quit")
    return 1 if errors else 0

"""The CS168 door: seed 002's chat protocol, byte for byte.

Every message either way is a frame of exactly 200 bytes, right-padded with
spaces; the receiver strips the padding. The first frame is the client's
name. ``/create``, ``/join`` and ``/list`` are the only commands, and a client
is in one channel at a time. The texts below are the course's own.
"""

from __future__ import annotations

from typing import ClassVar

from salas.core import commands as c
from salas.core import errors as e
from salas.core.events import (
    Closing,
    Event,
    Failed,
    Invited,
    Joined,
    Left,
    Message,
    Private,
    Renamed,
    RoomList,
    ServerNotice,
    TopicChanged,
)
from salas.proto.door import Input
from salas.proto.line import safe
from salas.proto.texts import controls_refused

#: Every frame, both ways, is exactly this many bytes.
FRAME = 200

INVALID_CONTROL_MESSAGE = (
    "{0} is not a valid control message. Valid messages are /create, /list, and /join."
)
NO_CHANNEL_EXISTS = "No channel named {0} exists. Try '/create {0}'?"
JOIN_REQUIRES_ARGUMENT = "/join command must be followed by the name of a channel to join."
CLIENT_JOINED_CHANNEL = "{0} has joined"
CLIENT_LEFT_CHANNEL = "{0} has left"
CHANNEL_EXISTS = "Room {0} already exists, so cannot be created."
CREATE_REQUIRES_ARGUMENT = "/create command must be followed by the name of a channel to create"
CLIENT_NOT_IN_CHANNEL = "Not currently in any channel. Must join a channel before sending messages."
# Client side.
CLIENT_MESSAGE_PREFIX = "[Me] "
CLIENT_WIPE_ME = "\r    "
CLIENT_CANNOT_CONNECT = "Unable to connect to {0}:{1}"
CLIENT_SERVER_DISCONNECTED = "Server at {0}:{1} has disconnected"


def _chunks(data: bytes, size: int) -> list[bytes]:
    """Cut UTF-8 ``data`` into pieces of at most ``size`` bytes, never inside a character."""
    out = []
    while len(data) > size:
        cut = size
        while cut > 0 and (data[cut] & 0xC0) == 0x80:
            cut -= 1
        if cut == 0:
            cut = size
        out.append(data[:cut])
        data = data[cut:]
    out.append(data)
    return out


def frames(text: str, prefix: str = "") -> bytes:
    """``text`` as padded frames; text too long for one frame goes on in more,
    each starting with ``prefix`` so every line says who wrote it."""
    head = prefix.encode()
    body = text.encode()
    if len(head) + len(body) <= FRAME:
        return (head + body).ljust(FRAME, b" ")
    room = max(FRAME - len(head), FRAME // 2)
    return b"".join((head + part)[:FRAME].ljust(FRAME, b" ") for part in _chunks(body, room))


def pack_lines(lines: list[str]) -> bytes:
    """Lines joined by newlines, as few frames as fit (``/list``)."""
    out: list[bytes] = []
    current = b""
    for line in lines:
        item = line.encode()[:FRAME]
        if current and len(current) + 1 + len(item) > FRAME:
            out.append(current.ljust(FRAME, b" "))
            current = b""
        current = current + b"\n" + item if current else item
    if current:
        out.append(current.ljust(FRAME, b" "))
    return b"".join(out)


class FrameBuffer:
    """Reassembles 200-byte frames from reads of any size; holds at most one partial frame."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._buf + data if self._buf else data
        n = len(buf) - len(buf) % FRAME
        self._buf = buf[n:]
        return [buf[i : i + FRAME] for i in range(0, n, FRAME)]

    @property
    def pending(self) -> int:
        return len(self._buf)


def decode_frame(frame: bytes) -> str:
    """A frame's text: padding (and any trailing white space) stripped."""
    return frame.decode("utf-8", "replace").rstrip()


class Cs168Door:
    door: ClassVar[str] = "cs168"
    variant: object = "cs168"

    __slots__ = ("_frames", "_named", "host", "port", "sid")

    def __init__(self, sid: int, host: str, port: int) -> None:
        self.sid = sid
        self.host = host
        self.port = port
        self._frames = FrameBuffer()
        self._named = False

    def start(self) -> list[Input]:
        return []

    def receive_data(self, data: bytes) -> list[Input]:
        out: list[Input] = []
        for frame in self._frames.feed(data):
            text = decode_frame(frame)
            if not self._named:
                self._named = True
                out.append(
                    c.Register(text.strip() or None, self.door, self.host, self.port, uniquify=True)
                )
                continue
            item = self._parse(text)
            if item is not None:
                out.append(item)
        return out

    def _parse(self, text: str) -> Input | None:
        if not text.strip():
            return None
        if not text.startswith("/"):
            refused = controls_refused(text)
            if refused is not None:
                return frames(self._error(refused))
            return c.Say(None, text)
        words = text.split()
        word = words[0]
        arg = words[1] if len(words) > 1 else ""
        if word == "/join":
            if not arg:
                return frames(JOIN_REQUIRES_ARGUMENT)
            return c.Join(arg, switch=True)
        if word == "/create":
            if not arg:
                return frames(CREATE_REQUIRES_ARGUMENT)
            return c.Create(arg, switch=True)
        if word == "/list":
            return c.ListRooms()
        return frames(INVALID_CONTROL_MESSAGE.format(word))

    def shared_key(self, event: Event) -> object | None:
        if type(event) in (Joined, Left) and event.user.sid != self.sid:  # type: ignore[union-attr]
            return self.variant
        return None

    def render_error_close(self, reason: str) -> bytes:
        return frames(f"Disconnected: {safe(reason)}")

    tick_interval: float | None = None

    def tick(self, idle: float) -> list[Input]:
        return []

    def render_flood_notice(self) -> bytes:
        return frames("You are sending too fast: your messages are being delayed.")

    def render(self, ev: Event) -> bytes:
        me = self.sid
        match ev:
            case Message(sender=s, text=t, kind=k):
                if k == "action":
                    return frames(safe(t), f"* {s.name} ")
                return frames(safe(t), f"[{s.name}] ")
            case Joined(user=u):
                return b"" if u.sid == me else frames(CLIENT_JOINED_CHANNEL.format(u.name))
            case Left(room=r, user=u, kind=kind, reason=why):
                if u.sid != me:
                    return frames(CLIENT_LEFT_CHANNEL.format(u.name))
                if kind == "kick":
                    return frames(f"You were removed from {r}" + (f": {safe(why)}" if why else ""))
                if kind == "close":
                    return frames(f"Room {r} was closed" + (f": {safe(why)}" if why else ""))
                return b""
            case RoomList(rooms=rooms):
                return pack_lines(sorted(info.name for info in rooms))
            case Private(sender=s, target=t, text=text):
                if s.sid == me:
                    return b""
                return frames(safe(text), f"[{s.name} -> you] ")
            case Renamed(old=o, new=n):
                return frames(f"{o.name} is now known as {n.name}")
            case TopicChanged(room=r, topic=t, by=by):
                return frames(f"{by.name} set the topic of {r}: {safe(t)}")
            case Failed(error=err):
                text = self._error(err)
                return frames(text) if text else b""
            case Closing(reason=why, kind=kind):
                if kind == "shutdown":
                    return frames("Server shutting down" + (f": {safe(why)}" if why else ""))
                if kind == "kill":
                    return frames("Disconnected" + (f": {safe(why)}" if why else ""))
                return b""
            case ServerNotice(text=t, by=by):
                return frames(safe(t), f"[{by or 'server'}] ")
            case Invited(room=r, by=by, target=t):
                if t.sid == me:
                    return frames(f"{by.name} invites you to {r}: /join {r}")
        return b""

    @staticmethod
    def _error(err: e.ChatError) -> str:
        match err:
            case e.NoSuchRoom(room=r):
                return NO_CHANNEL_EXISTS.format(r)
            case e.RoomExists(room=r):
                return CHANNEL_EXISTS.format(r)
            case e.NotInRoom():
                return CLIENT_NOT_IN_CHANNEL
            case e.RoomFull(room=r, limit=n):
                return f"Room {r} is full ({n}/{n})."
            case e.InviteOnly(room=r):
                return f"Room {r} is private: you need an invitation."
            case e.BadKey(room=r):
                return f"Room {r} needs a key, which this client can't send."
            case e.Banned(room=r):
                return f"You are banned from {r}."
            case e.RoomNameInvalid(room=r):
                return f"{r} is not a valid channel name."
            case e.AlreadyInRoom():
                return ""
            case e.CannotSend(room=r):
                return f"You can't send to {r}."
            case e.TextInvalid(reason=why):
                return f"Not sent: {why}."
            case e.TooManyRooms():
                return "There are too many channels already."
        return "That did not work."

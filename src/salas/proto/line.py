"""The line door: UTF-8 lines for netcat and telnet users (seed 004's shape).

A line starting with ``/`` is a command; anything else is said in the current
room. Every reply is one line; notices start with ``>`` (someone came) or
``<`` (someone went), errors with ``!``, and room messages are ``[name] text``
as in seed 004. Listings are a ``>`` header followed by indented lines.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from salas.core import commands as c
from salas.core import errors as e
from salas.core.events import (
    AccountRegistered,
    AwayChanged,
    Closing,
    Echoed,
    Event,
    Failed,
    HistoryReply,
    Invited,
    IsAway,
    Joined,
    Left,
    LoggedIn,
    Message,
    ModesChanged,
    NameList,
    OperDone,
    OperGranted,
    OperRevoked,
    PasswordChanged,
    Private,
    Renamed,
    RoomList,
    ServerNotice,
    TopicChanged,
    TopicIs,
    UserList,
    Welcome,
    WhoisReply,
)
from salas.core.hub import MAX_LIMIT
from salas.core.model import UserInfo
from salas.core.names import valid_room
from salas.proto.door import Input
from salas.proto.lines import LineBuffer, TooLong
from salas.proto.texts import error_text as plain_error_text

#: Longest line a client may send, in bytes (without the newline). 4 KiB is
#: what a person can paste as one message; longer is a mistake or an attack.
MAX_LINE = 4096
#: Names shown after joining a room before "and N more".
NAMES_SHOWN = 30

# C0 and C1 controls and DEL: nothing a terminal should get from someone else.
_CONTROLS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
_STRIP = re.compile(r"[\x00-\x1f\x7f-\x9f]")

# Lines the terminal client recognises to follow its own state.
WELCOME_RE = re.compile(r"^> Connected to the chat server as (\S+) \(")
YOU_JOINED_RE = re.compile(r"^> You joined (\S+) \(")
YOU_LEFT_RE = re.compile(r"^< You (?:left|were kicked from) (\S+)")
ROOM_CLOSED_RE = re.compile(r"^< Room (\S+) was closed")
YOU_RENAMED_RE = re.compile(r"^> You are now known as (\S+)$")
#: A DCC offer (or answer) someone's client sent to yours: ``> DCC from NAME: SEND ...``.
DCC_FROM_RE = re.compile(r"^> DCC from (\S+): (.+)$")
#: The answer to ``/whois NAME``: ``> NAME [ADDRESS] via DOOR, idle ...``.
WHOIS_RE = re.compile(r"^> (\S+) \[\S* via (\w+)(?:,|$)")


def safe(text: str) -> str:
    """Text from someone else, made harmless for a terminal (no escapes, no colours)."""
    if not _STRIP.search(text):
        return text
    return _STRIP.sub("", text.replace("\t", " "))


def users(n: int) -> str:
    return f"{n} user online" if n == 1 else f"{n} users online"


def _line(text: str) -> bytes:
    return (text + "\n").encode()


def _day(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


def _clock(ts: float) -> str:
    return time.strftime("%H:%M", time.gmtime(ts))


def idle_text(seconds: float) -> str:
    """``45s``, ``12m``, ``3h05m``, ``2d4h``: idle times in listings."""
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600}h"


@dataclass(frozen=True, slots=True)
class Usage:
    """A command the line door understands."""

    name: str
    args: str
    help: str
    build: Callable[[str], Input]


class UsageError(Exception):
    pass


def _words(rest: str, low: int, high: int) -> list[str]:
    words = rest.split()
    if not low <= len(words) <= high:
        raise UsageError
    return words


def _nick(rest: str) -> Input:
    (name,) = _words(rest, 1, 1)
    return c.Rename(name)


def _room_arg(word: str) -> str:
    """``#tas`` and ``tas`` are the same room: IRC habits work here too."""
    return word[1:] if word.startswith("#") and len(word) > 1 else word


def _join(rest: str) -> Input:
    words = _words(rest, 1, 2)
    return c.Join(_room_arg(words[0]), words[1] if len(words) > 1 else None, switch=True)


def _create(rest: str) -> Input:
    words = _words(rest, 1, 2)
    limit = None
    if len(words) == 2:
        if not (words[1].isascii() and words[1].isdigit()) or not 0 < int(words[1]) <= MAX_LIMIT:
            raise UsageError
        limit = int(words[1])
    return c.Create(_room_arg(words[0]), limit, switch=True)


def _leave(rest: str) -> Input:
    words = _words(rest, 0, 1)
    return c.Leave(_room_arg(words[0]) if words else None)


def _who(rest: str) -> Input:
    words = _words(rest, 0, 1)
    if words and words[0] == "*":
        return c.ListUsers(everyone=True)
    return c.ListUsers(_room_arg(words[0]) if words else None)


def _msg(rest: str) -> Input:
    parts = rest.split(None, 1)
    if len(parts) != 2 or not parts[1].strip():
        raise UsageError
    return c.Tell(parts[0], parts[1])


def _text(kind: c.MessageKind) -> Callable[[str], Input]:
    def build(rest: str) -> Input:
        if not rest.strip():
            raise UsageError
        return c.Say(None, rest, kind)

    return build


def _ctcp(rest: str) -> Input:
    """A client-to-client request (IRC's CTCP), e.g. a DCC offer: TEXT goes to NAME's
    client between the two \\x01 marks IRC clients expect; it is never kept in history."""
    parts = rest.split(None, 1)
    if len(parts) != 2 or not parts[1].strip():
        raise UsageError
    return c.Tell(parts[0], "\x01" + parts[1].strip() + "\x01")


def _whois(rest: str) -> Input:
    (name,) = _words(rest, 1, 1)
    return c.Whois(name)


def _echo(rest: str) -> Input:
    if not rest:
        raise UsageError
    return c.Echo(rest)


def _topic(rest: str) -> Input:
    return c.Topic(None, rest.strip() or None)


def _away(rest: str) -> Input:
    return c.SetAway(rest.strip() or None)


def _invite(rest: str) -> Input:
    words = _words(rest, 1, 2)
    return c.Invite(words[0], _room_arg(words[1]) if len(words) > 1 else None)


def _kick(rest: str) -> Input:
    parts = rest.split(None, 1)
    if not parts:
        raise UsageError
    return c.Kick(None, parts[0], parts[1].strip() if len(parts) > 1 else "")


def _quit(rest: str) -> Input:
    return c.Quit(rest.strip())


def _first_and_reason(rest: str) -> tuple[str, str]:
    """``WORD [REASON...]``: the word and the rest, stripped."""
    parts = rest.split(None, 1)
    if not parts:
        raise UsageError
    return parts[0], parts[1].strip() if len(parts) > 1 else ""


def _oper(rest: str) -> Input:
    name, password = _words(rest, 2, 2)
    return c.OperUp(name, password)


def _close(rest: str) -> Input:
    room, reason = _first_and_reason(rest)
    return c.CloseRoom(_room_arg(room), reason)


def _kill(rest: str) -> Input:
    name, reason = _first_and_reason(rest)
    return c.Kill(name, reason)


def _broadcast(rest: str) -> Input:
    if not rest.strip():
        raise UsageError
    return c.Broadcast(rest.strip())


def _shutdown(rest: str) -> Input:
    return c.Shutdown(rest.strip())


_FLAG_WORDS = {
    "i": ("private", "open to all"),
    "t": ("topic set by room operators only", "topic set by anyone"),
    "n": ("no messages from outside", "messages from outside allowed"),
    "m": ("moderated", "not moderated"),
}


def _mode_words(ch: c.ModeChange) -> str:
    """A room mode change in plain words (IRC clients see the letters)."""
    if ch.mode in _FLAG_WORDS:
        return _FLAG_WORDS[ch.mode][0 if ch.add else 1]
    if ch.mode == "l":
        return f"limit {ch.arg}" if ch.add else "no limit"
    if ch.mode == "k":
        return "a key is needed" if ch.add else "no key"
    if ch.mode == "o":
        return (
            f"{ch.arg} is a room operator" if ch.add else f"{ch.arg} is no longer a room operator"
        )
    if ch.mode == "v":
        return f"{ch.arg} has a voice" if ch.add else f"{ch.arg} no longer has a voice"
    if ch.mode == "b":
        return f"{ch.arg} is banned" if ch.add else f"{ch.arg} is no longer banned"
    return ("+" if ch.add else "-") + ch.mode


#: Messages ``/history`` shows with no number.
HISTORY_DEFAULT = 20


def _history(rest: str) -> Input:
    words = _words(rest, 0, 2)
    limit, target = HISTORY_DEFAULT, None
    for word in words:
        if word.isascii() and word.isdigit():
            limit = int(word)
            if limit < 1:
                raise UsageError
        elif target is None:
            target = word
        else:
            raise UsageError
    if target is None:
        return c.FetchHistory(None, True, limit)
    if target.startswith("@"):  # a private conversation: /history @NAME
        return c.FetchHistory(target[1:], False, limit)
    return c.FetchHistory(_room_arg(target), True, limit)


def _register(rest: str) -> Input:
    (password,) = _words(rest, 1, 1)
    return c.RegisterAccount(password)


def _login(rest: str) -> Input:
    name, password = _words(rest, 2, 2)
    return c.LogIn(name, password)


def _password(rest: str) -> Input:
    old, new = _words(rest, 2, 2)
    return c.ChangePassword(old, new)


COMMANDS: dict[str, Usage] = {
    u.name: u
    for u in (
        Usage("nick", "NAME", "change your name", _nick),
        Usage("join", "ROOM [KEY]", "go to a room (leaving the one you are in)", _join),
        Usage(
            "create",
            "ROOM [LIMIT]",
            "make a room, with an optional size limit, and enter it",
            _create,
        ),
        Usage("leave", "[ROOM]", "leave the room you are in", _leave),
        Usage(
            "list", "", "rooms, with how many are in each and the limit", lambda rest: c.ListRooms()
        ),
        Usage("who", "[ROOM|*]", "who is in this room (or ROOM, or * for everyone)", _who),
        Usage("msg", "NAME TEXT", "a private message", _msg),
        Usage("whois", "NAME", "where someone comes from (address, door) and their rooms", _whois),
        Usage(
            "ctcp",
            "NAME TEXT",
            "a request to NAME's client, e.g. DCC SEND FILE IP PORT SIZE (not kept)",
            _ctcp,
        ),
        Usage("me", "TEXT", "an action: * you TEXT", _text("action")),
        Usage("notice", "TEXT", "a notice to the room (no automatic replies)", _text("notice")),
        Usage("echo", "TEXT", "the server answers with TEXT", _echo),
        Usage("topic", "[TEXT]", "show or set the room's topic", _topic),
        Usage("away", "[TEXT]", "mark yourself away (no text: back)", _away),
        Usage("invite", "NAME [ROOM]", "let someone into a private room", _invite),
        Usage("kick", "NAME [REASON]", "put someone out of the room (room operators)", _kick),
        Usage(
            "history",
            "[N] [ROOM|@NAME]",
            "the last N messages here (or in ROOM, or with NAME)",
            _history,
        ),
        Usage("register", "PASSWORD", "make your name an account, kept for you", _register),
        Usage("login", "NAME PASSWORD", "log in to your account (and take its name)", _login),
        Usage("password", "OLD NEW", "change your account's password", _password),
        Usage("oper", "NAME PASSWORD", "become a server operator", _oper),
        Usage(
            "close",
            "ROOM [REASON]",
            "close a room: its members are told and removed (operators)",
            _close,
        ),
        Usage("kill", "NAME [REASON]", "put someone off the server (operators)", _kill),
        Usage(
            "broadcast",
            "TEXT",
            "a notice to everyone online, on every door (operators)",
            _broadcast,
        ),
        Usage(
            "shutdown", "[REASON]", "stop the server; everyone is told why (operators)", _shutdown
        ),
        Usage("help", "[COMMAND]", "this list", lambda rest: b""),
        Usage("quit", "[REASON]", "leave the server", _quit),
    )
}


def help_text(topic: str = "") -> bytes:
    name = topic.strip().lstrip("/").lower()
    if name in COMMANDS:
        u = COMMANDS[name]
        return _line(f"> /{u.name} {u.args}".rstrip() + f": {u.help}")
    heads = [f"  /{u.name} {u.args}".rstrip() for u in COMMANDS.values()]
    width = max(len(h) for h in heads) + 2
    rows = [h.ljust(width) + u.help for h, u in zip(heads, COMMANDS.values(), strict=True)]
    rows.append("  //TEXT".ljust(width) + "say a line that starts with /")
    head = "> Commands (anything else is said in your room):"
    return ("\n".join([head, *rows]) + "\n").encode()


def parse_line(raw: bytes) -> Input | None:
    """One line from the client: a command, an immediate reply, or nothing (blank)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return _line("! That line was not valid UTF-8, so it was not sent")
    if "\t" in text:
        text = text.replace("\t", "    ")
    # Spaces only: str.rstrip() would also take the controls \x1c-\x1f and
    # U+0085 as white space, and send the line without a word.
    text = text.rstrip(" \r")
    if not text:
        return None
    if _CONTROLS.search(text):
        return _line("! Control characters are not allowed, so that line was not sent")
    if not text.startswith("/") or text.startswith("//"):
        return c.Say(None, text[1:] if text.startswith("//") else text)
    word, _, rest = text[1:].partition(" ")
    usage = COMMANDS.get(word.lower())
    if usage is None:
        return _line(f"! Unknown command /{word}; /help lists them")
    if usage.name == "help":
        return help_text(rest)
    try:
        return usage.build(rest)
    except UsageError:
        return _line(f"! Usage: /{usage.name} {usage.args}".rstrip())


def error_text(err: e.ChatError, me: str) -> str:
    """The shared plain words, with the line door's command hints where they help."""
    match err:
        case e.NoSuchRoom(room=r):
            if not valid_room(r):  # the hint would only be refused in turn
                return plain_error_text(e.RoomNameInvalid(r))
            return f"No room named {r}. Create it with /create {r}"
        case e.RoomExists(room=r):
            return f"Room {r} already exists; /join {r} to enter it"
        case e.BadKey(room=r):
            return f"Room {r} needs its key: /join {r} KEY"
        case e.NotInRoom(room=""):
            return "You are not in a room: /list shows them, /join ROOM enters one"
        case e.AlreadyInRoom(name=n, room=r) if n == me:
            return f"You are already in {r}"
        case e.NameReserved(name=n):
            return f"The name {n} belongs to an account: /login {n} PASSWORD"
        case e.AccountExists(name=n):
            return f"{n} is already registered: /login {n} PASSWORD"
        case e.NotLoggedIn():
            return "You are not logged in: /register PASSWORD or /login NAME PASSWORD"
    return plain_error_text(err)


class LineDoor:
    door: ClassVar[str] = "line"
    variant: object = "line"

    __slots__ = ("_buf", "host", "name", "port", "sid")

    def __init__(self, sid: int, host: str, port: int) -> None:
        self.sid = sid
        self.host = host
        self.port = port
        self.name = ""
        self._buf = LineBuffer(MAX_LINE)

    def start(self) -> list[Input]:
        return [c.Register(None, self.door, self.host, self.port, lobby=True)]

    def receive_data(self, data: bytes) -> list[Input]:
        out: list[Input] = []
        for item in self._buf.feed(data):
            if isinstance(item, TooLong):
                out.append(_line(f"! Line too long (over {item.limit} bytes), so it was not sent"))
                continue
            parsed = parse_line(item)
            if parsed is not None:
                out.append(parsed)
        return out

    def shared_key(self, event: Event) -> object | None:
        if type(event) in (Joined, Left) and event.user.sid != self.sid:  # type: ignore[union-attr]
            return self.variant
        return None

    def render_error_close(self, reason: str) -> bytes:
        return _line(f"! Disconnected: {reason}")

    tick_interval: float | None = None

    def tick(self, idle: float) -> list[Input]:
        return []

    def render_flood_notice(self) -> bytes:
        return _line(
            "! You are sending too fast: your lines are being delayed;"
            " keep on and you will be disconnected"
        )

    def render(self, ev: Event) -> bytes:
        me = self.sid
        match ev:
            case Message(sender=s, text=t, kind=k):
                if k == "action":
                    return _line(f"* {s.name} {safe(t)}")
                if k == "notice":
                    return _line(f"-{s.name}- {safe(t)}")
                return _line(f"[{s.name}] {safe(t)}")
            case Joined(room=r, user=u, count=n):
                if u.sid == me:
                    return _line(f"> You joined {r} ({users(n)})")
                return _line(f"> {u.name} joined {r} ({users(n)})")
            case Left(room=r, user=u, count=n, kind=kind, reason=why, by=by):
                return _line(
                    self._left(r, u.sid == me, u.name, n, kind, why, by.name if by else "")
                )
            case Private(sender=s, target=t, text=text, kind=k):
                if text.startswith("\x01"):
                    return _line(self._ctcp(s.name, t.name, s.sid == me and t.sid != me, text, k))
                if s.sid == me and t.sid != me:
                    return _line(f"[you -> {t.name}] {safe(text)}")
                if k == "action":
                    return _line(f"* {s.name} (private) {safe(text)}")
                return _line(f"[{s.name} -> you] {safe(text)}")
            case Welcome(user=u, online=n, server=srv):
                self.name = u.name
                return _line(f"> Welcome to {srv}. /help lists commands.") + _line(
                    f"> Connected to the chat server as {u.name} ({users(n)})"
                )
            case Renamed(old=o, new=n):
                if n.sid == me:
                    self.name = n.name
                    return _line(f"> You are now known as {n.name}")
                return _line(f"> {o.name} is now known as {n.name}")
            case NameList(room=r, members=members):
                others = [m.user.name for m in members if m.user.sid != me]
                if not others:
                    return b""
                shown = ", ".join(others[:NAMES_SHOWN])
                more = f" and {len(others) - NAMES_SHOWN} more" if len(others) > NAMES_SHOWN else ""
                return _line(f"> In {r} with you: {shown}{more}")
            case TopicIs(room=r, topic=t, by=by):
                if not t:
                    return _line(f"> {r} has no topic")
                return _line(f"> Topic of {r}: {safe(t)}" + (f" (set by {by})" if by else ""))
            case ModesChanged(room=r, by=by, changes=changes):
                said = ", ".join(_mode_words(ch) for ch in changes)
                return _line(f"> {by.name} changed {r}: {safe(said)}")
            case TopicChanged(room=r, topic=t, by=by):
                if not t:
                    return _line(f"> {by.name} cleared the topic of {r}")
                return _line(f"> {by.name} set the topic of {r}: {safe(t)}")
            case RoomList(rooms=rooms):
                if not rooms:
                    return _line("> No rooms yet: /create ROOM makes one")
                rows = [f"> Rooms ({len(rooms)}):"]
                for info in rooms:
                    size = (
                        f"{info.count}/{info.limit}" if info.limit is not None else str(info.count)
                    )
                    unit = "user" if info.count == 1 and info.limit is None else "users"
                    row = f"  {info.name} - {size} {unit}"
                    if info.private:
                        row += " [private]"
                    if info.keyed:
                        row += " [key]"
                    if info.topic:
                        row += f" - {safe(info.topic)}"
                    rows.append(row)
                return ("\n".join(rows) + "\n").encode()
            case UserList(room=r, users=people):
                head = (
                    f"> Users in {r} ({len(people)}):" if r else f"> Users online ({len(people)}):"
                )
                return ("\n".join([head, *(self._who_row(u) for u in people)]) + "\n").encode()
            case Echoed(text=t):
                return _line(t)
            case Failed(error=err, command=cmd):
                return _line("! " + self._refusal(err, cmd))
            case OperDone(action="close", target=t):
                return _line(f"> Room {t} is closed")
            case OperDone(target=t):
                return _line(f"> {t} was removed from the server")
            case Closing(reason=why, kind=kind):
                if kind == "quit":
                    return _line("> Bye")
                if kind == "shutdown":
                    return _line("! Server shutting down" + (f": {safe(why)}" if why else ""))
                return _line("! Disconnected" + (f": {safe(why)}" if why else ""))
            case ServerNotice(text=t, by=by):
                return _line(f"! Notice from {by or 'the server'}: {safe(t)}")
            case Invited(room=r, by=by, target=t):
                if t.sid == me:
                    return _line(f"> {by.name} invites you to {r}: /join {r}")
                if by.sid == me:
                    return _line(f"> You invited {t.name} to {r}")
                return b""
            case IsAway(user=u, text=t):
                return _line(f"> {u.name} is away: {safe(t)}")
            case AwayChanged(user=u, text=t):
                if u.sid != me:
                    return b""
                return _line(f"> You are marked away: {t}" if t else "> You are back")
            case OperGranted():
                return _line("> You are now a server operator")
            case OperRevoked(user=u):
                return _line("> You are no longer a server operator") if u.sid == me else b""
            case HistoryReply(target=t, room=is_room, messages=msgs, reason=why):
                return self._history(t, is_room, msgs, why)
            case WhoisReply(user=u, rooms=rooms):
                return _line(self._whois_row(u, rooms))
            case LoggedIn(account=a):
                return _line(f"> You are logged in as {a}")
            case AccountRegistered(account=a):
                return _line(f"> The name {a} is now your account: /login {a} PASSWORD next time")
            case PasswordChanged():
                return _line("> Your password was changed")
        return b""

    def _refusal(self, err: e.ChatError, cmd: c.Command | None) -> str:
        if isinstance(cmd, c.OperUp) and isinstance(err, e.LoginFailed):
            return "Wrong operator name or password"
        if isinstance(cmd, c.CloseRoom) and isinstance(err, e.RoomProtected):
            return f"Room {err.room} can't be closed: it is where everyone lands"
        return error_text(err, self.name)

    def _history(
        self, target: str, is_room: bool, msgs: tuple[Message | Private, ...], why: str
    ) -> bytes:
        where = target if is_room else f"your conversation with {target}"
        if not msgs:
            return b"" if why == "join" else _line(f"> No messages in {where} yet")
        days = {_day(m.time) for m in msgs}
        n = len(msgs)
        head = f"> {'Recent messages' if why == 'join' else 'History'} of {where}"
        rows = [f"{head} ({n} message{'s' if n != 1 else ''}, times UTC):"]
        for m in msgs:
            stamp = _clock(m.time) if len(days) == 1 else f"{_day(m.time)} {_clock(m.time)}"
            name, text = m.sender.name, safe(m.text)
            if m.kind == "action":
                said = f"* {name} {text}"
            elif m.kind == "notice":
                said = f"-{name}- {text}"
            else:
                said = f"[{name}] {text}"
            rows.append(f"  {stamp} {said}")
        rows.append(f"> End of history of {where}")
        return ("\n".join(rows) + "\n").encode()

    @staticmethod
    def _ctcp(sender: str, target: str, mine: bool, text: str, kind: str) -> str:
        """A CTCP request in words, without its \\x01 marks: a DCC offer is
        ``> DCC from NAME: SEND "file" IP PORT SIZE [TOKEN]``, for clients to act on."""
        body = safe(text.strip("\x01")).strip()
        if mine:
            return f"> CTCP to {target}: {body}"
        verb, _, rest = body.partition(" ")
        if verb.upper() == "DCC" and rest:
            return f"> DCC from {sender}: {rest}"
        if kind == "notice":
            return f"> CTCP reply from {sender}: {body}"
        return f"> CTCP from {sender}: {body}"

    @staticmethod
    def _whois_row(u: UserInfo, rooms: tuple[tuple[str, str], ...]) -> str:
        addr = u.address if u.address.startswith("[") else f"[{u.address}]"
        row = f"> {u.name} {addr} via {u.door}, idle {idle_text(u.idle)}"
        if rooms:
            row += ", in " + " ".join(rank + room for room, rank in rooms)
        if u.oper:
            row += ", server operator"
        if u.away:
            row += f", away: {safe(u.away)}"
        return row

    @staticmethod
    def _who_row(u: UserInfo) -> str:
        op = "@" if "o" in u.modes else ""
        addr = u.address if u.address.startswith("[") else f"[{u.address}]"
        row = f"  {op}{u.name} {addr} {u.door}, idle {idle_text(u.idle)}"
        if u.oper:
            row += ", server operator"
        if u.away:
            row += f", away: {safe(u.away)}"
        return row

    @staticmethod
    def _left(room: str, me: bool, name: str, n: int, kind: str, why: str, by: str) -> str:
        reason = f": {safe(why)}" if why else ""
        if kind == "close":
            return f"< Room {room} was closed" + (f" by {by}" if by else "") + reason
        if me:
            if kind == "kick":
                return f"< You were kicked from {room} by {by}{reason}"
            return f"< You left {room}"
        if kind == "kick":
            return f"< {name} was kicked from {room} by {by} ({users(n)}){reason}"
        return f"< {name} left {room} ({users(n)}){reason}"

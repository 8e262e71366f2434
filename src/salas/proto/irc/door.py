"""The IRC door: one connection's registration, commands and replies.

Registration waits for ``NICK``, ``USER`` and, when the client opened one, the
end of capability negotiation (``CAP END``). After it, each command maps onto
core commands; replies and errors come back as events and are rendered here
as numerics. Rooms are channels: room ``tas`` is ``#tas``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import ClassVar

from salas import __version__
from salas.core import commands as c
from salas.core import errors as e
from salas.core.events import (
    AccountChanged,
    AccountRegistered,
    AwayChanged,
    BanList,
    Closing,
    Echoed,
    Event,
    Failed,
    Found,
    HistoryReply,
    HistoryTargets,
    Invited,
    IsAway,
    Joined,
    Left,
    LoggedIn,
    Message,
    ModesAre,
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
    StatsReply,
    Tagged,
    TopicChanged,
    TopicIs,
    UserList,
    Welcome,
    WhoisReply,
)
from salas.core.model import UserInfo, UserRef
from salas.core.names import (
    KEY_MAX,
    NAME_MAX,
    ROOM_MAX,
    TOPIC_MAX,
    fold,
    valid_name,
    valid_room,
)
from salas.proto.door import Deferred, Input
from salas.proto.irc import chanserv, chathistory, nickserv
from salas.proto.irc import numerics as n
from salas.proto.irc.caps import CAPS, ls_tokens
from salas.proto.irc.message import (
    MAX_INPUT,
    MAX_LINE,
    IrcParseError,
    Line,
    build,
    escape_tag,
    parse,
)
from salas.proto.irc.sasl import (
    MECHANISMS,
    PlainExchange,
    SaslFailed,
    SaslTooLong,
    decode_plain,
)
from salas.proto.lines import LineBuffer, TooLong
from salas.proto.texts import error_text

CHANLIMIT = 100
USERLEN = 10
KICKLEN = 390
#: Bytes of a server notice's text in one line (the rest of the line is short).
NOTICE_BYTES = 400
#: Bytes of channel names in one WHOIS 319 line (with the server, both nicks and the rest).
WHOIS_CHANNELS_BYTES = 400
AWAYLEN = 390
MAXTARGETS = 4
MODES_PER_LINE = 6
#: Mode letters by kind, as CHANMODES and PREFIX advertise them.
LIST_MODES = "b"
ARG_MODES = "k"
SET_ARG_MODES = "l"
FLAG_MODES = "imnt"
PREFIX_MODES = "ov"
PREFIX_CHARS = {"o": "@", "v": "+"}


@dataclass(frozen=True, slots=True)
class IrcInfo:
    """What every IRC connection needs to know about the server."""

    server: str = "salas.local"
    network: str = "salas"
    description: str = "salas chat"
    created: str = ""
    motd: tuple[str, ...] = ()
    operators: tuple[tuple[str, str], ...] = ()
    ping_interval: float = 120.0
    ping_timeout: float = 60.0
    #: Most messages one CHATHISTORY request returns (``history.max_request``).
    history_max: int = 1000


def isupport(info: IrcInfo) -> list[str]:
    return [
        f"AWAYLEN={AWAYLEN}",
        "CASEMAPPING=ascii",
        f"CHANLIMIT=#:{CHANLIMIT}",
        f"CHANMODES={LIST_MODES},{ARG_MODES},{SET_ARG_MODES},{FLAG_MODES}",
        f"CHANNELLEN={ROOM_MAX + 1}",
        "CHANTYPES=#",
        f"CHATHISTORY={info.history_max}",
        "ELIST=",
        "HOSTLEN=64",
        f"KEYLEN={KEY_MAX}",
        f"KICKLEN={KICKLEN}",
        "MAXLIST=b:100",
        f"MODES={MODES_PER_LINE}",
        # Message ids are exact and last; times on the wire only have milliseconds.
        "MSGREFTYPES=msgid,timestamp",
        f"NETWORK={info.network}",
        f"NICKLEN={NAME_MAX}",
        "PREFIX=(ov)@+",
        "STATUSMSG=",
        f"TARGMAX=JOIN:,KICK:{MAXTARGETS},NAMES:1,NOTICE:{MAXTARGETS},PART:,PRIVMSG:{MAXTARGETS},WHOIS:1",
        f"TOPICLEN={TOPIC_MAX}",
        f"USERLEN={USERLEN}",
    ]


def _chunks(text: str, limit: int) -> list[str]:
    """Split ``text`` into pieces of at most ``limit`` UTF-8 bytes, whole characters only."""
    data = text.encode()
    if len(data) <= limit:
        return [text]
    out = []
    while data:
        cut = min(limit, len(data))
        while cut < len(data) and cut > 0 and (data[cut] & 0xC0) == 0x80:
            cut -= 1
        out.append(data[:cut].decode())
        data = data[cut:]
    return out


def _size(text: str) -> int:
    """Bytes ``text`` takes on the wire (names may be Unicode; most are ASCII)."""
    return len(text) if text.isascii() else len(text.encode())


def _short(text: str, limit: int = 300) -> str:
    """Reasons and away texts from other doors may be long; IRC lines may not."""
    return _chunks(text, limit)[0] if len(text) * 4 > limit else text


def _beside(text: str, limit: int, *around: str) -> str:
    """``text`` cut to ``limit`` bytes, and to what a line that holds ``around``
    (a source, a command, a channel) leaves of 512."""
    left = MAX_LINE - 16 - sum(map(_size, around))  # spaces, colons, CR LF
    return _short(text, min(limit, left))


def prefix(u: UserRef) -> str:
    """The source of a line about ``u``; the server itself (``Hub.server_ref``, the
    only negative sid) is just its name."""
    if u.sid < 0:
        return u.name
    return f"{u.name}!{u.username}@{u.host}"


#: The services the door answers for: folded name -> (name, what it is).
SERVICES = {
    nickserv.FOLDED: (nickserv.NAME, "Account services"),
    chanserv.FOLDED: (chanserv.NAME, "Channel services"),
}


def _iso(ts: float) -> str:
    return (
        datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{int(ts * 1000) % 1000:03d}Z"
    )


NO_CAPS: frozenset[str] = frozenset()
PLAIN_VARIANT = ("irc", False, False, False)
#: One variant tuple per combination, shared by every connection that has it.
_VARIANTS: dict[tuple[object, ...], tuple[object, ...]] = {PLAIN_VARIANT: PLAIN_VARIANT}


@dataclass
class _Label:
    label: str
    lines: list[bytes] = field(default_factory=list)
    #: What answers the command when it gives no reply at once: "history" (the store's
    #: answer carries the label itself), "account" (the password check's answer gets it).
    then: str = ""


#: Text of 433 for a nick that belongs to an account.
RESERVED_TEXT = "Nickname is registered to an account: log in with SASL or /msg NickServ IDENTIFY"


class IrcDoor:
    door: ClassVar[str] = "irc"

    # Thousands of these sit idle at once: slots, and nothing made before it is needed.
    __slots__ = (
        "_auth_via",
        "_batch_seq",
        "_buf",
        "_label",
        "_last_quit",
        "_late_label",
        "_ping_token",
        "_sasl",
        "account",
        "cap_version",
        "caps",
        "channels",
        "host",
        "info",
        "negotiating",
        "nick",
        "oper",
        "port",
        "realname",
        "registered",
        "sid",
        "tick_interval",
        "username",
        "variant",
    )

    def __init__(self, sid: int, host: str, port: int, info: IrcInfo | None = None) -> None:
        self.sid = sid
        self.host = host
        self.port = port
        self.info = info or IrcInfo()
        self._buf = LineBuffer(MAX_INPUT)
        self.registered = False
        self.nick = ""
        self.username = ""
        self.realname = ""
        self.negotiating = False
        self.cap_version = 0
        #: Enabled capabilities; replaced (not changed in place) on CAP REQ.
        self.caps: frozenset[str] = NO_CAPS
        #: Folded room name -> room name; made on the first join.
        self.channels: dict[str, str] | None = None
        self.oper = False
        # Often enough that neither the PING nor the timeout after it comes late.
        self.tick_interval: float | None = min(self.info.ping_interval, self.info.ping_timeout) / 2
        self._ping_token: str | None = None
        self._last_quit = -1
        self._label: _Label | None = None
        self._batch_seq = 0
        self.variant: object = PLAIN_VARIANT
        #: The account this connection is logged in to (SASL, NickServ, REGISTER).
        self.account: str | None = None
        #: An ``AUTHENTICATE PLAIN`` exchange waiting for its payload.
        self._sasl: PlainExchange | None = None
        #: Who asked for the account command being checked: "sasl", "nickserv" or
        #: "register". One at a time: the server holds input while a password is checked.
        self._auth_via: str | None = None
        #: The label of a labeled account command whose answer is still to come.
        self._late_label: str | None = None

    # -- the door protocol ----------------------------------------------------

    def start(self) -> list[Input]:
        return []

    def shared_key(self, event: Event) -> object | None:
        """Someone else's join, part or kick renders the same for every client with the
        same variant (and extended-join). A QUIT does not: it is sent once per client.
        Nor does anything this client's labeled command causes (its kick, say):
        the label takes its copy, which must not become everyone's."""
        if self._label is not None:
            return None
        t = type(event)
        if t is Joined and event.user.sid != self.sid:  # type: ignore[union-attr]
            return (self.variant, "extended-join" in self.caps)
        if t is Left and event.user.sid != self.sid and event.kind != "quit":  # type: ignore[union-attr]
            return self.variant
        return None

    def render_error_close(self, reason: str) -> bytes:
        return build("ERROR", f"Closing Link: {self.host} ({reason})")

    def render_flood_notice(self) -> bytes:
        return self._notice("You are sending too fast: your commands are being delayed")

    def tick(self, idle: float) -> list[Input]:
        """Called every ``tick_interval`` seconds with the time since the client last spoke."""
        if not self.registered:
            return []
        if idle >= self.info.ping_interval + self.info.ping_timeout and self._ping_token:
            return [c.Quit(f"Ping timeout: {int(idle)} seconds")]
        if idle >= self.info.ping_interval and self._ping_token is None:
            self._ping_token = secrets.token_hex(4)
            return [build("PING", self._ping_token)]
        return []

    def receive_data(self, data: bytes) -> list[Input]:
        out: list[Input] = []
        self._ping_token = None  # any traffic shows the peer is alive
        for raw in self._buf.feed(data):
            if isinstance(raw, TooLong):
                out.append(self._num(n.ERR_INPUTTOOLONG, "Input line was too long"))
                continue
            if not raw.strip():
                continue
            if self.registered and raw[0] != 64:  # no tags ("@"): maybe the hot path
                fast = self._fast_message(raw)
                if fast is not None:
                    out.append(fast)
                    continue
            try:
                line = parse(raw)
            except IrcParseError as err:
                if str(err) in ("line too long", "tags too long"):
                    out.append(self._num(n.ERR_INPUTTOOLONG, "Input line was too long"))
                continue
            out.append(Deferred(partial(self._run_line, line)))
        return out

    def _fast_message(self, raw: bytes) -> Input | None:
        """A plain ``PRIVMSG``/``NOTICE`` to one target from a registered client, straight
        to a command: the hot path skips the general parser. None: take the long way."""
        if raw.startswith(b"PRIVMSG "):
            kind: c.MessageKind = "say"
            rest = raw[8:]
        elif raw.startswith(b"NOTICE "):
            kind = "notice"
            rest = raw[7:]
        else:
            return None
        target, sep, body = rest.partition(b" :")
        if not sep or not body or not target or b" " in target or b"," in target:
            return None
        if len(target) == 8 and target.lower() in (b"nickserv", b"chanserv"):
            return None  # never to the hub: the door answers for the services
        if len(raw) > MAX_LINE - 2 or b"\x00" in body:
            return None
        try:
            text = body.decode()
            name = target.decode()
        except UnicodeDecodeError:
            return None
        if kind == "say" and text.startswith("\x01ACTION "):
            kind = "action"
            text = text[8:].rstrip("\x01")
        if name[0] == "#":
            return c.Say(name[1:], text, kind) if len(name) > 1 else None
        return c.Tell(name, text, kind)

    def _run_line(self, line: Line) -> list[Input]:
        """A line's inputs, worked out when its turn comes (after what came before it ran)."""
        label = line.tags.get("label") if "labeled-response" in self.caps else None
        items = self._dispatch(line)
        if label is None or not self.registered:
            return items
        then = ""
        for item in items:
            kind = type(item)
            if kind in c.ACCOUNT_COMMANDS:
                then = "account"
            elif kind is c.FetchHistory or kind is c.FetchTargets:
                then = "history"
        return [self._begin_label(label, then), *items, self._end_label]

    # -- labeled-response --------------------------------------------------------

    def _begin_label(self, label: str, then: str = "") -> Callable[[], bytes]:
        def begin() -> bytes:
            self._label = _Label(label, then=then)
            return b""

        return begin

    def _end_label(self) -> bytes:
        lab, self._label = self._label, None
        if lab is None:
            return b""
        lines = lab.lines
        tag = {"label": lab.label}
        if not lines:
            if lab.then == "account":
                self._late_label = lab.label  # the answer comes when the password is checked
                return b""
            if lab.then == "history":
                return b""  # the store's answer carries the label
            return build("ACK", source=self.info.server, tags=tag)
        if len(lines) == 1:
            return _add_tags(lines[0], tag)
        if "batch" not in self.caps:
            return b"".join(lines)  # no batch to group them in: plain replies
        self._batch_seq += 1
        ref = f"L{self._batch_seq}"
        start = build("BATCH", f"+{ref}", "labeled-response", source=self.info.server, tags=tag)
        # Lines of a batch nested in this one (history played back on JOIN) keep their own.
        body = b"".join(x if _in_batch(x) else _add_tags(x, {"batch": ref}) for x in lines)
        return start + body + build("BATCH", f"-{ref}", source=self.info.server)

    def _labeled(self, label: str, data: bytes) -> bytes:
        """``data`` as the whole labeled response to an earlier command."""
        outer = self._label
        self._label = _Label(label)
        self._emit(data)
        out = self._end_label()
        self._label = outer
        return out

    def _emit(self, data: bytes) -> bytes:
        """Replies to this client: held back while a labeled command runs."""
        if self._label is not None and data:
            self._label.lines.extend(x + b"\r\n" for x in data.split(b"\r\n") if x)
            return b""
        return data

    # -- helpers -----------------------------------------------------------------

    def _me(self) -> str:
        return self.nick or "*"

    def _num(self, code: str, *params: str) -> bytes:
        return build(code, self._me(), *params, source=self.info.server)

    def _notice(self, text: str) -> bytes:
        return build("NOTICE", self._me(), text, source=self.info.server)

    def _local(self, data: bytes) -> Callable[[], bytes]:
        """A reply made now but sent in turn (and inside a label when there is one)."""
        return lambda: self._emit(data)

    def _tags(
        self, ts: float | None = None, msgid: int | None = None, account: str | None = None
    ) -> dict[str, str]:
        tags: dict[str, str] = {}
        if "server-time" in self.caps:
            tags["time"] = _iso(ts if ts is not None else time.time())
        if msgid is not None and "message-tags" in self.caps:
            tags["msgid"] = str(msgid)
        if account and "account-tag" in self.caps:
            tags["account"] = account
        return tags

    def _set_variant(self) -> None:
        key = (
            "irc",
            "server-time" in self.caps,
            "message-tags" in self.caps,
            "account-tag" in self.caps,
        )
        self.variant = _VARIANTS.setdefault(key, key)

    # -- commands ----------------------------------------------------------------

    def _dispatch(self, line: Line) -> list[Input]:
        cmd = line.command
        handler = _PRE.get(cmd)
        if handler is not None:
            return handler(self, line)
        if not self.registered:
            if cmd in _POST:
                return [self._local(self._num(n.ERR_NOTREGISTERED, "You have not registered"))]
            return []
        handler = _POST.get(cmd)
        if handler is None:
            return [self._local(self._num(n.ERR_UNKNOWNCOMMAND, cmd, "Unknown command"))]
        need = _MIN_PARAMS.get(cmd, 0)
        if len(line.params) < need or (need and not line.params[need - 1]):
            return [self._local(self._num(n.ERR_NEEDMOREPARAMS, cmd, "Not enough parameters"))]
        return handler(self, line)

    def _try_register(self) -> list[Input]:
        if self.registered or self.negotiating or not self.nick or not self.username:
            return []
        return [
            c.Register(
                self.nick,
                self.door,
                self.host,
                self.port,
                username=self.username,
                realname=self.realname,
                echo="echo-message" in self.caps,
            )
        ]

    def _cmd_cap(self, line: Line) -> list[Input]:
        if not line.params:
            return [self._local(self._num(n.ERR_NEEDMOREPARAMS, "CAP", "Not enough parameters"))]
        sub = line.params[0].upper()
        if sub == "LS":
            if not self.registered:
                self.negotiating = True
            version = line.params[1] if len(line.params) > 1 else ""
            self.cap_version = max(
                self.cap_version, int(version) if version.isascii() and version.isdigit() else 0
            )
            if self.cap_version >= 302:
                self.caps = self.caps | {"cap-notify"}
            return [self._local(self._cap_lines("LS", ls_tokens(self.cap_version)))]
        if sub == "LIST":
            return [self._local(self._cap_lines("LIST", sorted(self.caps)))]
        if sub == "REQ":
            if not self.registered:
                self.negotiating = True
            wanted = line.params[1].split() if len(line.params) > 1 else []
            names = [w.lstrip("-") for w in wanted]
            if not wanted or any(name not in CAPS for name in names):
                return [
                    self._local(
                        build("CAP", self._me(), "NAK", " ".join(wanted), source=self.info.server)
                    )
                ]
            echo_before = "echo-message" in self.caps
            caps = set(self.caps)
            for w in wanted:
                if w.startswith("-"):
                    caps.discard(w[1:])
                else:
                    caps.add(w)
            self.caps = frozenset(caps)
            self._set_variant()
            out: list[Input] = [
                self._local(
                    build("CAP", self._me(), "ACK", " ".join(wanted), source=self.info.server)
                )
            ]
            if self.registered and ("echo-message" in self.caps) != echo_before:
                out.append(c.SetEcho("echo-message" in self.caps))
            return out
        if sub == "END":
            if self.registered:
                return []
            self.negotiating = False
            if self._sasl is not None:
                # sasl 3.1: registration ends an unfinished exchange, without an account.
                self._sasl = None
                aborted = self._num(n.ERR_SASLABORTED, "SASL authentication aborted")
                return [self._local(aborted), *self._try_register()]
            return self._try_register()
        return [self._local(self._num(n.ERR_INVALIDCAPCMD, sub, "Invalid CAP command"))]

    def _cap_lines(self, sub: str, tokens: list[str]) -> bytes:
        """``CAP * LS`` replies, split over several lines (``*`` continuation) when long."""
        lines: list[list[str]] = [[]]
        size = 0
        for tok in tokens:
            if size + len(tok) + 1 > 400 and lines[-1]:
                lines.append([])
                size = 0
            lines[-1].append(tok)
            size += len(tok) + 1
        out = b""
        for i, group in enumerate(lines):
            more = ["*"] if i < len(lines) - 1 and self.cap_version >= 302 else []
            out += build("CAP", self._me(), sub, *more, " ".join(group), source=self.info.server)
        return out

    def _cmd_pass(self, line: Line) -> list[Input]:
        if self.registered:
            return [self._local(self._num(n.ERR_ALREADYREGISTERED, "You may not reregister"))]
        return []

    def _cmd_nick(self, line: Line) -> list[Input]:
        if not line.params or not line.params[0]:
            return [self._local(self._num(n.ERR_NONICKNAMEGIVEN, "No nickname given"))]
        nick = line.params[0]
        if not valid_name(nick):
            return [self._local(self._num(n.ERR_ERRONEUSNICKNAME, nick, "Erroneous nickname"))]
        if fold(nick) in SERVICES:
            return [
                self._local(
                    self._num(n.ERR_ERRONEUSNICKNAME, nick, "Nickname is reserved for services")
                )
            ]
        if self.registered:
            return [c.Rename(nick)]
        self.nick = nick
        return self._try_register()

    def _cmd_user(self, line: Line) -> list[Input]:
        if self.registered:
            return [self._local(self._num(n.ERR_ALREADYREGISTERED, "You may not reregister"))]
        if len(line.params) < 4 or not line.params[0]:
            return [self._local(self._num(n.ERR_NEEDMOREPARAMS, "USER", "Not enough parameters"))]
        ident = "".join(ch for ch in line.params[0] if ch.isalnum() or ch in "-_.")[: USERLEN - 1]
        self.username = "~" + (ident or "user")
        self.realname = line.params[3][:100] or self.username
        return self._try_register()

    def _cmd_ping(self, line: Line) -> list[Input]:
        if not line.params:
            return [self._local(self._num(n.ERR_NEEDMOREPARAMS, "PING", "Not enough parameters"))]
        return [
            self._local(build("PONG", self.info.server, line.params[-1], source=self.info.server))
        ]

    def _cmd_pong(self, line: Line) -> list[Input]:
        return []

    def _cmd_quit(self, line: Line) -> list[Input]:
        reason = line.params[0] if line.params else ""
        return [c.Quit(f"Quit: {reason}" if reason else "Quit")]

    def _cmd_join(self, line: Line) -> list[Input]:
        targets = line.params[0].split(",")
        keys = line.params[1].split(",") if len(line.params) > 1 else []
        if targets == ["0"]:
            return [c.LeaveAll()]
        out: list[Input] = []
        for i, chan in enumerate(targets):
            if not chan.startswith("#") or not valid_room(chan[1:]):
                out.append(self._local(self._num(n.ERR_NOSUCHCHANNEL, chan, "No such channel")))
                continue
            key = keys[i] if i < len(keys) and keys[i] else None
            # The limit is checked when this join's turn comes, after the
            # joins before it in the same line have been made.
            out.append(Deferred(partial(self._join_one, chan, key)))
        return out

    def _join_one(self, chan: str, key: str | None) -> list[Input]:
        joined = self.channels or {}
        if len(joined) >= CHANLIMIT and fold(chan[1:]) not in joined:
            return [
                self._local(
                    self._num(n.ERR_TOOMANYCHANNELS, chan, "You have joined too many channels")
                )
            ]
        return [c.Join(chan[1:], key, create=True)]

    def _room_of(self, chan: str) -> str | None:
        return chan[1:] if chan.startswith("#") and len(chan) > 1 else None

    def _cmd_part(self, line: Line) -> list[Input]:
        reason = line.params[1] if len(line.params) > 1 else ""
        out: list[Input] = []
        for chan in line.params[0].split(","):
            room = self._room_of(chan)
            if room is None:
                out.append(self._local(self._num(n.ERR_NOSUCHCHANNEL, chan, "No such channel")))
            else:
                out.append(c.Leave(room, reason))
        return out

    def _cmd_privmsg(self, line: Line) -> list[Input]:
        notice = line.command == "NOTICE"
        if not line.params or not line.params[0]:
            if notice:
                return []
            return [
                self._local(self._num(n.ERR_NORECIPIENT, f"No recipient given ({line.command})"))
            ]
        if len(line.params) < 2 or not line.params[1]:
            if notice:
                return []
            return [self._local(self._num(n.ERR_NOTEXTTOSEND, "No text to send"))]
        text = line.params[1]
        kind: c.MessageKind = "notice" if notice else "say"
        if text.startswith("\x01ACTION ") and not notice:
            kind = "action"
            text = text[8:].rstrip("\x01")
        out: list[Input] = []
        for target in line.params[0].split(",")[:MAXTARGETS]:
            room = self._room_of(target)
            if fold(target) == nickserv.FOLDED:
                if not notice:
                    out.extend(self._to_nickserv(line.params[1]))
            elif fold(target) == chanserv.FOLDED:
                if not notice:
                    out.extend(self._to_chanserv(line.params[1]))
            elif room is not None:
                out.append(c.Say(room, text, kind))
            elif target.startswith("#"):
                if not notice:
                    out.append(
                        self._local(self._num(n.ERR_NOSUCHCHANNEL, target, "No such channel"))
                    )
            else:
                out.append(c.Tell(target, text, kind))
        return out

    def _cmd_tagmsg(self, line: Line) -> list[Input]:
        """Relay client-only tags (``+typing`` and the like); other tags are the server's."""
        tags = tuple((k, v) for k, v in line.tags.items() if k.startswith("+"))
        if not line.params or not tags or "message-tags" not in self.caps:
            return []
        out: list[Input] = []
        for target in line.params[0].split(",")[:MAXTARGETS]:
            room = self._room_of(target)
            out.append(c.Tag(room if room is not None else target, room is not None, tags))
        return out

    def _cmd_topic(self, line: Line) -> list[Input]:
        room = self._room_of(line.params[0])
        if room is None:
            return [self._local(self._num(n.ERR_NOSUCHCHANNEL, line.params[0], "No such channel"))]
        return [c.Topic(room, line.params[1] if len(line.params) > 1 else None)]

    def _cmd_names(self, line: Line) -> list[Input]:
        if not line.params:
            return [self._local(self._num(n.RPL_ENDOFNAMES, "*", "End of /NAMES list"))]
        chan = line.params[0].split(",")[0]
        room = self._room_of(chan)
        if room is None:
            return [self._local(self._num(n.RPL_ENDOFNAMES, chan, "End of /NAMES list"))]
        return [c.Names(room)]

    def _cmd_list(self, line: Line) -> list[Input]:
        return [c.ListRooms()]

    def _cmd_who(self, line: Line) -> list[Input]:
        mask = line.params[0] if line.params else "*"
        room = self._room_of(mask)
        if room is not None:
            return [c.ListUsers(room)]
        if fold(mask) in SERVICES:
            server = self.info.server
            name, what = SERVICES[fold(mask)]
            row = (name, server, server, name, "H", f"0 {what}")
            return [
                self._local(
                    self._num(n.RPL_WHOREPLY, "*", *row)
                    + self._num(n.RPL_ENDOFWHO, mask, "End of WHO list")
                )
            ]
        if valid_name(mask):
            return [c.Whois(mask, tag="who")]
        return [self._local(self._num(n.RPL_ENDOFWHO, mask, "End of WHO list"))]

    def _cmd_whois(self, line: Line) -> list[Input]:
        name = line.params[-1].split(",")[0]
        if fold(name) in SERVICES:
            return [self._local(self._whois_service(*SERVICES[fold(name)]))]
        return [c.Whois(name)]

    def _whois_service(self, name: str, what: str) -> bytes:
        server = self.info.server
        return b"".join(
            [
                self._num(n.RPL_WHOISUSER, name, name, server, "*", what),
                self._num(n.RPL_WHOISSERVER, name, server, self.info.description),
                self._num(n.RPL_WHOISOPERATOR, name, "is a network service"),
                self._num(n.RPL_ENDOFWHOIS, name, "End of /WHOIS list"),
            ]
        )

    def _cmd_mode(self, line: Line) -> list[Input]:
        target = line.params[0]
        room = self._room_of(target)
        if room is None:
            return self._user_mode(line)
        if len(line.params) == 1:
            return [c.SetModes(room)]
        changes: list[c.ModeChange] = []
        args = list(line.params[2:])
        add = True
        list_bans = False
        for ch in line.params[1]:
            if ch in "+-":
                add = ch == "+"
                continue
            if ch in LIST_MODES + ARG_MODES + PREFIX_MODES or (ch in SET_ARG_MODES and add):
                arg = args.pop(0) if args else None
                if ch == "b" and arg is None:
                    list_bans = True  # after the changes beside it (MODE #c +ob nick)
                    continue
                if ch == "k" and not add and arg is None:
                    arg = "*"
                changes.append(c.ModeChange(add, ch, arg))
            elif ch in FLAG_MODES + SET_ARG_MODES:
                changes.append(c.ModeChange(add, ch))
            else:
                return [self._local(self._num(n.ERR_UNKNOWNMODE, ch, "is unknown mode char to me"))]
            if len(changes) >= MODES_PER_LINE:
                break
        if list_bans:
            return (
                [c.SetModes(room, tuple(changes)), c.ListBans(room)]
                if changes
                else [c.ListBans(room)]
            )
        if not changes:
            return [c.SetModes(room)]
        return [c.SetModes(room, tuple(changes))]

    def _user_mode(self, line: Line) -> list[Input]:
        target = line.params[0]
        if fold(target) != fold(self.nick):
            if not valid_name(target):
                return [self._local(self._num(n.ERR_NOSUCHNICK, target, "No such nick/channel"))]
            # 401 if nobody has that nick, 502 if somebody does: the hub knows which.
            return [c.Whois(target, tag="umode")]
        modes = "+i" + ("o" if self.oper else "")
        if len(line.params) == 1:
            return [self._local(self._num(n.RPL_UMODEIS, modes))]
        change = line.params[1]
        if "-o" in change and self.oper:
            self.oper = False
            return [
                c.DropOper(),
                self._local(build("MODE", self.nick, "-o", source=self._self_prefix())),
            ]
        if any(ch not in "+-iwo" for ch in change):
            return [self._local(self._num(n.ERR_UMODEUNKNOWNFLAG, "Unknown MODE flag"))]
        return []

    def _self_prefix(self) -> str:
        return f"{self.nick}!{self.username}@{self.host}"

    def _cmd_kick(self, line: Line) -> list[Input]:
        room = self._room_of(line.params[0])
        if room is None:
            return [self._local(self._num(n.ERR_NOSUCHCHANNEL, line.params[0], "No such channel"))]
        reason = line.params[2][:KICKLEN] if len(line.params) > 2 else ""
        return [c.Kick(room, who, reason) for who in line.params[1].split(",")[:MAXTARGETS]]

    def _cmd_invite(self, line: Line) -> list[Input]:
        room = self._room_of(line.params[1])
        if room is None:
            return [self._local(self._num(n.ERR_NOSUCHCHANNEL, line.params[1], "No such channel"))]
        return [c.Invite(line.params[0], room)]

    def _cmd_away(self, line: Line) -> list[Input]:
        text = line.params[0][:AWAYLEN] if line.params and line.params[0] else None
        return [c.SetAway(text)]

    def _cmd_oper(self, line: Line) -> list[Input]:
        # Checked by the server off the event loop: the password may be an argon2id hash.
        return [c.OperUp(line.params[0], line.params[1])]

    # -- server operators: KILL, WALLOPS, DIE (the hub refuses others: 481) ----------

    def _cmd_kill(self, line: Line) -> list[Input]:
        name = line.params[0]
        reason = line.params[1][:KICKLEN] if len(line.params) > 1 else ""
        return [c.Kill(name, reason)]

    def _cmd_wallops(self, line: Line) -> list[Input]:
        return [c.Broadcast(line.params[0])]

    def _cmd_die(self, line: Line) -> list[Input]:
        return [c.Shutdown(line.params[0] if line.params else "")]

    def _cmd_motd(self, line: Line) -> list[Input]:
        return [self._local(self._motd())]

    def _cmd_lusers(self, line: Line) -> list[Input]:
        return [c.Stats()]

    def _cmd_version(self, line: Line) -> list[Input]:
        return [
            self._local(
                self._num(
                    n.RPL_VERSION, f"salas-{__version__}", self.info.server, "salas chat server"
                )
                + self._isupport()
            )
        ]

    def _cmd_time(self, line: Line) -> list[Input]:
        now = datetime.now(UTC).strftime("%A %B %d %Y -- %H:%M:%S +00:00")
        return [self._local(self._num(n.RPL_TIME, self.info.server, now))]

    def _cmd_ison(self, line: Line) -> list[Input]:
        names = tuple(w for p in line.params for w in p.split())
        return [c.Lookup(names, tag="ison")]

    def _cmd_userhost(self, line: Line) -> list[Input]:
        return [c.Lookup(tuple(line.params[:5]), tag="userhost")]

    # -- accounts: SASL, REGISTER, NickServ ------------------------------------------

    def _cmd_authenticate(self, line: Line) -> list[Input]:
        """IRCv3 SASL PLAIN, before or after registration."""
        if not line.params or not line.params[0]:
            return [
                self._local(
                    self._num(n.ERR_NEEDMOREPARAMS, "AUTHENTICATE", "Not enough parameters")
                )
            ]
        arg = line.params[0]
        if arg == "*":
            self._sasl = None
            return [self._local(self._num(n.ERR_SASLABORTED, "SASL authentication aborted"))]
        if "sasl" not in self.caps:
            return [self._local(self._sasl_failed())]
        if self.account is not None:
            self._sasl = None
            return [
                self._local(
                    self._num(n.ERR_SASLALREADY, "You have already authenticated using SASL")
                )
            ]
        exchange = self._sasl
        if exchange is None:
            if arg.upper() not in MECHANISMS:
                mechs = ",".join(MECHANISMS)
                return [
                    self._local(
                        self._num(n.RPL_SASLMECHS, mechs, "are available SASL mechanisms")
                        + self._sasl_failed()
                    )
                ]
            self._sasl = PlainExchange()
            return [self._local(build("AUTHENTICATE", "+"))]
        try:
            payload = exchange.feed(arg)
        except SaslTooLong:
            self._sasl = None
            return [self._local(self._num(n.ERR_SASLTOOLONG, "SASL message too long"))]
        if payload is None:
            return []  # a 400-byte chunk: more follows
        self._sasl = None
        try:
            name, password = decode_plain(payload)
        except SaslFailed:
            return [self._local(self._sasl_failed())]
        self._auth_via = "sasl"
        return [c.LogIn(name, password, "sasl")]

    def _sasl_failed(self) -> bytes:
        return self._num(n.ERR_SASLFAIL, "SASL authentication failed")

    def _cmd_register(self, line: Line) -> list[Input]:
        """IRCv3 draft/account-registration: ``REGISTER <account> <email> <password>``."""
        if not self.registered:
            return [
                self._local(
                    self._fail(
                        "REGISTER",
                        "COMPLETE_CONNECTION_REQUIRED",
                        "Finish connecting before registering an account",
                    )
                )
            ]
        if len(line.params) < 3 or not line.params[2]:
            return [
                self._local(self._num(n.ERR_NEEDMOREPARAMS, "REGISTER", "Not enough parameters"))
            ]
        account, _email, password = line.params[:3]
        if account != "*" and fold(account) != fold(self.nick):
            return [
                self._local(
                    self._fail(
                        "REGISTER",
                        "ACCOUNT_NAME_MUST_BE_NICK",
                        account,
                        "The account is named after your nick: use * or change nick first",
                    )
                )
            ]
        if self.account is not None:
            return [
                self._local(
                    self._fail(
                        "REGISTER",
                        "ALREADY_AUTHENTICATED",
                        self.account,
                        f"You are already logged in as {self.account}",
                    )
                )
            ]
        self._auth_via = "register"
        return [c.RegisterAccount(password)]

    def _cmd_nickserv(self, line: Line) -> list[Input]:
        """``NICKSERV ...`` and ``NS ...``: the same as ``PRIVMSG NickServ :...``."""
        return self._to_nickserv(" ".join(line.params))

    def _to_nickserv(self, text: str) -> list[Input]:
        out: list[Input] = []
        if "echo-message" in self.caps:
            echo = build(
                "PRIVMSG", nickserv.NAME, text, source=self._self_prefix(), tags=self._tags()
            )
            out.append(self._local(echo))
        what = nickserv.command(text)
        if isinstance(what, tuple):
            out.append(self._local(b"".join(self._ns(t) for t in what)))
            return out
        self._auth_via = "nickserv"
        out.append(what)
        return out

    def _cmd_chanserv(self, line: Line) -> list[Input]:
        """``CHANSERV ...`` and ``CS ...``: the same as ``PRIVMSG ChanServ :...``."""
        return self._to_chanserv(" ".join(line.params))

    def _to_chanserv(self, text: str) -> list[Input]:
        out: list[Input] = []
        if "echo-message" in self.caps:
            echo = build(
                "PRIVMSG", chanserv.NAME, text, source=self._self_prefix(), tags=self._tags()
            )
            out.append(self._local(echo))
        what = chanserv.command(text)
        if isinstance(what, tuple):
            out.append(self._local(b"".join(self._cs(t) for t in what)))
            return out
        out.append(what)
        return out

    def _cs(self, text: str) -> bytes:
        """A NOTICE from ChanServ."""
        src = f"{chanserv.NAME}!{chanserv.NAME}@{self.info.server}"
        return build("NOTICE", self._me(), text, source=src, tags=self._tags())

    def _chanserv_failed(self, err: e.ChatError) -> bytes:
        match err:
            case e.NotServerOperator():
                return self._cs(
                    "You need to be a server operator to close a room (OPER <name> <password>)."
                )
            case e.NoSuchRoom(room=room):
                return self._cs(f"#{room} does not exist.")
            case e.RoomProtected(room=room):
                return self._cs(f"#{room} can't be closed: it stays open to everyone.")
        return self._cs(error_text(err) + ".")

    def _ns(self, text: str) -> bytes:
        """A NOTICE from NickServ."""
        src = f"{nickserv.NAME}!{nickserv.NAME}@{self.info.server}"
        return build("NOTICE", self._me(), text, source=src, tags=self._tags())

    def _fail(self, command: str, code: str, *rest: str) -> bytes:
        """An IRCv3 standard reply: ``FAIL COMMAND CODE [context...] :text``."""
        return build("FAIL", command, code, *rest, source=self.info.server)

    # -- history ---------------------------------------------------------------------

    def _cmd_chathistory(self, line: Line) -> list[Input]:
        label = line.tags.get("label") if "labeled-response" in self.caps else None
        try:
            cmd = chathistory.parse_request(line.params, "" if label is None else "L" + label)
        except chathistory.RequestError as err:
            return [self._local(self._fail("CHATHISTORY", err.code, *err.context, err.text))]
        if isinstance(cmd, c.FetchHistory) and not cmd.room and fold(cmd.target or "") in SERVICES:
            name = SERVICES[fold(cmd.target or "")][0]
            return [self._local(self._batch("chathistory", (name,), b"", None))]
        return [cmd]

    # -- rendering ----------------------------------------------------------------

    def render(self, ev: Event) -> bytes:
        t = type(ev)
        if t is Message and self.variant is PLAIN_VARIANT and self._label is None:
            fast = _plain_privmsg(ev)  # type: ignore[arg-type]
            if fast is not None:
                return fast
        if t is Closing:
            return self._render(ev)  # the connection closes now: no label will follow
        if self._label is not None and (
            (t is HistoryReply and ev.reason == "request") or t is HistoryTargets  # type: ignore[union-attr]
        ):
            # The answer to the labeled CHATHISTORY still running: its batch
            # carries the label itself (the label's own end adds nothing).
            return self._render(ev)
        late = self._late_label
        if late is not None and (
            t in _ACCOUNT_ANSWERS
            or (isinstance(ev, Failed) and isinstance(ev.command, c.ACCOUNT_COMMANDS))
        ):
            self._late_label = None
            return self._labeled(late, self._render(ev))
        return self._emit(self._render(ev))

    def _render(self, ev: Event) -> bytes:
        me = self.sid
        server = self.info.server
        match ev:
            case Message(id=mid, time=ts, room=room, sender=s, text=text, kind=kind):
                return self._message(
                    prefix(s), "#" + room, text, kind, self._tags(ts, mid, s.account)
                )
            case Private(id=mid, time=ts, sender=s, target=t, text=text, kind=kind):
                return self._message(prefix(s), t.name, text, kind, self._tags(ts, mid, s.account))
            case Tagged(sender=s, room=room, target=t, tags=ctags, time=ts):
                if "message-tags" not in self.caps:
                    return b""
                tags = {**dict(ctags), **self._tags(ts, account=s.account)}
                dest = "#" + room if room is not None else t.name if t is not None else "*"
                return build("TAGMSG", dest, source=prefix(s), tags=tags)
            case Joined(room=room, user=u, realname=real):
                if u.sid == me:
                    if self.channels is None:
                        self.channels = {}
                    self.channels[fold(room)] = room
                tags = self._tags(account=u.account)
                if "extended-join" in self.caps:
                    return build(
                        "JOIN",
                        "#" + room,
                        u.account or "*",
                        real or u.name,
                        source=prefix(u),
                        tags=tags,
                    )
                return build("JOIN", "#" + room, source=prefix(u), tags=tags)
            case Left(room=room, user=u, kind=kind, reason=why, by=by):
                return self._left(room, u, kind, why, by)
            case Welcome(user=u):
                self.account = u.account
                return self._welcome(ev)
            case Renamed(old=o, new=new):
                if new.sid == me:
                    self.nick = new.name
                return build("NICK", new.name, source=prefix(o), tags=self._tags())
            case NameList(room=room, members=members, private=private):
                return self._names(room, members, private)
            case TopicIs(room=room, topic=topic, by=by, time=ts):
                if not topic:
                    return self._num(n.RPL_NOTOPIC, "#" + room, "No topic is set")
                topic = _beside(topic, TOPIC_MAX, server, self._me(), room)
                return self._num(n.RPL_TOPIC, "#" + room, topic) + self._num(
                    n.RPL_TOPICWHOTIME, "#" + room, by or server, str(int(ts))
                )
            case TopicChanged(room=room, topic=topic, by=by):
                source = prefix(by)
                topic = _beside(topic, TOPIC_MAX, source, room)
                return build("TOPIC", "#" + room, topic, source=source, tags=self._tags())
            case RoomList(rooms=rooms):
                out = [self._num(n.RPL_LISTSTART, "Channel", "Users  Name")]
                for r in rooms:
                    modes = "[+" + r.modes + "] "
                    topic = _short(r.topic, TOPIC_MAX - 30)  # a LIST line says more around it
                    out.append(self._num(n.RPL_LIST, "#" + r.name, str(r.count), modes + topic))
                out.append(self._num(n.RPL_LISTEND, "End of /LIST"))
                return b"".join(out)
            case UserList(room=room, users=people):
                chan = "#" + room if room else "*"
                out = [self._who_line(chan, u, u.modes) for u in people]
                out.append(self._num(n.RPL_ENDOFWHO, chan if room else "*", "End of WHO list"))
                return b"".join(out)
            case WhoisReply(user=u, rooms=rooms, tag=tag):
                if tag == "umode":
                    return self._num(n.ERR_USERSDONTMATCH, "Cant change mode for other users")
                if tag == "who":
                    chan = "#" + rooms[0][0] if rooms else "*"
                    modes = (
                        "o"
                        if rooms and rooms[0][1] == "@"
                        else "v"
                        if rooms and rooms[0][1] == "+"
                        else ""
                    )
                    return self._who_line(chan, u, modes) + self._num(
                        n.RPL_ENDOFWHO, u.name, "End of WHO list"
                    )
                return self._whois(u, rooms)
            case ModesChanged(room=room, by=by, changes=changes):
                return self._modes_changed(room, by, changes)
            case ModesAre(room=room, modes=modes, args=args, created_at=ts):
                return self._num(n.RPL_CHANNELMODEIS, "#" + room, "+" + modes, *args) + self._num(
                    n.RPL_CREATIONTIME, "#" + room, str(int(ts))
                )
            case BanList(room=room, masks=masks):
                out = [self._num(n.RPL_BANLIST, "#" + room, m) for m in masks]
                out.append(self._num(n.RPL_ENDOFBANLIST, "#" + room, "End of channel ban list"))
                return b"".join(out)
            case Found(users=found, tag=tag):
                if tag == "ison":
                    return self._num(n.RPL_ISON, " ".join(u.name for u in found))
                words = [
                    f"{u.name}{'*' if u.oper else ''}={'-' if u.away else '+'}{u.username}@{u.host}"
                    for u in found
                ]
                return self._num(n.RPL_USERHOST, " ".join(words))
            case StatsReply(users=users, rooms=rooms, opers=opers):
                return self._lusers(users, rooms, opers)
            case OperGranted():
                self.oper = True
                return self._num(n.RPL_YOUREOPER, "You are now an IRC operator") + build(
                    "MODE", self.nick, "+o", source=self._self_prefix()
                )
            case OperRevoked():
                self.oper = False
                return build("MODE", self.nick, "-o", source=self._self_prefix())
            case Invited(room=room, by=by, target=t):
                if t.sid == me:
                    return build("INVITE", t.name, "#" + room, source=prefix(by), tags=self._tags())
                if by.sid == me:
                    return self._num(n.RPL_INVITING, t.name, "#" + room)
                if "invite-notify" in self.caps:
                    return build("INVITE", t.name, "#" + room, source=prefix(by), tags=self._tags())
                return b""
            case IsAway(user=u, text=text):
                return self._num(n.RPL_AWAY, u.name, _short(text))
            case AwayChanged(user=u, text=text):
                if u.sid == me:
                    if text:
                        return self._num(n.RPL_NOWAWAY, "You have been marked as being away")
                    return self._num(n.RPL_UNAWAY, "You are no longer marked as being away")
                if "away-notify" not in self.caps:
                    return b""
                if text:
                    return build("AWAY", _short(text), source=prefix(u), tags=self._tags())
                return build("AWAY", source=prefix(u), tags=self._tags())
            case ServerNotice(text=text, by=by):
                # A broadcast from another door may be 4000 bytes: as many lines as it takes.
                tags = self._tags()
                said = (f"[{by}] " if by else "") + text
                return b"".join(
                    build("NOTICE", self._me(), part, source=server, tags=tags)
                    for part in _chunks(said, NOTICE_BYTES)
                )
            case Echoed(text=text):
                return self._notice(text)
            case Closing(reason=why, kind=kind):
                if kind == "shutdown":
                    why = "Server shutting down" + (f": {why}" if why else "")
                return self.render_error_close(why or "Quit")
            case Failed(error=err, command=cmd):
                if isinstance(cmd, c.CloseRoom):
                    return self._chanserv_failed(err)
                return self._failed(err, cmd)
            case OperDone(action="close", target=room, reason=why):
                return self._cs(f"#{room} is closed" + (f": {why}" if why else ""))
            case OperDone(target=name):
                return self._notice(f"{name} was removed from the server")
            case HistoryReply():
                return self._history(ev)
            case HistoryTargets(targets=targets, tag=tag):
                body = b"".join(
                    build(
                        "CHATHISTORY",
                        "TARGETS",
                        "#" + name if is_room else name,
                        _iso(ts),
                        source=server,
                    )
                    for name, is_room, ts in targets
                )
                return self._batch("draft/chathistory-targets", (), body, _label_of(tag))
            case AccountChanged(user=u, account=account):
                if "account-notify" not in self.caps:
                    return b""
                return build("ACCOUNT", account or "*", source=prefix(u), tags=self._tags())
            case LoggedIn(account=account, how=how):
                return self._logged_in(account, how)
            case AccountRegistered(account=account):
                via, self._auth_via = self._auth_via, None
                self.account = account
                done = self._logged_in_numeric(account)
                if via == "register":
                    return (
                        build("REGISTER", "SUCCESS", account, "Account created", source=server)
                        + done
                    )
                return done + self._ns(
                    f"{account} is now your account, and you are logged in. Next time, log in"
                    " with SASL, or with /msg NickServ IDENTIFY <password>."
                )
            case PasswordChanged():
                self._auth_via = None
                return self._ns("Your password has been changed.")
        return b""

    # -- accounts and history -------------------------------------------------------

    def _logged_in_numeric(self, account: str) -> bytes:
        mask = f"{self._me()}!{self.username or '*'}@{self.host}"
        return self._num(n.RPL_LOGGEDIN, mask, account, f"You are now logged in as {account}")

    def _logged_in(self, account: str, how: str) -> bytes:
        via, self._auth_via = self._auth_via, None
        self.account = account
        out = self._logged_in_numeric(account)
        if via == "sasl" or (via is None and how == "sasl"):
            return out + self._num(n.RPL_SASLSUCCESS, "SASL authentication successful")
        return out + self._ns(f"You are now identified for {account}.")

    def _account_failed(self, err: e.ChatError, cmd: c.Command) -> bytes:
        """A password check's refusal, in the words of whatever asked for it."""
        via, self._auth_via = self._auth_via, None
        if isinstance(cmd, c.LogIn) and (via == "sasl" or (via is None and cmd.how == "sasl")):
            return self._sasl_failed()  # the same for a wrong password and a missing account
        if isinstance(cmd, c.RegisterAccount) and via == "register":
            return self._register_refused(err)
        if isinstance(cmd, c.OperUp):
            if isinstance(err, e.TryLater):
                return self._num(n.ERR_PASSWDMISMATCH, f"Not now ({err.reason}): try again later")
            return self._num(n.ERR_PASSWDMISMATCH, "Password incorrect")
        match err:
            case e.LoginFailed():
                if isinstance(cmd, c.ChangePassword):
                    return self._ns("Your current password is not right; nothing changed.")
                return self._ns("Invalid account or password.")
            case e.AccountExists(name=name):
                return self._ns(f"{name} is already registered.")
            case e.PasswordInvalid(reason=why):
                return self._ns(f"That password can't be used: {why}.")
            case e.NotLoggedIn():
                return self._ns("You are not logged in.")
            case e.AlreadyLoggedIn(account=account):
                return self._ns(f"You are already logged in as {account}.")
            case e.TryLater(reason=why):
                return self._ns(f"Not now ({why}): try again in a moment.")
            case e.StoreUnavailable():
                return self._ns("Accounts can't be saved right now: try again later.")
        return self._ns(f"That did not work: {err}")

    def _register_refused(self, err: e.ChatError) -> bytes:
        """``FAIL REGISTER ...`` (IRCv3 draft/account-registration)."""
        me = self.nick or "*"
        match err:
            case e.AccountExists(name=name):
                return self._fail("REGISTER", "ACCOUNT_EXISTS", name, "Account already exists")
            case e.AlreadyLoggedIn(account=account):
                return self._fail(
                    "REGISTER", "ALREADY_AUTHENTICATED", account, "You are already logged in"
                )
            case e.PasswordInvalid(reason=why):
                code = "WEAK_PASSWORD" if why.startswith("at least") else "UNACCEPTABLE_PASSWORD"
                return self._fail("REGISTER", code, me, f"Password refused: {why}")
            case e.NameInvalid() | e.NameReserved():
                return self._fail(
                    "REGISTER", "BAD_ACCOUNT_NAME", me, "That name can't be an account"
                )
            case e.NotLoggedIn():
                return self._fail(
                    "REGISTER",
                    "COMPLETE_CONNECTION_REQUIRED",
                    "Finish connecting before registering an account",
                )
        return self._fail(
            "REGISTER", "TEMPORARILY_UNAVAILABLE", me, "Accounts can't be made right now; try later"
        )

    def _history_failed(self, err: e.ChatError, cmd: c.FetchHistory | c.FetchTargets) -> bytes:
        if isinstance(cmd, c.FetchTargets):
            return self._fail(
                "CHATHISTORY", "MESSAGE_ERROR", "TARGETS", "*", "Messages could not be retrieved"
            )
        sub = cmd.mode.upper()
        target = cmd.target or "*"
        if cmd.room and cmd.target:
            target = "#" + target
        if isinstance(err, e.NotLoggedIn):
            text = "Private history is kept for accounts: log in to see it"
            return self._fail("CHATHISTORY", "INVALID_TARGET", sub, target, text)
        if isinstance(err, e.NotInRoom | e.NoSuchRoom | e.RoomNameInvalid | e.NoSuchUser):
            text = "Messages could not be retrieved"
            return self._fail("CHATHISTORY", "INVALID_TARGET", sub, target, text)
        return self._fail(
            "CHATHISTORY", "MESSAGE_ERROR", sub, target, "Messages could not be retrieved"
        )

    def _history(self, ev: HistoryReply) -> bytes:
        if ev.reason == "join":
            # Clients that can ask for history do; the others are shown the latest.
            if "draft/chathistory" in self.caps or not ev.messages:
                return b""
            stamp = "server-time" not in self.caps
            body = b"".join(self._history_line(m, stamp) for m in ev.messages)
            return self._batch("chathistory", ("#" + ev.target,), body, None)
        target = "#" + ev.target if ev.room else ev.target
        body = b"".join(self._history_line(m, False) for m in ev.messages)
        return self._batch("chathistory", (target,), body, _label_of(ev.tag))

    def _history_line(self, m: Message | Private, stamp: bool) -> bytes:
        """A stored message as it was said. ``stamp``: its time in front of the text,
        for clients that would otherwise show it as said now."""
        text = _stamp(m.time, time.time()) + m.text if stamp else m.text
        tags = self._tags(m.time, m.id, m.sender.account)
        dest = "#" + m.room if isinstance(m, Message) else m.target.name
        return self._message(prefix(m.sender), dest, text, m.kind, tags)

    def _batch(self, kind: str, params: tuple[str, ...], body: bytes, label: str | None) -> bytes:
        """``body`` in an IRCv3 batch (plain lines for clients without ``batch``); with a
        label, as the whole labeled response to an earlier command."""
        if "batch" not in self.caps:
            return body if label is None else self._labeled(label, body)
        self._batch_seq += 1
        ref = f"H{self._batch_seq}"
        tags = {"label": label} if label is not None else None
        start = build("BATCH", f"+{ref}", kind, *params, source=self.info.server, tags=tags)
        lines = body.split(b"\r\n")
        inner = b"".join(_add_tags(x + b"\r\n", {"batch": ref}) for x in lines if x)
        return start + inner + build("BATCH", f"-{ref}", source=self.info.server)

    def _message(self, src: str, target: str, text: str, kind: str, tags: dict[str, str]) -> bytes:
        verb = "NOTICE" if kind == "notice" else "PRIVMSG"
        action = kind == "action"
        overhead = _size(src) + _size(target) + len(verb) + 8 + (10 if action else 0)
        out = []
        for part in _chunks(text, MAX_LINE - overhead):
            body = f"\x01ACTION {part}\x01" if action else part
            out.append(build(verb, target, body, source=src, tags=tags))
        return b"".join(out)

    def _left(self, room: str, u: UserRef, kind: str, why: str, by: UserRef | None) -> bytes:
        why = _short(why)
        me = u.sid == self.sid
        if me and self.channels:
            self.channels.pop(fold(room), None)
        chan = "#" + room
        tags = self._tags()
        if kind == "quit":
            if me or self._last_quit == u.sid:
                return b""  # one QUIT per person, however many rooms we shared
            self._last_quit = u.sid
            return build("QUIT", why or "Quit", source=prefix(u), tags=tags)
        if kind == "kick":
            src = prefix(by) if by is not None else self.info.server
            return build(
                "KICK", chan, u.name, why or (by.name if by else ""), source=src, tags=tags
            )
        if kind == "close":
            return build(
                "KICK", chan, u.name, why or "Room closed", source=self.info.server, tags=tags
            )
        if why:
            return build("PART", chan, why, source=prefix(u), tags=tags)
        return build("PART", chan, source=prefix(u), tags=tags)

    def _welcome(self, ev: Welcome) -> bytes:
        info = self.info
        self.registered = True
        self.nick = ev.user.name
        out = [
            self._num(
                n.RPL_WELCOME, f"Welcome to the {info.network} IRC Network {prefix(ev.user)}"
            ),
            self._num(
                n.RPL_YOURHOST, f"Your host is {info.server}, running version salas-{__version__}"
            ),
            self._num(n.RPL_CREATED, f"This server was created {info.created or 'today'}"),
            build(
                n.RPL_MYINFO,
                self.nick,
                info.server,
                f"salas-{__version__}",
                "iow",
                LIST_MODES + ARG_MODES + SET_ARG_MODES + FLAG_MODES + PREFIX_MODES,
                "bklov",
                source=info.server,
            ),
            self._isupport(),
            self._lusers(ev.online, ev.rooms, ev.opers),
            self._motd(),
        ]
        return b"".join(out)

    def _isupport(self) -> bytes:
        tokens = isupport(self.info)
        out = []
        for i in range(0, len(tokens), 12):
            out.append(
                self._num(n.RPL_ISUPPORT, *tokens[i : i + 12], "are supported by this server")
            )
        return b"".join(out)

    def _lusers(self, users: int, rooms: int, opers: int) -> bytes:
        return b"".join(
            [
                self._num(
                    n.RPL_LUSERCLIENT, f"There are {users} users and 0 invisible on 1 servers"
                ),
                self._num(n.RPL_LUSEROP, str(opers), "operator(s) online"),
                self._num(n.RPL_LUSERCHANNELS, str(rooms), "channels formed"),
                self._num(n.RPL_LUSERME, f"I have {users} clients and 0 servers"),
                self._num(
                    n.RPL_LOCALUSERS,
                    str(users),
                    str(users),
                    f"Current local users {users}, max {users}",
                ),
                self._num(
                    n.RPL_GLOBALUSERS,
                    str(users),
                    str(users),
                    f"Current global users {users}, max {users}",
                ),
            ]
        )

    def _motd(self) -> bytes:
        if not self.info.motd:
            return self._num(n.ERR_NOMOTD, "MOTD File is missing")
        out = [self._num(n.RPL_MOTDSTART, f"- {self.info.server} Message of the day - ")]
        out.extend(self._num(n.RPL_MOTD, f"- {text}") for text in self.info.motd)
        out.append(self._num(n.RPL_ENDOFMOTD, "End of /MOTD command."))
        return b"".join(out)

    def _rank(self, modes: str) -> str:
        if "multi-prefix" in self.caps:
            return "".join(PREFIX_CHARS[m] for m in PREFIX_MODES if m in modes)
        for m in PREFIX_MODES:
            if m in modes:
                return PREFIX_CHARS[m]
        return ""

    def _names(self, room: str, members: tuple[object, ...], private: bool) -> bytes:
        chan = "#" + room
        kind = "*" if private else "="
        full = "userhost-in-names" in self.caps
        head = _size(self.info.server) + _size(self._me()) + _size(chan) + 20
        out: list[bytes] = []
        batch: list[str] = []
        size = head
        for m in members:
            u = m.user  # type: ignore[attr-defined]
            word = self._rank(m.modes) + (prefix(u) if full else u.name)  # type: ignore[attr-defined]
            width = _size(word)
            if batch and size + width + 1 > MAX_LINE - 2:
                out.append(self._num(n.RPL_NAMREPLY, kind, chan, " ".join(batch)))
                batch, size = [], head
            batch.append(word)
            size += width + 1
        if batch:
            out.append(self._num(n.RPL_NAMREPLY, kind, chan, " ".join(batch)))
        out.append(self._num(n.RPL_ENDOFNAMES, chan, "End of /NAMES list"))
        return b"".join(out)

    def _who_line(self, chan: str, u: UserInfo, modes: str) -> bytes:
        flags = ("G" if u.away else "H") + ("*" if u.oper else "") + self._rank(modes)
        return self._num(
            n.RPL_WHOREPLY,
            chan,
            u.username,
            u.host,
            self.info.server,
            u.name,
            flags,
            f"0 {u.realname}",
        )

    def _whois(self, u: UserInfo, rooms: tuple[tuple[str, str], ...]) -> bytes:
        out = [self._num(n.RPL_WHOISUSER, u.name, u.username, u.host, "*", u.realname)]
        # Someone in many rooms: as many 319 lines as it takes (each within 512 bytes).
        line: list[str] = []
        size = 0
        for r, rank in rooms:
            word = rank + "#" + r
            if line and size + _size(word) > WHOIS_CHANNELS_BYTES:
                out.append(self._num(n.RPL_WHOISCHANNELS, u.name, " ".join(line)))
                line, size = [], 0
            line.append(word)
            size += _size(word) + 1
        if line:
            out.append(self._num(n.RPL_WHOISCHANNELS, u.name, " ".join(line)))
        out.append(self._num(n.RPL_WHOISSERVER, u.name, self.info.server, self.info.description))
        if u.oper:
            out.append(self._num(n.RPL_WHOISOPERATOR, u.name, "is an IRC operator"))
        if u.account:
            out.append(self._num(n.RPL_WHOISACCOUNT, u.name, u.account, "is logged in as"))
        if u.away:
            out.append(self._num(n.RPL_AWAY, u.name, _short(u.away)))
        if u.door != "irc":
            out.append(
                self._num(n.RPL_WHOISSPECIAL, u.name, f"is connected through the {u.door} door")
            )
        out.append(
            self._num(
                n.RPL_WHOISIDLE,
                u.name,
                str(int(u.idle)),
                str(int(u.connected_at)),
                "seconds idle, signon time",
            )
        )
        out.append(self._num(n.RPL_ENDOFWHOIS, u.name, "End of /WHOIS list"))
        return b"".join(out)

    def _modes_changed(self, room: str, by: UserRef, changes: tuple[c.ModeChange, ...]) -> bytes:
        letters = ""
        args: list[str] = []
        sign = ""
        for ch in changes:
            s = "+" if ch.add else "-"
            if s != sign:
                letters += s
                sign = s
            letters += ch.mode
            if ch.arg is not None and (ch.mode != "l" or ch.add):
                args.append(ch.arg)
        return build("MODE", "#" + room, letters, *args, source=prefix(by), tags=self._tags())

    def _failed(self, err: e.ChatError, cmd: c.Command | None) -> bytes:
        if isinstance(cmd, c.Say | c.Tell) and cmd.kind == "notice":
            return b""  # RFC 2812: no automatic replies to NOTICE, errors included
        if isinstance(cmd, c.Register):
            return self._register_failed(err)
        if isinstance(cmd, c.ACCOUNT_COMMANDS):
            return self._account_failed(err, cmd)
        if isinstance(cmd, c.FetchHistory | c.FetchTargets):
            return self._history_failed(err, cmd)
        if isinstance(cmd, c.Whois) and cmd.tag == "who":
            return self._num(n.RPL_ENDOFWHO, cmd.name, "End of WHO list")
        if isinstance(cmd, c.ListUsers) and isinstance(err, e.NoSuchRoom):
            return self._num(n.RPL_ENDOFWHO, "#" + err.room, "End of WHO list")
        if isinstance(cmd, c.Names) and isinstance(err, e.NoSuchRoom):
            return self._num(n.RPL_ENDOFNAMES, "#" + err.room, "End of /NAMES list")
        match err:
            case e.NameInvalid(name=name):
                return self._num(n.ERR_ERRONEUSNICKNAME, name, "Erroneous nickname")
            case e.NameTaken(name=name):
                return self._num(n.ERR_NICKNAMEINUSE, name, "Nickname is already in use")
            case e.NameReserved(name=name):
                return self._num(n.ERR_NICKNAMEINUSE, name, RESERVED_TEXT)
            case e.StoreUnavailable():
                target = "*"
                if isinstance(cmd, c.Say):
                    target = "#" + cmd.room if cmd.room else "*"
                elif isinstance(cmd, c.Tell):
                    target = cmd.target
                return self._num(
                    n.ERR_CANNOTSENDTOCHAN,
                    target,
                    "Cannot send: messages can't be stored right now, so none are taken;"
                    " try again soon",
                )
            case e.RoomNameInvalid(room=room) | e.NoSuchRoom(room=room):
                return self._num(n.ERR_NOSUCHCHANNEL, "#" + room, "No such channel")
            case e.RoomFull(room=room):
                return self._num(n.ERR_CHANNELISFULL, "#" + room, "Cannot join channel (+l)")
            case e.InviteOnly(room=room):
                return self._num(n.ERR_INVITEONLYCHAN, "#" + room, "Cannot join channel (+i)")
            case e.BadKey(room=room):
                return self._num(n.ERR_BADCHANNELKEY, "#" + room, "Cannot join channel (+k)")
            case e.Banned(room=room):
                return self._num(n.ERR_BANNEDFROMCHAN, "#" + room, "Cannot join channel (+b)")
            case e.NotInRoom(room=room):
                return self._num(
                    n.ERR_NOTONCHANNEL, "#" + room if room else "*", "You're not on that channel"
                )
            case e.NoSuchUser(name=name):
                return self._num(n.ERR_NOSUCHNICK, name, "No such nick/channel")
            case e.UserNotInRoom(name=name, room=room):
                return self._num(
                    n.ERR_USERNOTINCHANNEL, name, "#" + room, "They aren't on that channel"
                )
            case e.AlreadyInRoom(name=name, room=room):
                if isinstance(cmd, c.Join):
                    return b""  # joining a channel one is in is silently ignored
                return self._num(n.ERR_USERONCHANNEL, name, "#" + room, "is already on channel")
            case e.NotRoomOperator(room=room):
                return self._num(n.ERR_CHANOPRIVSNEEDED, "#" + room, "You're not channel operator")
            case e.NotServerOperator():
                return self._num(
                    n.ERR_NOPRIVILEGES, "Permission Denied- You're not an IRC operator"
                )
            case e.CannotSend(room=room):
                return self._num(n.ERR_CANNOTSENDTOCHAN, "#" + room, "Cannot send to channel")
            case e.TextInvalid(reason=why):
                if why == "empty":
                    return self._num(n.ERR_NOTEXTTOSEND, "No text to send")
                return self._num(n.ERR_INPUTTOOLONG, "Input line was too long")
            case e.UnknownMode(mode=m):
                return self._num(n.ERR_UNKNOWNMODE, m, "is unknown mode char to me")
            case e.ModeArgMissing() | e.LimitInvalid():
                return self._num(n.ERR_NEEDMOREPARAMS, "MODE", "Not enough parameters")
            case e.BanListFull(room=room):
                return self._num(n.ERR_BANLISTFULL, "#" + room, "b", "Channel ban list is full")
            case e.ModeArgInvalid(mode=m, reason=why) if isinstance(cmd, c.SetModes):
                arg = next((x.arg for x in cmd.changes if x.mode == m and x.arg), "*")
                return self._num(n.ERR_INVALIDMODEPARAM, "#" + cmd.room, m, arg, why)
            case e.RoomProtected(room=room):
                return self._num(
                    n.ERR_CHANOPRIVSNEEDED, "#" + room, "The lobby stays open to everyone"
                )
            case e.TooManyRooms():
                return self._num(
                    n.ERR_TOOMANYCHANNELS, "*", "There are too many channels on this server"
                )
            case e.DirectOff():
                return self._notice(error_text(err))
        return self._notice(f"That did not work: {err}")

    def _register_failed(self, err: e.ChatError) -> bytes:
        """Registration refused: the client stays unregistered and may try another nick."""
        bad = self.nick
        self.nick = ""
        if isinstance(err, e.NameTaken):
            return build(
                n.ERR_NICKNAMEINUSE, "*", bad, "Nickname is already in use", source=self.info.server
            )
        if isinstance(err, e.NameReserved):
            return build(n.ERR_NICKNAMEINUSE, "*", bad, RESERVED_TEXT, source=self.info.server)
        return build(
            n.ERR_ERRONEUSNICKNAME, "*", bad, "Erroneous nickname", source=self.info.server
        )


#: Events that answer an account command (a password check).
_ACCOUNT_ANSWERS = (LoggedIn, AccountRegistered, PasswordChanged, OperGranted)


def _label_of(tag: str) -> str | None:
    """The label a history request carried in its tag ("L" + label), if any."""
    return tag[1:] if tag.startswith("L") else None


def _stamp(ts: float, now: float) -> str:
    """``[13:05] `` (UTC), with the date when it is not today's."""
    when = datetime.fromtimestamp(ts, UTC)
    if when.date() == datetime.fromtimestamp(now, UTC).date():
        return when.strftime("[%H:%M] ")
    return when.strftime("[%Y-%m-%d %H:%M] ")


def _in_batch(line: bytes) -> bool:
    """The line already carries a ``batch`` tag (it belongs to a nested batch)."""
    if not line.startswith(b"@"):
        return False
    tags = line[1 : line.find(b" ")]
    return tags.startswith(b"batch=") or b";batch=" in tags


def _plain_privmsg(ev: Message) -> bytes | None:
    """The fan-out's hot path: a room's ``say`` to a client with no tag
    capabilities, in one format and one encode. None: the long way (actions,
    notices, lines that need splitting). The same bytes ``build`` makes."""
    text = ev.text
    if ev.kind != "say" or not text:
        return None
    s = ev.sender
    src = f"{s.name}!{s.username}@{s.host}"
    # Where ``_message`` would split the text (its overhead, counted the same way).
    room = ev.room
    names = len(src) + len(room) if src.isascii() and room.isascii() else _size(src) + _size(room)
    limit = MAX_LINE - (names + 1 + len("PRIVMSG") + 8)
    if len(text) * 4 > limit and len(text.encode()) > limit:
        return None
    trail = text if " " not in text and text[0] != ":" else ":" + text
    return f":{src} PRIVMSG #{room} {trail}\r\n".encode()


def _add_tags(line: bytes, tags: dict[str, str]) -> bytes:
    """Put more tags on a built line (which may already have some)."""
    extra = ";".join(f"{k}={escape_tag(v)}" for k, v in tags.items()).encode()
    if line.startswith(b"@"):
        return b"@" + extra + b";" + line[1:]
    return b"@" + extra + b" " + line


Handler = Callable[[IrcDoor, Line], list[Input]]

#: Commands allowed before registration.
_PRE: dict[str, Handler] = {
    "CAP": IrcDoor._cmd_cap,
    "PASS": IrcDoor._cmd_pass,
    "NICK": IrcDoor._cmd_nick,
    "USER": IrcDoor._cmd_user,
    "PING": IrcDoor._cmd_ping,
    "PONG": IrcDoor._cmd_pong,
    "QUIT": IrcDoor._cmd_quit,
    "AUTHENTICATE": IrcDoor._cmd_authenticate,
    "REGISTER": IrcDoor._cmd_register,
}
_POST: dict[str, Handler] = {
    "JOIN": IrcDoor._cmd_join,
    "PART": IrcDoor._cmd_part,
    "PRIVMSG": IrcDoor._cmd_privmsg,
    "NOTICE": IrcDoor._cmd_privmsg,
    "TAGMSG": IrcDoor._cmd_tagmsg,
    "TOPIC": IrcDoor._cmd_topic,
    "NAMES": IrcDoor._cmd_names,
    "LIST": IrcDoor._cmd_list,
    "WHO": IrcDoor._cmd_who,
    "WHOIS": IrcDoor._cmd_whois,
    "MODE": IrcDoor._cmd_mode,
    "KICK": IrcDoor._cmd_kick,
    "INVITE": IrcDoor._cmd_invite,
    "AWAY": IrcDoor._cmd_away,
    "OPER": IrcDoor._cmd_oper,
    "MOTD": IrcDoor._cmd_motd,
    "LUSERS": IrcDoor._cmd_lusers,
    "VERSION": IrcDoor._cmd_version,
    "TIME": IrcDoor._cmd_time,
    "USERHOST": IrcDoor._cmd_userhost,
    "ISON": IrcDoor._cmd_ison,
    "CHATHISTORY": IrcDoor._cmd_chathistory,
    "NICKSERV": IrcDoor._cmd_nickserv,
    "NS": IrcDoor._cmd_nickserv,
    "CHANSERV": IrcDoor._cmd_chanserv,
    "CS": IrcDoor._cmd_chanserv,
    "KILL": IrcDoor._cmd_kill,
    "WALLOPS": IrcDoor._cmd_wallops,
    "DIE": IrcDoor._cmd_die,
}
#: Parameters each command needs (ERR_NEEDMOREPARAMS below that).
_MIN_PARAMS: dict[str, int] = {
    "JOIN": 1,
    "PART": 1,
    "TOPIC": 1,
    "MODE": 1,
    "KICK": 2,
    "INVITE": 2,
    "WHOIS": 1,
    "OPER": 2,
    "KILL": 1,
    "WALLOPS": 1,
    "USERHOST": 1,
    "ISON": 1,
}

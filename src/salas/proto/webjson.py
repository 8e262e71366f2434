"""The web client's JSON protocol, spoken on the http door's ``/ws`` WebSocket.

Each text frame carries one JSON object with a ``"type"``; docs/protocols/web.md
describes every message both ways. Requests map onto the hub's commands
(core/commands.py) and the hub's events (core/events.py) come back as typed
messages. A request may carry an ``"id"`` (a string or a whole number): every
message that answers it carries the same value as ``"re"`` (``"id"`` in a
``message`` or ``private`` is the message's own id), and a request that has
no other answer gets ``{"type": "ok", "re": ...}``.

Totality: ``WebJson.receive`` takes any bytes. Whatever is wrong with them
(not UTF-8, not JSON, too deep, too large, not an object, an unknown type, a
missing or mistyped field) gives one ``error`` message, never an exception.

Pure: no sockets, no clock. Messages are encoded as compact UTF-8 JSON and
handed to ``frame`` (the http door makes each one a WebSocket text frame).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from functools import partial
from typing import Any, Literal

from salas.core import commands as c
from salas.core import errors as e
from salas.core.events import (
    AccountChanged,
    AccountRegistered,
    AwayChanged,
    CallSignalled,
    CallUpdate,
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
    OperGranted,
    OperRevoked,
    OverviewReply,
    PasswordChanged,
    Private,
    Renamed,
    RoomList,
    ServerNotice,
    TopicChanged,
    TopicIs,
    UserList,
    Welcome,
)
from salas.core.hub import MAX_LIMIT, MAX_SIGNAL
from salas.core.model import RoomInfo, UserInfo, UserRef
from salas.core.names import fold
from salas.proto.door import Deferred, Input
from salas.proto.texts import controls_refused, error_text

#: The largest request read, in bytes. A request is one small JSON object: the
#: longest text the hub accepts (4000 bytes) fits in it twice over even with
#: every character escaped; anything larger is a mistake or an attack.
MAX_REQUEST = 16 * 1024
#: Longest request id kept and echoed back (characters).
MAX_ID = 64
#: Ids are whole numbers JavaScript can hold exactly, or short strings.
MAX_ID_NUMBER = 2**53
#: Messages a ``history`` request gets when it does not say.
HISTORY_DEFAULT = 50
#: What the door calls itself in ``/who`` and the logs.
DOOR_NAME = "web"

RequestId = str | int
Obj = dict[str, Any]
KINDS: tuple[c.MessageKind, ...] = ("say", "action", "notice")


class BadRequest(Exception):
    """A request that can't be run: becomes an ``error`` message."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


def _jsonline(data: bytes) -> bytes:
    return data + b"\n"


def encode(msg: Obj) -> bytes:
    """One message as compact UTF-8 JSON (never ASCII-escaped: browsers read UTF-8)."""
    return json.dumps(msg, ensure_ascii=False, separators=(",", ":")).encode()


def iso(ts: float) -> str:
    """ISO 8601 in UTC with milliseconds: ``2024-05-01T12:00:00.123Z``."""
    ms = int(ts * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def error_code(err: e.ChatError) -> str:
    """``RoomFull`` -> ``room_full``: the class name, for programs."""
    return _CAMEL.sub("_", type(err).__name__).lower()


# -- reading requests ---------------------------------------------------------------


def _text(value: str, key: str) -> str:
    # JSON can carry lone surrogates ("\ud800"), which no door can encode.
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            raise BadRequest("bad_request", f"{key} is not valid Unicode") from None
    return value


def _str(obj: Obj, key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise BadRequest("bad_request", f"{key} must be a string")
    return _text(value, key)


def _opt_str(obj: Obj, key: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest("bad_request", f"{key} must be a string")
    return _text(value, key)


def _opt_int(obj: Obj, key: str, low: int, high: int) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if type(value) is not int or not low <= value <= high:
        raise BadRequest("bad_request", f"{key} must be a whole number from {low} to {high}")
    return value


def _opt_bool(obj: Obj, key: str, default: bool) -> bool:
    value = obj.get(key, default)
    if type(value) is not bool:
        raise BadRequest("bad_request", f"{key} must be true or false")
    return value


def _kind(obj: Obj) -> c.MessageKind:
    value = obj.get("kind", "say")
    for kind in KINDS:
        if value == kind:
            return kind
    raise BadRequest("bad_request", "kind must be say, action or notice")


def _room(name: str) -> str:
    """``#tas`` and ``tas`` are the same room, as on the line door."""
    return name[1:] if name.startswith("#") and len(name) > 1 else name


def _opt_room(obj: Obj, key: str = "room") -> str | None:
    name = _opt_str(obj, key)
    return None if name is None else _room(name)


def _request_id(obj: Obj) -> RequestId | None:
    value = obj.get("id")
    if value is None:
        return None
    if type(value) is int and -MAX_ID_NUMBER <= value <= MAX_ID_NUMBER:
        return value
    if isinstance(value, str) and len(value) <= MAX_ID:
        return _text(value, "id")
    raise BadRequest("bad_request", f"id must be a whole number or a string of at most {MAX_ID}")


@dataclass(frozen=True, slots=True)
class Hello:
    name: str | None
    lobby: bool


@dataclass(frozen=True, slots=True)
class Ping:
    data: str | None


def _hello(obj: Obj) -> Hello:
    return Hello(_opt_str(obj, "name") or None, _opt_bool(obj, "lobby", True))


def _history(obj: Obj, tag: str) -> c.FetchHistory:
    room, person = _opt_room(obj), _opt_str(obj, "with")
    if (room is None) == (person is None):
        raise BadRequest("bad_request", "history needs room or with (one of them)")
    before = _opt_int(obj, "before", 1, MAX_ID_NUMBER)
    limit = _opt_int(obj, "limit", 1, 10_000) or HISTORY_DEFAULT
    target = room if room is not None else person
    if before is None:
        return c.FetchHistory(target, person is None, limit, tag=tag)
    return c.FetchHistory(target, person is None, limit, "before", c.Bound(id=before), tag=tag)


def _topic(obj: Obj) -> c.Topic:
    # No "text" (or null) asks for the topic; a string sets it ("" clears it).
    if "text" in obj and obj["text"] is not None:
        return c.Topic(_room(_str(obj, "room")), _str(obj, "text"))
    return c.Topic(_room(_str(obj, "room")))


def _who(obj: Obj) -> c.ListUsers:
    room = _opt_room(obj)
    return c.ListUsers(everyone=True) if room is None else c.ListUsers(room)


def _call_id(obj: Obj) -> int:
    value = obj.get("call")
    if type(value) is not int or not 1 <= value <= MAX_ID_NUMBER:
        raise BadRequest("bad_request", "call must be a call's id (a whole number)")
    return value


def _media(obj: Obj) -> Literal["audio", "video"]:
    value = obj.get("media", "audio")
    if value == "audio":
        return "audio"
    if value == "video":
        return "video"
    raise BadRequest("bad_request", "media must be audio or video")


def _call(obj: Obj, tag: str) -> c.CallStart:
    return c.CallStart(_str(obj, "to"), _media(obj), tag=tag)


def _call_answer(obj: Obj) -> c.CallAnswer:
    if type(obj.get("accept")) is not bool:
        raise BadRequest("bad_request", "accept must be true or false")
    return c.CallAnswer(_call_id(obj), obj["accept"])


def _call_signal(obj: Obj) -> c.CallSignal:
    """``data`` is any JSON (a session description, an ICE candidate): passed on
    compactly serialised, opaque to the hub, and read back for the other side."""
    call = _call_id(obj)
    if obj.get("data") is None:
        raise BadRequest("bad_request", "data is missing (any JSON but null)")
    try:
        data = json.dumps(obj["data"], ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (ValueError, RecursionError):
        raise BadRequest("bad_request", "data must be plain JSON (no NaN or Infinity)") from None
    data = _text(data, "data")
    if len(data.encode()) > MAX_SIGNAL:
        raise BadRequest("too_long", f"data is over {MAX_SIGNAL // 1024} KiB once serialised")
    return c.CallSignal(call, data)


def _create(obj: Obj) -> c.Create:
    return c.Create(
        _room(_str(obj, "room")),
        _opt_int(obj, "limit", 1, MAX_LIMIT),
        _opt_str(obj, "key") or None,
        _opt_bool(obj, "private", False),
    )


Built = c.Command | Hello | Ping
#: Request types: how each is read. ``tag`` is the request id, encoded, for the
#: requests whose answer comes later with it (history).
REQUESTS: dict[str, Callable[[Obj, str], Built]] = {
    "hello": lambda o, t: _hello(o),
    "ping": lambda o, t: Ping(_opt_str(o, "data")),
    "join": lambda o, t: c.Join(_room(_str(o, "room")), _opt_str(o, "key")),
    "create": lambda o, t: _create(o),
    "leave": lambda o, t: c.Leave(_opt_room(o), _opt_str(o, "reason") or ""),
    "say": lambda o, t: c.Say(_room(_str(o, "room")), _str(o, "text"), _kind(o)),
    "msg": lambda o, t: c.Tell(_str(o, "to"), _str(o, "text"), _kind(o)),
    "topic": lambda o, t: _topic(o),
    "list": lambda o, t: c.ListRooms(),
    "who": lambda o, t: _who(o),
    "history": _history,
    "register": lambda o, t: c.RegisterAccount(_str(o, "password")),
    "login": lambda o, t: c.LogIn(_opt_str(o, "name"), _str(o, "password")),
    "password": lambda o, t: c.ChangePassword(_str(o, "old"), _str(o, "new")),
    "nick": lambda o, t: c.Rename(_str(o, "name")),
    "away": lambda o, t: c.SetAway(_opt_str(o, "text") or None),
    "invite": lambda o, t: c.Invite(_str(o, "name"), _opt_room(o)),
    "kick": lambda o, t: c.Kick(_opt_room(o), _str(o, "name"), _opt_str(o, "reason") or ""),
    "echo": lambda o, t: c.Echo(_str(o, "text")),
    "oper": lambda o, t: c.OperUp(_str(o, "name"), _str(o, "password")),
    "quit": lambda o, t: c.Quit(_opt_str(o, "reason") or ""),
    # Server operators only (the hub refuses anyone else: not_server_operator).
    "close": lambda o, t: c.CloseRoom(_room(_str(o, "room")), _opt_str(o, "reason") or ""),
    "kill": lambda o, t: c.Kill(_str(o, "name"), _opt_str(o, "reason") or ""),
    "broadcast": lambda o, t: c.Broadcast(_str(o, "text")),
    "shutdown": lambda o, t: c.Shutdown(_opt_str(o, "reason") or ""),
    "overview": lambda o, t: c.Overview(),
    # Direct calls: the server relays only the signalling, between the two sides.
    "call": _call,
    "call_answer": lambda o, t: _call_answer(o),
    "call_signal": lambda o, t: _call_signal(o),
    "call_end": lambda o, t: c.CallEnd(_call_id(o), _opt_str(o, "reason") or ""),
}

#: Events that answer an account command (checked off the loop, answered later).
_ACCOUNT_ANSWERS = (LoggedIn, AccountRegistered, PasswordChanged, OperGranted)


def _tag(re_: RequestId | None) -> str:
    return "" if re_ is None else json.dumps(re_)


def _untag(tag: str) -> RequestId | None:
    if not tag:
        return None
    try:
        value = json.loads(tag)
    except ValueError:
        return None
    return value if isinstance(value, str | int) else None


# -- calls --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallSettings:
    """What ``welcome`` tells the browser about calls (``[direct]`` in the configuration)."""

    #: Calls allowed on this server.
    direct: bool = True
    #: ``RTCIceServer`` dictionaries for ``new RTCPeerConnection({iceServers})``.
    ice_servers: tuple[Obj, ...] = ()


def ice_servers(
    stun: list[str], turn: list[str], username: str = "", credential: str = ""
) -> tuple[Obj, ...]:
    """The ``[direct]`` STUN and TURN URLs as ``RTCIceServer`` dictionaries: one
    for the STUN servers, one for the TURN relays with their shared login."""
    found: list[Obj] = []
    if stun:
        found.append({"urls": list(stun)})
    if turn:
        relay: Obj = {"urls": list(turn)}
        if username:
            relay["username"] = username
        if credential:
            relay["credential"] = credential
        found.append(relay)
    return tuple(found)


def _signal_data(data: str) -> Any:
    """Call signalling as it was sent (this codec serialised it); anything else as a string."""
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        return data


# -- the codec ------------------------------------------------------------------------


class WebJson:
    """One ``/ws`` connection's side of the JSON protocol."""

    __slots__ = (
        "_calls",
        "_frame",
        "_late",
        "_re",
        "_re_later",
        "_re_used",
        "account",
        "host",
        "name",
        "port",
        "registered",
        "sid",
    )

    def __init__(
        self,
        sid: int,
        host: str,
        port: int,
        frame: Callable[[bytes], bytes] = _jsonline,
        calls: CallSettings | None = None,
    ) -> None:
        self.sid = sid
        self._calls = calls if calls is not None else CallSettings()
        self.host = host
        self.port = port
        self._frame = frame
        self.registered = False
        self.name = ""
        #: The account this connection is logged in to: marks its messages in history.
        self.account: str | None = None
        #: The id of the request running now: what its answers carry as "re".
        self._re: RequestId | None = None
        self._re_used = False
        #: The running request is answered later (history: the store's answer).
        self._re_later = False
        #: The id of an account request whose answer comes once the password is checked.
        self._late: RequestId | None = None

    # -- in -----------------------------------------------------------------------------

    def receive(self, payload: bytes) -> list[Input]:
        """One text frame's payload: inputs for the connection (total)."""
        if len(payload) > MAX_REQUEST:
            return [self.error("too_long", f"A request is at most {MAX_REQUEST} bytes")]
        try:
            obj = json.loads(payload.decode("utf-8"))
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            return [self.error("bad_json", "That was not JSON")]
        if not isinstance(obj, dict):
            return [self.error("bad_request", 'A request is a JSON object with a "type"')]
        try:
            re_ = _request_id(obj)
        except BadRequest as err:
            return [self.error(err.code, err.text)]
        kind = obj.get("type")
        build = REQUESTS.get(kind) if isinstance(kind, str) else None
        if build is None:
            if not isinstance(kind, str):
                text = 'A request needs a "type" (a string)'
            elif kind.isprintable():
                text = f"Unknown request type {kind[:40]!r}"
            else:
                text = "Unknown request type"
            return [self.error("unknown_type", text, re_)]
        try:
            built = build(obj, _tag(re_))
        except BadRequest as err:
            return [self.error(err.code, f"{kind}: {err.text}", re_)]
        if type(built) is c.Say or type(built) is c.Tell:
            refused = controls_refused(built.text)
            if refused is not None:
                failed = self._render(Failed(refused, built))
                assert failed is not None
                return [self._send(failed, re_)]
        # Worked out when its turn comes: a join sent together with hello runs after it.
        return [Deferred(partial(self._run, built, re_))]

    def _run(self, built: Built, re_: RequestId | None) -> list[Input]:
        if isinstance(built, Ping):
            pong: Obj = {"type": "pong"}
            if built.data is not None:
                pong["data"] = built.data
            return [self._send(pong, re_)]
        if isinstance(built, Hello):
            if self.registered:
                return [self.error("already_registered", "You have said hello already", re_)]
            cmd: c.Command = c.Register(
                built.name, DOOR_NAME, self.host, self.port, echo=True, lobby=built.lobby
            )
        elif not self.registered:
            return [self.error("not_registered", 'Say hello first: {"type": "hello"}', re_)]
        else:
            cmd = built
        if re_ is None:
            return [cmd]
        if type(cmd) in c.ACCOUNT_COMMANDS:
            return [partial(self._expect_late, re_), cmd]
        return [partial(self._begin, re_, type(cmd) is c.FetchHistory), cmd, self._end]

    def _expect_late(self, re_: RequestId) -> bytes:
        self._late = re_
        return b""

    def _begin(self, re_: RequestId, later: bool) -> bytes:
        self._re, self._re_used, self._re_later = re_, False, later
        return b""

    def _end(self) -> bytes:
        re_, self._re = self._re, None
        if re_ is None or self._re_used or self._re_later:
            return b""
        return self._frame(encode({"type": "ok", "re": re_}))

    # -- out ----------------------------------------------------------------------------

    def error(self, code: str, text: str, re_: RequestId | None = None, **extra: Any) -> bytes:
        msg: Obj = {"type": "error", "code": code, "text": text, **extra}
        return self._send(msg, re_)

    def _send(self, msg: Obj, re_: RequestId | None) -> bytes:
        if re_ is not None:
            msg["re"] = re_
        return self._frame(encode(msg))

    def _out(self, msg: Obj) -> bytes:
        """An answer to this connection: tagged with the running request's id."""
        if self._re is not None:
            msg["re"] = self._re
            self._re_used = True
        return self._frame(encode(msg))

    def flood_notice(self) -> bytes:
        return self.error("flood", "You are sending too fast: your requests are being delayed")

    def closing(self, reason: str, kind: str) -> bytes:
        return self._out({"type": "closing", "reason": reason, "kind": kind})

    def shared_key(self, ev: Event) -> object | None:
        """Someone else's join or leave reads the same for every web client,
        except while a request runs (its answers carry its id)."""
        if self._re is not None:
            return None
        t = type(ev)
        if (t is Joined or t is Left) and ev.user.sid != self.sid:  # type: ignore[union-attr]
            return "webjson"
        return None

    def message(self, ev: Message) -> Obj:
        """A room message as every reader but its sender sees it (``own`` is
        true only in the sender's own copy): the same for every connection."""
        s = ev.sender
        return {
            "type": "message",
            "id": ev.id,
            "time": iso(ev.time),
            "room": ev.room,
            "from": s.name,
            "account": s.account,
            "text": ev.text,
            "kind": ev.kind,
            "own": s.sid == self.sid,
        }

    def _private(self, ev: Private) -> Obj:
        s = ev.sender
        return {
            "type": "private",
            "id": ev.id,
            "time": iso(ev.time),
            "from": s.name,
            "to": ev.target.name,
            "account": s.account,
            "text": ev.text,
            "kind": ev.kind,
            "own": s.sid == self.sid,
        }

    def _mark_mine(self, obj: Obj, sender: UserRef) -> Obj:
        """A message in history is ``own`` when this connection sent it (the
        store doesn't keep connections) or its account did."""
        if not obj["own"] and self.account is not None and sender.account is not None:
            obj["own"] = fold(sender.account) == fold(self.account)
        return obj

    def render(self, ev: Event) -> bytes:
        if type(ev) is Message:
            if ev.sender.sid == self.sid:
                # The sender's own copy (echo): only ever rendered for the sender.
                return self._out(self.message(ev))
            # Rendered once for many readers: nothing of this connection's state.
            return self._frame(encode(self.message(ev)))
        msg = self._render(ev)
        if msg is None:
            return b""
        t = type(ev)
        late = self._late
        if late is not None and (
            t in _ACCOUNT_ANSWERS
            or (isinstance(ev, Failed) and type(ev.command) in c.ACCOUNT_COMMANDS)
        ):
            self._late = None
            return self._send(msg, late)
        if t is HistoryReply or t is CallUpdate:
            tagged = _untag(ev.tag)  # type: ignore[union-attr]
            if tagged is not None:
                if tagged == self._re:
                    self._re_used = True  # the ringing answers the call request: no "ok"
                return self._send(msg, tagged)
        return self._out(msg)

    def _render(self, ev: Event) -> Obj | None:
        me = self.sid
        match ev:
            case Private():
                return self._private(ev)
            case Joined(room=r, user=u, count=n):
                return {
                    "type": "joined",
                    "room": r,
                    "who": u.name,
                    "account": u.account,
                    "count": n,
                    "own": u.sid == me,
                }
            case Left(room=r, user=u, count=n, kind=kind, reason=why, by=by):
                return {
                    "type": "left",
                    "room": r,
                    "who": u.name,
                    "count": n,
                    "kind": kind,
                    "reason": why,
                    "by": by.name if by is not None else None,
                    "own": u.sid == me,
                }
            case Welcome(user=u, online=n, server=srv, rooms=rooms, lobby=lobby):
                self.registered = True
                self.name = u.name
                self.account = u.account
                return {
                    "type": "welcome",
                    "name": u.name,
                    "account": u.account,
                    "server": srv,
                    "online": n,
                    "rooms": rooms,
                    "lobby": lobby,
                    "direct": self._calls.direct,
                    "ice_servers": [dict(i) for i in self._calls.ice_servers],
                }
            case Renamed(old=o, new=n):
                if n.sid == me:
                    self.name = n.name
                return {"type": "renamed", "old": o.name, "new": n.name, "own": n.sid == me}
            case TopicIs(room=r, topic=t, by=by, time=ts):
                return {
                    "type": "topic",
                    "room": r,
                    "text": t,
                    "by": by or None,
                    "time": iso(ts) if ts > 0 else None,
                    "changed": False,
                }
            case TopicChanged(room=r, topic=t, by=by, time=ts):
                return {
                    "type": "topic",
                    "room": r,
                    "text": t,
                    "by": by.name,
                    "time": iso(ts),
                    "changed": True,
                }
            case RoomList(rooms=rooms):
                return {"type": "rooms", "rooms": [_room_info(i) for i in rooms]}
            case UserList(room=r, users=people):
                return {"type": "members", "room": r, "members": [_person(u) for u in people]}
            case NameList(room=r, members=members):
                return {
                    "type": "members",
                    "room": r,
                    "members": [
                        {
                            "name": m.user.name,
                            "account": m.user.account,
                            "op": "o" in m.modes,
                            "voice": "v" in m.modes,
                            "away": m.away,
                        }
                        for m in members
                    ],
                }
            case HistoryReply(target=t, room=is_room, messages=msgs, reason=why):
                return {
                    "type": "history",
                    "target": t,
                    "room": is_room,
                    "reason": why,
                    "messages": [
                        self._mark_mine(
                            self.message(m) if type(m) is Message else self._private(m),  # type: ignore[arg-type]
                            m.sender,
                        )
                        for m in msgs
                    ],
                }
            case Echoed(text=t):
                return {"type": "echo", "text": t}
            case Failed(error=err):
                return {
                    "type": "error",
                    "code": error_code(err),
                    "text": error_text(err),
                    **_error_fields(err),
                }
            case Closing(reason=why, kind=kind):
                return {"type": "closing", "reason": why, "kind": kind}
            case ServerNotice(text=t, by=by):
                return {"type": "notice", "text": t, "by": by or None}
            case Invited(room=r, by=by, target=t):
                return {"type": "invited", "room": r, "by": by.name, "to": t.name}
            case IsAway(user=u, text=t):
                return {"type": "away", "who": u.name, "text": t, "own": False}
            case AwayChanged(user=u, text=t):
                return {"type": "away", "who": u.name, "text": t, "own": u.sid == me}
            case ModesChanged(room=r, by=by, changes=changes):
                return {
                    "type": "modes",
                    "room": r,
                    "by": by.name,
                    "changes": [{"add": ch.add, "mode": ch.mode, "arg": ch.arg} for ch in changes],
                }
            case CallUpdate(call=n, state=state, peer=p, media=media, reason=why):
                return {
                    "type": "call",
                    "call": n,
                    "state": state,
                    "peer": p.name,
                    "media": media,
                    "reason": why,
                }
            case CallSignalled(call=n, sender=p, data=data):
                data_ = _signal_data(data)
                return {"type": "call_signal", "call": n, "from": p.name, "data": data_}
            case OperGranted():
                return {"type": "oper"}
            case OperRevoked():
                return {"type": "deoper"}
            case OverviewReply(rooms=rooms, users=people):
                return {
                    "type": "overview",
                    "rooms": [_room_info(i) for i in rooms],
                    "users": [_online(u) for u in people],
                }
            case LoggedIn(account=a, name=n, how=how):
                self.name = n
                self.account = a
                return {"type": "logged_in", "account": a, "name": n, "how": how}
            case AccountRegistered(account=a):
                return {"type": "account_registered", "account": a}
            case PasswordChanged(account=a):
                return {"type": "password_changed", "account": a}
            case AccountChanged(user=u, account=a):
                if u.sid == me:
                    self.account = a
                return {"type": "account", "who": u.name, "account": a}
        return None


def _room_info(i: RoomInfo) -> Obj:
    return {
        "name": i.name,
        "count": i.count,
        "limit": i.limit,
        "topic": i.topic,
        "private": i.private,
        "keyed": i.keyed,
        "permanent": i.permanent,
    }


def _online(u: UserInfo) -> Obj:
    """Someone online as an operator's overview shows them."""
    return {
        "name": u.name,
        "door": u.door,
        "address": u.address,
        "rooms": list(u.rooms),
        "idle": int(u.idle),
        "account": u.account,
        "oper": u.oper,
        "away": u.away,
    }


def _person(u: UserInfo) -> Obj:
    return {
        "name": u.name,
        "account": u.account,
        "op": "o" in u.modes,
        "voice": "v" in u.modes,
        "away": u.away,
        "door": u.door,
        "idle": int(u.idle),
        "oper": u.oper,
    }


def _error_fields(err: e.ChatError) -> Obj:
    """The refusal's details (room, name, limit, ...) as fields of the error."""
    return {f.name: getattr(err, f.name) for f in fields(err)}

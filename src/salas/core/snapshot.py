"""The hub's whole state as JSON, and back.

A node joining a running cluster loads a running node's hub into a fresh
``Hub`` and applies the shared log from there, so a restored hub has to
answer every later command exactly as the original would: same names, guest
names (the random generator's state), ids, member order, modes, room tails,
accounts, calls. Everything that holds state is here except the journal
(what the original still owes its store is not the newcomer's to write) and
the settings (each node has its own).

``load`` is total: whatever it is given, it either restores the hub or raises
``BadSnapshot`` and leaves the hub as it was (everything is built and checked
first, then assigned in one go).
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar, get_args

from salas.core.commands import CallMedia, MessageKind
from salas.core.events import Message
from salas.core.hub import Hub
from salas.core.model import Call, Room, User, UserRef
from salas.core.names import fold
from salas.core.records import AccountRecord

SNAPSHOT_SCHEMA = 1
#: Most users, rooms, accounts, calls or entries of any list a snapshot may hold.
MAX_ITEMS = 1_000_000


class BadSnapshot(ValueError):
    """The snapshot can't be loaded: malformed, inconsistent, or from a newer schema."""


#: Largest int accepted as a time (exact as a float, and in JavaScript).
_INT_TIME_MAX = 2**53

T = TypeVar("T")
K = TypeVar("K")
Check = Callable[[object, str], Any]

# -- checks: each takes a JSON value and where it is, returns it or raises ----------


def _bad(path: str, why: str) -> NoReturn:
    raise BadSnapshot(f"{path}: {why}" if path else why)


def _int(v: object, path: str) -> int:
    # ``type(v) is int``: a bool is an int to isinstance, and never one here.
    if type(v) is not int:
        _bad(path, "expected an integer")
    return v


def _num(v: object, path: str) -> float:
    """A time: an int or a finite float, kept as it is (``0`` and ``0.0`` show differently).
    An int is bounded so that arithmetic with float times can't overflow later."""
    if type(v) is int:
        if abs(v) > _INT_TIME_MAX:
            _bad(path, "number out of range")
        return v
    if type(v) is not float or not math.isfinite(v):
        _bad(path, "expected a finite number")
    return v


def _str(v: object, path: str) -> str:
    if type(v) is not str:
        _bad(path, "expected a string")
    if not v.isascii():
        # JSON can carry lone surrogates ("\ud800"); the hub never holds one (no door can send it).
        try:
            v.encode()
        except UnicodeEncodeError:
            _bad(path, "not valid Unicode text")
    return v


def _bool(v: object, path: str) -> bool:
    if type(v) is not bool:
        _bad(path, "expected true or false")
    return v


def _opt(check: Callable[[object, str], T]) -> Callable[[object, str], T | None]:
    def checked(v: object, path: str) -> T | None:
        return None if v is None else check(v, path)

    return checked


def _one_of(*allowed: str) -> Check:
    def checked(v: object, path: str) -> str:
        if type(v) is not str or v not in allowed:
            _bad(path, f"expected one of {', '.join(allowed)}")
        return v

    return checked


def _list(v: object, path: str, size: int | None = None) -> list[Any]:
    if type(v) is not list:
        _bad(path, "expected a list")
    if size is not None and len(v) != size:
        _bad(path, f"expected {size} items")
    if len(v) > MAX_ITEMS:
        _bad(path, f"more than {MAX_ITEMS} items")
    return v


def _obj(v: object, path: str, keys: frozenset[str]) -> dict[str, Any]:
    if type(v) is not dict:
        _bad(path, "expected an object")
    if v.keys() != keys:
        missing = sorted(keys - v.keys())
        extra = sorted(str(k) for k in v.keys() - keys)
        _bad(path, f"missing {missing}" if missing else f"unknown keys {extra}")
    return v


def _fields(v: object, path: str, checks: dict[str, Check]) -> dict[str, Any]:
    """An object with exactly these keys, each checked."""
    raw = _obj(v, path, frozenset(checks))
    return {k: check(raw[k], f"{path}.{k}") for k, check in checks.items()}


# -- what is kept of each kind of thing ------------------------------------------------
# The tables list every dataclass field; a test compares them with
# ``dataclasses.fields``, so a new field can't be forgotten here.

_REF: dict[str, Check] = {
    "sid": _int,
    "name": _str,
    "username": _str,
    "host": _str,
    "account": _opt(_str),
}


def _ref(v: object, path: str) -> UserRef:
    return UserRef(**_fields(v, path, _REF))


_MESSAGE: dict[str, Check] = {
    "id": _int,
    "time": _num,
    "room": _str,
    "sender": _ref,
    "text": _str,
    "kind": _one_of(*get_args(MessageKind)),
}

#: User fields kept as plain values; ``rooms`` is a list of room keys, in join order.
_USER: dict[str, Check] = {
    "sid": _int,
    "name": _str,
    "door": _str,
    "host": _str,
    "port": _int,
    "username": _str,
    "realname": _str,
    "connected_at": _num,
    "last_active": _num,
    "echo": _bool,
    "oper": _bool,
    "account": _opt(_str),
    "away": _opt(_str),
}
USER_FIELDS = frozenset({*_USER, "rooms"})
#: Rebuilt, not kept: ``ref`` by ``User.refresh()``.
USER_DERIVED = frozenset({"ref"})

#: Room fields kept as plain values; ``members``, ``bans``, ``invited`` and
#: ``recent`` have their own shapes.
_ROOM: dict[str, Check] = {
    "name": _str,
    "key": _str,
    "created_at": _num,
    "limit": _opt(_int),
    "password": _opt(_str),
    "private": _bool,
    "topic": _str,
    "topic_by": _str,
    "topic_at": _num,
    "topic_locked": _bool,
    "no_external": _bool,
    "moderated": _bool,
    "permanent": _bool,
    "owner": _opt(_str),
    "empty_since": _opt(_num),
    "id": _int,
}
ROOM_FIELDS = frozenset({*_ROOM, "members", "bans", "invited", "recent"})
#: Rebuilt, not kept: the members tuple cache.
ROOM_DERIVED = frozenset({"_recipients"})

_ACCOUNT: dict[str, Check] = {
    "key": _str,
    "name": _str,
    "hash": _str,
    "oper": _bool,
    "created_at": _num,
}

_CALL: dict[str, Check] = {
    "id": _int,
    "caller": _int,
    "callee": _int,
    "media": _one_of(*get_args(CallMedia)),
    "started": _num,
    "accepted": _bool,
}

#: Every dataclass the snapshot keeps, and the fields it keeps of each.
KEPT_FIELDS: dict[type, frozenset[str]] = {
    User: USER_FIELDS | USER_DERIVED,
    Room: ROOM_FIELDS | ROOM_DERIVED,
    Message: frozenset(_MESSAGE),
    UserRef: frozenset(_REF),
    AccountRecord: frozenset(_ACCOUNT),
    Call: frozenset(_CALL),
}

#: The hub's attributes that hold state, all of them in the snapshot...
HUB_STATE = frozenset(
    {
        "users",
        "by_name",  # rebuilt from users
        "rooms",
        "accounts",
        "preauth",
        "store_ok",
        "calls",
        "_rng",
        "_msg_seq",
        "_room_seq",
        "_call_seq",
    }
)
#: ...and those that are not: the node's own settings, store loader and
#: unwritten journal, and the command table.
HUB_NOT_STATE = frozenset({"settings", "journal", "_recent", "_handlers"})

_TOP = frozenset(
    {
        "v",
        "msg_seq",
        "room_seq",
        "call_seq",
        "rng",
        "store_ok",
        "users",
        "rooms",
        "accounts",
        "preauth",
        "calls",
    }
)
_MODES = frozenset({"", "o", "v", "ov"})
#: ``Random.getstate()``: (version, 624 words and a position, the spare gauss value).
_MT_WORDS = 624


# -- dump --------------------------------------------------------------------------


def _plain(obj: object, checks: dict[str, Check]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in checks:
        value = getattr(obj, name)
        if type(value) is float and not math.isfinite(value):
            raise ValueError(f"{type(obj).__name__}.{name} is {value}: not JSON")
        out[name] = value
    return out


def _dump_message(m: Message) -> dict[str, Any]:
    out = _plain(m, _MESSAGE)
    out["sender"] = _plain(m.sender, _REF)
    return out


def dump(hub: Hub) -> dict[str, Any]:
    """The hub's state as plain JSON values (lists and dicts, no tuples, no NaN).

    Every room's tail is read from the store first (``Hub._tail``), so the
    snapshot holds all of them and the loading node needs no store to show them.
    """
    rooms = []
    for room in hub.rooms.values():
        r = _plain(room, _ROOM)
        r["members"] = [[sid, modes] for sid, modes in room.members.items()]
        r["bans"] = list(room.bans)
        r["invited"] = sorted(room.invited)
        r["recent"] = [_dump_message(m) for m in hub._tail(room)]
        rooms.append(r)
    users = []
    for user in hub.users.values():
        u = _plain(user, _USER)
        u["rooms"] = list(user.rooms)
        users.append(u)
    version, words, gauss = hub._rng.getstate()
    return {
        "v": SNAPSHOT_SCHEMA,
        "msg_seq": hub._msg_seq,
        "room_seq": hub._room_seq,
        "call_seq": hub._call_seq,
        "rng": [version, list(words), gauss],
        "store_ok": hub.store_ok,
        "users": users,
        "rooms": rooms,
        "accounts": [_plain(a, _ACCOUNT) for a in hub.accounts.values()],
        "preauth": [[sid, key] for sid, key in hub.preauth.items()],
        "calls": [_plain(k, _CALL) for k in hub.calls.values()],
    }


# -- load --------------------------------------------------------------------------


def _rng_state(v: object, path: str) -> tuple[Any, ...]:
    version, words, gauss = _list(v, path, 3)
    if _int(version, f"{path}[0]") != random.Random.VERSION:
        _bad(f"{path}[0]", f"expected generator version {random.Random.VERSION}")
    words = _list(words, f"{path}[1]", _MT_WORDS + 1)
    for i, w in enumerate(words):
        top = _MT_WORDS if i == _MT_WORDS else 2**32 - 1
        if not 0 <= _int(w, f"{path}[1][{i}]") <= top:
            _bad(f"{path}[1][{i}]", f"expected 0 to {top}")
    if gauss is not None and (type(gauss) is not float or not math.isfinite(gauss)):
        _bad(f"{path}[2]", "expected null or a finite float")
    state = (version, tuple(words), gauss)
    try:
        random.Random().setstate(state)  # a trial run on a throwaway generator
    except (ValueError, TypeError, OverflowError) as err:
        _bad(path, f"not a generator state ({err})")
    return state


def _room(v: object, path: str, tail_max: int) -> Room:
    raw = _obj(v, path, ROOM_FIELDS)
    kw = {k: check(raw[k], f"{path}.{k}") for k, check in _ROOM.items()}
    if fold(kw["name"]) != kw["key"]:
        _bad(f"{path}.key", f"{kw['key']!r} is not the folded name {kw['name']!r}")
    members: dict[int, str] = {}
    for i, pair in enumerate(_list(raw["members"], f"{path}.members")):
        where = f"{path}.members[{i}]"
        sid, modes = _list(pair, where, 2)
        sid = _int(sid, f"{where}[0]")
        if _str(modes, f"{where}[1]") not in _MODES:
            _bad(f"{where}[1]", f"expected one of {sorted(_MODES)}")
        if sid in members:
            _bad(where, f"sid {sid} twice")
        members[sid] = modes
    bans = [_str(b, f"{path}.bans[{i}]") for i, b in enumerate(_list(raw["bans"], f"{path}.bans"))]
    invited: set[str] = set()
    for i, name in enumerate(_list(raw["invited"], f"{path}.invited")):
        if fold(_str(name, f"{path}.invited[{i}]")) != name:
            _bad(f"{path}.invited[{i}]", "expected a folded name")
        invited.add(name)
    recent = _list(raw["recent"], f"{path}.recent")
    if len(recent) > tail_max:
        _bad(f"{path}.recent", f"more than history_on_join ({tail_max}) messages")
    tail = deque(
        (Message(**_fields(m, f"{path}.recent[{i}]", _MESSAGE)) for i, m in enumerate(recent)),
        maxlen=tail_max,
    )
    return Room(**kw, members=members, bans=bans, invited=invited, recent=tail)


def _user(v: object, path: str, rooms: dict[str, Room]) -> User:
    raw = _obj(v, path, USER_FIELDS)
    kw = {k: check(raw[k], f"{path}.{k}") for k, check in _USER.items()}
    user = User(**kw)  # __post_init__ builds ``ref`` (User.refresh)
    for i, key in enumerate(_list(raw["rooms"], f"{path}.rooms")):
        where = f"{path}.rooms[{i}]"
        room = rooms.get(_str(key, where))
        if room is None:
            _bad(where, f"no room {key!r}")
        if key in user.rooms:
            _bad(where, f"room {key!r} twice")
        if user.sid not in room.members:
            _bad(where, f"room {key!r} does not list sid {user.sid} as a member")
        user.rooms[key] = room
    return user


def _refill(mine: dict[K, T], theirs: dict[K, T]) -> None:
    mine.clear()
    mine.update(theirs)


def load(hub: Hub, data: object) -> None:
    """Restore ``dump``'s output into a fresh hub made with the same settings.

    Raises ``BadSnapshot`` (and changes nothing) for anything that is not a
    consistent snapshot of schema ``SNAPSHOT_SCHEMA`` or older. The journal
    and the settings are the hub's own and are left alone.
    """
    if type(data) is not dict:
        _bad("", "expected an object")
    v = _int(data.get("v"), "v")
    if v > SNAPSHOT_SCHEMA:
        _bad("", f"snapshot from a newer schema (v{v})")
    if v < 1:
        _bad("v", f"unknown schema {v}")
    raw = _obj(data, "", _TOP)
    seqs = {k: _int(raw[k], k) for k in ("msg_seq", "room_seq", "call_seq")}
    rng = _rng_state(raw["rng"], "rng")
    store_ok = _bool(raw["store_ok"], "store_ok")

    tail_max = hub.settings.history_on_join
    rooms: dict[str, Room] = {}
    for i, r in enumerate(_list(raw["rooms"], "rooms")):
        room = _room(r, f"rooms[{i}]", tail_max)
        if room.key in rooms:
            _bad(f"rooms[{i}]", f"room {room.key!r} twice")
        rooms[room.key] = room

    users: dict[int, User] = {}
    by_name: dict[str, User] = {}
    memberships = 0
    for i, u in enumerate(_list(raw["users"], "users")):
        user = _user(u, f"users[{i}]", rooms)
        if user.sid in users:
            _bad(f"users[{i}].sid", f"sid {user.sid} twice")
        key = fold(user.name)
        if key in by_name:
            _bad(f"users[{i}].name", f"{user.name!r} taken by sid {by_name[key].sid}")
        users[user.sid] = by_name[key] = user
        memberships += len(user.rooms)
    for key, room in rooms.items():
        for sid in room.members:
            if sid not in users:
                _bad(f"rooms[{key!r}].members", f"sid {sid} is nobody")
        memberships -= len(room.members)
    if memberships:
        # Every user's rooms list them (checked above); the counts then differ
        # only when a room lists someone who doesn't list the room.
        _bad("rooms", "a member does not list the room among their rooms")

    accounts: dict[str, AccountRecord] = {}
    for i, a in enumerate(_list(raw["accounts"], "accounts")):
        account = AccountRecord(**_fields(a, f"accounts[{i}]", _ACCOUNT))
        if fold(account.name) != account.key:
            _bad(f"accounts[{i}].key", f"{account.key!r} is not the folded name")
        if account.key in accounts:
            _bad(f"accounts[{i}]", f"account {account.key!r} twice")
        accounts[account.key] = account

    preauth: dict[int, str] = {}
    for i, pair in enumerate(_list(raw["preauth"], "preauth")):
        sid, key = _list(pair, f"preauth[{i}]", 2)
        sid = _int(sid, f"preauth[{i}][0]")
        if sid in preauth:
            _bad(f"preauth[{i}]", f"sid {sid} twice")
        preauth[sid] = _str(key, f"preauth[{i}][1]")

    calls: dict[int, Call] = {}
    for i, k in enumerate(_list(raw["calls"], "calls")):
        call = Call(**_fields(k, f"calls[{i}]", _CALL))
        if call.id in calls:
            _bad(f"calls[{i}]", f"call {call.id} twice")
        if call.caller == call.callee or not {call.caller, call.callee} <= users.keys():
            _bad(f"calls[{i}]", "expected two different users who are online")
        calls[call.id] = call

    # Everything checked: from here on nothing can fail. The hub's dicts are
    # kept (refilled), in case anything holds on to them.
    _refill(hub.users, users)
    _refill(hub.by_name, by_name)
    _refill(hub.rooms, rooms)
    _refill(hub.accounts, accounts)
    _refill(hub.preauth, preauth)
    _refill(hub.calls, calls)
    hub.store_ok = store_ok
    hub._msg_seq = seqs["msg_seq"]
    hub._room_seq = seqs["room_seq"]
    hub._call_seq = seqs["call_seq"]
    hub._rng.setstate(rng)

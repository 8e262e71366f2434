"""Snapshots of the hub: a node joining a cluster loads one and applies the log
from there, so a restored hub must answer every later command exactly as the
original does; and a bad snapshot must be refused whole, never half-loaded."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import re
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from salas.core import commands as c
from salas.core.errors import ChatError
from salas.core.events import HistoryReply, Message
from salas.core.hub import Hub, HubSettings, recipients_of
from salas.core.model import UserRef
from salas.core.names import fold
from salas.core.records import Loaded, RoomRecord
from salas.core.snapshot import (
    HUB_NOT_STATE,
    HUB_STATE,
    KEPT_FIELDS,
    SNAPSHOT_SCHEMA,
    BadSnapshot,
    dump,
    load,
)

SETTINGS = HubSettings(max_rooms=6, empty_room_ttl=30.0, history_on_join=3, offer_ttl=20.0)
#: Three sessions on node 0 and three on node 1 (``node << 32 | n``: ids past 2**32 in JSON).
SIDS = (1, 2, 3, 1 << 32 | 4, 1 << 32 | 5, 1 << 32 | 6)


def roundtrip(hub: Hub) -> dict[str, Any]:
    """The snapshot as another node receives it: through strict JSON."""
    data: dict[str, Any] = json.loads(json.dumps(dump(hub), allow_nan=False))
    return data


def restored(hub: Hub, hub_settings: HubSettings = SETTINGS) -> Hub:
    fresh = Hub(hub_settings)
    load(fresh, roundtrip(hub))
    return fresh


# -- nothing is forgotten ------------------------------------------------------


@pytest.mark.parametrize("cls", list(KEPT_FIELDS), ids=lambda cls: cls.__name__)
def test_the_snapshot_handles_every_field(cls: type) -> None:
    """A field added to User, Room (or what they hold) must be added to the snapshot too."""
    assert {f.name for f in dataclasses.fields(cls)} == KEPT_FIELDS[cls]


def test_the_snapshot_handles_every_hub_attribute() -> None:
    """A new attribute of Hub must be either in the snapshot or declared not state."""
    assert not HUB_STATE & HUB_NOT_STATE
    assert set(vars(Hub())) == HUB_STATE | HUB_NOT_STATE


# -- the key property: a restored hub acts as the original --------------------------

NAMES = st.sampled_from(["ann", "Ann", "bob", "cy", "Cy", "dee", "bad name", "nickserv", "ann2"])
#: ``@i``: whatever the session SIDS[i] is called when the step runs (guest names too).
AT = st.sampled_from([f"@{i}" for i in range(len(SIDS))])
WHO = st.one_of(NAMES, AT, AT)
ROOMS = st.sampled_from(["lobby", "r1", "R1", "r2", "r3", "r4", "bad room"])
MAYBE_ROOM = st.none() | ROOMS
TEXTS = st.sampled_from(["hi", "olá", "", "\x01ACTION waves\x01", "yo"])
KEYS = st.sampled_from([None, None, "k", "K"])
LIMITS = st.sampled_from([None, None, 1, 2, 0])
CALL_IDS = st.integers(1, 4)
REASONS = st.sampled_from(["", "bye"])
MODE = st.one_of(
    st.sampled_from(
        [
            c.ModeChange(True, "l", "1"),
            c.ModeChange(True, "l", "3"),
            c.ModeChange(False, "l"),
            c.ModeChange(True, "k", "k"),
            c.ModeChange(False, "k"),
            c.ModeChange(True, "i"),
            c.ModeChange(False, "i"),
            c.ModeChange(True, "m"),
            c.ModeChange(False, "m"),
            c.ModeChange(False, "t"),
            c.ModeChange(False, "n"),
            c.ModeChange(True, "b", "guest*"),
            c.ModeChange(True, "b", "*!*@h"),
            c.ModeChange(False, "b", "*!*@H"),
        ]
    ),
    st.builds(c.ModeChange, st.booleans(), st.sampled_from("ovb"), WHO),
)
CHANGES = st.lists(MODE, max_size=3).map(tuple)

COMMANDS = st.one_of(
    st.builds(
        c.Register,
        st.none() | NAMES,
        st.sampled_from(["web", "web", "line", "irc"]),
        st.just("h"),
        st.integers(1, 9),
        echo=st.booleans(),
        lobby=st.booleans(),
        uniquify=st.booleans(),
    ),
    st.builds(c.Rename, WHO),
    st.builds(c.Join, ROOMS, KEYS, create=st.just(True), switch=st.booleans()),
    st.builds(c.Create, ROOMS, LIMITS, KEYS, st.booleans()),
    st.builds(c.Leave, MAYBE_ROOM, REASONS),
    st.builds(c.Say, MAYBE_ROOM, TEXTS, st.sampled_from(["say", "action", "notice"])),
    st.builds(c.Tell, WHO, TEXTS),
    st.builds(c.Topic, MAYBE_ROOM, st.none() | TEXTS),
    st.builds(c.Kick, MAYBE_ROOM, WHO, REASONS),
    st.builds(c.Invite, WHO, MAYBE_ROOM),
    st.builds(c.SetModes, ROOMS, CHANGES),
    st.builds(c.SetAway, st.sampled_from([None, "lunch", ""])),
    st.builds(c.SetEcho, st.booleans()),
    st.just(c.BecomeOper("op")),
    st.just(c.DropOper()),
    st.builds(c.CallStart, WHO, st.sampled_from(["audio", "video"])),
    st.builds(c.CallAnswer, CALL_IDS, st.booleans()),
    st.builds(c.CallSignal, CALL_IDS, st.just("sdp")),
    st.builds(c.CallEnd, CALL_IDS, REASONS),
    st.builds(c.CloseRoom, ROOMS),
    st.builds(c.Kill, WHO),
    st.just(c.LeaveAll()),
    st.builds(c.Quit, REASONS),
    # Queries: they show member order, idle times, away flags and the like.
    st.just(c.ListUsers(everyone=True)),
    st.just(c.ListRooms()),
    st.builds(c.Names, ROOMS),
    st.builds(c.Whois, WHO),
)
#: What changes state most often, drawn more often.
BUSY = st.one_of(
    st.builds(c.Say, MAYBE_ROOM, TEXTS),
    st.builds(c.Join, ROOMS, KEYS, create=st.just(True)),
    st.builds(c.SetModes, ROOMS, CHANGES),
    st.builds(c.Invite, WHO, MAYBE_ROOM),
    st.builds(c.CallStart, WHO),
    st.builds(c.CallAnswer, CALL_IDS, st.just(True)),
    st.builds(c.SetAway, st.just("lunch")),
    st.builds(c.Register, st.none() | NAMES, st.just("web"), st.just("h"), st.just(1)),
)
SESSION = st.integers(0, len(SIDS) - 1)

#: The hub's direct methods, as (method, args...); ``cmd`` is a session's command.
OPS = st.one_of(
    st.tuples(st.just("cmd"), SESSION, COMMANDS),
    st.tuples(st.just("cmd"), SESSION, COMMANDS),
    st.tuples(st.just("cmd"), SESSION, BUSY),
    st.tuples(st.just("cmd"), SESSION, BUSY),
    st.tuples(st.just("cmd"), SESSION, BUSY),
    st.tuples(st.just("disconnect"), SESSION),
    st.tuples(st.just("create_account"), WHO, st.booleans()),
    st.tuples(st.just("log_in"), SESSION, WHO, st.sampled_from(["login", "sasl"])),
    st.tuples(st.just("register_account"), SESSION),
    st.tuples(st.just("set_password"), SESSION),
    st.tuples(st.just("delete_account"), WHO),
    st.tuples(st.just("set_account_oper"), WHO, st.booleans()),
    st.tuples(st.just("set_oper"), WHO, st.booleans()),
    st.tuples(st.just("create_room"), ROOMS, LIMITS, st.booleans(), KEYS, TEXTS),
    st.tuples(st.just("set_room"), ROOMS, CHANGES, st.none() | TEXTS),
    st.tuples(st.just("close_room"), ROOMS),
    st.tuples(st.just("kill"), WHO),
    st.tuples(st.just("broadcast"), TEXTS),
    st.tuples(st.just("expire_rooms")),
    st.tuples(st.just("expire_calls")),
    st.tuples(st.just("store_ok"), st.booleans()),
    st.tuples(st.just("remove_node"), st.integers(0, 1), st.booleans()),
)
#: Seconds between steps: room and call expiry (30 s, 20 s) are within reach.
STEPS = st.sampled_from([0.0, 0.5, 1.0, 1.0, 7.0, 25.0])

#: Where every run starts: people on both nodes, two of them on the web (calls), a room.
PRELUDE: list[tuple[Any, ...]] = [
    ("cmd", 0, c.Register("ann", "web", "h", 1, lobby=True)),
    ("cmd", 1, c.Register(None, "web", "h", 2, lobby=True)),
    ("cmd", 2, c.Register("bob", "irc", "h", 3, lobby=True)),
    ("cmd", 3, c.Register("dee", "web", "h", 4, lobby=True)),
    ("create_account", "cy", False),
    ("cmd", 0, c.Create("r1", limit=3)),
]
#: And sometimes from something of everything: tails, ranks, bans, invites, away
#: texts, an operator, a pre-authenticated session, a ringing and an accepted call.
RICH = [
    *PRELUDE,
    ("cmd", 0, c.Say("lobby", "hi")),
    ("cmd", 2, c.Join("r1")),
    ("cmd", 0, c.Say("r1", "one")),
    ("cmd", 0, c.SetModes("r1", (c.ModeChange(True, "v", "bob"), c.ModeChange(True, "b", "x")))),
    ("cmd", 0, c.Invite("dee", "r1")),
    ("cmd", 2, c.SetAway("lunch")),
    ("cmd", 2, c.BecomeOper("op")),
    ("log_in", 4, "cy", "sasl"),
    ("cmd", 0, c.CallStart("@1")),
    ("cmd", 3, c.CallStart("ann", "video")),
    ("cmd", 0, c.CallAnswer(2, True)),
    # Orders that are not sorted ones: ann's rooms (r1, then lobby), lobby's members.
    ("cmd", 0, c.Leave("lobby")),
    ("cmd", 0, c.Join("lobby")),
    ("cmd", 3, c.Create("r2")),
    ("cmd", 0, c.Join("r2")),
]


def resolve(x: Any, hub: Hub) -> Any:
    """Put each ``@i`` to the name session SIDS[i] has now in ``hub``."""
    if isinstance(x, str) and x.startswith("@"):
        user = hub.users.get(SIDS[int(x[1:])])
        return user.name if user is not None else "nobody"
    if isinstance(x, tuple):
        return tuple(resolve(item, hub) for item in x)
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        changes = {f.name: resolve(getattr(x, f.name), hub) for f in dataclasses.fields(x)}
        return dataclasses.replace(x, **changes)
    return x


def run(hub: Hub, op: tuple[Any, ...], now: float) -> Any:
    """One resolved step; a refused direct method gives its error."""
    method, *args = op
    try:
        match method:
            case "cmd":
                return hub.handle(SIDS[args[0]], args[1], now)
            case "disconnect":
                return hub.disconnect(SIDS[args[0]], "gone", now)
            case "create_account":
                return hub.create_account(args[0], "$h", args[1], "op", now)
            case "log_in":
                return hub.log_in(SIDS[args[0]], fold(args[1]), args[2], now)
            case "register_account":
                return hub.register_account(SIDS[args[0]], "$h", now)
            case "set_password":
                return hub.set_password(SIDS[args[0]], "$h2", now)
            case "delete_account":
                return hub.delete_account(args[0], "op", now)
            case "set_account_oper":
                return hub.set_account_oper(args[0], args[1], "op")
            case "set_oper":
                return hub.set_oper(args[0], args[1], "op")
            case "create_room":
                name, limit, private, key, topic = args
                return hub.create_room(
                    name, "op", now, limit=limit, private=private, key=key, topic=topic
                )
            case "set_room":
                return hub.set_room(args[0], "op", now, args[1], args[2])
            case "close_room":
                return hub.close_room(args[0], "closed", "op", now)
            case "kill":
                return hub.kill(args[0], "out", "op", now)
            case "broadcast":
                return hub.broadcast(args[0], "op", "op")
            case "expire_rooms":
                return hub.expire_rooms(now)
            case "expire_calls":
                return hub.expire_calls(now)
            case "store_ok":
                hub.store_ok = args[0]
                return None
            case "remove_node":
                return hub.remove_node(args[0], "node gone", now, closing=args[1])
    except ChatError as err:
        return ("refused", err)
    raise AssertionError(method)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32),
    rich=st.booleans(),
    steps=st.lists(st.tuples(STEPS, OPS), min_size=10, max_size=60),
    data=st.data(),
)
def test_a_restored_hub_acts_exactly_as_the_original(
    seed: int, rich: bool, steps: list[tuple[float, tuple[Any, ...]]], data: st.DataObject
) -> None:
    """Same deliveries, same journal and same state, whatever happened before the
    snapshot and whatever comes after it."""
    split = data.draw(st.integers(0, len(steps)), label="split")
    a = Hub(SETTINGS, seed=seed)
    now = 0.0
    for op in RICH if rich else PRELUDE:
        run(a, resolve(op, a), now)
    for dt, op in steps[:split]:
        now += dt
        run(a, resolve(op, a), now)

    snap = roundtrip(a)
    b = Hub(SETTINGS)  # its own (unseeded) generator: the snapshot's state replaces it
    load(b, snap)
    assert dump(b) == snap
    assert b.journal == []
    a.journal.clear()

    for dt, op in steps[split:]:
        now += dt
        step = resolve(op, a)
        out_a, out_b = run(a, step, now), run(b, step, now)
        assert out_a == out_b, step
        assert repr(out_a) == repr(out_b)
        assert b.journal == a.journal, step
    assert dump(a) == dump(b)
    assert {k: u.sid for k, u in a.by_name.items()} == {k: u.sid for k, u in b.by_name.items()}


def test_guest_names_continue_the_same_random_sequence() -> None:
    """The generator's state travels: the next guest gets the same name on both."""
    a = Hub(SETTINGS, seed=7)
    for sid in (1, 2, 3):
        a.handle(sid, c.Register(None, "line", "h", sid), 0.0)
    b = restored(a)
    for sid in (4, 5, 6):
        reg = c.Register(None, "line", "h", sid)
        assert a.handle(sid, reg, 1.0) == b.handle(sid, reg, 1.0)
    assert sorted(fold(u.name) for u in a.users.values()) == sorted(b.by_name)


def test_join_orders_survive() -> None:
    """Members stay in join order (names lists, who runs a room) and each person's
    rooms too (the last joined is where one-room doors speak)."""
    a = Hub(SETTINGS, seed=1)
    for sid, name in ((1, "ann"), (2, "bob"), (3, "cy")):
        a.handle(sid, c.Register(name, "line", "h", sid), 0.0)
    a.handle(3, c.Join("r1", create=True), 1.0)
    a.handle(1, c.Join("r1"), 1.0)
    a.handle(1, c.Join("lobby", create=True), 1.0)
    a.handle(2, c.Join("lobby"), 1.0)
    a.handle(1, c.Leave("r1"), 1.0)
    a.handle(1, c.Join("r1"), 1.0)
    b = restored(a)
    for hub in (a, b):
        assert [r.key for r in hub.users[1].rooms.values()] == ["lobby", "r1"]
        assert list(hub.rooms["r1"].members.items()) == [(3, "o"), (1, "")]
    for sid, cmd in ((1, c.Say(None, "here")), (2, c.Names("r1")), (2, c.Quit())):
        assert a.handle(sid, cmd, 2.0) == b.handle(sid, cmd, 2.0)


def test_the_spare_gauss_value_travels() -> None:
    """The hub draws no gauss() today; if it ever does, the spare value is state too."""
    a = Hub(SETTINGS, seed=1)
    a._rng.gauss()
    assert a._rng.getstate()[2] is not None
    assert restored(a)._rng.getstate() == a._rng.getstate()


# -- room tails ---------------------------------------------------------------------


def stored(room_id: int, text: str, t: float) -> Message:
    return Message(room_id * 100 + int(t), t, "tas", UserRef(0, "old", "old", "h", "old"), text)


LOADED = Loaded(
    rooms=(
        RoomRecord(4, "tas", "tas", 1.0, "old", None, None, False, "", "", 0.0, "nt", ()),
        RoomRecord(5, "quiet", "quiet", 1.0, "old", None, None, False, "", "", 0.0, "nt", ()),
    ),
    last_message_id=600,
    last_room_id=5,
)


def loader(room_id: int, name: str, n: int) -> list[Message]:
    """The store's latest messages of each room (quiet's are never read before the dump)."""
    texts = {4: ["t1", "t2", "t3", "t4"], 5: ["q1", "q2"]}.get(room_id, [])
    return [stored(room_id, text, float(i)) for i, text in enumerate(texts)][-n:]


def history_on_join(hub: Hub, sid: int, room: str) -> list[str]:
    out = hub.handle(sid, c.Join(room), 10.0)
    replies = [ev for ev in recipients_of(out)[sid] if isinstance(ev, HistoryReply)]
    return [m.text for r in replies for m in r.messages]


def test_a_restored_hub_shows_the_same_history_on_join_without_a_store() -> None:
    """Tails read from A's store (and those never read yet) travel in the snapshot,
    so B, which has no store loader, shows newcomers the same history."""
    a = Hub(SETTINGS, seed=1, loaded=LOADED, recent=loader, now=2.0)
    a.handle(1, c.Register("alice", "line", "h", 1), 3.0)
    a.handle(1, c.Join("tas"), 4.0)
    a.handle(1, c.Say("tas", "new"), 5.0)
    quiet = a.room_named("quiet")
    assert quiet is not None and quiet.recent is None  # not read yet: dump reads it

    b = restored(a)
    assert b._recent is None
    for hub in (a, b):
        hub.handle(2, c.Register("carol", "line", "h", 2), 9.0)
    assert history_on_join(a, 2, "tas") == history_on_join(b, 2, "tas") == ["t3", "t4", "new"]
    assert history_on_join(a, 2, "quiet") == history_on_join(b, 2, "quiet") == ["q1", "q2"]
    assert dump(a) == dump(b)


def test_a_tail_longer_than_the_setting_is_refused() -> None:
    """Nodes must share settings; a snapshot from one showing more history is refused,
    not cut short."""
    a = Hub(SETTINGS, seed=1)
    a.handle(1, c.Register("alice", "line", "h", 1, lobby=True), 0.0)
    for i in range(3):
        a.handle(1, c.Say(None, f"m{i}"), 1.0)
    with pytest.raises(BadSnapshot, match="history_on_join"):
        load(Hub(HubSettings(history_on_join=2)), roundtrip(a))
    load(Hub(HubSettings(history_on_join=5)), roundtrip(a))  # a shorter one is fine


# -- totality: anything else is refused whole ------------------------------------------


def rich_hub() -> Hub:
    """Something of everything: members with ranks, bans, invites, tails, away texts,
    accounts, operators, a pre-authenticated session and calls, one of them accepted."""
    hub = Hub(SETTINGS, seed=3)
    hub.create_account("cy", "$h", True, "op", 0.0)
    hub.log_in(9, "cy", "sasl", 0.0)
    for sid, name, door in ((1, "ann", "web"), (2, None, "web"), (3, "bob", "irc")):
        hub.handle(sid, c.Register(name, door, "h", sid, lobby=True), 0.0)
    guest = hub.users[2].name
    hub.handle(1, c.Create("r1", limit=3, key="k", private=True), 1.0)
    hub.handle(1, c.Invite("bob", "r1"), 1.0)
    hub.handle(1, c.Invite(guest, "r1"), 1.0)
    hub.handle(3, c.Join("r1", "k"), 1.0)
    ranks = (c.ModeChange(True, "v", "bob"), c.ModeChange(True, "b", "x"))
    hub.handle(1, c.SetModes("r1", ranks), 1.0)
    hub.handle(1, c.Say("r1", "hello"), 2.0)
    hub.handle(3, c.Say("lobby", "hey"), 2.5)
    hub.handle(3, c.SetAway("lunch"), 3.0)
    hub.handle(1, c.CallStart(guest, "video"), 4.0)
    hub.handle(2, c.CallStart("ann"), 4.0)
    hub.handle(2, c.CallAnswer(1, True), 5.0)
    hub.handle(3, c.BecomeOper("op"), 5.0)
    hub.handle(3, c.Create("r2"), 6.0)
    hub.handle(3, c.Leave("r2"), 7.0)
    hub.register_account(3, "$h", 8.0)
    return hub


BASE = roundtrip(rich_hub())
FRESH = dump(Hub(SETTINGS, seed=0))


def assert_refused_whole(data: object) -> BadSnapshot:
    """``load`` raises BadSnapshot and nothing else, and the hub stays as it was."""
    hub = Hub(SETTINGS, seed=0)
    with pytest.raises(BadSnapshot) as info:
        load(hub, data)
    assert dump(hub) == FRESH
    return info.value


def test_the_base_snapshot_loads() -> None:
    """(So that each mutation below is refused for its own fault.)"""
    hub = Hub(SETTINGS)
    load(hub, copy.deepcopy(BASE))
    assert dump(hub) == BASE
    assert BASE["v"] == SNAPSHOT_SCHEMA
    assert BASE["calls"] and BASE["preauth"] and BASE["accounts"]
    assert any(r["recent"] and r["bans"] and r["invited"] for r in BASE["rooms"])


def mutated(path: list[Any], value: Any = ..., drop: bool = False) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    *parents, last = path
    node = data
    for p in parents:
        node = node[p]
    if drop:
        del node[last]
    elif last == "+":
        node.append(value)
    else:
        node[last] = value
    return data


def first_room(name: str) -> int:
    return next(i for i, r in enumerate(BASE["rooms"]) if r["key"] == name)


R1 = first_room("r1")
NAN = float("nan")

MUST_FAIL = {
    "newer schema": (
        mutated(["v"], SNAPSHOT_SCHEMA + 1),
        rf"^snapshot from a newer schema \(v{SNAPSHOT_SCHEMA + 1}\)$",
    ),
    "v bool": (mutated(["v"], True), "^v:"),
    "v zero": (mutated(["v"], 0), "unknown schema"),
    "unknown key": (mutated(["extra"], 1), "unknown keys"),
    "msg_seq bool": (mutated(["msg_seq"], True), "msg_seq"),
    "store_ok int": (mutated(["store_ok"], 1), "store_ok"),
    "port bool": (mutated(["users", 0, "port"], False), r"users\[0\]\.port"),
    "sid str": (mutated(["users", 0, "sid"], "1"), r"users\[0\]\.sid"),
    "time nan": (mutated(["users", 0, "connected_at"], NAN), "connected_at"),
    "time inf": (mutated(["rooms", 0, "created_at"], math.inf), "created_at"),
    "time huge": (mutated(["rooms", 0, "created_at"], 10**400), "created_at"),
    "limit float": (mutated(["rooms", R1, "limit"], 1.5), "limit"),
    "user missing key": (mutated(["users", 0, "away"], drop=True), "missing"),
    "room not folded": (mutated(["rooms", R1, "key"], "R1"), "folded"),
    "member missing": (mutated(["rooms", R1, "members", "+"], [99, ""]), "sid 99 is nobody"),
    "member twice": (mutated(["rooms", R1, "members", "+"], [1, "v"]), "twice"),
    "member unlisted": (mutated(["rooms", R1, "members", "+"], [2, ""]), "does not list"),
    "member modes": (mutated(["rooms", R1, "members", 0, 1], "x"), "one of"),
    "room unknown": (mutated(["users", 0, "rooms", "+"], "nowhere"), "no room"),
    "room not joined": (mutated(["users", 1, "rooms", "+"], "r1"), "does not list sid"),
    "room twice": (mutated(["rooms", "+"], BASE["rooms"][R1]), "twice"),
    "user twice": (mutated(["users", "+"], BASE["users"][0]), "twice"),
    "name taken": (mutated(["users", 1, "name"], "ANN"), "taken"),
    "invited not folded": (mutated(["rooms", R1, "invited", "+"], "Dee"), "folded"),
    "surrogate": (mutated(["users", 0, "realname"], "\ud800"), "Unicode"),
    "message kind": (mutated(["rooms", R1, "recent", 0, "kind"], "shout"), "kind"),
    "sender shape": (mutated(["rooms", R1, "recent", 0, "sender"], [1, "ann"]), "sender"),
    "account not folded": (mutated(["accounts", 0, "key"], "CY"), "folded"),
    "call party gone": (mutated(["calls", 0, "callee"], 99), "online"),
    "call to oneself": (mutated(["calls", 0, "callee"], BASE["calls"][0]["caller"]), "online"),
    "call media": (mutated(["calls", 0, "media"], "fax"), "media"),
    "preauth shape": (mutated(["preauth", 0], [9]), "preauth"),
    "rng short": (mutated(["rng", 1, 624], drop=True), "rng"),
    "rng word": (mutated(["rng", 1, 0], 2**32), "rng"),
    "rng position": (mutated(["rng", 1, 624], 625), "rng"),
    "rng version": (mutated(["rng", 0], 2), "rng"),
    "rng gauss": (mutated(["rng", 2], "x"), "rng"),
}


@pytest.mark.parametrize("data,message", MUST_FAIL.values(), ids=list(MUST_FAIL))
def test_a_bad_snapshot_is_refused_whole(data: dict[str, Any], message: str) -> None:
    """Late faults (calls, checked last) leave the hub as untouched as early ones."""
    assert re.search(message, str(assert_refused_whole(data)))


@pytest.mark.parametrize("key", sorted(BASE), ids=str)
def test_every_top_level_key_is_needed(key: str) -> None:
    assert_refused_whole(mutated([key], drop=True))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(value=JSON | st.fixed_dictionaries({k: JSON for k in BASE}).map(lambda d: {**d, "v": 1}))
def test_arbitrary_json_is_refused(value: object) -> None:
    assert_refused_whole(value)


def paths(node: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in the snapshot, but only the first few generator words."""
    out = [here]
    if isinstance(node, dict):
        for k, v in node.items():
            out += paths(v, (*here, k))
    elif isinstance(node, list):
        items = node[:3] if here == ("rng", 1) else node
        for i, v in enumerate(items):
            out += paths(v, (*here, i))
    return out


PATHS = paths(BASE)[1:]


def exercise(hub: Hub) -> None:
    """Whatever loaded must work: every later step either runs or is refused (ChatError)."""
    now = 100.0
    for sid in list(hub.users):
        for cmd in (
            c.Say(None, "x"),
            c.Join("lobby", create=True),
            c.ListUsers(everyone=True),
            c.ListRooms(),
            c.Whois("ann"),
            c.CallEnd(1),
            c.Register(None, "web", "h", 1),
        ):
            hub.handle(sid, cmd, now)
        for room in list(hub.rooms):
            hub.handle(sid, c.Names(room), now)
            hub.handle(sid, c.SetModes(room, (c.ModeChange(True, "o", "ann"),)), now)
    hub.handle(77, c.Register(None, "web", "h", 1, lobby=True), now)
    hub.expire_calls(1e9)
    for sid in list(hub.users):
        hub.disconnect(sid, "bye", now)
    hub.expire_rooms(1e9)
    json.dumps(dump(hub), allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(
    path=st.sampled_from(PATHS),
    how=st.sampled_from(["drop", "replace", "bool", "duplicate"]),
    value=JSON,
)
def test_a_mutated_snapshot_loads_and_works_or_is_refused_whole(
    path: tuple[Any, ...], how: str, value: Any
) -> None:
    """Any one change: either the hub loads a consistent state that then works, or
    BadSnapshot and nothing changed."""
    data = copy.deepcopy(BASE)
    *parents, last = path
    node = data
    for p in parents:
        node = node[p]
    if how == "drop":
        del node[last]
    elif how == "replace":
        node[last] = value
    elif how == "bool":
        node[last] = not node[last] if isinstance(node[last], bool) else True
    elif isinstance(node, list):
        node.append(copy.deepcopy(node[last]))
    else:
        node[last] = [node[last], node[last]]
    hub = Hub(SETTINGS, seed=0)
    try:
        load(hub, data)
    except BadSnapshot:
        assert dump(hub) == FRESH
        return
    exercise(hub)


# -- size ---------------------------------------------------------------------------


def test_ten_thousand_users_in_a_hundred_rooms() -> None:
    """A big hub dumps and loads (the time is printed, not asserted: machines differ)."""
    big = HubSettings(history_on_join=5)
    a = Hub(big, seed=1)
    for n in range(10_000):
        sid = n + 1
        a.handle(sid, c.Register(f"u{n}", "line", "h", sid), 0.0)
        a.handle(sid, c.Join(f"r{n % 100}", create=True), 0.0)
    for n in range(100):
        a.handle(n + 1, c.Say(None, f"in r{n}"), 1.0)
    t0 = time.perf_counter()
    data = dump(a)
    text = json.dumps(data, allow_nan=False)
    t1 = time.perf_counter()
    b = Hub(big)
    load(b, json.loads(text))
    t2 = time.perf_counter()
    print(
        f"\n10,000 users: dump+json {t1 - t0:.3f} s, json+load {t2 - t1:.3f} s, "
        f"{len(text) / 1e6:.1f} MB"
    )
    assert len(b.users) == 10_000 and len(b.rooms) == 100
    assert dump(b) == data

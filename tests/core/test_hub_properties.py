"""Random command sequences from several sessions keep the hub's state consistent,
and a refused command never changes anything."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from hubstate import snapshot
from salas.core import commands as c
from salas.core.events import Delivery, Failed, Joined
from salas.core.hub import Hub, HubSettings
from salas.core.names import fold, valid_name

#: Sessions 1-3 start registered, 4 and 5 don't (they may Register later).
SIDS = st.sampled_from([1, 1, 2, 2, 3, 3, 4, 5])
# Small pools, so that collisions (case-only ones too) are frequent.
NAMES = st.sampled_from(["u1", "U1", "u2", "u3", "U3", "ana", "Ana", "bo", "bad name", "9x", ""])
TARGETS = st.sampled_from(["u1", "U2", "u3", "ana", "bo", "nobody"])
ROOMS = st.sampled_from(["r1", "R1", "r2", "r3", "lobby"])
NEW_ROOMS = st.sampled_from(["r1", "R2", "r3", "r4", "Lobby", "bad room"])
MAYBE_ROOM = st.none() | ROOMS
LIMITS = st.sampled_from([None, 1, 2, 2, 3, 0])
TEXTS = st.sampled_from(["hi", "hi", "olá", "", " ", "a\nb", "x" * 4001])
KEYS = st.sampled_from([None, None, "k", "K"])
MODE_CHANGES = st.lists(
    st.sampled_from(
        [
            c.ModeChange(True, "l", "1"),
            c.ModeChange(True, "l", "2"),
            c.ModeChange(True, "l", "x"),
            c.ModeChange(False, "l"),
            c.ModeChange(True, "k", "k"),
            c.ModeChange(False, "k"),
            c.ModeChange(True, "i"),
            c.ModeChange(False, "i"),
            c.ModeChange(False, "t"),
            c.ModeChange(False, "n"),
            c.ModeChange(True, "m"),
            c.ModeChange(True, "o", "u2"),
            c.ModeChange(False, "o", "u1"),
            c.ModeChange(True, "v", "U3"),
            c.ModeChange(True, "o", "nobody"),
            c.ModeChange(True, "b", "u3"),
            c.ModeChange(False, "b", "U3"),
            c.ModeChange(True, "q"),
        ]
    ),
    max_size=3,
).map(tuple)


def is_refusal(out: list[Delivery]) -> bool:
    """The command was refused (or, for Register, only its lobby part)."""
    return any(isinstance(d.event, Failed) for d in out)


class HubMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.hub = Hub(HubSettings(max_rooms=5, empty_room_ttl=5.0), seed=0)
        self.now = 0.0
        #: Rooms a "+l" put below their member count, and that count.
        self.lowered: dict[str, int] = {}
        hub = self.hub
        # Session 0 never acts: it keeps the permanent lobby (and r2's key) in existence.
        hub.handle(0, c.Register("keeper", "line", "h", 0, lobby=True), 0.0)
        for sid in (1, 2, 3):
            hub.handle(sid, c.Register(f"u{sid}", "line", "h", sid, lobby=sid == 1), 0.0)
        # A room that is full at two, and a private keyed one.
        hub.handle(2, c.Create("r1", limit=2), 0.0)
        hub.handle(0, c.Create("r2", key="k", private=True), 0.0)

    def run(self, sid: int, cmd: c.Command) -> list[Delivery]:
        self.now += 1.0
        before = snapshot(self.hub)
        registered_before = set(self.hub.users)
        out = self.hub.handle(sid, cmd, self.now)
        failed = [d for d in out if isinstance(d.event, Failed)]
        for d in failed:
            assert d.to == (sid,)
        if any(d.event.command == cmd for d in failed):  # type: ignore[union-attr]
            # The command itself was refused: one Failed, nothing changed.
            assert len(out) == 1, out
            assert snapshot(self.hub) == before, cmd
        elif failed:
            # Only registration may half-succeed: registered, but the lobby refused.
            assert isinstance(cmd, c.Register) and cmd.lobby, out
            assert len(failed) == 1 and failed[0] is out[-1]
            assert sid in self.hub.users
        if sid not in registered_before and not isinstance(cmd, c.Register):
            assert out == []
        known = registered_before | set(self.hub.users) | {sid}
        for d in out:
            assert set(d.to) <= known, (cmd, d)
            if isinstance(d.event, Joined):
                # Nobody (no server operators here) gets in past a room's limit.
                room = self.hub.room_named(d.event.room)
                assert room is not None
                assert room.limit is None or d.event.count <= room.limit, (cmd, room)
        return out

    # -- rules ------------------------------------------------------------------

    @rule(sid=SIDS, name=st.none() | NAMES, lobby=st.booleans(), uniquify=st.booleans())
    def register(self, sid: int, name: str | None, lobby: bool, uniquify: bool) -> None:
        cmd = c.Register(name, "line", "h", sid, lobby=lobby, uniquify=uniquify)
        out = self.run(sid, cmd)
        if not is_refusal(out) and uniquify:
            assert sid in self.hub.users

    @rule(sid=SIDS, name=NAMES)
    def rename(self, sid: int, name: str) -> None:
        out = self.run(sid, c.Rename(name))
        if out and not is_refusal(out):
            assert self.hub.users[sid].name == name

    @rule(sid=SIDS, room=ROOMS, key=KEYS, create=st.booleans(), switch=st.booleans())
    def join(self, sid: int, room: str, key: str | None, create: bool, switch: bool) -> None:
        out = self.run(sid, c.Join(room, key, create=create, switch=switch))
        if out and not is_refusal(out):
            user = self.hub.users[sid]
            current = user.current_room()
            assert current is not None and current.key == fold(room)
            if switch:
                assert list(user.rooms) == [fold(room)]

    @rule(sid=SIDS, data=st.data(), key=KEYS, switch=st.booleans())
    def join_existing(self, sid: int, data: st.DataObject, key: str | None, switch: bool) -> None:
        room = data.draw(st.sampled_from(sorted(r.name for r in self.hub.rooms.values())))
        self.run(sid, c.Join(room, key, switch=switch))

    @rule(
        sid=SIDS,
        room=NEW_ROOMS,
        limit=LIMITS,
        key=KEYS,
        private=st.booleans(),
        switch=st.booleans(),
    )
    def create(
        self, sid: int, room: str, limit: int | None, key: str | None, private: bool, switch: bool
    ) -> None:
        out = self.run(sid, c.Create(room, limit, key, private, switch))
        if out and not is_refusal(out):
            made = self.hub.room_named(room)
            assert made is not None and made.members == {sid: "o"}

    @rule(sid=SIDS, room=ROOMS, changes=MODE_CHANGES)
    def set_modes(self, sid: int, room: str, changes: tuple[c.ModeChange, ...]) -> None:
        out = self.run(sid, c.SetModes(room, changes))
        if out and not is_refusal(out):
            r = self.hub.room_named(room)
            assert r is not None
            if r.limit is not None and len(r.members) > r.limit:
                self.lowered[r.key] = len(r.members)

    @rule(sid=SIDS, room=MAYBE_ROOM)
    def leave(self, sid: int, room: str | None) -> None:
        self.run(sid, c.Leave(room))

    @rule(sid=SIDS, room=MAYBE_ROOM, text=TEXTS)
    def say(self, sid: int, room: str | None, text: str) -> None:
        out = self.run(sid, c.Say(room, text))
        if out and not is_refusal(out):
            user = self.hub.users[sid]
            spoken = self.hub.room_named(room) if room else user.current_room()
            assert spoken is not None
            heard = {s for d in out for s in d.to if s != d.exclude}
            expected = set(spoken.members) - {sid} | ({sid} if user.echo else set())
            assert heard == expected

    @rule(sid=SIDS, to=TARGETS, text=TEXTS)
    def tell(self, sid: int, to: str, text: str) -> None:
        out = self.run(sid, c.Tell(to, text))
        if out and not is_refusal(out):
            target = self.hub.user_named(to)
            assert target is not None
            heard = {s for d in out for s in d.to if s != d.exclude}
            assert heard == {target.sid} | ({sid} if self.hub.users[sid].echo else set())

    @rule(sid=SIDS, room=MAYBE_ROOM, name=TARGETS)
    def kick(self, sid: int, room: str | None, name: str) -> None:
        self.run(sid, c.Kick(room, name))

    @rule(sid=SIDS, name=TARGETS, room=MAYBE_ROOM)
    def invite(self, sid: int, name: str, room: str | None) -> None:
        self.run(sid, c.Invite(name, room))

    @rule(sid=SIDS, room=MAYBE_ROOM, text=st.none() | TEXTS)
    def topic(self, sid: int, room: str | None, text: str | None) -> None:
        self.run(sid, c.Topic(room, text))

    @rule(sid=SIDS, on=st.booleans())
    def set_echo(self, sid: int, on: bool) -> None:
        self.run(sid, c.SetEcho(on))

    @rule(sid=SIDS)
    def quit(self, sid: int) -> None:
        self.run(sid, c.Quit("bye"))
        assert sid not in self.hub.users

    @rule(sid=SIDS)
    def disconnect(self, sid: int) -> None:
        self.now += 1.0
        self.hub.disconnect(sid, "lost", self.now)
        assert sid not in self.hub.users

    @rule(dt=st.sampled_from([1.0, 5.0, 50.0]))
    def expire(self, dt: float) -> None:
        self.now += dt
        for key in self.hub.expire_rooms(self.now):
            assert key not in self.hub.rooms

    # -- invariants -------------------------------------------------------------

    @invariant()
    def limits_hold(self) -> None:
        # "+l" below the current count is allowed (as on IRC: nobody is put out), so a room
        # may be over its limit only when a mode change put it there, never by a join.
        for key, room in self.hub.rooms.items():
            if room.limit is not None and len(room.members) > room.limit:
                assert self.lowered.get(key, 0) >= len(room.members), room

    @invariant()
    def names_are_unique_and_indexed(self) -> None:
        hub = self.hub
        assert len(hub.by_name) == len(hub.users)
        for key, user in hub.by_name.items():
            assert key == fold(user.name)
            assert hub.users[user.sid] is user
            assert valid_name(user.name)
        assert {id(u) for u in hub.by_name.values()} == {id(u) for u in hub.users.values()}

    @invariant()
    def membership_agrees_both_ways(self) -> None:
        hub = self.hub
        for key, room in hub.rooms.items():
            assert key == room.key == fold(room.name)
            assert room.recipients() == tuple(room.members)
            assert (room.empty_since is None) == bool(room.members)
            for sid in room.members:
                assert sid in hub.users
                assert hub.users[sid].rooms.get(key) is room
        for sid, user in hub.users.items():
            assert user.sid == sid
            for key, room in user.rooms.items():
                assert hub.rooms.get(key) is room
                assert sid in room.members
        assert len(hub.rooms) <= hub.settings.max_rooms

    @invariant()
    def lobby_is_permanent_and_has_no_operators(self) -> None:
        lobby = self.hub.rooms["lobby"]
        assert lobby.permanent
        assert all("o" not in m for m in lobby.members.values())


HubMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=30, deadline=None)
TestHubMachine = HubMachine.TestCase

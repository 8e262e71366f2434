"""The hub: the one place chat state changes.

``Hub.handle(sid, command, now)`` checks the command against the state, and
only when every check passes does it change anything; it returns the
deliveries (who gets which event). A refused command returns one ``Failed``
to its sender and leaves the state exactly as it was.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from salas.core import commands as c
from salas.core import errors as e
from salas.core.events import (
    AccountChanged,
    AccountRegistered,
    Audit,
    AwayChanged,
    BanList,
    CallSignalled,
    CallUpdate,
    Closing,
    Delivery,
    Echoed,
    Event,
    Failed,
    Found,
    HistoryReply,
    HistoryWanted,
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
    OverviewReply,
    PasswordChanged,
    Private,
    Renamed,
    RoomList,
    ServerNotice,
    ShutdownAsked,
    StatsReply,
    Tagged,
    TargetsWanted,
    TopicChanged,
    TopicIs,
    UserList,
    Welcome,
    WhoisReply,
)
from salas.core.model import Call, Member, Room, RoomInfo, User, UserInfo, UserRef
from salas.core.names import (
    KEY_MAX,
    MASK_MAX,
    NAME_MAX,
    SERVICE_NAMES,
    TOPIC_MAX,
    fold,
    guest_name,
    mask_regex,
    normal_mask,
    sanitize_name,
    valid_name,
    valid_room,
)
from salas.core.records import (
    AccountDeleted,
    AccountRecord,
    IdsUsed,
    Loaded,
    Record,
    RoomClosed,
    RoomRecord,
)

#: Longest message text in bytes. The line door's 4 KiB line bound minus room
#: for the command word; IRC and CS168 split longer texts when they render.
MAX_TEXT_BYTES = 4000
#: A room limit above this is surely a typo.
MAX_LIMIT = 100_000
#: Bans a room may hold (IRC's MAXLIST=b:100): each is matched on every join.
MAX_BANS = 100
#: Calls one person may have open at once (each holds a little memory until it ends).
MAX_CALLS = 4
#: Longest piece of call signalling passed on (an SDP offer is a few KiB).
MAX_SIGNAL = 16 * 1024
#: The door of the web client: the only one that can take calls.
CALL_DOORS = frozenset({"web"})
#: The owner of rooms the admin console makes: they last until closed.
SERVER_OWNER = "*"
#: The session id changes made by the server itself carry (real sessions count from 1,
#: and people read back from the store have 0).
SERVER_SID = -1

#: With a bus, a session id is ``node << NODE_SHIFT | n``: unique in the whole
#: cluster, so every node's hub knows everyone by the same id (and below 2**53,
#: so browsers read it exactly).
NODE_SHIFT = 32


def node_of(sid: int) -> int:
    """The node a session is connected to (0 without a bus)."""
    return sid >> NODE_SHIFT


@dataclass(frozen=True, slots=True)
class HubSettings:
    server_name: str = "salas.local"
    lobby: str = "lobby"
    #: Rooms that may exist at once (each costs memory even when empty).
    max_rooms: int = 10_000
    #: Empty rooms made by guests are forgotten after this many seconds
    #: (rooms owned by an account last until they are closed).
    empty_room_ttl: float = 3600.0
    #: Messages a newcomer to a room is shown (0: none).
    history_on_join: int = 20
    #: Most messages one history request may return.
    history_max: int = 1000
    #: ``[history] retention_messages``: a newcomer is never shown more (0: no cap).
    history_kept: int = 0
    #: Direct calls and file offers allowed ([direct] enabled).
    direct: bool = True
    #: Seconds a call may ring unanswered.
    offer_ttl: float = 120.0


#: Reads a room's latest stored messages: (room id, room name, how many).
RecentLoader = Callable[[int, str, int], list[Message]]


#: Longest reason (leaving, kicks, closing, shutdown) carried to other doors.
REASON_MAX = 300


def clean_reason(text: str) -> str:
    """A reason as every door can carry it: one line, no NUL, bounded.
    Reasons are never refused (a quit must always work), only made safe."""
    if "\r" in text or "\n" in text or "\x00" in text:
        text = " ".join(text.replace("\x00", " ").splitlines())
    return text.strip()[:REASON_MAX]


def check_text(text: str) -> None:
    """Refuse text that no door can carry: empty, line breaks, NUL, oversize."""
    if not text or text.isspace():
        raise e.TextInvalid("empty")
    # Three substring searches in C: ten times faster than a set test per character.
    if "\n" in text or "\r" in text or "\x00" in text:
        raise e.TextInvalid("line breaks or NUL")
    if len(text) * 4 > MAX_TEXT_BYTES and len(text.encode()) > MAX_TEXT_BYTES:
        raise e.TextInvalid(f"longer than {MAX_TEXT_BYTES} bytes")


class Hub:
    def __init__(
        self,
        settings: HubSettings | None = None,
        *,
        seed: int | None = None,
        loaded: Loaded | None = None,
        recent: RecentLoader | None = None,
        now: float = 0.0,
    ) -> None:
        self.settings = settings or HubSettings()
        self.users: dict[int, User] = {}
        self.by_name: dict[str, User] = {}
        self.rooms: dict[str, Room] = {}
        #: Accounts by folded name.
        self.accounts: dict[str, AccountRecord] = {}
        #: Sessions that proved an account before registering (IRC SASL): sid -> key.
        self.preauth: dict[int, str] = {}
        #: What to keep, in order; the server hands it to the store once per loop turn.
        self.journal: list[Record] = []
        #: False while the store can't write: messages are refused, not lost.
        self.store_ok = True
        self._recent = recent
        self._rng = random.Random(seed)
        self._msg_seq = 0
        self._room_seq = 0
        #: Calls the server introduced and that have not ended, by id.
        self.calls: dict[int, Call] = {}
        self._call_seq = 0
        if loaded is not None:
            self._restore(loaded, now)
        self._handlers: dict[type, Callable[[User, Any, float, list[Delivery]], None]] = {
            c.Rename: self._rename,
            c.Join: self._join,
            c.Create: self._create,
            c.Leave: self._leave,
            c.Say: self._say,
            c.Tell: self._tell,
            c.Tag: self._tag,
            c.Topic: self._topic,
            c.ListRooms: self._list_rooms,
            c.ListUsers: self._list_users,
            c.Names: self._names,
            c.Echo: self._echo,
            c.SetEcho: self._set_echo,
            c.SetAway: self._set_away,
            c.Kick: self._kick,
            c.Invite: self._invite,
            c.SetModes: self._set_modes,
            c.ListBans: self._list_bans,
            c.Whois: self._whois,
            c.Lookup: self._lookup,
            c.Stats: self._stats,
            c.BecomeOper: self._become_oper,
            c.DropOper: self._drop_oper,
            c.CloseRoom: self._close_room,
            c.Kill: self._kill,
            c.Broadcast: self._broadcast,
            c.Shutdown: self._shutdown,
            c.Overview: self._overview,
            c.CallStart: self._call_start,
            c.CallAnswer: self._call_answer,
            c.CallSignal: self._call_signal,
            c.CallEnd: self._call_end,
            c.LeaveAll: self._leave_all,
            c.FetchHistory: self._fetch_history,
            c.FetchTargets: self._fetch_targets,
            c.Quit: self._quit,
        }

    def _restore(self, loaded: Loaded, now: float) -> None:
        """What the store kept: accounts, and rooms as they were, empty."""
        self._msg_seq = loaded.last_message_id
        self._room_seq = loaded.last_room_id
        for account in loaded.accounts:
            self.accounts[account.key] = account
        lobby = fold(self.settings.lobby)
        for r in loaded.rooms:
            self.rooms[r.key] = Room(
                name=r.name,
                key=r.key,
                created_at=r.created_at,
                limit=r.limit,
                password=r.password,
                private=r.private,
                topic=r.topic,
                topic_by=r.topic_by,
                topic_at=r.topic_at,
                topic_locked="t" in r.flags,
                no_external="n" in r.flags,
                moderated="m" in r.flags,
                permanent=r.key == lobby,
                owner=r.owner,
                bans=list(r.bans),
                empty_since=now,
                id=r.id,
            )

    # -- entry point -------------------------------------------------------

    def handle(self, sid: int, cmd: c.Command, now: float) -> list[Delivery]:
        out: list[Delivery] = []
        try:
            if isinstance(cmd, c.Register):
                self._register(sid, cmd, now, out)
                return out
            user = self.users.get(sid)
            if user is None:
                return out  # not registered (or already gone): nothing to do
            handler = self._handlers[type(cmd)]
            handler(user, cmd, now, out)
        except e.ChatError as err:
            return [Delivery((sid,), Failed(err, cmd))]
        return out

    # -- lookups -------------------------------------------------------------

    @property
    def online(self) -> int:
        return len(self.users)

    def user_named(self, name: str) -> User | None:
        return self.by_name.get(fold(name))

    def room_named(self, name: str) -> Room | None:
        return self.rooms.get(fold(name))

    def _room(self, name: str) -> Room:
        # Keys are folded names, so a name found as it is needs no folding (most are).
        room = self.rooms.get(name) or self.rooms.get(fold(name))
        if room is None:
            raise e.NoSuchRoom(name)
        return room

    def _target_room(self, user: User, name: str | None) -> Room:
        """A named room, or the sender's current room; NotInRoom when there is none."""
        if name is None:
            room = user.current_room()
            if room is None:
                raise e.NotInRoom("")
            return room
        return self._room(name)

    def _next_id(self) -> int:
        self._msg_seq += 1
        return self._msg_seq

    def _save_room(self, room: Room) -> None:
        flags = "".join(
            f
            for f, on in (("m", room.moderated), ("n", room.no_external), ("t", room.topic_locked))
            if on
        )
        self.journal.append(
            RoomRecord(
                room.id,
                room.key,
                room.name,
                room.created_at,
                room.owner,
                room.limit,
                room.password,
                room.private,
                room.topic,
                room.topic_by,
                room.topic_at,
                flags,
                tuple(room.bans),
            )
        )

    def _tail(self, room: Room) -> deque[Message]:
        """The room's latest messages, read from the store the first time."""
        tail = room.recent
        if tail is None:
            n = self.settings.history_on_join
            if self.settings.history_kept:
                n = min(n, self.settings.history_kept)
            stored = self._recent(room.id, room.name, n) if self._recent and n and room.id else []
            tail = room.recent = deque(stored, maxlen=n)
        return tail

    def forget_before(self, cutoff: float) -> None:
        """Retention by age: what the store drops, newcomers aren't shown either."""
        for room in self.rooms.values():
            tail = room.recent
            while tail and tail[0].time < cutoff:
                tail.popleft()

    def lasting(self, room: Room) -> bool:
        """Rooms that stay when empty: the lobby, rooms the admin console made,
        and rooms owned by an account."""
        owner = room.owner
        if room.permanent or owner == SERVER_OWNER:
            return True
        return owner is not None and owner in self.accounts

    def room_info(self, room: Room) -> RoomInfo:
        return RoomInfo(
            room.name,
            len(room.members),
            room.limit,
            room.topic,
            room.private,
            room.password is not None,
            room.modes(),
            room.permanent,
        )

    def user_info(self, user: User, now: float, room: Room | None = None) -> UserInfo:
        return UserInfo(
            name=user.name,
            username=user.username,
            host=user.host,
            address=user.address,
            door=user.door,
            realname=user.realname,
            rooms=tuple(r.name for r in user.rooms.values()),
            idle=max(0.0, now - user.last_active),
            connected_at=user.connected_at,
            account=user.account,
            away=user.away,
            oper=user.oper,
            modes=room.members.get(user.sid, "") if room is not None else "",
        )

    @staticmethod
    def _banned(user: User, room: Room) -> bool:
        full = fold(f"{user.name}!{user.username}@{user.host}")
        # IRC shows an IPv6 host such as ``::1`` as ``0::1`` where a parameter
        # can't start with a colon (WHO, WHOIS): a ban may name it either way.
        also = (
            fold(f"{user.name}!{user.username}@0{user.host}") if user.host.startswith(":") else None
        )
        return any(
            (regex := mask_regex(mask)).match(full) or (also is not None and regex.match(also))
            for mask in room.bans
        )

    def _is_room_op(self, user: User, room: Room) -> bool:
        return user.oper or "o" in room.members.get(user.sid, "")

    def _sharing(self, user: User) -> set[int]:
        """Everyone who shares a room with ``user``, and the user."""
        sids = {user.sid}
        for room in user.rooms.values():
            sids.update(room.members)
        return sids

    # -- registration and names ---------------------------------------------

    def _register(self, sid: int, cmd: c.Register, now: float, out: list[Delivery]) -> None:
        if sid in self.users:
            raise e.NameTaken(self.users[sid].name)
        key = self.preauth.get(sid)  # kept if this name is refused: the next try has it
        account = self.accounts.get(key) if key is not None else None
        name = self._pick_name(cmd.name, cmd.uniquify, key)
        self.preauth.pop(sid, None)
        user = User(
            sid=sid,
            name=name,
            door=cmd.door,
            host=cmd.host,
            port=cmd.port,
            username=cmd.username or name,
            realname=cmd.realname or name,
            connected_at=now,
            last_active=now,
            echo=cmd.echo,
            account=account.name if account is not None else None,
            oper=account is not None and account.oper,
        )
        self.users[sid] = user
        self.by_name[fold(name)] = user
        welcome = Welcome(
            user.ref,
            len(self.users),
            self.settings.server_name,
            user.door,
            user.address,
            len(self.rooms),
            sum(1 for u in self.users.values() if u.oper),
            self.settings.lobby,
        )
        out.append(Delivery((sid,), welcome))
        if cmd.lobby:
            join = c.Join(self.settings.lobby, create=True)
            try:
                self._join(user, join, now, out, permanent=True)
            except e.ChatError as err:
                # Registered all the same; only the lobby was refused (full, too many rooms).
                out.append(Delivery((sid,), Failed(err, join)))

    def _free(self, name: str, account: str | None) -> bool:
        """Nobody has the name, and no account but ``account`` (a key) owns it."""
        key = fold(name)
        if key in self.by_name or key in SERVICE_NAMES:
            return False
        return key not in self.accounts or key == account

    def _pick_name(self, wanted: str | None, uniquify: bool, account: str | None = None) -> str:
        if wanted is None:
            return self._guest_name()
        if not valid_name(wanted):
            if not uniquify:
                raise e.NameInvalid(wanted)
            wanted = sanitize_name(wanted)
            if not valid_name(wanted):
                return self._guest_name()
        if self._free(wanted, account):
            return wanted
        if not uniquify:
            if fold(wanted) in self.by_name or fold(wanted) in SERVICE_NAMES:
                raise e.NameTaken(wanted)
            raise e.NameReserved(wanted)
        for n in range(2, 10_000):
            suffix = str(n)
            candidate = wanted[: NAME_MAX - len(suffix)] + suffix
            if self._free(candidate, account):
                return candidate
        return self._guest_name()

    def _guest_name(self) -> str:
        for _ in range(1000):
            name = guest_name(self._rng)
            if self._free(name, None):
                return name
        # 90,000 guests online: fall back to a counter that can't collide.
        n = len(self.users)
        while fold(f"guest{n}") in self.by_name:
            n += 1
        return f"guest{n}"

    def _rename(self, user: User, cmd: c.Rename, now: float, out: list[Delivery]) -> None:
        new = cmd.name
        if not valid_name(new):
            raise e.NameInvalid(new)
        holder = self.by_name.get(fold(new))
        if (holder is not None and holder is not user) or fold(new) in SERVICE_NAMES:
            raise e.NameTaken(new)
        if new == user.name:
            return
        if fold(new) in self.accounts and fold(new) != fold(user.account or ""):
            raise e.NameReserved(new)
        self._set_name(user, new, now, out)

    def _set_name(self, user: User, new: str, now: float, out: list[Delivery]) -> None:
        old_ref = user.ref
        del self.by_name[fold(user.name)]
        user.name = new
        if user.username == old_ref.name:
            user.username = new
        if user.realname == old_ref.name:
            user.realname = new
        user.refresh()
        self.by_name[fold(new)] = user
        user.last_active = now
        out.append(Delivery(tuple(self._sharing(user)), Renamed(old_ref, user.ref)))

    # -- rooms ----------------------------------------------------------------

    def _check_join(self, user: User, room: Room, key: str | None) -> None:
        if user.oper:
            return
        if room.bans and self._banned(user, room):
            raise e.Banned(room.name)
        if room.private and fold(user.name) not in room.invited:
            raise e.InviteOnly(room.name)
        if room.password is not None and key != room.password:
            raise e.BadKey(room.name)
        if room.is_full():
            assert room.limit is not None
            raise e.RoomFull(room.name, room.limit)

    def _new_room(self, name: str, now: float, *, permanent: bool = False) -> Room:
        if not valid_room(name):
            raise e.RoomNameInvalid(name)
        if len(self.rooms) >= self.settings.max_rooms:
            raise e.TooManyRooms(self.settings.max_rooms)
        key = fold(name)
        # The lobby is everyone's, however it comes to be made: permanent, no owner.
        permanent = permanent or key == fold(self.settings.lobby)
        self._room_seq += 1
        return Room(name=name, key=key, created_at=now, permanent=permanent, id=self._room_seq)

    def _join(
        self,
        user: User,
        cmd: c.Join,
        now: float,
        out: list[Delivery],
        *,
        permanent: bool = False,
        room: Room | None = None,
    ) -> None:
        if room is None:
            room = self.rooms.get(fold(cmd.room))
            if room is None:
                # The lobby is where everyone lands: joining it makes it, whoever comes first.
                if not cmd.create and fold(cmd.room) != fold(self.settings.lobby):
                    # A name no room can have is a typo to point out, not a room to make.
                    if not valid_room(cmd.room):
                        raise e.RoomNameInvalid(cmd.room)
                    raise e.NoSuchRoom(cmd.room)
                room = self._new_room(cmd.room, now, permanent=permanent)
        if room.key not in self.rooms:
            pass  # a room being made right now: its maker may always enter
        elif user.sid in room.members:
            raise e.AlreadyInRoom(user.name, room.name)
        else:
            self._check_join(user, room, cmd.key)
        # Every check passed: from here on, change things.
        if cmd.switch:
            for other in list(user.rooms.values()):
                self._part(user, other, now, out)
        if room.key not in self.rooms:
            self.rooms[room.key] = room
            self._save_room(room)
        self._enter(user, room, now, out)

    def _enter(self, user: User, room: Room, now: float, out: list[Delivery]) -> None:
        owner = room.owner is not None and room.owner == fold(user.name)
        # A room's first member runs it, unless it is everyone's (the lobby) or the server's.
        first = not room.members and not room.permanent and room.owner != SERVER_OWNER
        room.add(user.sid, "o" if owner or first else "")
        room.invited.discard(fold(user.name))
        user.rooms[room.key] = room
        user.last_active = now
        out.append(
            Delivery(
                room.recipients(), Joined(room.name, user.ref, len(room.members), user.realname)
            )
        )
        if room.topic:
            out.append(
                Delivery((user.sid,), TopicIs(room.name, room.topic, room.topic_by, room.topic_at))
            )
        out.append(Delivery((user.sid,), self._name_list(room)))
        tail = self._tail(room)
        if tail:
            out.append(Delivery((user.sid,), HistoryReply(room.name, True, tuple(tail), "join")))

    def _name_list(self, room: Room) -> NameList:
        users = self.users
        return NameList(
            room.name,
            tuple(
                Member(users[sid].ref, modes, users[sid].away is not None)
                for sid, modes in room.members.items()
            ),
            room.private,
        )

    def _part(
        self,
        user: User,
        room: Room,
        now: float,
        out: list[Delivery],
        kind: str = "leave",
        reason: str = "",
        by: User | None = None,
    ) -> None:
        to = room.recipients()
        room.remove(user.sid, now)
        del user.rooms[room.key]
        out.append(
            Delivery(
                to,
                Left(
                    room.name,
                    user.ref,
                    len(room.members),
                    kind,  # type: ignore[arg-type]
                    reason,
                    by.ref if by is not None else None,
                ),
            )
        )

    def _create(self, user: User, cmd: c.Create, now: float, out: list[Delivery]) -> None:
        if fold(cmd.room) in self.rooms:
            raise e.RoomExists(self.rooms[fold(cmd.room)].name)
        if cmd.limit is not None and not 0 < cmd.limit <= MAX_LIMIT:
            raise e.LimitInvalid(str(cmd.limit))
        room = self._new_room(cmd.room, now)
        room.limit = cmd.limit
        room.password = cmd.key or None
        room.private = cmd.private
        if not room.permanent:
            room.owner = fold(user.account or user.name)
        self._join(
            user, c.Join(cmd.room, cmd.key, create=True, switch=cmd.switch), now, out, room=room
        )

    def _leave(self, user: User, cmd: c.Leave, now: float, out: list[Delivery]) -> None:
        room = self._target_room(user, cmd.room)
        if user.sid not in room.members:
            raise e.NotInRoom(room.name)
        user.last_active = now
        self._part(user, room, now, out, "leave", clean_reason(cmd.reason))

    def _kick(self, user: User, cmd: c.Kick, now: float, out: list[Delivery]) -> None:
        room = self._target_room(user, cmd.room)
        if not self._is_room_op(user, room):
            if user.sid not in room.members:
                raise e.NotInRoom(room.name)
            raise e.NotRoomOperator(room.name)
        target = self.user_named(cmd.name)
        if target is None:
            raise e.NoSuchUser(cmd.name)
        if target.sid not in room.members:
            raise e.UserNotInRoom(target.name, room.name)
        self._part(target, room, now, out, "kick", clean_reason(cmd.reason), by=user)
        if user.sid not in room.members and user is not target:
            out.append(Delivery((user.sid,), out[-1].event))  # an operator from outside

    def _invite(self, user: User, cmd: c.Invite, now: float, out: list[Delivery]) -> None:
        target = self.user_named(cmd.name)
        if target is None:
            raise e.NoSuchUser(cmd.name)
        room = self._target_room(user, cmd.room)
        if user.sid not in room.members and not user.oper:
            raise e.NotInRoom(room.name)
        if target.sid in room.members:
            raise e.AlreadyInRoom(target.name, room.name)
        if room.private and not self._is_room_op(user, room):
            raise e.NotRoomOperator(room.name)
        room.invited.add(fold(target.name))
        ev = Invited(room.name, user.ref, target.ref)
        out.append(Delivery((target.sid, user.sid) if target is not user else (user.sid,), ev))
        # The room's operators hear of it too (IRC's invite-notify).
        ops = tuple(
            sid
            for sid, modes in room.members.items()
            if "o" in modes and sid not in (user.sid, target.sid)
        )
        if ops:
            out.append(Delivery(ops, ev))

    # -- modes -----------------------------------------------------------------

    def _set_modes(self, user: User, cmd: c.SetModes, now: float, out: list[Delivery]) -> None:
        room = self._room(cmd.room)
        if not cmd.changes:
            member = user.sid in room.members or user.oper
            args: list[str] = []
            if room.password and member:
                args.append(room.password)
            if room.limit is not None:
                args.append(str(room.limit))
            out.append(
                Delivery(
                    (user.sid,), ModesAre(room.name, room.modes(), tuple(args), room.created_at)
                )
            )
            return
        if not self._is_room_op(user, room):
            if user.sid not in room.members:
                raise e.NotInRoom(room.name)
            raise e.NotRoomOperator(room.name)
        for ch in cmd.changes:
            self._check_mode(room, ch)
        applied = [
            ch for ch in (self._apply_mode(room, ch) for ch in cmd.changes) if ch is not None
        ]
        user.last_active = now
        if applied:
            if any(ch.mode not in "ov" for ch in applied):
                self._save_room(room)
            to = room.recipients()
            if user.sid not in room.members:
                to = (*to, user.sid)  # an operator from outside sees it done
            out.append(Delivery(to, ModesChanged(room.name, user.ref, tuple(applied))))

    def _check_mode(self, room: Room, ch: c.ModeChange) -> None:
        m = ch.mode
        if room.permanent and ch.add and m in "ikl":
            raise e.RoomProtected(room.name)  # the lobby stays open to everyone
        if m in "itnm":
            return
        if m == "l":
            if ch.add:
                if ch.arg is None:
                    raise e.ModeArgMissing(m)
                if not (ch.arg.isascii() and ch.arg.isdigit()) or not 0 < int(ch.arg) <= MAX_LIMIT:
                    raise e.LimitInvalid(ch.arg)
            return
        if m == "k":
            if ch.add:
                self._check_mode_arg_key(ch.arg)
            return
        if m in "ov":
            if not ch.arg:
                raise e.ModeArgMissing(m)
            target = self.user_named(ch.arg)
            if target is None:
                raise e.NoSuchUser(ch.arg)
            if target.sid not in room.members:
                raise e.UserNotInRoom(target.name, room.name)
            return
        if m == "b":
            if not ch.arg:
                raise e.ModeArgMissing(m)
            if ch.add and len(room.bans) >= MAX_BANS:
                raise e.BanListFull(room.name)
            if ch.add and len(ch.arg) > MASK_MAX:
                raise e.ModeArgInvalid(m, f"at most {MASK_MAX} characters")
            return
        raise e.UnknownMode(m)

    def _apply_mode(self, room: Room, ch: c.ModeChange) -> c.ModeChange | None:
        """Apply one checked change; None when it changed nothing."""
        m, add = ch.mode, ch.add
        if m in "itnm":
            attr = {"i": "private", "t": "topic_locked", "n": "no_external", "m": "moderated"}[m]
            if getattr(room, attr) == add:
                return None
            setattr(room, attr, add)
            return c.ModeChange(add, m)
        if m == "l":
            if add:
                assert ch.arg is not None
                if room.limit == int(ch.arg):
                    return None
                room.limit = int(ch.arg)
                return c.ModeChange(True, m, ch.arg)
            if room.limit is None:
                return None
            room.limit = None
            return c.ModeChange(False, m)
        if m == "k":
            if add:
                if room.password == ch.arg:
                    return None
                room.password = ch.arg
                return ch
            if room.password is None:
                return None
            old, room.password = room.password, None
            return c.ModeChange(False, m, old)
        if m in "ov":
            assert ch.arg is not None
            target = self.user_named(ch.arg)
            assert target is not None
            modes = room.members[target.sid]
            has = m in modes
            if has == add:
                return None
            room.members[target.sid] = "".join(x for x in "ov" if (x in modes) != (x == m))
            return c.ModeChange(add, m, target.name)
        # m == "b"
        assert ch.arg is not None
        mask = normal_mask(ch.arg)
        present = [b for b in room.bans if fold(b) == fold(mask)]
        if add:
            if present:
                return None
            room.bans.append(mask)
            return c.ModeChange(True, m, mask)
        if not present:
            return None
        room.bans.remove(present[0])
        return c.ModeChange(False, m, present[0])

    def _list_bans(self, user: User, cmd: c.ListBans, now: float, out: list[Delivery]) -> None:
        room = self._room(cmd.room)
        out.append(Delivery((user.sid,), BanList(room.name, tuple(room.bans))))

    # -- people and the server -----------------------------------------------

    def _whois(self, user: User, cmd: c.Whois, now: float, out: list[Delivery]) -> None:
        target = self.user_named(cmd.name)
        if target is None:
            raise e.NoSuchUser(cmd.name)
        rooms = tuple(
            (
                room.name,
                "@"
                if "o" in room.members[target.sid]
                else "+"
                if "v" in room.members[target.sid]
                else "",
            )
            for room in target.rooms.values()
            if not room.private or user.sid in room.members or user.oper
        )
        out.append(Delivery((user.sid,), WhoisReply(self.user_info(target, now), rooms, cmd.tag)))

    def _lookup(self, user: User, cmd: c.Lookup, now: float, out: list[Delivery]) -> None:
        found = [self.user_named(name) for name in cmd.names[:20]]
        infos = tuple(self.user_info(u, now) for u in found if u is not None)
        out.append(Delivery((user.sid,), Found(infos, cmd.tag)))

    def _stats(self, user: User, cmd: c.Stats, now: float, out: list[Delivery]) -> None:
        opers = sum(1 for u in self.users.values() if u.oper)
        out.append(Delivery((user.sid,), StatsReply(len(self.users), len(self.rooms), opers)))

    def _become_oper(self, user: User, cmd: c.BecomeOper, now: float, out: list[Delivery]) -> None:
        user.oper = True
        out.append(Delivery((user.sid,), OperGranted(user.ref)))

    def _drop_oper(self, user: User, cmd: c.DropOper, now: float, out: list[Delivery]) -> None:
        if user.oper:
            out.append(self._audit(user.name, "gave up operator status", ""))
        user.oper = False

    def _leave_all(self, user: User, cmd: c.LeaveAll, now: float, out: list[Delivery]) -> None:
        for room in list(user.rooms.values()):
            self._part(user, room, now, out)

    # -- speech ---------------------------------------------------------------

    def _say(self, user: User, cmd: c.Say, now: float, out: list[Delivery]) -> None:
        room = self._target_room(user, cmd.room)
        check_text(cmd.text)
        modes = room.members.get(user.sid)
        if modes is None:
            if room.no_external:
                raise e.CannotSend(room.name)
        elif room.moderated and not modes and not user.oper:
            raise e.CannotSend(room.name)
        if (
            room.bans
            and not user.oper
            and not modes  # a rank (o, v) outweighs a ban; members and outsiders alike
            and self._banned(user, room)
        ):
            raise e.CannotSend(room.name)
        if cmd.text[0] == "\x01":  # a CTCP request to the room's clients: not for history
            if not self.settings.direct and cmd.text[1:5].upper() == "DCC ":
                raise e.DirectOff()
            msg = Message(self._next_id(), now, room.name, user.ref, cmd.text, cmd.kind)
            self.journal.append(IdsUsed(msg.id))  # its id stays given, across restarts
            out.append(Delivery(room.recipients(), msg, -1 if user.echo else user.sid))
            return
        if not self.store_ok:
            raise e.StoreUnavailable()
        user.last_active = now
        msg = Message(self._next_id(), now, room.name, user.ref, cmd.text, cmd.kind)
        self.journal.append((room.id, msg))
        tail = room.recent
        if tail is None:
            tail = self._tail(room)
        tail.append(msg)
        out.append(Delivery(room.recipients(), msg, user.sid))
        if user.echo:
            out.append(Delivery((user.sid,), msg))

    def _tell(self, user: User, cmd: c.Tell, now: float, out: list[Delivery]) -> None:
        target = self.user_named(cmd.target)
        if target is None:
            raise e.NoSuchUser(cmd.target)
        check_text(cmd.text)
        # A CTCP request (DCC offers and the like) is for the other client, not for history.
        ctcp = cmd.text.startswith("\x01")
        if ctcp and not self.settings.direct and cmd.text[1:5].upper() == "DCC ":
            raise e.DirectOff()
        if not self.store_ok and not ctcp:
            raise e.StoreUnavailable()
        user.last_active = now
        msg = Private(self._next_id(), now, user.ref, target.ref, cmd.text, cmd.kind)
        # A CTCP request is not kept, but its id stays given, across restarts.
        self.journal.append(IdsUsed(msg.id) if ctcp else (0, msg))
        if target is not user:
            out.append(Delivery((target.sid,), msg))
            if target.away and cmd.kind != "notice":
                out.append(Delivery((user.sid,), IsAway(target.ref, target.away)))
        if user.echo or target is user:
            out.append(Delivery((user.sid,), msg))

    def _tag(self, user: User, cmd: c.Tag, now: float, out: list[Delivery]) -> None:
        if cmd.room:
            room = self._room(cmd.target)
            if user.sid not in room.members:
                raise e.CannotSend(room.name)
            ev = Tagged(user.ref, room.name, None, cmd.tags, now)
            out.append(Delivery(room.recipients(), ev, -1 if user.echo else user.sid))
            return
        target = self.user_named(cmd.target)
        if target is None:
            raise e.NoSuchUser(cmd.target)
        ev = Tagged(user.ref, None, target.ref, cmd.tags, now)
        to = (target.sid, user.sid) if user.echo and target is not user else (target.sid,)
        out.append(Delivery(to, ev))

    def _topic(self, user: User, cmd: c.Topic, now: float, out: list[Delivery]) -> None:
        room = self._target_room(user, cmd.room)
        if cmd.text is None:
            if room.private and user.sid not in room.members and not user.oper:
                raise e.NotInRoom(room.name)
            out.append(
                Delivery((user.sid,), TopicIs(room.name, room.topic, room.topic_by, room.topic_at))
            )
            return
        if user.sid not in room.members and not user.oper:
            raise e.NotInRoom(room.name)
        if room.topic_locked and not self._is_room_op(user, room):
            raise e.NotRoomOperator(room.name)
        text = cmd.text.strip()
        if text:
            check_text(text)
        if len(text) > TOPIC_MAX:
            raise e.TextInvalid(f"topics are at most {TOPIC_MAX} characters")
        room.topic, room.topic_by, room.topic_at = text, user.name, now
        self._save_room(room)
        user.last_active = now
        out.append(Delivery(room.recipients(), TopicChanged(room.name, text, user.ref, now)))
        if user.sid not in room.members:
            out.append(Delivery((user.sid,), TopicChanged(room.name, text, user.ref, now)))

    # -- queries --------------------------------------------------------------

    def _list_rooms(self, user: User, cmd: c.ListRooms, now: float, out: list[Delivery]) -> None:
        out.append(Delivery((user.sid,), RoomList(self.list_rooms())))

    def _list_users(self, user: User, cmd: c.ListUsers, now: float, out: list[Delivery]) -> None:
        if cmd.everyone or (cmd.room is None and user.current_room() is None):
            infos = tuple(self.user_info(u, now) for u in self.users.values())
            out.append(Delivery((user.sid,), UserList(None, infos)))
            return
        room = self._target_room(user, cmd.room)
        if room.private and user.sid not in room.members and not user.oper:
            raise e.NotInRoom(room.name)
        users = self.users
        infos = tuple(self.user_info(users[sid], now, room) for sid in room.members)
        out.append(Delivery((user.sid,), UserList(room.name, infos)))

    def _names(self, user: User, cmd: c.Names, now: float, out: list[Delivery]) -> None:
        room = self._room(cmd.room)
        if room.private and user.sid not in room.members and not user.oper:
            raise e.NotInRoom(room.name)
        out.append(Delivery((user.sid,), self._name_list(room)))

    def _echo(self, user: User, cmd: c.Echo, now: float, out: list[Delivery]) -> None:
        out.append(Delivery((user.sid,), Echoed(cmd.text)))

    def _set_echo(self, user: User, cmd: c.SetEcho, now: float, out: list[Delivery]) -> None:
        user.echo = cmd.on

    def _set_away(self, user: User, cmd: c.SetAway, now: float, out: list[Delivery]) -> None:
        text = cmd.text.strip() if cmd.text else None
        if text:
            check_text(text)
        user.away = text or None
        out.append(Delivery(tuple(self._sharing(user)), AwayChanged(user.ref, user.away)))

    # -- history ----------------------------------------------------------------

    def _fetch_history(
        self, user: User, cmd: c.FetchHistory, now: float, out: list[Delivery]
    ) -> None:
        limit = max(1, min(cmd.limit, self.settings.history_max))
        if cmd.room:
            room = self._target_room(user, cmd.target)
            closed = room.private or room.password is not None
            if user.sid not in room.members and closed and not user.oper:
                raise e.NotInRoom(room.name)
            target, room_id = room.name, room.id
        else:
            # Guests' names are reused by strangers: private history is an account's.
            if user.account is None:
                raise e.NotLoggedIn()
            assert cmd.target is not None
            if not valid_name(cmd.target):
                raise e.NoSuchUser(cmd.target)
            target, room_id = cmd.target, 0
        peer = self.account_named(target) if not room_id else None
        wanted = HistoryWanted(
            target,
            room_id,
            user.name,
            user.account,
            cmd.mode,
            cmd.start,
            cmd.end,
            limit,
            cmd.tag,
            peer_account=peer.name if peer is not None else None,
            since=self._account_since(user) if not room_id else 0.0,
        )
        out.append(Delivery((user.sid,), wanted))

    def _account_since(self, user: User) -> float:
        mine = self.account_named(user.account) if user.account else None
        return mine.created_at if mine is not None else 0.0

    def _fetch_targets(
        self, user: User, cmd: c.FetchTargets, now: float, out: list[Delivery]
    ) -> None:
        rooms = tuple((room.id, room.name) for room in user.rooms.values())
        limit = max(1, min(cmd.limit, self.settings.history_max))
        wanted = TargetsWanted(
            user.name,
            user.account,
            rooms,
            cmd.since,
            cmd.until,
            limit,
            cmd.tag,
            cmd.newest,
            self._account_since(user),
        )
        out.append(Delivery((user.sid,), wanted))

    # -- accounts: the server proved the password; these make it so ------------

    def account_named(self, name: str) -> AccountRecord | None:
        return self.accounts.get(fold(name))

    def check_register(self, sid: int) -> None:
        """Refuse early (before hashing a password) what ``register_account`` would."""
        user = self.users.get(sid)
        if user is None:
            raise e.NotLoggedIn()
        if user.account is not None:
            raise e.AlreadyLoggedIn(user.account)
        if fold(user.name) in self.accounts:
            raise e.AccountExists(user.name)
        if not self.store_ok:
            raise e.StoreUnavailable("accounts")

    def register_account(
        self, sid: int, password_hash: str, now: float, cmd: c.Command | None = None
    ) -> list[Delivery]:
        """Make the session's name an account, and log the session in to it."""
        out: list[Delivery] = []
        try:
            self.check_register(sid)
        except e.ChatError as err:
            return [Delivery((sid,), Failed(err, cmd))]
        user = self.users[sid]
        record = AccountRecord(fold(user.name), user.name, password_hash, False, now)
        self.accounts[record.key] = record
        self.journal.append(record)
        self._set_account(user, record, out)
        out.append(Delivery((sid,), AccountRegistered(record.name)))
        return out

    def log_in(
        self, sid: int, key: str, how: str, now: float, cmd: c.Command | None = None
    ) -> list[Delivery]:
        """The session proved it holds account ``key``. ``how`` ``login`` also
        takes the account's name, putting out any other session that has it."""
        account = self.accounts.get(key)
        if account is None:  # deleted while the password was being checked
            return [Delivery((sid,), Failed(e.LoginFailed(), cmd))]
        user = self.users.get(sid)
        if user is None:
            self.preauth[sid] = key
            return [Delivery((sid,), LoggedIn(account.name, "", "sasl"))]
        out: list[Delivery] = []
        if how == "login" and user.name != account.name:
            holder = self.by_name.get(key)
            if holder is not None and holder is not user:
                reason = "Logged in from elsewhere"
                self._remove_user(holder, now, out, "quit", reason)
                out.append(Delivery((holder.sid,), Closing(reason, "kill")))
            self._set_name(user, account.name, now, out)
        self._set_account(user, account, out)
        out.append(
            Delivery(
                (sid,), LoggedIn(account.name, user.name, "sasl" if how == "sasl" else "login")
            )
        )
        if account.oper and not user.oper:
            user.oper = True
            out.append(Delivery((sid,), OperGranted(user.ref)))
        return out

    def set_password(
        self, sid: int, password_hash: str, now: float, cmd: c.Command | None = None
    ) -> list[Delivery]:
        user = self.users.get(sid)
        account = self.accounts.get(fold(user.account)) if user and user.account else None
        if user is None or account is None:
            return [Delivery((sid,), Failed(e.NotLoggedIn(), cmd))]
        if not self.store_ok:
            return [Delivery((sid,), Failed(e.StoreUnavailable("accounts"), cmd))]
        record = AccountRecord(
            account.key, account.name, password_hash, account.oper, account.created_at
        )
        self.accounts[record.key] = record
        self.journal.append(record)
        return [Delivery((sid,), PasswordChanged(record.name))]

    def _set_account(self, user: User, account: AccountRecord, out: list[Delivery]) -> None:
        if user.account == account.name:
            return
        user.account = account.name
        user.refresh()
        others = tuple(self._sharing(user) - {user.sid})
        if others:
            out.append(Delivery(others, AccountChanged(user.ref, account.name)))

    # -- leaving the server ---------------------------------------------------

    def _quit(self, user: User, cmd: c.Quit, now: float, out: list[Delivery]) -> None:
        reason = clean_reason(cmd.reason)
        self._remove_user(user, now, out, "quit", reason)
        out.append(Delivery((user.sid,), Closing(reason, "quit")))

    def _remove_user(
        self, user: User, now: float, out: list[Delivery], kind: str, reason: str
    ) -> None:
        for room in list(user.rooms.values()):
            self._part(user, room, now, out, kind, reason)
        for call in [k for k in self.calls.values() if user.sid in (k.caller, k.callee)]:
            self._end_call(call, f"{user.name} left", out, only=call.other(user.sid))
        del self.users[user.sid]
        del self.by_name[fold(user.name)]

    def disconnect(self, sid: int, reason: str, now: float) -> list[Delivery]:
        """The server drops a session (lost connection, flood, send queue): others see it quit."""
        reason = clean_reason(reason)
        self.preauth.pop(sid, None)
        user = self.users.get(sid)
        out: list[Delivery] = []
        if user is not None:
            self._remove_user(user, now, out, "quit", reason)
        return out

    # -- direct calls ------------------------------------------------------------
    # The server introduces the two sides and passes on their signalling, only
    # between the two people of a call the callee has accepted; media never
    # comes here.

    def _call_start(self, user: User, cmd: c.CallStart, now: float, out: list[Delivery]) -> None:
        if not self.settings.direct:
            raise e.DirectOff()
        target = self.user_named(cmd.target)
        if target is None:
            raise e.NoSuchUser(cmd.target)
        if target is user:
            raise e.CannotCall(target.name, "that is you")
        if target.door not in CALL_DOORS:
            raise e.CannotCall(target.name, "they are not on the web client")
        for party in (user, target):
            if (
                sum(1 for k in self.calls.values() if party.sid in (k.caller, k.callee))
                >= MAX_CALLS
            ):
                raise e.CannotCall(target.name, "too many calls at once")
        self._call_seq += 1
        call = Call(self._call_seq, user.sid, target.sid, cmd.media, now)
        self.calls[call.id] = call
        user.last_active = now
        out.append(
            Delivery(
                (user.sid,), CallUpdate(call.id, "ringing", target.ref, call.media, tag=cmd.tag)
            )
        )
        out.append(Delivery((target.sid,), CallUpdate(call.id, "incoming", user.ref, call.media)))

    def _own_call(self, user: User, call_id: int) -> Call:
        call = self.calls.get(call_id)
        if call is None or user.sid not in (call.caller, call.callee):
            raise e.NoSuchCall(call_id)
        return call

    def _call_answer(self, user: User, cmd: c.CallAnswer, now: float, out: list[Delivery]) -> None:
        call = self._own_call(user, cmd.call)
        if user.sid != call.callee or call.accepted:
            raise e.NoSuchCall(cmd.call)
        if not cmd.accept:
            self._end_call(call, f"{user.name} declined", out)
            return
        call.accepted = True
        caller = self.users[call.caller]
        out.append(Delivery((caller.sid,), CallUpdate(call.id, "accepted", user.ref, call.media)))
        out.append(Delivery((user.sid,), CallUpdate(call.id, "accepted", caller.ref, call.media)))

    def _call_signal(self, user: User, cmd: c.CallSignal, now: float, out: list[Delivery]) -> None:
        call = self._own_call(user, cmd.call)
        if not call.accepted:
            raise e.NoSuchCall(cmd.call)  # nothing goes to someone who has not said yes
        if len(cmd.data) > MAX_SIGNAL:
            raise e.TextInvalid(f"call signalling longer than {MAX_SIGNAL} characters")
        out.append(Delivery((call.other(user.sid),), CallSignalled(call.id, user.ref, cmd.data)))

    def _call_end(self, user: User, cmd: c.CallEnd, now: float, out: list[Delivery]) -> None:
        call = self._own_call(user, cmd.call)
        reason = clean_reason(cmd.reason)[:200] or f"{user.name} hung up"
        self._end_call(call, reason, out)

    def _end_call(
        self, call: Call, reason: str, out: list[Delivery], only: int | None = None
    ) -> None:
        del self.calls[call.id]
        for sid in (call.caller, call.callee):
            if only is not None and sid != only:
                continue
            peer = self.users[call.other(sid)]
            out.append(Delivery((sid,), CallUpdate(call.id, "ended", peer.ref, call.media, reason)))

    def expire_calls(self, now: float) -> list[Delivery]:
        """Calls that rang longer than the offer TTL end with "no answer"."""
        out: list[Delivery] = []
        ttl = self.settings.offer_ttl
        for call in [k for k in self.calls.values() if not k.accepted and now - k.started >= ttl]:
            self._end_call(call, "no answer", out)
        return out

    def remove_node(
        self, node: int, reason: str, now: float, closing: bool = False
    ) -> list[Delivery]:
        """A node left the cluster, or went silent: its sessions quit for everyone
        else. ``closing`` tells its own people first (a node shutting down)."""
        reason = clean_reason(reason)
        for sid in [s for s in self.preauth if node_of(s) == node]:
            del self.preauth[sid]
        gone = [u for sid, u in self.users.items() if node_of(sid) == node]
        out: list[Delivery] = []
        if closing and gone:
            out.append(Delivery(tuple(u.sid for u in gone), Closing(reason, "shutdown")))
        why = reason or ("Server shutting down" if closing else "Node lost")
        for user in gone:
            self._remove_user(user, now, out, "quit", why)
        return out

    def shutdown(self, reason: str) -> list[Delivery]:
        """Tell everyone the server is going away. State is left as it is."""
        reason = clean_reason(reason)
        everyone = tuple(self.users)
        return [Delivery(everyone, Closing(reason, "shutdown"))] if everyone else []

    # -- operators ---------------------------------------------------------------
    # The public methods are what an operator may do, from a door (through the
    # commands below, once the session is an operator) or from the admin
    # console. ``by`` names who did it in the event log (an Audit delivered to
    # nobody); they raise ChatError and change nothing when refused.

    def server_ref(self) -> UserRef:
        """Who the server's own changes come from (IRC shows the server name)."""
        name = self.settings.server_name
        return UserRef(SERVER_SID, name, "", name)

    def _need_oper(self, user: User) -> None:
        if not user.oper:
            raise e.NotServerOperator()

    def _close_room(self, user: User, cmd: c.CloseRoom, now: float, out: list[Delivery]) -> None:
        self._need_oper(user)
        out.extend(self.close_room(cmd.room, cmd.reason, user.name, now, user.ref))
        out.append(Delivery((user.sid,), OperDone("close", cmd.room, clean_reason(cmd.reason))))

    def _kill(self, user: User, cmd: c.Kill, now: float, out: list[Delivery]) -> None:
        self._need_oper(user)
        out.extend(self.kill(cmd.name, cmd.reason, user.name, now))
        out.append(Delivery((user.sid,), OperDone("kill", cmd.name, clean_reason(cmd.reason))))

    def _broadcast(self, user: User, cmd: c.Broadcast, now: float, out: list[Delivery]) -> None:
        self._need_oper(user)
        out.extend(self.broadcast(cmd.text, user.name, user.name))

    def _shutdown(self, user: User, cmd: c.Shutdown, now: float, out: list[Delivery]) -> None:
        self._need_oper(user)
        out.append(Delivery((), ShutdownAsked(user.name, clean_reason(cmd.reason))))

    def _overview(self, user: User, cmd: c.Overview, now: float, out: list[Delivery]) -> None:
        self._need_oper(user)
        out.append(Delivery((user.sid,), OverviewReply(self.list_rooms(), self.list_users(now))))

    def list_rooms(self) -> tuple[RoomInfo, ...]:
        rooms = sorted(self.rooms.values(), key=lambda r: (not r.permanent, r.created_at, r.key))
        return tuple(self.room_info(r) for r in rooms)

    def list_users(self, now: float, room: str | None = None) -> tuple[UserInfo, ...]:
        if room is None:
            people = sorted(self.users.values(), key=lambda u: fold(u.name))
            return tuple(self.user_info(u, now) for u in people)
        r = self._room(room)
        return tuple(self.user_info(self.users[sid], now, r) for sid in r.members)

    def close_room(
        self, name: str, reason: str, by: str, now: float, ref: UserRef | None = None
    ) -> list[Delivery]:
        """Tell every member, remove them, forget the room and its place in the store."""
        reason = clean_reason(reason)
        room = self._room(name)
        if room.permanent:
            raise e.RoomProtected(room.name)  # the lobby is where everyone lands
        out: list[Delivery] = []
        for sid in list(room.members):
            member = self.users[sid]
            room.remove(sid, now)
            del member.rooms[room.key]
            # Each member hears of their own removal only: one line, not one per member.
            out.append(Delivery((sid,), Left(room.name, member.ref, 0, "close", reason, ref)))
        del self.rooms[room.key]
        self.journal.append(RoomClosed(room.id, now))
        out.append(self._audit(by, f"closed room {room.name}", reason))
        return out

    def kill(self, name: str, reason: str, by: str, now: float) -> list[Delivery]:
        reason = clean_reason(reason)
        target = self.user_named(name)
        if target is None:
            raise e.NoSuchUser(name)
        why = f"Removed by {by}" + (f": {reason}" if reason else "")
        out: list[Delivery] = []
        self._remove_user(target, now, out, "quit", why)
        out.append(Delivery((target.sid,), Closing(why, "kill")))
        out.append(self._audit(by, f"removed {target.name} from the server", reason))
        return out

    def broadcast(self, text: str, by: str = "", shown: str = "") -> list[Delivery]:
        """``shown``: the sender's name as people see it ("" for the server)."""
        check_text(text)
        out = [Delivery(tuple(self.users), ServerNotice(text, shown))]
        if by:
            out.append(self._audit(by, "broadcast", text))
        return out

    def create_room(
        self,
        name: str,
        by: str,
        now: float,
        *,
        limit: int | None = None,
        private: bool = False,
        key: str | None = None,
        topic: str = "",
    ) -> list[Delivery]:
        """A room made by the admin console: no members yet, and it lasts until closed."""
        if fold(name) in self.rooms:
            raise e.RoomExists(self.rooms[fold(name)].name)
        if limit is not None and not 0 < limit <= MAX_LIMIT:
            raise e.LimitInvalid(str(limit))
        if key is not None:
            self._check_mode_arg_key(key)
        topic = self._checked_topic(topic)
        room = self._new_room(name, now)
        room.limit, room.private, room.password = limit, private, key or None
        if not room.permanent:
            room.owner = SERVER_OWNER
        if topic:
            room.topic, room.topic_by, room.topic_at = topic, self.settings.server_name, now
        room.empty_since = now
        self.rooms[room.key] = room
        self._save_room(room)
        return [self._audit(by, f"created room {room.name}", self._describe_room(room))]

    def set_room(
        self,
        name: str,
        by: str,
        now: float,
        changes: tuple[c.ModeChange, ...] = (),
        topic: str | None = None,
    ) -> list[Delivery]:
        """Change a room's modes and topic as the server; members see it."""
        room = self._room(name)
        for ch in changes:
            if ch.mode not in "iklmnt":
                raise e.UnknownMode(ch.mode)
            self._check_mode(room, ch)
        if topic is not None:
            topic = self._checked_topic(topic)
        out: list[Delivery] = []
        applied = [ch for ch in (self._apply_mode(room, ch) for ch in changes) if ch is not None]
        server = self.server_ref()
        if applied:
            out.append(Delivery(room.recipients(), ModesChanged(room.name, server, tuple(applied))))
        if topic is not None and topic != room.topic:
            room.topic, room.topic_by, room.topic_at = topic, server.name, now
            out.append(Delivery(room.recipients(), TopicChanged(room.name, topic, server, now)))
        if out:
            self._save_room(room)
        out.append(self._audit(by, f"changed room {room.name}", self._describe_room(room)))
        return out

    def set_oper(self, name: str, on: bool, by: str) -> list[Delivery]:
        """Make a connected session a server operator, or no longer one."""
        user = self.user_named(name)
        if user is None:
            raise e.NoSuchUser(name)
        out: list[Delivery] = []
        self._set_session_oper(user, on, out)
        what = "made {} a server operator" if on else "took operator status from {}"
        out.append(self._audit(by, what.format(user.name), ""))
        return out

    def create_account(
        self, name: str, password_hash: str, oper: bool, by: str, now: float
    ) -> list[Delivery]:
        if not valid_name(name):
            raise e.NameInvalid(name)
        key = fold(name)
        if key in SERVICE_NAMES:
            raise e.NameTaken(name)  # the services' own (NickServ): never an account
        if key in self.accounts:
            raise e.AccountExists(name)
        if not self.store_ok:
            raise e.StoreUnavailable("accounts")
        record = AccountRecord(key, name, password_hash, oper, now)
        self.accounts[key] = record
        self.journal.append(record)
        extra = "operator" if oper else ""
        return [self._audit(by, f"created account {name}", extra)]

    def delete_account(self, name: str, by: str, now: float) -> list[Delivery]:
        """Forget an account; a session logged in to it goes on as a guest of that name."""
        account = self._account_to_change(name)
        del self.accounts[account.key]
        self.journal.append(AccountDeleted(account.key))
        out: list[Delivery] = []
        for user in self._sessions_of(account.key):
            user.account = None
            user.refresh()
            out.append(Delivery(tuple(self._sharing(user)), AccountChanged(user.ref, None)))
            if account.oper:  # the power came with the account: it goes too
                self._set_session_oper(user, False, out)
        out.append(self._audit(by, f"deleted account {account.name}", ""))
        return out

    def set_account_oper(self, name: str, on: bool, by: str) -> list[Delivery]:
        """The account's operator flag; sessions logged in to it follow at once."""
        account = self._account_to_change(name)
        record = AccountRecord(account.key, account.name, account.hash, on, account.created_at)
        self.accounts[record.key] = record
        self.journal.append(record)
        out: list[Delivery] = []
        for user in self._sessions_of(record.key):
            self._set_session_oper(user, on, out)
        what = "made account {} an operator" if on else "took the operator flag from account {}"
        out.append(self._audit(by, what.format(account.name), ""))
        return out

    def _account_to_change(self, name: str) -> AccountRecord:
        account = self.accounts.get(fold(name))
        if account is None:
            raise e.NoSuchAccount(name)
        if not self.store_ok:
            raise e.StoreUnavailable("accounts")
        return account

    def _sessions_of(self, key: str) -> list[User]:
        """Sessions logged in to the account ``key``."""
        return [u for u in self.users.values() if u.account is not None and fold(u.account) == key]

    @staticmethod
    def _set_session_oper(user: User, on: bool, out: list[Delivery]) -> None:
        if user.oper != on:
            user.oper = on
            out.append(
                Delivery((user.sid,), OperGranted(user.ref) if on else OperRevoked(user.ref))
            )

    @staticmethod
    def _audit(by: str, action: str, detail: str) -> Delivery:
        return Delivery((), Audit(by, action + (f": {detail}" if detail else "")))

    @staticmethod
    def _describe_room(room: Room) -> str:
        parts = [f"limit {room.limit}" if room.limit is not None else "no limit"]
        if room.private:
            parts.append("private")
        if room.password:
            parts.append("key")
        return ", ".join(parts)

    @staticmethod
    def _check_mode_arg_key(key: str | None) -> None:
        """A room key, however it is set (MODE +k, the admin console)."""
        if not key:
            raise e.ModeArgMissing("k")
        if any(ch in key for ch in " ,:\x00"):
            raise e.ModeArgInvalid("k", "no spaces, commas or colons in a key")
        if len(key) > KEY_MAX:
            raise e.ModeArgInvalid("k", f"at most {KEY_MAX} characters")

    @staticmethod
    def _checked_topic(topic: str) -> str:
        topic = topic.strip()
        if topic:
            check_text(topic)
        if len(topic) > TOPIC_MAX:
            raise e.TextInvalid(f"topics are at most {TOPIC_MAX} characters")
        return topic

    def expire_rooms(self, now: float) -> list[str]:
        """Forget user-made rooms that have been empty longer than the TTL."""
        ttl = self.settings.empty_room_ttl
        gone = [
            room
            for room in self.rooms.values()
            if not room.members
            and room.empty_since is not None
            and now - room.empty_since >= ttl
            and not self.lasting(room)
        ]
        for room in gone:
            del self.rooms[room.key]
            self.journal.append(RoomClosed(room.id, now))
        return [room.key for room in gone]


def recipients_of(deliveries: list[Delivery]) -> dict[int, list[Event]]:
    """Flatten deliveries into what each session receives, in order (tests, tools)."""
    per: dict[int, list[Event]] = {}
    for d in deliveries:
        for sid in d.to:
            if sid != d.exclude:
                per.setdefault(sid, []).append(d.event)
    return per

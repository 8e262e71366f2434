"""The chat state the hub owns: people, rooms and who is in which."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from salas.core.events import Message


@dataclass(frozen=True, slots=True)
class UserRef:
    """A person as events show them: a snapshot, so renders never read live state."""

    sid: int
    name: str
    username: str
    host: str
    account: str | None = None


@dataclass(eq=False, slots=True)
class User:
    """One connected session that has a name (registered with the hub)."""

    sid: int
    name: str
    door: str
    host: str
    port: int
    username: str
    realname: str
    connected_at: float
    last_active: float
    echo: bool = False
    oper: bool = False
    account: str | None = None
    away: str | None = None
    rooms: dict[str, Room] = field(default_factory=dict)
    ref: UserRef = field(init=False)

    def __post_init__(self) -> None:
        self.refresh()

    def refresh(self) -> None:
        """Rebuild the snapshot events carry; call after a name or account change."""
        self.ref = UserRef(self.sid, self.name, self.username, self.host, self.account)

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def current_room(self) -> Room | None:
        """The room most recently joined: where the one-room doors speak."""
        if not self.rooms:
            return None
        return next(reversed(self.rooms.values()))


@dataclass(eq=False, slots=True)
class Room:
    name: str
    key: str
    created_at: float
    limit: int | None = None
    password: str | None = None
    private: bool = False
    topic: str = ""
    topic_by: str = ""
    topic_at: float = 0.0
    topic_locked: bool = True
    no_external: bool = True
    moderated: bool = False
    permanent: bool = False
    owner: str | None = None
    #: sid -> membership modes ("o" operator, "v" voice), in join order.
    members: dict[int, str] = field(default_factory=dict)
    bans: list[str] = field(default_factory=list)
    invited: set[str] = field(default_factory=set)
    empty_since: float | None = None
    #: The room's id in the store (a new room of the same name gets a new id,
    #: and none of the old one's history).
    id: int = 0
    #: The latest messages, shown to newcomers; None until first needed.
    recent: deque[Message] | None = None
    _recipients: tuple[int, ...] | None = None

    def recipients(self) -> tuple[int, ...]:
        """Members as a tuple, cached between membership changes (the fan-out hot path)."""
        r = self._recipients
        if r is None:
            r = self._recipients = tuple(self.members)
        return r

    def add(self, sid: int, modes: str) -> None:
        self.members[sid] = modes
        self._recipients = None
        self.empty_since = None

    def remove(self, sid: int, now: float) -> None:
        del self.members[sid]
        self._recipients = None
        if not self.members:
            self.empty_since = now

    def is_full(self) -> bool:
        return self.limit is not None and len(self.members) >= self.limit

    def modes(self) -> str:
        """Channel mode letters for the room's flags (``+ntl`` style, without args)."""
        flags = ""
        if self.private:
            flags += "i"
        if self.password:
            flags += "k"
        if self.limit is not None:
            flags += "l"
        if self.moderated:
            flags += "m"
        if self.no_external:
            flags += "n"
        if self.topic_locked:
            flags += "t"
        return flags


@dataclass(eq=False, slots=True)
class Call:
    """A direct call the server introduced: ringing until the callee answers."""

    id: int
    caller: int
    callee: int
    media: str
    started: float
    accepted: bool = False

    def other(self, sid: int) -> int:
        return self.callee if sid == self.caller else self.caller


@dataclass(frozen=True, slots=True)
class RoomInfo:
    """A room as listings show it."""

    name: str
    count: int
    limit: int | None
    topic: str
    private: bool
    keyed: bool
    #: Mode letters (``Room.modes()``), for doors that show them.
    modes: str = ""
    #: Everyone's room (the lobby): it can't be closed.
    permanent: bool = False


@dataclass(frozen=True, slots=True)
class UserInfo:
    """A person as ``/who`` shows them."""

    name: str
    username: str
    host: str
    address: str
    door: str
    realname: str
    rooms: tuple[str, ...]
    idle: float
    connected_at: float
    account: str | None
    away: str | None
    oper: bool
    modes: str = ""


@dataclass(frozen=True, slots=True)
class Member:
    """A room member as names listings show them."""

    user: UserRef
    modes: str
    away: bool = False

"""What the hub tells sessions. Each door renders these in its own words.

Events are immutable snapshots: they are rendered right after the command
that made them, once per wire variant, and may be shared by many recipients.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from salas.core.commands import Bound, Command, HistoryMode, MessageKind, ModeChange
from salas.core.errors import ChatError
from salas.core.model import Member, RoomInfo, UserInfo, UserRef

LeaveKind = Literal["leave", "quit", "kick", "close"]


@dataclass(frozen=True, slots=True)
class Welcome:
    """To a session that just registered."""

    user: UserRef
    online: int
    server: str
    door: str = ""
    address: str = ""
    rooms: int = 0
    opers: int = 0
    #: The server's lobby, where guests land (its name is a setting).
    lobby: str = "lobby"


@dataclass(frozen=True, slots=True)
class Joined:
    """To everyone in ``room``, the newcomer included. ``count`` is after the join."""

    room: str
    user: UserRef
    count: int
    realname: str = ""


@dataclass(frozen=True, slots=True)
class Left:
    """To everyone who was in ``room``, the one who left included."""

    room: str
    user: UserRef
    count: int
    kind: LeaveKind = "leave"
    reason: str = ""
    by: UserRef | None = None


@dataclass(slots=True)
class Message:
    """A room message; ``id`` orders a room's history.

    Not frozen only for speed (one is made per message): never change one.
    """

    id: int
    time: float
    room: str
    sender: UserRef
    text: str
    kind: MessageKind = "say"


@dataclass(frozen=True, slots=True)
class Private:
    id: int
    time: float
    sender: UserRef
    target: UserRef
    text: str
    kind: MessageKind = "say"


@dataclass(frozen=True, slots=True)
class Tagged:
    """Client-only tags from ``sender`` to a room (``room`` set) or to ``target``."""

    sender: UserRef
    room: str | None
    target: UserRef | None
    tags: tuple[tuple[str, str], ...]
    time: float


@dataclass(frozen=True, slots=True)
class Renamed:
    """To the renamed person and everyone who shares a room with them."""

    old: UserRef
    new: UserRef


@dataclass(frozen=True, slots=True)
class TopicChanged:
    room: str
    topic: str
    by: UserRef
    time: float


@dataclass(frozen=True, slots=True)
class TopicIs:
    """The answer to a topic query, and part of what a newcomer is told."""

    room: str
    topic: str
    by: str
    time: float


@dataclass(frozen=True, slots=True)
class RoomList:
    rooms: tuple[RoomInfo, ...]


@dataclass(frozen=True, slots=True)
class UserList:
    """``room`` is None when the list is of everyone online."""

    room: str | None
    users: tuple[UserInfo, ...]


@dataclass(frozen=True, slots=True)
class NameList:
    """A room's members; sent to a newcomer after their Joined."""

    room: str
    members: tuple[Member, ...]
    private: bool = False


@dataclass(frozen=True, slots=True)
class Echoed:
    text: str


@dataclass(frozen=True, slots=True)
class AwayChanged:
    """To oneself (and, for doors that show it, to those who share a room)."""

    user: UserRef
    text: str | None


@dataclass(frozen=True, slots=True)
class IsAway:
    """To someone who just sent a private message to a person marked away."""

    user: UserRef
    text: str


@dataclass(frozen=True, slots=True)
class Invited:
    """To the invited person and, as confirmation, to the one who invited."""

    room: str
    by: UserRef
    target: UserRef


@dataclass(frozen=True, slots=True)
class ModesChanged:
    """To everyone in the room: what changed, in the order applied."""

    room: str
    by: UserRef
    changes: tuple[ModeChange, ...]


@dataclass(frozen=True, slots=True)
class ModesAre:
    """A room's modes: letters (``+ntl``), their arguments, and when it was made."""

    room: str
    modes: str
    args: tuple[str, ...]
    created_at: float


@dataclass(frozen=True, slots=True)
class BanList:
    room: str
    masks: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class WhoisReply:
    user: UserInfo
    #: The rooms the asker may see, each with the person's rank there ("@" or "+").
    rooms: tuple[tuple[str, str], ...]
    tag: str = ""


@dataclass(frozen=True, slots=True)
class Found:
    """The answer to a Lookup: the people online among the names asked for, in order."""

    users: tuple[UserInfo, ...]
    tag: str = ""


@dataclass(frozen=True, slots=True)
class StatsReply:
    users: int
    rooms: int
    opers: int


@dataclass(frozen=True, slots=True)
class OperGranted:
    user: UserRef


@dataclass(frozen=True, slots=True)
class OperDone:
    """To the operator who closed a room or removed someone (they may not have
    been in the room, or near the person, so nothing else would tell them)."""

    action: Literal["close", "kill"]
    target: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class OperRevoked:
    """To a session that is no longer a server operator."""

    user: UserRef


@dataclass(frozen=True, slots=True)
class ServerNotice:
    """Plain words from the server or an operator, to one or many."""

    text: str
    by: str = ""


@dataclass(frozen=True, slots=True)
class Audit:
    """An operator's action, for the event log only (delivered to nobody)."""

    by: str
    action: str


@dataclass(frozen=True, slots=True)
class ShutdownAsked:
    """An operator asked the server to stop. Never rendered: the server stops."""

    by: str
    reason: str


@dataclass(frozen=True, slots=True)
class OverviewReply:
    """Every room and everyone online, to an operator."""

    rooms: tuple[RoomInfo, ...]
    users: tuple[UserInfo, ...]


CallState = Literal["ringing", "incoming", "accepted", "ended"]


@dataclass(frozen=True, slots=True)
class CallUpdate:
    """A call's state, to one side: ``ringing`` (to the caller), ``incoming`` (to
    the one called), ``accepted``, or ``ended`` with the reason. ``peer`` is the other side."""

    call: int
    state: CallState
    peer: UserRef
    media: str
    reason: str = ""
    tag: str = ""


@dataclass(frozen=True, slots=True)
class CallSignalled:
    """The other side's session description or ICE candidate, passed on as it came."""

    call: int
    sender: UserRef
    data: str


@dataclass(frozen=True, slots=True)
class Failed:
    """To the sender only: the command was refused and nothing changed."""

    error: ChatError
    command: Command | None = None


@dataclass(frozen=True, slots=True)
class Closing:
    """The session is being disconnected; the door says why, then it is closed."""

    reason: str
    kind: Literal["quit", "kill", "shutdown", "error"] = "quit"


# -- history ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HistoryWanted:
    """A checked history request. Never rendered: the server answers it from
    the store (after every message already said is written) with a HistoryReply."""

    target: str
    #: The room's id in the store, or 0 for a private conversation.
    room_id: int
    #: The asker's name and account: private history is kept per account.
    me: str
    account: str | None
    mode: HistoryMode
    start: Bound | None
    end: Bound | None
    limit: int
    tag: str = ""
    #: A private conversation: the other person's account when the name is
    #: registered (their messages under other nicks count), and when the
    #: asker's account was made (a name deleted and registered again by
    #: someone else doesn't bring the old owner's conversations with it).
    peer_account: str | None = None
    since: float = 0.0


@dataclass(frozen=True, slots=True)
class HistoryReply:
    """Stored messages, oldest first. ``reason``: ``join`` (what a newcomer is
    shown) or ``request``. ``target`` is the room, or the other person."""

    target: str
    room: bool
    messages: tuple[Message | Private, ...]
    reason: Literal["join", "request"] = "request"
    tag: str = ""


@dataclass(frozen=True, slots=True)
class TargetsWanted:
    """A checked ``FetchTargets``; answered by the server like HistoryWanted."""

    me: str
    account: str | None
    #: The asker's rooms: store id -> name.
    rooms: tuple[tuple[int, str], ...]
    since: float
    until: float
    limit: int
    tag: str = ""
    newest: bool = False
    #: When the asker's account was made: older private messages are another owner's.
    account_since: float = 0.0


@dataclass(frozen=True, slots=True)
class HistoryTargets:
    """Conversations and the time of their latest message, oldest first."""

    targets: tuple[tuple[str, bool, float], ...]
    tag: str = ""


# -- accounts --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoggedIn:
    """To the session that proved its password. ``name``: its name now."""

    account: str
    name: str
    how: Literal["login", "sasl", "register"] = "login"


@dataclass(frozen=True, slots=True)
class AccountRegistered:
    account: str


@dataclass(frozen=True, slots=True)
class PasswordChanged:
    account: str


@dataclass(frozen=True, slots=True)
class AccountChanged:
    """To those who share a room with ``user``: it logged in (IRC account-notify)."""

    user: UserRef
    account: str | None


Event = (
    Welcome
    | Joined
    | Left
    | Message
    | Private
    | Tagged
    | Renamed
    | TopicChanged
    | TopicIs
    | RoomList
    | UserList
    | NameList
    | Echoed
    | AwayChanged
    | IsAway
    | Invited
    | ModesChanged
    | ModesAre
    | BanList
    | WhoisReply
    | Found
    | StatsReply
    | OperGranted
    | OperRevoked
    | OperDone
    | ServerNotice
    | Audit
    | ShutdownAsked
    | OverviewReply
    | CallUpdate
    | CallSignalled
    | Failed
    | Closing
    | HistoryWanted
    | HistoryReply
    | TargetsWanted
    | HistoryTargets
    | LoggedIn
    | AccountRegistered
    | PasswordChanged
    | AccountChanged
)


@dataclass(slots=True)
class Delivery:
    """``event`` goes to every session in ``to`` except ``exclude``.

    Not frozen only for speed (one or more per command): never change one.
    """

    to: tuple[int, ...]
    event: Event
    exclude: int = -1

"""What sessions ask the hub for. Every door translates its wire into these."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

MessageKind = Literal["say", "action", "notice"]


@dataclass(frozen=True, slots=True)
class Register:
    """Become a named user. ``name=None`` asks for a guest name.

    ``uniquify`` is for doors that can't refuse a name (CS168): a taken or
    invalid name is changed instead of refused. ``lobby`` joins the lobby at once.
    """

    name: str | None
    door: str
    host: str
    port: int
    username: str = ""
    realname: str = ""
    echo: bool = False
    lobby: bool = False
    uniquify: bool = False


@dataclass(frozen=True, slots=True)
class Rename:
    name: str


@dataclass(frozen=True, slots=True)
class Join:
    """Enter a room. ``switch`` leaves every other room first (one-room doors);
    ``create`` makes the room when it is missing (IRC's JOIN)."""

    room: str
    key: str | None = None
    create: bool = False
    switch: bool = False


@dataclass(frozen=True, slots=True)
class Create:
    """Make a room and enter it; refused when it exists."""

    room: str
    limit: int | None = None
    key: str | None = None
    private: bool = False
    switch: bool = False


@dataclass(frozen=True, slots=True)
class Leave:
    """Leave ``room``, or the current room when it is None."""

    room: str | None = None
    reason: str = ""


@dataclass(slots=True)
class Say:
    """Speak in ``room``, or the current room when it is None.

    Not frozen only for speed (one is made per message): never change one.
    """

    room: str | None
    text: str
    kind: MessageKind = "say"


@dataclass(frozen=True, slots=True)
class Tell:
    """A private message to one person."""

    target: str
    text: str
    kind: MessageKind = "say"


@dataclass(frozen=True, slots=True)
class Tag:
    """Client-only message tags with no text (IRCv3 TAGMSG: typing and the like),
    to a room (``#`` dropped) or a person, whichever ``target`` names."""

    target: str
    room: bool
    tags: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Topic:
    """Ask for (``text=None``) or set the topic of ``room`` (None: current room)."""

    room: str | None
    text: str | None = None


@dataclass(frozen=True, slots=True)
class ListRooms:
    pass


@dataclass(frozen=True, slots=True)
class ListUsers:
    """``/who``: a room's members (None: current room), or everyone with ``everyone``."""

    room: str | None = None
    everyone: bool = False


@dataclass(frozen=True, slots=True)
class Names:
    room: str


@dataclass(frozen=True, slots=True)
class Echo:
    text: str


@dataclass(frozen=True, slots=True)
class SetEcho:
    """Whether one's own messages come back (IRC's echo-message, the web client)."""

    on: bool


@dataclass(frozen=True, slots=True)
class SetAway:
    text: str | None


@dataclass(frozen=True, slots=True)
class Kick:
    """Put ``name`` out of ``room`` (None: the sender's current room)."""

    room: str | None
    name: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Invite:
    """Let ``name`` into ``room`` (None: the sender's current room), private or not."""

    name: str
    room: str | None


@dataclass(frozen=True, slots=True)
class ModeChange:
    """One room mode: ``l`` limit, ``k`` key, ``i`` private, ``t`` topic lock,
    ``n`` no outside messages, ``m`` moderated, ``o``/``v`` a member's rank,
    ``b`` a ban mask (``nick!user@host`` with ``*`` and ``?``)."""

    add: bool
    mode: str
    arg: str | None = None


@dataclass(frozen=True, slots=True)
class SetModes:
    """Change a room's modes; with no changes, ask for them. All or nothing."""

    room: str
    changes: tuple[ModeChange, ...] = ()


@dataclass(frozen=True, slots=True)
class ListBans:
    room: str


@dataclass(frozen=True, slots=True)
class Whois:
    """Ask about one person. ``tag`` comes back in the answer (the door's own use)."""

    name: str
    tag: str = ""


@dataclass(frozen=True, slots=True)
class Lookup:
    """Which of these names are online (IRC's ISON and USERHOST); ``tag`` comes back."""

    names: tuple[str, ...]
    tag: str = ""


@dataclass(frozen=True, slots=True)
class Stats:
    """How many people and rooms (IRC's LUSERS)."""


@dataclass(frozen=True, slots=True)
class BecomeOper:
    """Made by a door only after it checked the operator's credentials itself."""

    name: str


@dataclass(frozen=True, slots=True)
class DropOper:
    """Give up server operator status (IRC's ``MODE nick -o``)."""


# Operator commands: the hub refuses them (NotServerOperator) unless the
# session is a server operator.


@dataclass(frozen=True, slots=True)
class CloseRoom:
    """Close a room: its members are told and removed, and it is forgotten."""

    room: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Kill:
    """Put someone off the server (IRC's ``KILL``)."""

    name: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Broadcast:
    """Plain words to everyone online, on every door (IRC's ``WALLOPS``)."""

    text: str


@dataclass(frozen=True, slots=True)
class Shutdown:
    """Stop the server: everyone is told, history is flushed (IRC's ``DIE``)."""

    reason: str = ""


@dataclass(frozen=True, slots=True)
class Overview:
    """Every room and everyone online, for an operator's admin view."""


# Direct calls: the server introduces the two people and relays their
# WebRTC signalling; the media goes straight between them.

CallMedia = Literal["audio", "video"]


@dataclass(frozen=True, slots=True)
class CallStart:
    """Ring someone: ``audio``, or ``video`` (audio and video)."""

    target: str
    media: CallMedia = "audio"
    tag: str = ""


@dataclass(frozen=True, slots=True)
class CallAnswer:
    """The one being called accepts or declines."""

    call: int
    accept: bool


@dataclass(frozen=True, slots=True)
class CallSignal:
    """A session description or ICE candidate for the other side, opaque to the server."""

    call: int
    data: str


@dataclass(frozen=True, slots=True)
class CallEnd:
    """Either side hangs up (or the caller gives up ringing)."""

    call: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class LeaveAll:
    """Leave every room (IRC's ``JOIN 0``)."""


@dataclass(frozen=True, slots=True)
class Bound:
    """A point in history: a message id, or a time (seconds since the epoch)."""

    id: int | None = None
    time: float | None = None


HistoryMode = Literal["latest", "before", "after", "around", "between"]


@dataclass(frozen=True, slots=True)
class FetchHistory:
    """Messages of a room (``room``) or of one's private conversation with
    ``target``. ``latest``: the newest, after ``start`` if given; ``before`` /
    ``after`` / ``around`` ``start``; ``between`` ``start`` and ``end``.
    ``target`` None: the current room."""

    target: str | None
    room: bool = True
    limit: int = 50
    mode: HistoryMode = "latest"
    start: Bound | None = None
    end: Bound | None = None
    #: The door's token to pair the answer with the request (IRC labels, batches).
    tag: str = ""


@dataclass(frozen=True, slots=True)
class FetchTargets:
    """Conversations with messages between two times (IRC ``CHATHISTORY TARGETS``)."""

    since: float
    until: float
    limit: int = 50
    tag: str = ""
    #: More than ``limit`` conversations: keep the most recently active (else the oldest).
    newest: bool = False


# Account commands carry passwords: the server checks them off the event loop
# (hashing is slow on purpose) and then tells the hub what was proven.


@dataclass(frozen=True, slots=True)
class LogIn:
    """``name`` None: the current name. ``how``: ``login`` (rename to the
    account's name, as the line door does) or ``sasl`` (keep the nick)."""

    name: str | None
    password: str = field(repr=False)
    how: Literal["login", "sasl"] = "login"


@dataclass(frozen=True, slots=True)
class RegisterAccount:
    """Register the current name as an account with this password."""

    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class OperUp:
    """Become a server operator with a name and password from ``[[operators]]``."""

    name: str
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class ChangePassword:
    old: str = field(repr=False)
    new: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Quit:
    reason: str = ""


Command = (
    Register
    | Rename
    | Join
    | Create
    | Leave
    | Say
    | Tell
    | Tag
    | Topic
    | ListRooms
    | ListUsers
    | Names
    | Echo
    | SetEcho
    | SetAway
    | Kick
    | Invite
    | SetModes
    | ListBans
    | Whois
    | Lookup
    | Stats
    | BecomeOper
    | DropOper
    | CloseRoom
    | Kill
    | Broadcast
    | Shutdown
    | Overview
    | CallStart
    | CallAnswer
    | CallSignal
    | CallEnd
    | LeaveAll
    | FetchHistory
    | FetchTargets
    | LogIn
    | RegisterAccount
    | ChangePassword
    | OperUp
    | Quit
)

#: Commands the server runs itself (they carry passwords) before the hub hears the outcome.
ACCOUNT_COMMANDS = (LogIn, RegisterAccount, ChangePassword, OperUp)

"""What the hub asks to keep: the records it appends to its journal, and what
a store hands back at start.

The hub stays free of I/O: it appends records to ``Hub.journal`` as it
changes state, and the server hands the journal to the store once per loop
turn. A store writes a turn's records in one transaction, before anyone sees
the output of that turn (see docs/architecture.md, "No message lost").
"""

from __future__ import annotations

from dataclasses import dataclass

from salas.core.events import Message, Private


@dataclass(frozen=True, slots=True)
class RoomRecord:
    """A room's lasting state, written whole whenever any of it changes."""

    id: int
    key: str
    name: str
    created_at: float
    owner: str | None
    limit: int | None
    password: str | None
    private: bool
    topic: str
    topic_by: str
    topic_at: float
    #: Flag modes other than ``i``, ``k`` and ``l`` (those have their own fields).
    flags: str
    bans: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RoomClosed:
    id: int
    at: float


@dataclass(frozen=True, slots=True)
class AccountRecord:
    """``key`` is the folded name; ``hash`` a PHC string (argon2id)."""

    key: str
    name: str
    hash: str
    oper: bool
    created_at: float


@dataclass(frozen=True, slots=True)
class AccountDeleted:
    key: str


@dataclass(frozen=True, slots=True)
class IdsUsed:
    """Message ids up to ``upto`` were given out, some to messages not kept
    (CTCP requests): they are never given again, after a restart either."""

    upto: int


#: A message to keep: (room id, Message), or (0, Private) for a private one.
Said = tuple[int, Message | Private]

Record = RoomRecord | RoomClosed | AccountRecord | AccountDeleted | IdsUsed | Said


@dataclass(frozen=True, slots=True)
class Loaded:
    """Everything a store holds that the hub keeps in memory, read at start."""

    rooms: tuple[RoomRecord, ...] = ()
    accounts: tuple[AccountRecord, ...] = ()
    last_message_id: int = 0
    last_room_id: int = 0

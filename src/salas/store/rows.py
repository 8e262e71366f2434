"""Records as table rows and rows as events: one shape for every SQL store.

The SQLite and PostgreSQL stores share their tables' columns; only the SQL
around them differs. What goes into a row, and what a row comes back as, is
written once here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from salas.core.events import Message, Private
from salas.core.model import UserRef
from salas.core.records import (
    AccountDeleted,
    AccountRecord,
    IdsUsed,
    Record,
    RoomClosed,
    RoomRecord,
)

Row = tuple[Any, ...]
#: A turn's records in order: runs of messages as rows for ``messages`` and
#: ``private_messages``, and the room and account changes between them.
Step = (
    tuple[list[Row], list[Row]] | RoomRecord | RoomClosed | AccountRecord | AccountDeleted | IdsUsed
)


def steps(records: list[Record]) -> Iterator[Step]:
    """Messages gathered for ``executemany``; each room or account change keeps its place."""
    rows: list[Row] = []
    private: list[Row] = []
    for r in records:
        if type(r) is tuple:
            room_id, ev = r
            s = ev.sender
            if type(ev) is Private:
                t = ev.target
                private.append(
                    (
                        ev.id,
                        ev.time,
                        s.name,
                        s.username,
                        s.host,
                        ev.kind,
                        ev.text,
                        s.account,
                        t.name,
                        t.account,
                    )
                )
            else:
                rows.append(
                    (
                        ev.id,
                        room_id,
                        ev.time,
                        s.name,
                        s.username,
                        s.host,
                        ev.kind,
                        ev.text,
                        s.account,
                    )
                )
            continue
        if rows or private:
            yield rows, private
            rows, private = [], []
        yield r  # type: ignore[misc]  # a record that is not a message
    if rows or private:
        yield rows, private


def room_row(r: RoomRecord) -> Row:
    """The ``rooms`` columns (bans as a JSON list)."""
    return (
        r.id,
        r.key,
        r.name,
        r.created_at,
        r.owner,
        r.limit,
        r.password,
        r.private,
        r.topic,
        r.topic_by,
        r.topic_at,
        r.flags,
        json.dumps(list(r.bans)),
    )


def account_row(r: AccountRecord) -> Row:
    return (r.key, r.name, r.hash, r.oper, r.created_at)


def json_list(text: str) -> list[str]:
    """A stored JSON list of strings; anything else reads as empty."""
    try:
        value = json.loads(text)
    except ValueError:
        return []
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def user_ref(name: str, username: str | None, host: str | None, account: str | None) -> UserRef:
    return UserRef(0, name, username or name, host or "", account)


def read_message(r: Sequence[Any], room: str) -> Message:
    """A row of the message columns: id, time, sender, username, host, kind, text, account."""
    return Message(r[0], r[1], room, user_ref(r[2], r[3], r[4], r[7]), r[6], r[5])


def read_private(r: Sequence[Any]) -> Private:
    """A row of the stores' private message columns (the message's, then target and its account)."""
    target = user_ref(r[8] or "", None, None, r[9])
    return Private(r[0], r[1], user_ref(r[2], r[3], r[4], r[7]), target, r[6], r[5])

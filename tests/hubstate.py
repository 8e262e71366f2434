"""A deep snapshot of the hub's state: what a refused command must leave alone."""

from __future__ import annotations

import copy
from typing import Any

from salas.core import commands as c
from salas.core import errors as e
from salas.core.events import Delivery, Failed
from salas.core.hub import Hub


def snapshot(hub: Hub) -> Any:
    users = {
        sid: (u.name, u.username, u.realname, u.echo, u.away, u.oper, u.account, tuple(u.rooms))
        for sid, u in hub.users.items()
    }
    rooms = {
        key: (
            r.name,
            r.limit,
            r.password,
            r.private,
            r.moderated,
            r.topic_locked,
            r.no_external,
            r.topic,
            r.topic_by,
            r.topic_at,
            r.permanent,
            r.owner,
            tuple(r.members.items()),
            tuple(sorted(r.invited)),
            tuple(r.bans),
            r.empty_since,
        )
        for key, r in hub.rooms.items()
    }
    by_name = {key: u.sid for key, u in hub.by_name.items()}
    # A refused command keeps nothing either: the journal and the accounts stay as they were.
    kept = (len(hub.journal), dict(hub.accounts), dict(hub.preauth))
    return copy.deepcopy((users, rooms, by_name, kept))


def register(
    hub: Hub,
    sid: int,
    name: str | None = None,
    *,
    door: str = "line",
    lobby: bool = False,
    uniquify: bool = False,
    echo: bool = False,
    now: float = 0.0,
) -> list[Delivery]:
    cmd = c.Register(
        name, door, "127.0.0.1", 40000 + sid, echo=echo, lobby=lobby, uniquify=uniquify
    )
    return hub.handle(sid, cmd, now)


def refused(hub: Hub, sid: int, cmd: c.Command, now: float = 1.0) -> e.ChatError:
    """Run ``cmd``; check it was refused with one Failed to ``sid`` and changed nothing."""
    before = snapshot(hub)
    out = hub.handle(sid, cmd, now)
    assert len(out) == 1, out
    (d,) = out
    assert d.to == (sid,)
    assert isinstance(d.event, Failed)
    assert d.event.command == cmd
    assert snapshot(hub) == before
    return d.event.error

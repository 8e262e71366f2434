"""A deep snapshot of the hub's state: what a refused command must leave alone."""

from __future__ import annotations

import copy
from typing import Any

from salas.core.hub import Hub


def snapshot(hub: Hub) -> Any:
    users = {
        sid: (u.name, u.username, u.realname, u.echo, u.away, u.oper, tuple(u.rooms))
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
    return copy.deepcopy((users, rooms, by_name))

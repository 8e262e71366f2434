"""The hub's direct methods by name, each taking the log's ``now``.

Everything that changes a hub goes through ``handle`` (a session's command) or
one of these (the server's own doings: a lost connection, a checked password,
the admin console, timers). Naming them lets one node's operation be applied
by every node's hub in the same order, with the same clock, so the copies stay
the same; a single node applies them the same way, at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from salas.core.hub import Hub

#: method -> how to apply it: (hub, now, *args) -> the method's result.
APPLY: dict[str, Callable[..., Any]] = {
    "disconnect": lambda h, now, sid, reason: h.disconnect(sid, reason, now),
    "log_in": lambda h, now, sid, key, how, cmd: h.log_in(sid, key, how, now, cmd),
    "register_account": lambda h, now, sid, hashed, cmd: h.register_account(sid, hashed, now, cmd),
    "set_password": lambda h, now, sid, hashed, cmd: h.set_password(sid, hashed, now, cmd),
    "close_room": lambda h, now, name, reason, by: h.close_room(name, reason, by, now),
    "kill": lambda h, now, name, reason, by: h.kill(name, reason, by, now),
    "broadcast": lambda h, now, text, by, shown: h.broadcast(text, by, shown),
    "create_room": lambda h, now, name, by, limit, private, key, topic: h.create_room(
        name, by, now, limit=limit, private=private, key=key, topic=topic
    ),
    "set_room": lambda h, now, name, by, changes, topic: h.set_room(name, by, now, changes, topic),
    "set_oper": lambda h, now, name, on, by: h.set_oper(name, on, by),
    "create_account": lambda h, now, name, hashed, oper, by: h.create_account(
        name, hashed, oper, by, now
    ),
    "delete_account": lambda h, now, name, by: h.delete_account(name, by, now),
    "set_account_oper": lambda h, now, name, on, by: h.set_account_oper(name, on, by),
    "expire_rooms": lambda h, now: h.expire_rooms(now),
    "expire_calls": lambda h, now: h.expire_calls(now),
    "node_gone": lambda h, now, node, reason: h.remove_node(node, reason, now),
    "shutdown_node": lambda h, now, node, reason: h.remove_node(node, reason, now, closing=True),
}


def apply(hub: Hub, now: float, method: str, args: tuple[Any, ...]) -> Any:
    """Run one named method; ChatError when the hub refuses it (nothing changed)."""
    return APPLY[method](hub, now, *args)

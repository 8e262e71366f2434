"""Which codec each ``--listen`` door speaks, set up from the configuration."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from functools import partial

from salas.config import Config
from salas.net.server import DoorFactory
from salas.proto.cs168 import Cs168Door
from salas.proto.irc.door import IrcDoor, IrcInfo
from salas.proto.line import LineDoor


def door_factories(config: Config, started: float | None = None) -> dict[str, DoorFactory]:
    srv = config.server
    created = datetime.fromtimestamp(started or time.time(), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    info = IrcInfo(
        server=srv.name,
        network=srv.network,
        description=srv.description,
        created=created,
        motd=tuple(config.irc.motd),
        operators=tuple((op.name, op.password) for op in config.operators),
        ping_interval=config.irc.ping_interval,
        ping_timeout=config.irc.ping_timeout,
        history_max=config.history.max_request,
    )
    return {
        "line": LineDoor,
        "cs168": Cs168Door,
        "irc": partial(IrcDoor, info=info),
    }

"""Which codec each ``--listen`` door speaks, set up from the configuration."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from functools import partial
from importlib.resources import files
from importlib.resources.abc import Traversable

from salas.config import Config
from salas.net.server import DoorFactory
from salas.proto.cs168 import Cs168Door
from salas.proto.http import HttpDoor, Site
from salas.proto.irc.door import IrcDoor, IrcInfo
from salas.proto.line import LineDoor
from salas.proto.webjson import CallSettings, ice_servers


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
    http = config.http
    direct = config.direct
    calls = CallSettings(
        direct=direct.enabled,
        ice_servers=ice_servers(
            direct.stun, direct.turn, direct.turn_username, direct.turn_credential
        )
        if direct.enabled
        else (),
    )
    return {
        "line": LineDoor,
        "cs168": Cs168Door,
        "irc": partial(IrcDoor, info=info),
        "http": partial(
            HttpDoor,
            site=load_site(),
            ping_interval=http.ping_interval,
            ping_timeout=http.ping_timeout,
            calls=calls,
        ),
    }


#: The package directory the http door serves (``/`` is its index.html).
WEB_PACKAGE = "salas"
WEB_DIR = "web"


def load_site() -> Site:
    """Every file under ``salas/web`` (as installed: a wheel, a checkout), read
    once at start. Hidden files and Python files are left out."""
    found: dict[str, bytes] = {}

    def walk(node: Traversable, prefix: str) -> None:
        for child in node.iterdir():
            name = child.name
            if name.startswith((".", "_")) or name.endswith((".py", ".pyc")):
                continue
            if child.is_dir():
                walk(child, f"{prefix}{name}/")
            elif child.is_file():
                found[prefix + name] = child.read_bytes()

    root = files(WEB_PACKAGE).joinpath(WEB_DIR)
    if root.is_dir():
        walk(root, "")
    return Site(found)

"""Which codec each ``--listen`` door speaks."""

from __future__ import annotations

from salas.net.server import DoorFactory
from salas.proto.cs168 import Cs168Door
from salas.proto.line import LineDoor

FACTORIES: dict[str, DoorFactory] = {
    "line": LineDoor,
    "cs168": Cs168Door,
}

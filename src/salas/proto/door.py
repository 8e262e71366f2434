"""What every door codec offers the network adapter."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Protocol

from salas.core.commands import Command
from salas.core.events import Event


class Deferred:
    """One client line whose meaning depends on what ran before it (IRC: a
    command pipelined behind the line that completes registration). It is
    read when its turn comes, costs one flood token, and gives inputs."""

    __slots__ = ("resolve",)

    def __init__(self, resolve: Callable[[], list[Input]]) -> None:
        self.resolve = resolve


class Introduced:
    """The client has introduced itself without becoming a hub user (a WebSocket
    that only echoes): the registration deadline no longer applies to it."""

    __slots__ = ()


#: The one ``Introduced`` a door needs to return.
INTRODUCED = Introduced()

#: What a door makes of incoming bytes: commands for the hub, bytes to send
#: straight back to this connection (usage errors, help), a callable that
#: makes such bytes when its turn comes (replies that depend on what ran
#: before them, such as IRC's labeled responses; it costs no flood token),
#: a ``Deferred`` line, or ``INTRODUCED``.
Input = Command | bytes | Callable[[], bytes] | Deferred | Introduced


class Door(Protocol):
    #: Short name shown in ``/who`` and logs.
    door: ClassVar[str]
    #: Sessions whose doors have equal variants get the same bytes for a
    #: room ``Message``: the fan-out renders once per variant.
    variant: object
    #: Seconds between ``tick`` calls, or None for a door with no timers.
    tick_interval: float | None

    def start(self) -> list[Input]:
        """What happens as soon as the connection is open."""
        ...

    def receive_data(self, data: bytes) -> list[Input]:
        """Total: any bytes give inputs, never an exception."""
        ...

    def render(self, event: Event) -> bytes:
        """The bytes this connection gets for ``event`` (may be empty).

        A room ``Message`` is rendered by one member's door for every member
        with the same variant (never by its sender's door): those bytes must
        not depend on the rendering connection's own state."""
        ...

    def shared_key(self, event: Event) -> object | None:
        """When this connection's bytes for ``event`` are the same as for every other
        connection with the same key, that key (the fan-out renders once per key);
        None when they depend on this connection (its own join, per-client state)."""
        ...

    def render_error_close(self, reason: str) -> bytes:
        """Last words when the server cuts the connection off (flood, send queue, timeout)."""
        ...

    def render_flood_notice(self) -> bytes:
        """Said once when commands start being delayed."""
        ...

    def tick(self, idle: float) -> list[Input]:
        """Timers (IRC's PING): ``idle`` is how long since the client last sent anything."""
        ...

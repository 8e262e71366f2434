"""The asyncio side: one ``Connection`` (an ``asyncio.Protocol``) per client,
parametrised by its door codec, and the ``Server`` that runs commands through
the hub and fans the events out.

Concurrency rules (see docs/architecture.md):

* Everything runs on the event loop thread; the hub is never awaited.
* Output is coalesced: an event appends bytes to each recipient's buffer, and
  one flush per loop turn writes each dirty connection once. Nothing waits
  for a recipient, so a slow reader can't slow a room; when its transport
  buffer passes ``sendq_bytes`` it is cut off.
* A room ``Message`` is rendered once per door variant and the same bytes go
  to every member of that variant.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, cast

from salas.config import Config
from salas.core import errors as e
from salas.core import operations
from salas.core.commands import ACCOUNT_COMMANDS, Command, Quit, Register, Say, Tell
from salas.core.events import (
    Closing,
    Delivery,
    Failed,
    HistoryReply,
    HistoryTargets,
    HistoryWanted,
    Message,
    ServerNotice,
    ShutdownAsked,
    TargetsWanted,
)
from salas.core.hub import NODE_SHIFT, Hub, node_of
from salas.core.oplog import Call, Do
from salas.core.ratelimit import FloodGate, FloodPolicy
from salas.logs import describe
from salas.net.accounts import Accounts
from salas.proto.door import Deferred, Door, Input, Introduced
from salas.store.base import Store
from salas.store.memory import MemoryStore

if TYPE_CHECKING:
    from salas.net.bus import RedisBus

log = logging.getLogger("salas")


def _answered_here(item: Input) -> bool:
    """Bytes a door made by itself (help, usage errors), or will make (a
    callable): not a command for the hub, nor a line still to be read."""
    return isinstance(item, bytes) or (callable(item) and not isinstance(item, Deferred))


DoorFactory = Callable[[int, str, int], Door]

#: The shared "nothing queued" list: never appended to (``send`` replaces it).
NOTHING_QUEUED: list[bytes | bytearray] = []

#: Seconds between sweeps of every connection's timers (registration deadline,
#: IRC PING): the resolution of those timers.
SWEEP_PERIOD = 0.5
#: At most this many records said since a turn went to the store make
#: its output wait for them (``store_written``).
STRAGGLERS = 8
#: Seconds between applications of the history retention settings.
PRUNE_PERIOD = 3600.0
#: Output waiting for the store past this many bytes (a stalled disk) stops the
#: server reading from every client until the store catches up to half of it:
#: memory stays bounded, and nothing is dropped.
HELD_LIMIT = 64 * 1024 * 1024


class Connection(asyncio.Protocol):
    """One client socket: bytes to its door, inputs to the server, bytes back."""

    __slots__ = (
        "_drain_handle",
        "_lag_told",
        "_pending",
        "asked",
        "asked_bytes",
        "closed",
        "closing",
        "dirty",
        "door",
        "door_factory",
        "gate",
        "held",
        "host",
        "last_rx",
        "next_tick",
        "out",
        "paused",
        "port",
        "reason",
        "server",
        "sid",
        "transport",
    )

    def __init__(self, server: Server, door_factory: DoorFactory) -> None:
        self.server = server
        self.door_factory = door_factory
        #: Queued output: bytes, and room batch buffers shared with other members.
        #: Emptied (and dropped) at every flush, so an idle client holds no list.
        self.out: list[bytes | bytearray] = NOTHING_QUEUED
        self.dirty = False
        #: Output waiting for the store to keep what it carries (see Server.flush).
        self.held = 0
        #: How many reasons hold this client's input (a password check, with a
        #: bus its registration or commands out on the log): what it sends
        #: waits, and reading stops, until none is left.
        self.paused = 0
        self.closing = False
        self.closed = False
        self.reason = ""
        self.gate: FloodGate | None = None
        #: Inputs waiting for flood tokens; made on first need (most never need one).
        self._pending: deque[Input] | None = None
        self._drain_handle: asyncio.TimerHandle | None = None
        self._lag_told = False
        #: While history is being fetched for this client: the replies sent
        #: meanwhile, with None where each answer goes (None: nothing asked).
        self.asked: list[bytes | None] | None = None
        self.asked_bytes = 0
        self.last_rx = time.monotonic()
        self.next_tick = 0.0

    # -- asyncio.Protocol -------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports quack like asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername") or ("?", 0)
        # Interned: thousands of clients share a few addresses, so share the strings.
        self.host, self.port = sys.intern(str(peer[0])), int(peer[1])
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Output is already batched per loop turn, so Nagle only adds latency.
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            except OSError:  # pragma: no cover - not a TCP socket
                pass
        server = self.server
        self.sid = server.new_sid()
        self.door = self.door_factory(self.sid, self.host, self.port)
        server.conns[self.sid] = self
        if server.reads_paused:
            self.transport.pause_reading()
        if not server.is_flood_exempt(self.host):
            self.gate = FloodGate(server.flood_policy, time.monotonic())
        log.debug("connection %s from %s:%s via %s", self.sid, self.host, self.port, self.door.door)
        start = self.door.start()
        if not start:
            # The door waits for the client to introduce itself: not for ever.
            server.unnamed[self.sid] = self.last_rx + server.config.limits.register_timeout
        interval = self.door.tick_interval
        if interval:
            self.next_tick = self.last_rx + interval  # 0.0: no ticks for this door
        for item in start:
            self.server.run(self, item)

    def tick(self, now: float) -> None:
        """The server's sweep found this connection's timers due."""
        interval = self.door.tick_interval
        if not interval or self.closing:
            return
        self.next_tick = now + interval
        if self.paused:
            return  # its input is held here: not idle, and nothing to answer yet
        for item in self.door.tick(now - self.last_rx):
            self.server.run(self, item)

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        self.last_rx = time.monotonic()
        items = self.door.receive_data(data)
        if not items:
            return
        gate = self.gate
        pending = self._pending
        if gate is None and not pending and not self.paused:
            run = self.server.run
            for i, item in enumerate(items):
                run(self, item)
                if self.stopped():
                    return
                if self.waiting():
                    # After whatever the paused line itself left (``put_back``).
                    if self._pending is None:
                        self._pending = deque()
                    self._pending.extend(items[i + 1 :])
                    return
            return
        if pending is None:
            pending = self._pending = deque()
        pending.extend(items)
        if self.paused:
            return
        if self._drain_handle is None:
            self._drain()
        elif gate is not None and len(pending) > gate.policy.max_queue:
            self.kill("Excess flood")

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.closing = True
        if self._drain_handle is not None:
            self._drain_handle.cancel()
        self._pending = None
        self.out = NOTHING_QUEUED
        reason = self.reason or ("Connection reset" if exc is not None else "Connection closed")
        self.server.connection_gone(self, reason)

    def stopped(self) -> bool:
        """Closing or closed: read nothing more from this client."""
        return self.closing

    def waiting(self) -> bool:
        """Input is held until a password check ends."""
        return self.paused > 0

    def put_back(self, items: list[Input]) -> None:
        """Inputs to run first when the connection resumes."""
        if self._pending is None:
            self._pending = deque()
        self._pending.extendleft(reversed(items))

    def pause(self) -> None:
        """Hold this client's input (a password is being checked): what it
        sends next waits, and reading stops, so the wait costs no memory."""
        self.paused += 1
        if not self.closing:
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.paused:
            self.paused -= 1
            if self.paused:
                return
        # The time held was not the client's silence.
        self.last_rx = time.monotonic()
        if self.closing:
            return
        if not self.server.reads_paused:
            self.transport.resume_reading()
        if self._pending and self._drain_handle is None:
            self._drain()

    # -- flood control ------------------------------------------------------

    def _drain(self) -> None:
        """Run waiting inputs as their tokens come; cut the sender off past the queue bound."""
        self._drain_handle = None
        gate = self.gate
        pending = self._pending
        assert pending is not None
        loop = self.server.loop
        while pending and not self.closing and not self.paused:
            if gate is None:
                self.server.run(self, pending.popleft())
                continue
            now = time.monotonic()
            wait = gate.wait(now)
            if wait > 0:
                if not self._lag_told:
                    self._lag_told = True
                    self.send(self.door.render_flood_notice())
                if len(pending) > gate.policy.max_queue:
                    self.kill("Excess flood")
                    return
                self._drain_handle = loop.call_later(wait, self._drain)
                return
            item = pending.popleft()
            if not callable(item):
                gate.take(now)
            self.server.run(self, item)
        if not pending:
            self._lag_told = False

    # -- output -------------------------------------------------------------

    def send(self, data: bytes) -> None:
        asked = self.asked
        if asked is not None and data:  # after an answer still to come from the store
            asked.append(data)
            self.asked_bytes += len(data)
            # Bounded like the send queue: past it, order gives way to memory.
            if self.asked_bytes > self.server.sendq:
                self.give_up_asking()
            return
        self.send_now(data)

    def send_now(self, data: bytes) -> None:
        """``send``, even ahead of a history answer still to come."""
        if data and not self.closing:
            # Anything but a room batch closes the open batch: later room
            # messages must come after this, for every recipient.
            self.server.batch = None
            if self.out is NOTHING_QUEUED:
                self.out = [data]
            else:
                self.out.append(data)
            if not self.dirty:
                self.dirty = True
                self.server.mark_dirty(self)

    def attach(self, data: bytes | bytearray) -> None:
        """Queue a room batch's buffer (or one message of it) without closing the batch."""
        if not self.closing:
            if self.out is NOTHING_QUEUED:
                self.out = [data]
            else:
                self.out.append(data)
            if not self.dirty:
                self.dirty = True
                self.server.mark_dirty(self)

    def give_up_asking(self) -> None:
        """Closing: what waits behind a history answer goes now, without it."""
        asked, self.asked = self.asked, None
        self.asked_bytes = 0
        for data in asked or ():
            if data is not None:
                self.send_now(data)

    def finish(self) -> None:
        """Close once what is queued has been written."""
        self.give_up_asking()
        self.closing = True
        if not self.dirty and not self.held:
            self.transport.close()

    def kill(self, reason: str) -> None:
        """The server cuts this client off: it is told why, the others see it quit."""
        if self.closing:
            return
        self.give_up_asking()
        self.send(self.door.render_error_close(reason))
        self.reason = reason
        log.info("! %s:%s cut off: %s", self.host, self.port, reason)
        self.closing = True
        self.server.log_gone(self, reason)
        self.server.call_now("disconnect", self.sid, reason)
        if not self.dirty and not self.held:
            self.transport.close()


class RoomBatch:
    """A room's messages for this loop turn: one growing buffer per door
    variant, queued once to each member. A member that speaks is fed the
    rest one by one instead (it must not get its own message back)."""

    __slots__ = ("bufs", "detached", "doors", "to")

    def __init__(self, to: tuple[int, ...]) -> None:
        #: The room's recipients tuple: the hub makes a new one whenever
        #: membership changes, so identity says "same room, same members".
        self.to = to
        self.bufs: dict[object, bytearray] = {}
        self.doors: dict[object, Door] = {}
        self.detached: dict[int, Connection] = {}


class Server:
    """Runs every connection's commands through the hub and fans events out."""

    def __init__(
        self,
        config: Config,
        hub: Hub,
        loop: asyncio.AbstractEventLoop,
        store: Store | None = None,
    ) -> None:
        self.config = config
        self.hub = hub
        self.loop = loop
        self.store: Store = store if store is not None else MemoryStore()
        self.conns: dict[int, Connection] = {}
        self._dirty: list[Connection] = []
        self._flush_scheduled = False
        #: Turns handed to the store, and the last one it has written.
        self._submitted = 0
        self._written = 0
        #: Output of turns the store has not written yet, oldest first:
        #: (turn, [(connection, bytes)]). Nobody sees a message before it is kept.
        self._held: deque[tuple[int, list[tuple[Connection, bytes | bytearray]]]] = deque()
        self._held_bytes = 0
        #: Turns whose records include messages (their output waits for them to be kept).
        self._said_in: set[int] = set()
        #: Ready output waits for a few stragglers' commit (``store_written``).
        self._deferred = False
        #: Output carrying messages the store failed to keep: out once it has kept them.
        self._stuck: list[tuple[Connection, bytes | bytearray]] = []
        #: Reading from every client stopped while too much output waits for the store.
        self.reads_paused = False
        self._caught_up: asyncio.Event | None = None
        self._prune: asyncio.TimerHandle | None = None
        self.accounts = Accounts(self)
        self._next_sid = 0
        self._exempt = config.flood_exempt()
        lim = config.limits
        self.flood_policy = FloodPolicy(lim.flood_rate, lim.flood_burst, lim.flood_queue)
        self.sendq = lim.sendq_bytes
        self.log_settings = config.log
        self.servers: list[asyncio.Server] = []
        self._expiry: asyncio.TimerHandle | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        #: Connections that have not registered yet, and when they must have.
        self.unnamed: dict[int, float] = {}

        self._all_gone: asyncio.Event | None = None
        #: Called with the reason when an operator asks the server to stop.
        self.on_stop: Callable[[str], None] | None = None
        #: The open room batch, if any. Only one is open at a time, and any other
        #: output closes it: that keeps order per sender and per room.
        self.batch: RoomBatch | None = None
        #: False while the store can't write (with a bus the hubs' copies must
        #: agree, so this node refuses messages itself instead of its hub).
        self.store_ok = True
        #: The cluster's bus, when this node shares the chat with others: every
        #: operation goes through it, and comes back in the cluster's order.
        self.bus: RedisBus | None = None
        #: The operation being applied came from this node (its shutdown
        #: requests are this node's to carry out).
        self.own = True
        self._sid_base = 0
        #: With a bus: each client's commands not yet back from the log, and the
        #: clients whose input waits for them (see run). Kept here, not on
        #: every connection: most servers have no bus.
        self.inflight: dict[int, int] = {}
        self.hub_waiting: set[int] = set()
        #: The process's exit status once stopped (1: it could not go on).
        self.exit_code = 0

    def use_bus(self, bus: RedisBus) -> None:
        self.bus = bus
        self._sid_base = bus.node << NODE_SHIFT

    def new_sid(self) -> int:
        self._next_sid += 1
        return self._sid_base | self._next_sid

    def is_flood_exempt(self, host: str) -> bool:
        if not self._exempt:
            return False
        try:
            addr = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(addr in net for net in self._exempt)

    # -- commands in -----------------------------------------------------------

    def run(self, conn: Connection, item: Input) -> None:
        if self.inflight and conn.sid in self.inflight and _answered_here(item):
            self.wait_for_hub(conn, [item])
            return
        if isinstance(item, bytes):
            conn.send(item)
        elif isinstance(item, Deferred):
            subs = item.resolve()
            for i, sub in enumerate(subs):
                if conn.closing:
                    return
                if conn.paused:
                    conn.put_back(subs[i:])  # a password check holds the rest of the line
                    return
                if conn.sid in self.inflight and _answered_here(sub):
                    self.wait_for_hub(conn, subs[i:])
                    return
                self.run(conn, sub)
        elif callable(item):
            conn.send(item())
        elif isinstance(item, Introduced):
            self.unnamed.pop(conn.sid, None)
        elif type(item) in ACCOUNT_COMMANDS:
            self.accounts.run(conn, item)
        else:
            self.dispatch(conn.sid, item)

    def wait_for_hub(self, conn: Connection, items: list[Input]) -> None:
        """With a bus, a client's commands come back from the log a moment
        later; what its door answers by itself waits for them, so replies keep
        the order the client asked in."""
        conn.put_back(items)
        self.hub_waiting.add(conn.sid)
        conn.pause()

    def applied(self, sid: int) -> None:
        """One of this node's commands came back from the log and was applied."""
        n = self.inflight.get(sid)
        if n is None:
            return
        if n > 1:
            self.inflight[sid] = n - 1
            return
        del self.inflight[sid]
        if sid in self.hub_waiting:
            self.hub_waiting.discard(sid)
            conn = self.conns.get(sid)
            if conn is not None:
                conn.resume()

    def _registered(self, conn: Connection, cmd: Command, done: asyncio.Future[Any]) -> None:
        err = None if done.cancelled() else done.exception()
        if isinstance(err, e.ChatError):
            self.deliver([Delivery((conn.sid,), Failed(err, cmd))])
        conn.resume()

    def dispatch(self, sid: int, cmd: Command) -> None:
        if type(cmd) is Quit:
            conn = self.conns.get(sid)
            if conn is not None:
                if sid not in self.hub.users:
                    # Never registered, so the hub won't say goodbye: the door does.
                    conn.send(conn.door.render(Closing(cmd.reason or "Quit", "quit")))
                    conn.finish()
                    return
                self.log_gone(conn, cmd.reason or "Quit")
        bus = self.bus
        if bus is not None:
            if (
                not self.store_ok
                and (type(cmd) is Say or type(cmd) is Tell)
                and not cmd.text.startswith("\x01")  # CTCP is not kept, so not refused
            ):
                self.deliver([Delivery((sid,), Failed(e.StoreUnavailable(), cmd))])
                return
            conn = self.conns.get(sid)
            if type(cmd) is Register and conn is not None:
                # A door learns it is registered from the hub's answer: what
                # the client sent after registering waits for that answer.
                conn.pause()
                self.inflight[sid] = self.inflight.get(sid, 0) + 1
                done: asyncio.Future[Any] = self.loop.create_future()
                done.add_done_callback(lambda f: self._registered(conn, cmd, f))
                bus.submit(Do(sid, cmd), done)
                return
            if conn is not None:
                self.inflight[sid] = self.inflight.get(sid, 0) + 1
            bus.submit(Do(sid, cmd))
            return
        self.apply(sid, cmd, time.time())

    def apply(self, sid: int, cmd: Command, now: float) -> None:
        """One command through the hub, and its events out."""
        try:
            deliveries = self.hub.handle(sid, cmd, now)
        except Exception:  # a bug must cost one command, never the server
            log.exception("! internal error handling %r from session %s", cmd, sid)
            conn = self.conns.get(sid)
            if conn is not None:
                conn.kill("Internal server error")
            return
        self.deliver(deliveries)
        if self.hub.journal:
            self.schedule_flush()

    def need_store(self) -> None:
        """StoreUnavailable while the store can't write: for changes that must be
        kept (accounts). With a bus the hubs don't judge their own store (their
        copies must agree), so this node does, as a hub would."""
        if not self.store_ok:
            raise e.StoreUnavailable("accounts")

    async def call(self, method: str, *args: Any) -> Any:
        """One of the hub's named methods (core/operations.py), its events out;
        with a bus, once the cluster has ordered it. ChatError when refused."""
        if self.bus is not None:
            return await self.bus.call(Call(method, args))
        return self.apply_call(method, args, time.time())

    def call_now(self, method: str, *args: Any) -> None:
        """``call`` without waiting for the answer (lost connections, timers)."""
        if self.bus is not None:
            self.bus.submit(Call(method, args))
            return
        with contextlib.suppress(e.ChatError):
            self.apply_call(method, args, time.time())

    def apply_call(self, method: str, args: tuple[Any, ...], now: float) -> Any:
        result = operations.apply(self.hub, now, method, args)
        if type(result) is list and (not result or type(result[0]) is Delivery):
            self.deliver(result)
        if method == "expire_rooms" and result:
            log.info("> forgot %d empty room(s): %s", len(result), ", ".join(result))
        self.after_hub()
        return result

    def after_hub(self) -> None:
        """The hub was called outside ``dispatch``: what it journaled goes out this turn."""
        if self.hub.journal:
            self.schedule_flush()

    def connection_gone(self, conn: Connection, reason: str) -> None:
        if self.conns.get(conn.sid) is conn:
            del self.conns[conn.sid]
        self.unnamed.pop(conn.sid, None)
        self.hub_waiting.discard(conn.sid)
        self.log_gone(conn, reason)
        if not self.conns and self._all_gone is not None:
            self._all_gone.set()
        self.call_now("disconnect", conn.sid, reason)

    # -- events out --------------------------------------------------------------

    def log_gone(self, conn: Connection, reason: str) -> None:
        user = self.hub.users.get(conn.sid)
        if user is not None and self.bus is not None:
            # With a bus the hub learns of it a moment later: no count yet.
            log.info("< The user %s [%s] left: %s", user.name, user.address, reason)
        elif user is not None:
            online = len(self.hub.users) - 1
            log.info(
                "< The user %s [%s] left (%s): %s",
                user.name,
                user.address,
                f"{online} user online" if online == 1 else f"{online} users online",
                reason,
            )

    def deliver(self, deliveries: Iterable[Delivery]) -> None:
        conns = self.conns
        logged: object = None
        for d in deliveries:
            ev = d.event
            if ev is not logged:
                logged = ev
                # Room messages are the hot path: no look at them when they aren't logged.
                if type(ev) is not Message or self.log_settings.messages:
                    line = describe(ev, self.log_settings)
                    if line is not None:
                        log.info("%s", line)
            exclude = d.exclude
            if type(ev) is Message and len(d.to) > 1:
                self._deliver_room_message(d, ev)
                continue
            if type(ev) is HistoryWanted or type(ev) is TargetsWanted:
                if d.to[0] in conns:
                    self._ask_store(d.to[0], ev)
                continue
            if type(ev) is ShutdownAsked:
                if self.on_stop is not None and self.own:
                    self.on_stop(ev.reason)
                continue
            closing = type(ev) is Closing
            shared: dict[object, bytes] = {}
            for sid in d.to:
                if sid == exclude:
                    continue
                conn = conns.get(sid)
                if conn is None:
                    continue
                door = conn.door
                key = door.shared_key(ev) if len(d.to) > 2 else None
                if key is None:
                    conn.send(door.render(ev))
                else:
                    data = shared.get(key)
                    if data is None:
                        data = shared[key] = door.render(ev)
                    conn.send(data)
                if closing:
                    conn.finish()

    def _deliver_room_message(self, d: Delivery, ev: Message) -> None:
        """The hot path: each message is rendered once per variant and appended
        once to the room's batch, however many members the room has."""
        conns = self.conns
        sender = d.exclude
        batch = self.batch
        if batch is None or batch.to is not d.to:
            batch = self._open_batch(d.to, sender)
        elif sender not in batch.detached:
            conn = conns.get(sender)
            if conn is not None:
                # The sender has had this batch so far: freeze its copy here.
                variant = conn.door.variant
                out = conn.out
                if out and out[-1] is batch.bufs.get(variant):
                    out[-1] = bytes(out[-1])
                batch.detached[sender] = conn
                if batch.doors.get(variant) is conn.door:
                    self._replace_render_door(batch, variant)
        rendered: dict[object, bytes] = {}
        for variant, buf in batch.bufs.items():
            data = rendered[variant] = batch.doors[variant].render(ev)
            buf += data
        for sid, conn in batch.detached.items():
            if sid == sender:
                continue
            variant = conn.door.variant
            one = rendered.get(variant)
            if one is None:
                one = rendered[variant] = conn.door.render(ev)
            if conn.asked is None:
                conn.attach(one)
            else:  # waits behind a history answer, with the asker's other output
                conn.send(one)

    def _replace_render_door(self, batch: RoomBatch, variant: object) -> None:
        """The door that renders ``variant``'s buffer has just spoken: another
        member still reading that buffer renders from now on. A sender's own
        door may render its message differently (the web door marks it as
        the reader's own; an IRC door inside a labeled command holds it back),
        so it never renders for the others. Nobody left: the buffer goes."""
        conns = self.conns
        detached = batch.detached
        for sid in batch.to:
            if sid in detached:
                continue
            conn = conns.get(sid)
            if conn is not None and not conn.closing and conn.door.variant == variant:
                batch.doors[variant] = conn.door
                return
        del batch.doors[variant]
        del batch.bufs[variant]

    def _open_batch(self, to: tuple[int, ...], sender: int) -> RoomBatch:
        batch = RoomBatch(to)
        self.batch = None  # the old batch (if any) is done
        conns = self.conns
        bufs = batch.bufs
        dirty = self._dirty
        # ``Connection.attach`` for every member, inlined: this loop runs once
        # per member per room per turn, the widest loop on the hot path.
        for sid in to:
            conn = conns.get(sid)
            if conn is None or conn.closing:
                continue
            if sid == sender or conn.asked is not None:
                # The sender's copy differs; an asker's waits behind its answer.
                batch.detached[sid] = conn
                continue
            door = conn.door
            buf = bufs.get(door.variant)
            if buf is None:
                buf = bufs[door.variant] = bytearray()
                batch.doors[door.variant] = door
            if conn.out is NOTHING_QUEUED:
                conn.out = [buf]
            else:
                conn.out.append(buf)
            if not conn.dirty:
                conn.dirty = True
                dirty.append(conn)
        if dirty and not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self.flush)
        self.batch = batch
        return batch

    def _ask_store(self, sid: int, wanted: HistoryWanted | TargetsWanted) -> None:
        """History comes from the store, after what this turn has said so far.
        What the asker is sent meanwhile waits for the answer, so replies keep
        the order of the requests (a line client's /echo after /history is a
        barrier), also when commands go through a bus."""
        self._submit()
        asker = self.conns.get(sid)
        if asker is not None:
            # The asker may be reading the open room batch: later messages go
            # in a new one, where its copy waits behind the answer.
            self.batch = None
            if asker.asked is None:
                asker.asked = []
            asker.asked.append(None)  # its answer's place among the replies

        def reply(answer: HistoryReply | HistoryTargets) -> None:
            conn = self.conns.get(sid)
            if conn is None:
                return
            if conn.asked is None or None not in conn.asked:
                # Order given up (too much held): the answer goes as it comes.
                conn.send_now(conn.door.render(answer))
                return
            # Answers come in the order asked: this one is the first None.
            asked = conn.asked
            asked[asked.index(None)] = conn.door.render(answer)
            ready = 0
            while ready < len(asked) and asked[ready] is not None:
                ready += 1
            out, conn.asked = asked[:ready], (asked[ready:] or None)
            conn.asked_bytes = sum(len(x) for x in conn.asked or () if x is not None)
            for data in out:
                if data is not None:
                    conn.send_now(data)

        self.store.query(wanted, reply)

    def _submit(self) -> None:
        hub = self.hub
        if hub.journal:
            journal, hub.journal = hub.journal, []
            self._submitted += 1
            if any(type(r) is tuple for r in journal):
                self._said_in.add(self._submitted)
            self.store.submit(self._submitted, journal)

    def store_written(self, seq: int, error: str | None) -> None:
        """The store's word (on the loop): turns up to ``seq`` are kept, or it failed.

        On failure the store keeps the records and tries again. Output of the
        turns whose messages it could not keep waits for that (``_stuck``):
        a message is seen only once kept. Everything else goes out, so the
        server stays usable, and the hub refuses new messages meanwhile.
        """
        if error is None and not self.store_ok:
            self.store_ok = True
            if self.bus is None:
                self.hub.store_ok = True
            log.warning("store: writing again; messages are accepted")
            self.tell_operators("The store is writing again: messages are accepted")
            stuck, self._stuck = self._stuck, []
            for conn, data in stuck:
                self._held_bytes -= len(data)
                if not conn.closing:
                    self._write(conn, data)
        elif error is not None and self.store_ok:
            self.store_ok = False
            if self.bus is None:
                self.hub.store_ok = False
            log.error("store: can't write (%s): messages are refused until it can", error)
            self.tell_operators(f"The store can't write ({error}): messages are refused")
        if seq > self._written:
            self._written = seq
            journal = self.hub.journal
            if (
                journal
                and len(journal) <= STRAGGLERS
                and self._flush_scheduled
                and not self._deferred
                and error is None
                and self._caught_up is None
            ):
                # A few more messages came in while this turn was being kept
                # (the tail of a burst): keep them too, then give each member
                # both turns in one write instead of one round of writes each.
                self._deferred = True
                self._said_in = {s for s in self._said_in if s > seq}
                self.flush()
                return
            self._deferred = False
            held = self._held
            sendq = self.sendq
            if len(held) > 1 and held[1][0] <= seq and error is None:
                self._release_merged(seq)
            while held and held[0][0] <= seq:
                turn, epoch = held.popleft()
                if error is not None and turn in self._said_in:
                    for conn, data in epoch:
                        conn.held -= 1
                        self._stuck.append((conn, data))
                    continue
                released = 0
                for conn, data in epoch:
                    conn.held -= 1
                    released += len(data)
                    if conn.closed:
                        continue
                    # ``_write``'s common case inlined (once per member per turn).
                    transport = conn.transport
                    transport.write(data)
                    if conn.closing or transport.get_write_buffer_size() > sendq:
                        self._written_out(conn)
                self._held_bytes -= released
            self._said_in = {s for s in self._said_in if s > seq}
            if self.reads_paused and self._held_bytes <= HELD_LIMIT // 2:
                self._pause_reads(False)
            if self._caught_up is not None and seq >= self._submitted:
                self._caught_up.set()

    def _release_merged(self, seq: int) -> None:
        """Several turns are kept at once: one write per member for all of them."""
        held = self._held
        merged: dict[Connection, list[bytes | bytearray]] = {}
        released = 0
        while held and held[0][0] <= seq:
            for conn, data in held.popleft()[1]:
                conn.held -= 1
                released += len(data)
                if not conn.closed:
                    merged.setdefault(conn, []).append(data)
        self._held_bytes -= released
        # Most members hold the same room buffers: join each combination once.
        joined: dict[tuple[int, ...], bytes] = {}
        for conn, parts in merged.items():
            if len(parts) == 1:
                self._write(conn, parts[0])
                continue
            key = tuple(map(id, parts))
            out = joined.get(key)
            if out is None:
                out = joined[key] = b"".join(parts)
            self._write(conn, out)

    async def nodes(self) -> list[dict[str, Any]]:
        """The nodes serving this chat: alive (heartbeat) or still holding people."""
        people: dict[int, int] = {}
        for sid in self.hub.users:
            people[node_of(sid)] = people.get(node_of(sid), 0) + 1
        if self.bus is None:
            alone = {"node": 0, "name": "", "alive": True, "this": True}
            return [{**alone, "people": len(self.hub.users)}]
        names = await self.bus.live_nodes()
        return [
            {
                "node": n,
                "name": names.get(n, ""),
                "alive": n in names,
                "this": n == self.bus.node,
                "people": people.get(n, 0),
            }
            for n in sorted(set(names) | set(people))
        ]

    def tell_operators(self, text: str) -> None:
        """Operators connected here hear of trouble as it happens, not only in the log."""
        hub = self.hub
        opers = tuple(sid for sid in self.conns if (u := hub.users.get(sid)) and u.oper)
        if opers:
            self.deliver([Delivery(opers, ServerNotice(text))])
            self.after_hub()
            self.schedule_flush()

    def schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self.flush)

    def mark_dirty(self, conn: Connection) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self.flush)
        self._dirty.append(conn)

    def flush(self) -> None:
        """End of a loop turn: hand the turn's records to the store, then write
        each dirty connection once, at once when nothing waits for the store,
        or when the store has written this turn's records."""
        self._flush_scheduled = False
        self.batch = None  # what is queued goes out now: nothing may grow it further
        self._submit()
        dirty, self._dirty = self._dirty, []
        if self._written < self._submitted:
            seq = self._submitted
            epoch: list[tuple[Connection, bytes | bytearray]] = []
            add = epoch.append
            holding = 0
            for conn in dirty:
                conn.dirty = False
                out = conn.out
                conn.out = NOTHING_QUEUED
                if conn.closed or not out:
                    continue
                conn.held += 1
                data = out[0] if len(out) == 1 else b"".join(out)
                holding += len(data)
                add((conn, data))
            self._held_bytes += holding
            held = self._held
            if held and held[-1][0] == seq:
                held[-1][1].extend(epoch)
            elif epoch:
                held.append((seq, epoch))
            if self._held_bytes > HELD_LIMIT and not self.reads_paused:
                self._pause_reads(True)
            return
        for conn in dirty:
            conn.dirty = False
            out = conn.out
            conn.out = NOTHING_QUEUED
            if conn.closed or not out:
                continue
            self._write(conn, out[0] if len(out) == 1 else b"".join(out))

    def _pause_reads(self, pause: bool) -> None:
        self.reads_paused = pause
        if pause:
            log.warning(
                "store: %d MiB of output waits for the disk: reading from clients paused",
                self._held_bytes >> 20,
            )
        else:
            log.warning("store: caught up: reading from clients again")
        for conn in self.conns.values():
            if conn.closing:
                continue
            if pause:
                conn.transport.pause_reading()
            elif not conn.paused:
                conn.transport.resume_reading()

    def _write(self, conn: Connection, data: bytes | bytearray) -> None:
        conn.transport.write(data)
        self._written_out(conn)

    def _written_out(self, conn: Connection) -> None:
        """After a write: cut a reader off past its send queue, or close a
        connection that was waiting for its last output."""
        transport = conn.transport
        if transport.get_write_buffer_size() > self.sendq:
            conn.reason = "SendQ exceeded"
            log.info("! %s:%s cut off: SendQ exceeded", conn.host, conn.port)
            conn.closing = True
            transport.abort()
        elif conn.closing and not conn.held and not conn.dirty:
            transport.close()

    # -- life cycle -----------------------------------------------------------------

    async def start(self, factories: dict[str, DoorFactory]) -> list[tuple[str, str, int]]:
        """Open every listener; returns (door, host, port) as actually bound."""
        bound: list[tuple[str, str, int]] = []
        for listen in self.config.listens():
            factory = factories[listen.door]
            srv = await self.loop.create_server(
                lambda f=factory: Connection(self, f),
                host=listen.host,
                port=listen.port,
                reuse_address=True,
                backlog=1024,
            )
            self.servers.append(srv)
            for sock in srv.sockets:
                addr: Any = sock.getsockname()
                bound.append((listen.door, str(addr[0]), int(addr[1])))
        self._schedule_expiry()
        self._sweeper = self.loop.call_later(SWEEP_PERIOD, self._sweep)
        self.store.start(self.loop, self.store_written)
        self._prune_history()
        return bound

    def _prune_history(self) -> None:
        now = time.time()
        self.store.prune(now)
        days = self.config.history.retention_days
        if days > 0:
            self.hub.forget_before(now - days * 86400)
        self._prune = self.loop.call_later(PRUNE_PERIOD, self._prune_history)

    def _sweep(self) -> None:
        """Every connection's timers in one pass: registration deadlines and door ticks.
        One timer for the server, not one per connection (memory, and wakeups)."""
        if self.hub.calls:
            self.call_now("expire_calls")
        now = time.monotonic()
        users = self.hub.users
        for sid, deadline in list(self.unnamed.items()):
            if sid in users:
                del self.unnamed[sid]
            elif now >= deadline:
                del self.unnamed[sid]
                conn = self.conns.get(sid)
                if conn is not None and not conn.closing:
                    conn.kill("Registration timed out")
        for conn in [c for c in self.conns.values() if c.next_tick and now >= c.next_tick]:
            conn.tick(now)
        self._sweeper = self.loop.call_later(SWEEP_PERIOD, self._sweep)

    def _schedule_expiry(self) -> None:
        period = max(1.0, min(60.0, self.config.limits.empty_room_ttl / 2))
        self._expiry = self.loop.call_later(period, self._expire)

    def _expire(self) -> None:
        self.call_now("expire_rooms")
        self._schedule_expiry()

    async def shutdown(self, reason: str, grace: float = 3.0) -> None:
        """Tell everyone, stop accepting, write what is queued, close every connection."""
        for handle in (self._expiry, self._sweeper, self._prune):
            if handle is not None:
                handle.cancel()
        for srv in self.servers:
            srv.close()
        if self.bus is not None:
            await self.bus.leave(reason)
        else:
            self.deliver(self.hub.shutdown(reason))
        for conn in list(self.conns.values()):
            if conn.sid not in self.hub.users:
                # Never registered, so the hub did not tell them: say it here.
                conn.kill(reason or "Server shutting down")
            conn.finish()
        self.flush()
        if self._written < self._submitted:
            # Everything said is kept before anyone is let go.
            self._caught_up = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._caught_up.wait(), 10.0)
        if self.conns:
            self._all_gone = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._all_gone.wait(), grace)
        for conn in list(self.conns.values()):
            conn.transport.abort()
        for srv in self.servers:
            await srv.wait_closed()
        await self.accounts.close()
        await self.store.close()

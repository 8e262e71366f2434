"""Several nodes, one chat: every node's hub applies the same operations in the
same order, from one log in Redis.

Each node keeps a whole copy of the hub. What would change a hub (a session's
command, a lost connection, a checked password, an operator's action, a timer)
is not applied where it happens: it is appended to the log (a Redis stream),
at most one entry per node per loop turn, and every node, the author
included, applies the log's entries in the stream's order. So names stay
unique and room limits hold across nodes (the log decides who was first),
counts and listings agree everywhere, and message ids come from one order, not
from any node's clock: the time of an operation is the stream id's, from the
Redis server's clock. Each node delivers only to its own connections.

A node proves it is alive by refreshing a key that expires (``node_timeout``);
when a node's key is gone, the others append ``node_gone`` and its people are
shown leaving. A node that joins a running cluster asks for a snapshot
(``snapshot_wanted`` in the log): the live nodes answer with their hub as it
was just after that entry, and the newcomer reads the log from there.

While Redis is away, a node keeps its connections but applies nothing (there
is no order to apply it in): operations wait, up to ``max_waiting``, and go
out once Redis is back. Entries this node wrote but has not read back yet are
written again after a reconnection; every node skips an entry it has already
applied (each node numbers its entries), so nothing is applied twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import re
import secrets
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from salas import __version__
from salas.core import errors as e
from salas.core import snapshot
from salas.core.events import Delivery, Failed
from salas.core.hub import Hub, node_of
from salas.core.oplog import BUS_SCHEMA, BadEntry, Call, Do, Entry, Op, check_op, decode, encode
from salas.store.base import StoreError

if TYPE_CHECKING:
    from salas.config import BusSettings
    from salas.net.server import Server

log = logging.getLogger("salas")

PREFIX = "salas:"
LOG = PREFIX + "log"
BOOT = PREFIX + "boot"
#: The log keeps about this many milliseconds of entries (Redis's clock): a
#: joining node starts from a fresh snapshot, and a node this far behind has
#: long been counted gone, so older entries are of no use, and Redis's memory
#: stays bounded by time, not by a count of entries of any size.
LOG_KEEP_MS = 10 * 60 * 1000
#: Most operations in one entry: each is at most a few KiB (a message, a
#: call's signalling up to 16 KiB), so an entry stays well under
#: oplog.MAX_ENTRY.
ENTRY_OPS = 256
#: Entries read at once, and how long one read waits for more (ms).
READ_COUNT = 1000
READ_BLOCK_MS = 1000
#: Seconds a joining node waits for its snapshot.
SNAPSHOT_WAIT = 15.0
#: Seconds a snapshot answer stays readable.
SNAPSHOT_TTL = 60
#: Milliseconds the start-up lock is held at most (one node boots at a time).
BOOT_LOCK_MS = 30_000
#: Seconds between tries while Redis is away.
RETRY = 0.5
#: Own entries kept after they were read back, to write again if Redis
#: restarts and loses what the other nodes had not read yet.
RESEND_SECONDS = 10.0
#: A node number fits in the session ids (see hub.NODE_SHIFT).
NODE_BITS = 20


def node_key(node: int) -> str:
    return f"{PREFIX}node:{node}"


def snapshot_key(token: str) -> str:
    return f"{PREFIX}snapshot:{token}"


class BusError(Exception):
    """The bus can't be used at start; the text says why, for the operator."""


STREAM_ID = re.compile(rb"\d{1,20}-\d{1,20}")


def _id_key(stream_id: bytes) -> tuple[int, int]:
    ms, _, seq = stream_id.partition(b"-")
    return int(ms), int(seq or 0)


def _ms(stream_id: bytes) -> int:
    return int(stream_id.split(b"-", 1)[0])


class RedisBus:
    def __init__(self, settings: BusSettings) -> None:
        self.settings = settings
        self.name = settings.node or f"{socket.gethostname()}:{os.getpid()}"
        self.node = 0
        self._r: Any = None
        self._rd: Any = None
        self.server: Server | None = None
        self.hub: Hub | None = None
        #: Operations waiting to go into the log (the next entry), and who awaits each.
        self._waiting: list[Op] = []
        self._waiting_futs: list[asyncio.Future[Any] | None] = []
        self._wake = asyncio.Event()
        self._seq = 0
        #: Entries written, not yet read back: seq -> (data, futures by op).
        self._unread: dict[int, tuple[bytes, list[asyncio.Future[Any] | None]]] = {}
        #: Own entries read back recently: (seq, data, when).
        self._recent_own: deque[tuple[int, bytes, float]] = deque()
        #: The newest entry each node has had applied here (skips repeats).
        self._applied: dict[int, int] = {}
        self.last_id = b"0-0"
        self.up = False
        self._up = asyncio.Event()
        self._run_id = ""
        self._since_up = 0.0
        #: Every task the bus started that has not ended (so close() ends them).
        self._tasks: set[asyncio.Task[None]] = set()
        #: Nodes this node has already reported gone (until their people are).
        self._reported: set[int] = set()
        self._leaving: asyncio.Future[None] | None = None
        self._warned_newer = False
        self._closing = False
        self._missed: dict[int, int] = {}
        self._reader: asyncio.Task[None] | None = None
        self._heart: asyncio.Task[None] | None = None

    # -- start ---------------------------------------------------------------------

    async def start(
        self, from_store: Callable[[], Awaitable[Hub]], fresh: Callable[[], Hub]
    ) -> Hub:
        """Join the cluster: the hub as the live nodes have it, or (first node)
        as the store has it. BusError when Redis can't be reached."""
        try:
            import redis.asyncio as aioredis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff
        except ImportError:
            raise BusError(
                "bus.url is a Redis URL, which needs the redis client:"
                " install salas[redis] (pip install 'salas[redis]')"
            ) from None
        opts: dict[str, Any] = {
            "socket_connect_timeout": 2.0,
            "socket_timeout": READ_BLOCK_MS / 1000 + 5.0,
            "retry": Retry(NoBackoff(), 0),
            "client_name": f"salas-bus-v{BUS_SCHEMA}",
        }
        self._r = aioredis.Redis.from_url(self.settings.url, **opts)
        self._rd = aioredis.Redis.from_url(self.settings.url, **opts)
        try:
            self._run_id = await self._redis_run_id()
            hub = await self._boot(from_store, fresh)
        except (BusError, StoreError):
            await self.close()
            raise
        except Exception as err:
            await self.close()
            raise BusError(f"bus {self.settings.url}: {err}") from err
        self.hub = hub
        self.up = True
        self._up.set()
        self._since_up = time.monotonic()
        return hub

    async def _redis_run_id(self) -> str:
        info = await self._r.info("server")
        return str(info.get("run_id", ""))

    async def _take_node_number(self) -> None:
        ttl = int(self.settings.node_timeout * 1000)
        for _ in range(100):
            node = secrets.randbelow((1 << NODE_BITS) - 1) + 1
            if await self._r.set(node_key(node), self.name, px=ttl, nx=True):
                self.node = node
                return
        raise BusError("no free node number")

    async def _boot(
        self, from_store: Callable[[], Awaitable[Hub]], fresh: Callable[[], Hub]
    ) -> Hub:
        token = secrets.token_hex(8)
        deadline = time.monotonic() + BOOT_LOCK_MS / 1000
        while not await self._r.set(BOOT, token, px=BOOT_LOCK_MS, nx=True):
            if time.monotonic() > deadline:
                raise BusError("another node has been starting for too long (salas:boot)")
            await asyncio.sleep(0.05)
        try:
            # Under the lock, so every node key belongs to a node that is reading
            # the log (or to one that died lately, whose key will expire).
            await self._take_node_number()
            others = await self._live_nodes()
            hub = await self._snapshot(fresh) if others else None
            if hub is None:
                # The first node: the chat is what the store kept. Older entries
                # (a cluster that stopped) are history, not to be applied.
                newest = await self._r.xrevrange(LOG, count=1)
                self.last_id = newest[0][0] if newest else b"0-0"
                log.info(
                    "bus: %s, node %s (%d), the first node", self.settings.url, self.name, self.node
                )
                # Read under the lock: what the store has now, not before a
                # node that was stopping wrote its last records.
                return await from_store()
            log.info(
                "bus: %s, node %s (%d), joined %d other node(s)",
                self.settings.url,
                self.name,
                self.node,
                len(others),
            )
            return hub
        finally:
            if await self._r.get(BOOT) == token.encode():
                await self._r.delete(BOOT)

    async def _live_nodes(self) -> list[int]:
        """The other nodes whose heartbeat key is there."""
        return [n for n in await self.live_nodes() if n != self.node]

    async def live_nodes(self) -> dict[int, str]:
        """Every node whose heartbeat key is there, with its name."""
        found: dict[int, str] = {}
        keys = [key async for key in self._r.scan_iter(match=PREFIX + "node:*", count=1000)]
        names = await self._r.mget(keys) if keys else []
        for key, name in zip(keys, names, strict=True):
            with contextlib.suppress(ValueError):
                if name is not None:
                    found[int(key.rsplit(b":", 1)[1])] = name.decode(errors="replace")
        return found

    async def _snapshot(self, fresh: Callable[[], Hub]) -> Hub | None:
        """Ask the live nodes for their hub, as it is just after our request
        (None when they turn out to be gone: this node is the first)."""
        token = secrets.token_hex(12)
        self._seq += 1
        entry = Entry(self.node, self._seq, (Call("snapshot_wanted", (token,)),))
        await self._xadd(encode(entry))
        deadline = time.monotonic() + SNAPSHOT_WAIT
        look = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            raw = await self._r.get(snapshot_key(token))
            if raw is not None:
                break
            if time.monotonic() > look:
                look += 1.0
                await self._beat()  # a long wait must not let this node's key expire
                if not await self._live_nodes():
                    return None  # they died lately: their keys have just expired
            await asyncio.sleep(0.05)
        else:
            raise BusError(f"no live node answered with the chat's state in {SNAPSHOT_WAIT:.0f} s")
        try:
            data = json.loads(raw)
            if data["version"] != __version__:
                # Two builds may apply the same operation differently.
                raise BusError(
                    f"the running nodes are salas {data['version']}, this node is"
                    f" {__version__}: stop them all to change versions"
                )
            hub = fresh()
            theirs = data["settings"]
            ours = dataclasses.asdict(hub.settings)
            differ = sorted(k for k in ours if theirs.get(k) != ours[k])
            if differ:
                # Copies of the chat that follow different rules drift apart.
                raise BusError(
                    "this node's settings differ from the running nodes': "
                    + ", ".join(f"{k} = {ours[k]!r} here, {theirs.get(k)!r} there" for k in differ)
                )
            snapshot.load(hub, data["hub"])
            after = str(data["after"]).encode()
            if not STREAM_ID.fullmatch(after):
                raise ValueError(f"not a stream id: {after!r}")
            applied = {int(k): int(v) for k, v in data["applied"].items()}
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise BusError(f"the chat's state from the other nodes is unreadable: {err}") from err
        self.last_id = after
        self._applied = applied
        self._applied[self.node] = self._seq
        return hub

    def attach(self, server: Server) -> None:
        """Start the bus's work on the loop: writing, reading, heartbeats."""
        self.server = server
        loop = asyncio.get_running_loop()
        for coro, name in (
            (self._write_loop(), "salas-bus-write"),
            (self._read_loop(), "salas-bus-read"),
            (self._heartbeat_loop(), "salas-bus-heartbeat"),
        ):
            task = loop.create_task(coro, name=name)
            task.add_done_callback(self._stopped)
            self._keep(task)
            if name == "salas-bus-read":
                self._reader = task
            elif name == "salas-bus-heartbeat":
                self._heart = task

    def _keep(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _stopped(self, task: asyncio.Task[None]) -> None:
        """A bus task that ends by itself is a bug: a node that no longer reads
        or writes the log must not look alive. It stops, and says why."""
        if task.cancelled() or self._closing:
            return
        log.critical("bus: %s stopped: %r: this node stops", task.get_name(), task.exception())
        self._give_up("an internal error in the bus")

    # -- operations in ---------------------------------------------------------------

    def submit(self, op: Op, fut: asyncio.Future[Any] | None = None) -> None:
        """Into the next entry (one per loop turn, however many operations)."""
        if len(self._waiting) >= self.settings.max_waiting and type(op) is Do:
            self._refuse(op, fut, e.TryLater("the chat is reconnecting"))
            return
        self._waiting.append(op)
        self._waiting_futs.append(fut)
        self._wake.set()

    def _refuse(self, op: Op, fut: asyncio.Future[Any] | None, err: e.ChatError) -> None:
        server = self.server
        if fut is not None:
            if not fut.done():
                fut.set_exception(err)
        elif server is not None and type(op) is Do:
            server.deliver([Delivery((op.sid,), Failed(err, op.cmd))])
        if server is not None and type(op) is Do:
            server.applied(op.sid)  # it will never come back from the log

    def _entry(
        self, ops: list[Op], futs: list[asyncio.Future[Any] | None]
    ) -> tuple[bytes, list[asyncio.Future[Any] | None]] | None:
        """The next entry's bytes; an op the log can't carry (a bug at its
        origin) is refused alone, never the whole entry."""
        try:
            return encode(Entry(self.node, self._seq + 1, tuple(ops))), futs
        except ValueError:
            pass
        good: list[Op] = []
        kept: list[asyncio.Future[Any] | None] = []
        for op, fut in zip(ops, futs, strict=True):
            try:
                check_op(op)
            except ValueError as why:
                log.error("bus: %r not sent: %s", op, why)
                self._refuse(op, fut, e.TryLater("internal error"))
                continue
            good.append(op)
            kept.append(fut)
        if not good:
            return None
        return encode(Entry(self.node, self._seq + 1, tuple(good))), kept

    async def call(self, op: Op) -> Any:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.submit(op, fut)
        return await fut

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._waiting:
                await self._up.wait()
                # Everything that came in since the last entry, in one entry
                # (or a few, so none passes the decoder's bounds).
                n = min(len(self._waiting), ENTRY_OPS)
                ops, self._waiting = self._waiting[:n], self._waiting[n:]
                futs, self._waiting_futs = self._waiting_futs[:n], self._waiting_futs[n:]
                made = self._entry(ops, futs)
                if made is None:
                    continue
                self._seq += 1
                data, futs = made
                self._unread[self._seq] = (data, futs)
                try:
                    await self._xadd(data)
                except asyncio.CancelledError:
                    raise
                except Exception as err:  # written or not: sent again when Redis is back
                    self._lost(err)

    async def _xadd(self, data: bytes) -> None:
        newest = _ms(self.last_id)
        trim = {"minid": f"{newest - LOG_KEEP_MS}-0"} if newest > LOG_KEEP_MS else {}
        await self._r.xadd(LOG, {"e": data}, approximate=True, **trim)

    # -- the log, applied ------------------------------------------------------------

    async def _read_loop(self) -> None:
        while True:
            await self._up.wait()
            try:
                got = await self._rd.xread(
                    {LOG: self.last_id}, count=READ_COUNT, block=READ_BLOCK_MS
                )
            except asyncio.CancelledError:
                raise
            except Exception as err:
                self._lost(err)
                continue
            if not got:
                continue
            for _stream, items in got:
                for stream_id, fields in items:
                    self.last_id = stream_id
                    self._apply_raw(stream_id, fields.get(b"e", b""))
            if self.server is not None:
                self.server.after_hub()

    def _apply_raw(self, stream_id: bytes, data: bytes) -> None:
        try:
            entry = decode(data)
        except Exception as err:  # BadEntry; anything else is a decoder bug, not a crash
            if not isinstance(err, BadEntry):
                log.exception("bus: the decoder failed on entry %r", stream_id)
            if "newer" in str(err):
                if not self._warned_newer:
                    self._warned_newer = True
                    log.error("bus: %s: ignored (upgrade this node)", err)
            else:
                log.warning("bus: entry %s ignored: %s", stream_id.decode(errors="replace"), err)
            return
        last = self._applied.get(entry.node, 0)
        if entry.seq <= last:
            return  # written again after a reconnection, and applied already
        if last and entry.seq > last + 1:
            # Entries this node never read (Redis lost them, or they were
            # trimmed): the copies may differ from here on.
            log.error(
                "bus: %d entries of node %d were never read here", entry.seq - last - 1, entry.node
            )
        self._applied[entry.node] = entry.seq
        own = entry.node == self.node
        futs: list[asyncio.Future[Any] | None] = []
        if own:
            kept = self._unread.pop(entry.seq, None)
            if kept is not None:
                futs = kept[1]
                now = time.monotonic()
                self._recent_own.append((entry.seq, kept[0], now))
                while self._recent_own and now - self._recent_own[0][2] > RESEND_SECONDS:
                    self._recent_own.popleft()
        self.apply(entry, _ms(stream_id) / 1000, stream_id, futs)

    def apply(
        self,
        entry: Entry,
        now: float,
        stream_id: bytes,
        futs: list[asyncio.Future[Any] | None],
    ) -> None:
        server = self.server
        if server is None:
            return
        own = entry.node == self.node
        server.own = own
        try:
            for i, op in enumerate(entry.ops):
                fut = futs[i] if i < len(futs) else None
                result: Any = None
                try:
                    if type(op) is Do:
                        try:
                            result = server.hub.handle(op.sid, op.cmd, now)
                            server.deliver(result)
                        finally:
                            if own:
                                server.applied(op.sid)
                    elif type(op) is Call and op.method == "snapshot_wanted":
                        self._answer_snapshot(op.args[0], stream_id)
                    elif type(op) is Call:
                        mine = (
                            [sid for sid in server.conns if sid in server.hub.users]
                            if op.method == "node_gone" and op.args[0] == self.node
                            else []
                        )
                        result = server.apply_call(op.method, op.args, now)
                        self._after_call(op, mine)
                except e.ChatError as err:
                    if fut is not None and not fut.done():
                        fut.set_exception(err)
                    continue
                except Exception:  # a bug costs one operation, never the node
                    log.exception("! internal error applying %r from node %d", op, entry.node)
                    if fut is not None and not fut.done():
                        fut.set_exception(e.TryLater("internal error"))
                    continue
                if fut is not None and not fut.done():
                    fut.set_result(result)
        finally:
            server.own = True

    def _after_call(self, op: Call, mine: list[int]) -> None:
        if op.method in ("node_gone", "shutdown_node"):
            node = op.args[0]
            self._reported.discard(node)
            if node == self.node and op.method == "node_gone":
                log.error("bus: the other nodes lost this node: its people were let go")
                self._let_go(mine)
            leaving = self._leaving
            if node == self.node and leaving is not None and not leaving.done():
                leaving.set_result(None)

    def _gone_meanwhile(self, why: str) -> None:
        log.error("bus: this node was cut off from the chat (%s): it stops", why)
        self._give_up(why)

    def _give_up(self, why: str) -> None:
        """This node can't go on as part of the chat: its people are let go
        (they reconnect, here after a restart or on another node) and the
        node stops with status 1, for its service manager to start it again."""
        self._closing = True
        server = self.server
        if server is None:
            return
        self._let_go([sid for sid in server.conns if sid in server.hub.users])
        server.exit_code = 1
        if server.on_stop is not None:
            server.on_stop(f"This node lost the chat ({why})")

    def _let_go(self, sids: list[int]) -> None:
        """The others saw this node as gone (it was cut off or frozen too long):
        its people are no longer in the chat, so their connections end and
        they come back, here or on another node."""
        server = self.server
        if server is None:
            return
        for sid in sids:
            conn = server.conns.get(sid)
            if conn is not None and not conn.closing:
                conn.kill("This node lost the chat: please reconnect")

    def _answer_snapshot(self, token: str, stream_id: bytes) -> None:
        hub = self.hub
        if hub is None or self._r is None:
            return
        data = json.dumps(
            {
                "after": stream_id.decode(),
                "version": __version__,
                "applied": {str(k): v for k, v in self._applied.items()},
                "settings": dataclasses.asdict(hub.settings),
                "hub": snapshot.dump(hub),
            },
            separators=(",", ":"),
        )

        async def put() -> None:
            with contextlib.suppress(Exception):
                await self._r.set(snapshot_key(token), data, ex=SNAPSHOT_TTL, nx=True)

        self._keep(asyncio.get_running_loop().create_task(put()))

    # -- liveness --------------------------------------------------------------------

    async def _beat(self) -> bool:
        """Refresh this node's key; False if it had expired (the others may
        have counted this node gone meanwhile)."""
        ttl = int(self.settings.node_timeout * 1000)
        return bool(await self._r.set(node_key(self.node), self.name, px=ttl, xx=True))

    async def _heartbeat_loop(self) -> None:
        while True:
            if self.up:
                try:
                    if not await self._beat():
                        if await self._redis_run_id() != self._run_id:
                            self._lost(ConnectionError("Redis restarted"))
                            continue
                        self._gone_meanwhile("its heartbeat expired")
                        return
                    await self._look_for_gone()
                except asyncio.CancelledError:
                    raise
                except Exception as err:
                    self._lost(err)
            await asyncio.sleep(self.settings.heartbeat)

    async def _look_for_gone(self) -> None:
        hub = self.hub
        if hub is None or time.monotonic() - self._since_up < self.settings.node_timeout:
            return  # just (re)connected: live nodes may not have refreshed their keys yet
        others = sorted({node_of(sid) for sid in hub.users} - {self.node, 0} - self._reported)
        if not others:
            return
        alive = await self._r.mget([node_key(n) for n in others])
        for node, value in zip(others, alive, strict=True):
            if value is not None:
                self._missed.pop(node, None)
                continue
            # Twice in a row, a heartbeat apart: one stall (of Redis, or of
            # this loop) is not a death.
            self._missed[node] = self._missed.get(node, 0) + 1
            if self._missed[node] >= 2:
                del self._missed[node]
                self._reported.add(node)
                log.warning("bus: node %d is silent: its people are shown leaving", node)
                self.submit(Call("node_gone", (node, "Node lost")))

    def _lost(self, err: BaseException) -> None:
        if not self.up or self._closing:
            return
        self.up = False
        self._up.clear()
        log.error("bus: lost Redis (%s): operations wait until it is back", err)
        self._tell_operators("lost its bus (Redis): messages wait until it is back")
        self._keep(asyncio.get_running_loop().create_task(self._reconnect()))

    async def _reconnect(self) -> None:
        while True:
            await asyncio.sleep(RETRY)
            try:
                # Connections idle in the pools still point at the Redis that
                # went away: the next commands that ran at once would get them
                # and fail (a second, false loss a few seconds later).
                for client in (self._r, self._rd):
                    await client.connection_pool.disconnect()
                run_id = await self._redis_run_id()
                restarted = run_id != self._run_id
                if not restarted:
                    # The same Redis: were we away so long that the others
                    # moved on (this node counted gone, or the log trimmed past
                    # where this node had read)?
                    if not await self._beat():
                        self._gone_meanwhile("it was away longer than bus.node_timeout")
                        return
                    first = await self._r.xrange(LOG, count=1)
                    if first and _id_key(first[0][0]) > _id_key(self.last_id):
                        self._gone_meanwhile("the log moved on past what it had read")
                        return
                else:
                    ttl = int(self.settings.node_timeout * 1000)
                    await self._r.set(node_key(self.node), self.name, px=ttl)
                # Everything not read back is written again (in order, before
                # anything new); after a Redis restart, so is what was read back
                # lately, since the others may not have read it. Repeats are
                # skipped by every node. Any failure: all of it again.
                again = sorted(self._unread.items())
                if restarted:
                    again = [(s, (d, [])) for s, d, _ in self._recent_own] + again
                for _seq, (data, _futs) in again:
                    await self._xadd(data)
            except asyncio.CancelledError:
                raise
            except Exception:
                continue
            break
        self._run_id = run_id
        self.up = True
        self._since_up = time.monotonic()
        self._up.set()
        self._wake.set()
        what = "restarted" if restarted else "back"
        log.warning("bus: Redis is %s: %d entries written again", what, len(again))
        self._tell_operators("has its bus (Redis) back")

    def _tell_operators(self, what: str) -> None:
        if self.server is not None:
            self.server.tell_operators(f"Node {self.name} {what}")

    # -- stop ------------------------------------------------------------------------

    async def leave(self, reason: str) -> None:
        """This node stops: its people are told, and the others see them leave."""
        server = self.server
        self._leaving = asyncio.get_running_loop().create_future()
        self.submit(Call("shutdown_node", (self.node, reason)))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._leaving), 3.0)
        # Gone from the chat: apply nothing more, and let the key go.
        self._closing = True
        for task in (self._heart, self._reader):
            if task is not None:
                task.cancel()
        if server is not None and not self._leaving.done():
            # No bus to say it through: tell our own people here; the others
            # will see them leave when this node's key expires.
            mine = tuple(sid for sid in server.hub.users if sid in server.conns)
            if mine:
                server.deliver(server.hub.remove_node(self.node, reason, time.time(), True))
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._r.delete(node_key(self.node)), 1.0)

    async def close(self) -> None:
        """Stop the bus's tasks and connections; bounded, whatever Redis does."""
        self._closing = True
        tasks, self._tasks = self._tasks, set()
        for task in tasks:
            task.cancel()
        stuck: set[asyncio.Task[None]] = set()
        if tasks:
            _done, stuck = await asyncio.wait(tasks, timeout=0.2)
        # A read blocked in Redis may outlast its cancellation: closing the
        # connections under it ends it.
        for client in (self._r, self._rd):
            if client is not None:
                try:
                    await asyncio.wait_for(client.aclose(), 1.0)
                except Exception as err:
                    log.warning("bus: closing a Redis connection: %s", err or type(err).__name__)
        if stuck:
            _done, stuck = await asyncio.wait(stuck, timeout=1.0)
            if stuck:
                # The Redis client sometimes takes its time to let go of a
                # cancelled read; the process is ending, so it is not waited for.
                log.debug("bus: %d task(s) still stopping: %s", len(stuck), stuck)

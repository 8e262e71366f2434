"""The admin console's side of the server: a Unix socket in the data dir.

Only the user running the server can connect (the socket is 0600 in a data dir
nobody else may write), so whoever connects acts with the server's authority:
every action is logged with the connecting user's name, taken from the socket's
peer credentials. Requests and answers are JSON lines (``proto/admin.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pwd
import socket
import stat
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from salas.core import errors as e
from salas.core.commands import ModeChange
from salas.core.events import Audit, Delivery
from salas.core.model import RoomInfo, UserInfo
from salas.core.names import fold
from salas.logs import Recent
from salas.net.accounts import check_password_rules
from salas.proto import admin as wire
from salas.proto.texts import error_text

if TYPE_CHECKING:
    from salas.net.server import Server

log = logging.getLogger("salas")

SOCKET_NAME = "admin.sock"
#: Consoles connected at once; more are turned away.
MAX_CONSOLES = 16
#: Log lines a follower may fall behind by before lines are skipped.
FOLLOW_BACKLOG = 1000
#: ``logs`` with no ``lines``.
LOG_LINES_DEFAULT = 50
#: AF_UNIX paths are at most this many bytes on Linux.
MAX_SOCKET_PATH = 107


class AdminSocketError(Exception):
    """The admin socket can't be opened safely; the message says why."""


def socket_path(data_dir: Path) -> Path:
    return data_dir / SOCKET_NAME


def check_private_dir(path: Path) -> None:
    """Refuse a data dir that someone else could write: they could swap the socket."""
    st = path.stat()
    if st.st_uid != os.getuid():
        raise AdminSocketError(f"the data dir {path} belongs to another user")
    if st.st_mode & 0o022:
        mode = stat.S_IMODE(st.st_mode)
        raise AdminSocketError(
            f"the data dir {path} can be written by others (mode {mode:o}): chmod go-w it"
        )


def room_json(r: RoomInfo) -> dict[str, Any]:
    return {
        "name": r.name,
        "count": r.count,
        "limit": r.limit,
        "topic": r.topic,
        "private": r.private,
        "keyed": r.keyed,
        "modes": r.modes,
        "permanent": r.permanent,
    }


def user_json(u: UserInfo) -> dict[str, Any]:
    return {
        "name": u.name,
        "door": u.door,
        "address": u.address,
        "rooms": list(u.rooms),
        "idle": round(u.idle),
        "account": u.account,
        "oper": u.oper,
        "away": u.away,
        "modes": u.modes,
    }


def _peer_name(sock: socket.socket | None) -> str:
    """``admin console (USER)``: who connected, as the kernel tells it."""
    who = "?"
    if sock is not None:
        with contextlib.suppress(OSError, AttributeError, KeyError, struct.error):
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            _pid, uid, _gid = struct.unpack("3i", creds)
            who = pwd.getpwuid(uid).pw_name
    return f"admin console ({who})"


class AdminServer:
    def __init__(self, server: Server, recent: Recent | None, data_dir: Path) -> None:
        self.server = server
        self.hub = server.hub
        self.recent = recent
        self.path = socket_path(data_dir)
        self._listener: asyncio.AbstractServer | None = None
        self._inode: int | None = None
        self._consoles: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def listening(self) -> bool:
        return self._listener is not None

    async def start(self) -> None:
        check_private_dir(self.path.parent)
        if len(os.fsencode(self.path)) > MAX_SOCKET_PATH:
            log.warning("admin console off: the path %s is too long for a socket", self.path)
            return
        self._clear_stale()
        old = os.umask(0o177)  # the socket is born 0600: no moment when others could connect
        try:
            self._listener = await asyncio.start_unix_server(
                self._console, path=str(self.path), limit=wire.MAX_REQUEST + 1
            )
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        st = os.lstat(self.path)
        if stat.S_IMODE(st.st_mode) & 0o077:
            raise AdminSocketError(f"the admin socket {self.path} is not private")
        self._inode = st.st_ino

    def _clear_stale(self) -> None:
        """A socket left by a server that died goes; anything else there is an error."""
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(st.st_mode):
            raise AdminSocketError(f"{self.path} exists and is not a socket: move it away")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(1.0)
        try:
            probe.connect(str(self.path))
        except OSError:
            self.path.unlink()  # nobody answers: left by a server that is gone
            return
        finally:
            probe.close()
        raise AdminSocketError(f"another server is answering on {self.path}")

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
        for writer in list(self._consoles):
            writer.close()
        # Let each console's task see its socket close and end by itself: a
        # task still running when the loop shuts down is cancelled, and
        # asyncio's stream server then logs a traceback for it (Python 3.11).
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=2.0)
        with contextlib.suppress(OSError):
            if self._inode is not None and os.lstat(self.path).st_ino == self._inode:
                self.path.unlink()

    # -- one console ---------------------------------------------------------------

    async def _console(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._consoles) >= MAX_CONSOLES:
            writer.write(wire.refused("too many admin consoles connected"))
            writer.close()
            return
        self._consoles.add(writer)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        by = _peer_name(writer.get_extra_info("socket"))
        try:
            while True:
                try:
                    line = await reader.readline()
                except ValueError:  # longer than the limit: a clear error, then goodbye
                    writer.write(wire.refused(f"request longer than {wire.MAX_REQUEST} bytes"))
                    break
                if not line:
                    break
                if not line.strip():
                    continue
                try:
                    request = wire.decode_request(line)
                except wire.RequestError as err:
                    writer.write(wire.refused(str(err)))
                    await writer.drain()
                    continue
                if request.cmd == "logs" and request.args.get("follow"):
                    await self._follow(request, reader, writer)
                    break
                writer.write(await self._answer(request, by))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception:
            log.exception("! internal error in the admin console")
        finally:
            self._consoles.discard(writer)
            writer.close()

    async def _answer(self, request: wire.Request, by: str) -> bytes:
        try:
            return wire.ok(await self.run(request.cmd, request.args, by))
        except e.ChatError as err:
            return wire.refused(self._refusal(request.cmd, err))
        except Exception:
            log.exception("! internal error running admin command %s", request.cmd)
            return wire.refused("internal error: see the server's log")

    @staticmethod
    def _refusal(cmd: str, err: e.ChatError) -> str:
        if cmd == "rooms.close" and isinstance(err, e.RoomProtected):
            return f"Room {err.room} can't be closed: it is where everyone lands"
        return error_text(err)

    async def _follow(
        self, request: wire.Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """The latest lines, then every new one until the console hangs up."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str] = asyncio.Queue(FOLLOW_BACKLOG)
        skipped = 0

        def put(line: str) -> None:
            nonlocal skipped
            if queue.full():
                skipped += 1
            else:
                queue.put_nowait(line)

        def follower(line: str) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closing
                loop.call_soon_threadsafe(put, line)

        recent = self.recent
        writer.write(wire.ok(self._tail(request.args)))
        if recent is None:
            return
        recent.follow(follower)
        gone = asyncio.ensure_future(reader.read(1))
        line_task: asyncio.Future[str] | None = None
        try:
            while not gone.done():
                line_task = asyncio.ensure_future(queue.get())
                await asyncio.wait({line_task, gone}, return_when=asyncio.FIRST_COMPLETED)
                if not line_task.done() or writer.is_closing():
                    break
                if skipped:
                    writer.write(wire.encode({"log": f"... {skipped} lines skipped"}))
                    skipped = 0
                writer.write(wire.encode({"log": line_task.result()}))
                await writer.drain()
        except (ConnectionError, RuntimeError):
            pass  # the console hung up, or the server is closing its socket as it stops
        finally:
            recent.unfollow(follower)
            gone.cancel()
            if line_task is not None:
                line_task.cancel()

    def _tail(self, args: dict[str, Any]) -> list[str]:
        n = args.get("lines", LOG_LINES_DEFAULT)
        return self.recent.tail(n) if self.recent is not None else []

    # -- the commands ----------------------------------------------------------------

    async def run(self, cmd: str, args: dict[str, Any], by: str) -> Any:
        """Run one checked request as ``by``; ChatError when the hub refuses it."""
        hub, now, call = self.hub, time.time(), self.server.call
        name = args.get("name", "")
        reason = args.get("reason", "")
        match cmd:
            case "rooms.list":
                return [room_json(r) for r in hub.list_rooms()]
            case "rooms.who":
                return [user_json(u) for u in hub.list_users(now, args["room"])]
            case "rooms.create":
                await call(
                    "create_room",
                    args["room"],
                    by,
                    args.get("limit"),
                    args.get("private", False),
                    args.get("key"),
                    args.get("topic", ""),
                )
                return self._room(args["room"])
            case "rooms.set":
                changes = self._changes(args)
                await call("set_room", args["room"], by, changes, args.get("topic"))
                return self._room(args["room"])
            case "rooms.close":
                await call("close_room", args["room"], reason, by)
                return None
            case "users.list":
                return [user_json(u) for u in hub.list_users(now)]
            case "users.kick":
                await call("kill", name, reason, by)
                return None
            case "users.oper" | "users.deoper":
                await call("set_oper", name, cmd == "users.oper", by)
                return None
            case "broadcast":
                await call("broadcast", args["text"], by, "")
                return len(hub.users)
            case "logs":
                return self._tail(args)
            case "accounts.list":
                online = {fold(u.account) for u in hub.users.values() if u.account}
                return [
                    {
                        "name": a.name,
                        "oper": a.oper,
                        "created_at": a.created_at,
                        "online": a.key in online,
                    }
                    for a in sorted(hub.accounts.values(), key=lambda a: a.key)
                ]
            case "accounts.create":
                check_password_rules(args["password"])
                if fold(name) in hub.accounts:  # before spending a hash on it
                    raise e.AccountExists(name)
                password_hash = await self.server.accounts.hash(args["password"])
                self.server.need_store()
                await call("create_account", name, password_hash, args.get("oper", False), by)
                return None
            case "accounts.delete":
                self.server.need_store()
                await call("delete_account", name, by)
                return None
            case "accounts.oper" | "accounts.deoper":
                self.server.need_store()
                await call("set_account_oper", name, cmd == "accounts.oper", by)
                return None
            case "nodes":
                return await self.server.nodes()
            case "shutdown":
                what = "shut the server down" + (f": {reason}" if reason else "")
                self._apply([Delivery((), Audit(by, what))])
                stop: Callable[[str], None] | None = self.server.on_stop
                if stop is not None:
                    asyncio.get_running_loop().call_soon(stop, reason)
                return None
        raise e.TryLater(f"unknown command {cmd}")  # decode_request lets none through

    def _apply(self, deliveries: list[Delivery]) -> None:
        self.server.deliver(deliveries)
        self.server.after_hub()

    def _room(self, name: str) -> dict[str, Any]:
        room = self.hub.room_named(name)
        if room is None:
            raise e.NoSuchRoom(name)
        return room_json(self.hub.room_info(room))

    @staticmethod
    def _changes(args: dict[str, Any]) -> tuple[ModeChange, ...]:
        changes: list[ModeChange] = []
        if "limit" in args:
            limit = args["limit"]
            if limit is None:
                changes.append(ModeChange(False, "l"))
            else:
                changes.append(ModeChange(True, "l", str(limit)))
        if "private" in args:
            changes.append(ModeChange(bool(args["private"]), "i"))
        if "key" in args:
            key = args["key"]
            changes.append(ModeChange(False, "k") if key is None else ModeChange(True, "k", key))
        return tuple(changes)

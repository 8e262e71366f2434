"""Passwords: checked and hashed off the event loop, then the hub is told.

argon2id is slow and memory-hungry on purpose, so it runs on a small thread
pool; the connection that asked waits (its input held, its socket not read)
while everyone else carries on. Failed logins slow down: each failure for a
name or from an address doubles the wait before the next try is checked, and
the answer never says whether the account exists.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from salas.core import commands as c
from salas.core import errors as e
from salas.core.events import Delivery, Failed
from salas.core.names import fold
from salas.core.oplog import Do

if TYPE_CHECKING:
    from salas.net.server import Connection, Server

log = logging.getLogger("salas")

#: argon2id at OWASP's minimum (19 MiB, 2 passes, 1 lane): about 25 ms a check here.
HASHER = PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1)
PASSWORD_MIN = 4
#: Bytes: argon2 takes more, but nobody types more, and hashing costs per byte.
PASSWORD_MAX = 256
#: Password checks running or waiting at once; more are refused ("try later").
MAX_IN_FLIGHT = 16
#: The wait after the first failure (seconds), doubled by each later one, up to the cap.
FAIL_DELAY = 0.5
FAIL_DELAY_MAX = 16.0
#: Failures are forgotten after this long without another.
FAIL_MEMORY = 900.0
#: Names and addresses with failures remembered at once (memory stays bounded).
FAIL_ENTRIES = 10_000


def check_password_rules(password: str) -> None:
    if len(password) < PASSWORD_MIN:
        raise e.PasswordInvalid(f"at least {PASSWORD_MIN} characters")
    if len(password.encode()) > PASSWORD_MAX:
        raise e.PasswordInvalid(f"at most {PASSWORD_MAX} bytes")
    if any(ch.isspace() for ch in password):
        raise e.PasswordInvalid("no spaces")


def verify(password_hash: str, password: str) -> bool:
    """True when ``password`` matches; a plain (unhashed) operator password works too."""
    if not password_hash.startswith("$argon2"):
        return False
    try:
        return HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


class Failures:
    """Recent failed logins per key (a name, an address): how long to wait."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[int, float]] = {}

    def wait(self, keys: tuple[str, ...], now: float) -> float:
        longest = 0.0
        for key in keys:
            count, last = self._seen.get(key, (0, 0.0))
            if count and now - last < FAIL_MEMORY:
                delay = min(FAIL_DELAY_MAX, FAIL_DELAY * 2 ** (count - 1))
                longest = max(longest, last + delay - now)
        return longest

    def failed(self, keys: tuple[str, ...], now: float) -> None:
        if len(self._seen) >= FAIL_ENTRIES:
            self._seen = {k: v for k, v in self._seen.items() if now - v[1] < FAIL_MEMORY}
            while len(self._seen) >= FAIL_ENTRIES:
                del self._seen[next(iter(self._seen))]
        for key in keys:
            count, last = self._seen.get(key, (0, 0.0))
            self._seen[key] = (count + 1 if now - last < FAIL_MEMORY else 1, now)

    def succeeded(self, keys: tuple[str, ...]) -> None:
        for key in keys:
            self._seen.pop(key, None)


class Accounts:
    def __init__(self, server: Server) -> None:
        self.server = server
        self.hub = server.hub
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="salas-password")
        self._tasks: set[asyncio.Task[None]] = set()
        self.failures = Failures()
        self._dummy: str | None = None

    def run(self, conn: Connection, cmd: c.Command) -> None:
        """Start checking; the connection's later input waits for the answer."""
        if len(self._tasks) >= MAX_IN_FLIGHT:
            self._answer(conn, [Delivery((conn.sid,), Failed(e.TryLater("server busy"), cmd))])
            return
        conn.pause()
        task = self.server.loop.create_task(self._run(conn, cmd))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, conn: Connection, cmd: c.Command) -> None:
        try:
            out = await self._handle(conn, cmd)
        except e.ChatError as err:
            out = [Delivery((conn.sid,), Failed(err, cmd))]
        except Exception:
            log.exception("! internal error checking a password for session %s", conn.sid)
            out = [Delivery((conn.sid,), Failed(e.TryLater("internal error"), cmd))]
        self._answer(conn, out)

    def _answer(self, conn: Connection, out: list[Delivery]) -> None:
        if conn.sid in self.server.conns:
            self.server.deliver(out)
            self.server.after_hub()
        conn.resume()

    async def hash(self, password: str) -> str:
        return await self.server.loop.run_in_executor(self._pool, HASHER.hash, password)

    async def _check(self, stored: str | None, password: str) -> bool:
        if stored is None:
            # No such account: spend the same time all the same, so timing tells nothing.
            if self._dummy is None:
                self._dummy = await self.hash("no such account")
            stored = self._dummy
        return await self.server.loop.run_in_executor(self._pool, verify, stored, password)

    async def _proven(self, conn: Connection, name: str, password: str) -> str | None:
        """The account key if ``password`` is ``name``'s, after any wait earned by failures."""
        key = fold(name)
        keys = ("name:" + key, "addr:" + conn.host)
        wait = self.failures.wait(keys, time.monotonic())
        if wait > 0:
            await asyncio.sleep(wait)
        account = self.hub.accounts.get(key)
        ok = await self._check(account.hash if account else None, password)
        if not ok or account is None:
            self.failures.failed(keys, time.monotonic())
            log.info("! failed login for %s from %s", name, conn.host)
            return None
        self.failures.succeeded(keys)
        return key

    async def _oper_proven(self, conn: Connection, name: str, password: str) -> bool:
        """``[[operators]]``: a plain password (compared in constant time) or an argon2id hash."""
        keys = ("oper:" + name, "addr:" + conn.host)
        wait = self.failures.wait(keys, time.monotonic())
        if wait > 0:
            await asyncio.sleep(wait)
        ok = False
        for op in self.server.config.operators:
            if op.name != name:
                continue
            if op.password.startswith("$argon2"):
                ok = await self._check(op.password, password)
            else:
                ok = hmac.compare_digest(op.password.encode(), password.encode())
            if ok:
                break
        if not ok:
            self.failures.failed(keys, time.monotonic())
            log.info("! failed OPER as %s from %s", name, conn.host)
            return False
        self.failures.succeeded(keys)
        return True

    async def _handle(self, conn: Connection, cmd: c.Command) -> list[Delivery]:
        sid, hub = conn.sid, self.hub
        user = hub.users.get(sid)
        match cmd:
            case c.LogIn(name=name, password=password, how=how):
                name = name or (user.name if user else "")
                if not name:
                    raise e.LoginFailed()
                key = await self._proven(conn, name, password)
                if key is None:
                    raise e.LoginFailed()
                who = user.name if user else f"{conn.host}:{conn.port} (registering)"
                log.info("> %s logged in to account %s", who, name)
                await self.server.call("log_in", sid, key, how, cmd)
            case c.RegisterAccount(password=password):
                hub.check_register(sid)
                check_password_rules(password)
                hashed = await self.hash(password)
                self.server.need_store()
                await self.server.call("register_account", sid, hashed, cmd)
                if user is not None and user.account:
                    log.info("> account %s registered", user.account)
            case c.OperUp(name=name, password=password):
                if user is None:
                    raise e.LoginFailed()
                if not await self._oper_proven(conn, name, password):
                    raise e.LoginFailed()
                log.info("> %s is a server operator (as %s)", user.name, name)
                if self.server.bus is not None:
                    await self.server.bus.call(Do(sid, c.BecomeOper(name)))
                else:
                    return hub.handle(sid, c.BecomeOper(name), time.time())
            case c.ChangePassword(old=old, new=new):
                if user is None or user.account is None:
                    raise e.NotLoggedIn()
                check_password_rules(new)
                if await self._proven(conn, user.account, old) is None:
                    raise e.LoginFailed()
                hashed = await self.hash(new)
                self.server.need_store()
                await self.server.call("set_password", sid, hashed, cmd)
        return []

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)

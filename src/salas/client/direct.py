"""Direct file transfers and chats for ``salas chat``, peer to peer, by DCC.

The server only carries the offer (a CTCP private message, see ``dcc.py``);
the bytes go straight between the two clients. The commands:

* ``/send NAME FILE``: offer a file; ``/dcc chat NAME``: offer a direct chat;
* ``/accept [N]``, ``/decline [N]``: answer an offer (the newest with no N);
* ``/dcc msg NAME TEXT``, ``/dcc close NAME``: talk in, or end, a direct chat;
* ``/dcc list``: offers and transfers going on.

Whoever offers listens on a fresh port of the address its server connection
uses and sends its own address only. The receiver connects; if it can't, and
the offer came from a salas client, it listens in turn and answers with its
own address and the offer's token (the passive DCC form), and the offerer
connects. A salas offer carries a token that the connecting side sends first:
a connection without it gets nothing. IRC clients can't send a token, so an
offer to someone on the IRC door has none, and its listener takes the first
connection only, within the offer's lifetime.

A listening port holds at most a few connections still to send their token
(more are closed at once), and is closed after a few wrong tokens: the offer is
withdrawn rather than left open to guessing or to a flood of idle connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import stat
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from salas.client import dcc
from salas.client.dcc import Kind, Offer, OfferError, Reject
from salas.client.link import Link
from salas.proto import line as L

Show = Callable[[str], None]
Then = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Coroutine[Any, Any, None]]

#: Bytes read from the file, or from the connection, at a time.
CHUNK = 64 * 1024
#: After the last byte offered, how long the receiver waits to see whether more come.
GRACE = 1.0
#: How long an answer from the server (a lookup, an offer going out) may take.
SERVER_WAIT = 10.0
#: Progress lines at most this often.
PROGRESS_EVERY = 1.0
#: Longest line in a direct chat.
MAX_CHAT_LINE = 4096
#: Connections to one listening port still to send their token; more are closed at once.
MAX_PENDING = 4
#: Wrong (or missing) tokens on one listening port before the offer is withdrawn.
MAX_BAD_TOKENS = 5
#: The receiver leaves out acknowledgements while this much is still unsent to the
#: sender (one that doesn't read them must not make the receiver buffer without end).
ACK_BUFFER = 64 * 1024

HELP = (
    "> Direct connections (straight to the other person, not through the server):",
    "  /send NAME FILE       offer a file",
    "  /dcc chat NAME        offer a direct chat",
    "  /accept [N]           accept offer N (the newest without N)",
    "  /decline [N]          decline offer N",
    "  /dcc msg NAME TEXT    say TEXT in the direct chat with NAME",
    "  /dcc close NAME       end the direct chat with NAME",
    "  /dcc list             offers and transfers going on",
)


@dataclass(slots=True)
class DirectSettings:
    #: Where received files are saved (nowhere else).
    downloads: Path = field(default_factory=Path.cwd)
    #: Seconds an offer waits for an answer or a connection.
    ttl: float = 120.0
    #: Seconds without data before a transfer is given up.
    stall: float = 30.0
    #: Offer passively (port 0): the receiver listens and this client connects.
    passive: bool = False
    #: The address to put in offers instead of the server connection's own.
    address: str | None = None
    #: Seconds to wait for a connection to the other side to open.
    connect_timeout: float = 5.0
    #: Seconds a new connection has to send its token.
    token_wait: float = 10.0


class TransferError(Exception):
    pass


@dataclass(eq=False, slots=True)
class Waiting:
    """A listening port waiting for one connection: an offer we made, or an offer
    we accepted and answered by listening (the reverse)."""

    peer: str
    kind: Kind
    name: str
    token: str | None
    then: Then
    #: An offer we made: the peer may answer with its own address instead.
    mine: bool
    #: Called if nobody comes (a partial file to remove, say).
    abandon: Callable[[], None] = field(default=lambda: None)
    server: asyncio.Server | None = None
    timer: asyncio.TimerHandle | None = None
    taken: bool = False
    #: Connections still to send their token (at most ``MAX_PENDING``).
    pending: set[asyncio.StreamWriter] = field(default_factory=set)
    #: Connections that came with a wrong token, or none.
    bad: int = 0

    def what(self) -> str:
        if self.kind == "CHAT":
            return f"the direct chat with {self.peer}"
        return f'"{self.name}" ' + ("for " if self.mine else "from ") + self.peer

    def is_taken(self) -> bool:
        return self.taken

    def stop(self) -> None:
        self.taken = True
        if self.server is not None:
            self.server.close()
        if self.timer is not None:
            self.timer.cancel()
        for writer in self.pending:  # their token no longer matters
            writer.close()
        self.pending.clear()


@dataclass(eq=False, slots=True)
class Incoming:
    number: int
    peer: str
    offer: Offer
    timer: asyncio.TimerHandle | None = None


class Progress:
    def __init__(self, show: Show, name: str, size: int) -> None:
        self.show = show
        self.name = name
        self.size = size
        self.next = time.monotonic() + PROGRESS_EVERY

    def update(self, done: int) -> None:
        now = time.monotonic()
        if now < self.next or done >= self.size:
            return
        self.next = now + PROGRESS_EVERY
        pct = done * 100 // self.size if self.size else 100
        self.show(
            f'> dcc: "{self.name}" {dcc.size_text(done)} of {dcc.size_text(self.size)} ({pct}%)'
        )


def _fold(name: str) -> str:
    return name.lower()


def _readable_size(path: Path) -> int:
    """The size of a file this process can read (OSError if it can't)."""
    with path.open("rb") as f:
        st = os.fstat(f.fileno())
    if not stat.S_ISREG(st.st_mode):
        raise OSError(f"{path} is not a file")
    return st.st_size


def _nothing() -> None:
    pass


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


class Direct:
    """The direct-connection side of one ``salas chat``: fed the server's lines and
    the user's, it runs offers, listeners and transfers as asyncio tasks."""

    def __init__(self, link: Link, show: Show, settings: DirectSettings | None = None) -> None:
        self.link = link
        self.show = show
        self.settings = settings or DirectSettings()
        self.waiting: list[Waiting] = []
        self.incoming: dict[int, Incoming] = {}
        self.chats: dict[str, tuple[str, asyncio.StreamWriter]] = {}
        self.active = 0
        self._number = 0
        self._sync = 0
        self._syncs: dict[int, asyncio.Future[bool]] = {}
        self._failed: set[int] = set()
        self._lookups: dict[str, asyncio.Future[str | None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # -- what the owner calls ---------------------------------------------------------

    def busy(self) -> bool:
        """An offer of ours is open, or a transfer or chat is going on."""
        return bool(
            self.active or self.chats or self._tasks or any(not w.taken for w in self.waiting)
        )

    async def close(self) -> None:
        """Stop everything: offers are withdrawn, transfers cut off, and files not
        (fully) received removed."""
        for w in self.waiting:
            taken = w.taken
            w.stop()
            if not taken:
                w.abandon()  # an accepted file nobody connected for: its empty file goes
        self.waiting.clear()
        for inc in self.incoming.values():
            if inc.timer is not None:
                inc.timer.cancel()
        while self._tasks:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(BaseException):
                    await task
            self._tasks.difference_update(tasks)

    def on_server_line(self, text: str) -> bool:
        """Act on a line from the server; True if it was for us alone (not to be shown)."""
        if self._lookups and (m := L.WHOIS_RE.match(text)):
            fut = self._lookups.pop(_fold(m.group(1)), None)
            if fut is not None:
                if not fut.done():
                    fut.set_result(m.group(2))
                return True
        if text.startswith("dcc-sync ") and text[9:].isdigit():
            fut_sync = self._syncs.pop(int(text[9:]), None)
            if fut_sync is not None:
                n = int(text[9:])
                if not fut_sync.done():
                    fut_sync.set_result(n not in self._failed)
                self._failed.discard(n)
                return True
        if text.startswith("! ") and not text.startswith("! Notice from"):
            self._refused(text)
            return False
        if m := L.DCC_FROM_RE.match(text):
            self._on_dcc(m.group(1), m.group(2))
            return True
        return False

    def on_user_line(self, text: str) -> bool:
        """Run a direct-connection command; True if ``text`` was one."""
        word, _, rest = text.strip().partition(" ")
        word = word.lower()
        rest = rest.strip()
        if word == "/help" and not rest:
            for row in HELP:
                self.show(row)
            return False  # the server's own list follows
        if word == "/help" and rest.lower().lstrip("/") in ("send", "accept", "decline", "dcc"):
            # The client's own commands: the server doesn't know them.
            about = rest.lower().lstrip("/")
            self.show(HELP[0])
            for row in HELP[1:]:
                if row.split()[0] == "/" + about:
                    self.show(row)
            return True
        if word == "/send":
            peer, _, path = rest.partition(" ")
            path = path.strip()
            if len(path) > 1 and path[0] == path[-1] and path[0] in "\"'":
                path = path[1:-1]
            if not peer or not path:
                self.show("! Usage: /send NAME FILE")
            else:
                self._spawn(self._offer(peer, "SEND", Path(path).expanduser()))
            return True
        if word in ("/accept", "/decline"):
            self._answer(word == "/accept", rest)
            return True
        if word != "/dcc":
            return False
        sub, _, rest = rest.partition(" ")
        sub = sub.lower()
        rest = rest.strip()
        if sub == "chat" and rest and " " not in rest:
            self._spawn(self._offer(rest, "CHAT", None))
        elif sub == "msg" and " " in rest:
            peer, _, said = rest.partition(" ")
            self._chat_say(peer, said)
        elif sub == "close" and rest:
            self._chat_close(rest)
        elif sub == "list":
            self._list()
        else:
            for row in HELP:
                self.show(row)
        return True

    # -- talking to the server -------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _refused(self, text: str) -> None:
        """A refusal from the server: the oldest request still waiting caused it."""
        if self._syncs:
            self._failed.add(min(self._syncs))
        for name, fut in list(self._lookups.items()):
            if text.lower().endswith(" " + name) and not fut.done():
                fut.set_result(None)
                del self._lookups[name]

    async def _lookup(self, peer: str) -> str | None:
        """Which door ``peer`` came in by, or None if the server says there is no such
        person. On no answer, ``line``: a token then guards the offer."""
        key = _fold(peer)
        fut = self._lookups.get(key)
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            self._lookups[key] = fut
            self.link.send(f"/whois {peer}")
        try:
            return await asyncio.wait_for(asyncio.shield(fut), SERVER_WAIT)
        except TimeoutError:
            self._lookups.pop(key, None)
            return "line"

    async def _ctcp(self, peer: str, text: str) -> bool:
        """Send a CTCP request through the server; False if the server refused it."""
        self._sync += 1
        n = self._sync
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._syncs[n] = fut
        self.link.send(f"/ctcp {peer} {text}")
        self.link.send(f"/echo dcc-sync {n}")  # answered in order: a marker after the reply
        try:
            return await asyncio.wait_for(fut, SERVER_WAIT)
        except TimeoutError:
            self._syncs.pop(n, None)
            return False

    def _local_host(self) -> str:
        return self.link.local_host() or "127.0.0.1"

    # -- offering ---------------------------------------------------------------------

    async def _offer(self, peer: str, kind: Kind, path: Path | None) -> None:
        size = 0
        name = "chat"
        if path is not None:
            try:
                size = _readable_size(path)
            except OSError as err:
                self.show(f"! dcc: can't send {path}: {err.strerror or err}")
                return
            name = path.name
        door = await self._lookup(peer)
        if door is None:
            return  # the server said why
        irc = door == "irc"
        token = None if irc else dcc.new_token()
        host = self._local_host()

        async def then(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if path is None:
                await self._chat(peer, reader, writer)
            else:
                await self._send_file(peer, name, path, size, reader, writer)

        w = Waiting(peer, kind, name, token, then, mine=True)
        port = 0
        if not (self.settings.passive and token):
            try:
                w.server = await self._listen(w, host)
            except OSError as err:
                self.show(f"! dcc: can't listen on {host}: {err.strerror or err}")
                return
            port = w.server.sockets[0].getsockname()[1]
        offer = Offer(kind, name, self.settings.address or host, port, size, token)
        self.waiting.append(w)
        if not await self._ctcp(peer, "DCC " + dcc.format_offer(offer)):
            w.stop()
            self.waiting.remove(w)
            self.show(f"! dcc: the offer to {peer} did not go out")
            return
        w.timer = asyncio.get_running_loop().call_later(self.settings.ttl, self._expire, w)
        ttl = f"{self.settings.ttl:g}"
        if kind == "SEND":
            self.show(
                f'> dcc: offered "{name}" ({dcc.size_text(size)}) to {peer};'
                f" waiting up to {ttl} s for them to accept"
            )
        else:
            self.show(f"> dcc: offered a direct chat to {peer}; waiting up to {ttl} s")

    async def _listen(self, w: Waiting, host: str) -> asyncio.Server:
        def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if w.taken or len(w.pending) >= MAX_PENDING:
                writer.close()
                return
            w.pending.add(writer)
            self._spawn(self._arrived(w, reader, writer))

        return await asyncio.start_server(on_connect, host, 0)

    async def _arrived(
        self, w: Waiting, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """A connection to one of our listening ports: the right one gets the transfer."""
        try:
            ok = await self._token_ok(w, reader, writer)
        except BaseException:
            writer.close()
            raise
        finally:
            w.pending.discard(writer)
        if not ok or w.is_taken():  # or someone else's token came in while this one was read
            writer.close()
            return
        w.stop()
        self._forget(w)
        await self._run(w.then, reader, writer)

    async def _token_ok(
        self, w: Waiting, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Whether a new connection may have what ``w`` offers: it sends the token first
        (salas offers; IRC ones have none). Wrong tokens, enough of them, withdraw it."""
        if w.token is None or not dcc.is_salas_token(w.token):
            return True
        try:
            got = await asyncio.wait_for(reader.readline(), self.settings.token_wait)
        except (TimeoutError, ValueError, OSError, asyncio.IncompleteReadError):
            got = b""
        if w.is_taken():
            return False
        if dcc.token_matches(w.token, got.decode("ascii", "replace").strip()):
            return True
        addr = writer.get_extra_info("peername")
        where = f"{addr[0]}:{addr[1]}" if addr else "somewhere"
        self.show(
            f"! dcc: a connection from {where} for {w.what()} had no valid token; it got nothing"
        )
        w.bad += 1
        if w.bad >= MAX_BAD_TOKENS:
            w.stop()
            self._forget(w)
            w.abandon()
            if w.mine:
                self.show(
                    f"! dcc: withdrew the offer of {w.what()}: {w.bad} connections came"
                    " with wrong tokens"
                )
            else:
                self.show(
                    f"! dcc: stopped waiting for {w.what()}: {w.bad} connections came"
                    " with wrong tokens"
                )
        return False

    async def _run(
        self, then: Then, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.active += 1
        try:
            await then(reader, writer)
        finally:
            self.active -= 1
            writer.close()

    def _forget(self, w: Waiting) -> None:
        with contextlib.suppress(ValueError):
            self.waiting.remove(w)

    def _expire(self, w: Waiting) -> None:
        if w.taken:
            return
        w.stop()
        self._forget(w)
        w.abandon()
        ttl = f"{self.settings.ttl:g}"
        if w.mine:
            self.show(f"! dcc: nobody took {w.what()} within {ttl} s: the offer expired")
        else:
            self.show(f"! dcc: {w.peer} did not connect within {ttl} s: gave up on {w.what()}")

    # -- offers made to us ------------------------------------------------------------

    def _on_dcc(self, peer: str, text: str) -> None:
        try:
            item = dcc.parse(text)
        except OfferError as err:
            self.show(f"! dcc: {peer} sent an offer this client can't use ({err})")
            return
        if isinstance(item, Reject):
            for w in self.waiting:
                same = item.kind == "CHAT" or w.name == item.name
                if w.mine and _fold(w.peer) == _fold(peer) and w.kind == item.kind and same:
                    w.stop()
                    self._forget(w)
                    self.show(f"> dcc: {peer} declined {w.what()}")
                    return
            return
        if item.token is not None and not item.passive:
            for w in self.waiting:
                if (
                    w.mine
                    and not w.taken
                    and _fold(w.peer) == _fold(peer)
                    and dcc.token_matches(w.token or "", item.token)
                ):
                    w.stop()
                    self._forget(w)
                    self._spawn(self._connect_back(w, item))
                    return
        self._number += 1
        inc = Incoming(self._number, peer, item)
        self.incoming[inc.number] = inc
        inc.timer = asyncio.get_running_loop().call_later(
            self.settings.ttl, self._expire_incoming, inc
        )
        n = inc.number
        if item.kind == "SEND":
            self.show(
                f'> dcc: {peer} offers "{item.name}" ({dcc.size_text(item.size)}):'
                f" /accept {n} or /decline {n}"
            )
        else:
            self.show(f"> dcc: {peer} offers a direct chat: /accept {n} or /decline {n}")

    def _expire_incoming(self, inc: Incoming) -> None:
        if self.incoming.pop(inc.number, None) is not None:
            self.show(f"> dcc: offer {inc.number} from {inc.peer} expired")

    def _pick(self, rest: str) -> Incoming | None:
        if not rest:
            if not self.incoming:
                self.show("! dcc: no offers waiting")
                return None
            return self.incoming[max(self.incoming)]
        if not rest.isdigit() or int(rest) not in self.incoming:
            self.show(f"! dcc: no offer {rest} (expired, or answered already?)")
            return None
        return self.incoming[int(rest)]

    def _answer(self, accept: bool, rest: str) -> None:
        inc = self._pick(rest.lstrip("#"))
        if inc is None:
            return
        del self.incoming[inc.number]
        if inc.timer is not None:
            inc.timer.cancel()
        if accept:
            self._spawn(self._accept(inc))
            return
        offer = inc.offer
        self._spawn(self._say_reject(inc.peer, offer.kind, offer.name))
        self.show(f"> dcc: declined offer {inc.number} from {inc.peer}")

    async def _say_reject(self, peer: str, kind: Kind, name: str) -> None:
        await self._ctcp(peer, "DCC " + dcc.format_reject(kind, name))

    async def _accept(self, inc: Incoming) -> None:
        offer, peer = inc.offer, inc.peer
        then: Then
        abandon: Callable[[], None] = _nothing
        if offer.kind == "SEND":
            try:
                self.settings.downloads.mkdir(parents=True, exist_ok=True)
                path, fd = dcc.open_new(self.settings.downloads, offer.name)
            except (OSError, OfferError) as err:
                self.show(f"! dcc: can't save {offer.name!r}: {err}")
                return
            #: The descriptor is handed on (to the transfer) or closed, the file removed.
            done = False

            async def receive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                nonlocal done
                if done:
                    return
                done = True
                await self._receive_file(peer, offer, path, fd, reader, writer)

            def discard() -> None:
                nonlocal done
                if not done:
                    done = True
                    os.close(fd)
                    _remove(path)

            then, abandon = receive, discard
            self.show(f'> dcc: accepted "{offer.name}" from {peer}; saving as {path}')
        else:

            async def chat(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                await self._chat(peer, reader, writer)

            then = chat
        try:
            await self._reach(peer, offer, then, abandon)
        except BaseException:
            abandon()  # cut short (by close()): nothing left open, no empty file
            raise

    async def _reach(
        self, peer: str, offer: Offer, then: Then, abandon: Callable[[], None]
    ) -> None:
        """Connect to an accepted offer, or listen for its sender to connect."""
        if not offer.passive:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(offer.host, offer.port), self.settings.connect_timeout
                )
            except (OSError, TimeoutError) as err:
                why = getattr(err, "strerror", None) or "no answer"
                if not offer.salas:
                    abandon()
                    self.show(
                        f"! dcc: can't reach {peer} at {offer.host}:{offer.port} ({why});"
                        " ask them to offer it passively"
                    )
                    return
                self.show(
                    f"> dcc: can't reach {peer} ({why}); asking {peer} to connect here instead"
                )
            else:
                if offer.salas and offer.token:
                    writer.write(offer.token.encode() + b"\n")
                await self._run(then, reader, writer)
                return
        # Listen, and tell the offerer where (the passive form, with the offer's token).
        host = self._local_host()
        w = Waiting(peer, offer.kind, offer.name, offer.token, then, mine=False, abandon=abandon)
        try:
            w.server = await self._listen(w, host)
        except OSError as err:
            abandon()
            self.show(f"! dcc: can't listen on {host}: {err.strerror or err}")
            return
        port = w.server.sockets[0].getsockname()[1]
        reply = Offer(
            offer.kind, offer.name, self.settings.address or host, port, offer.size, offer.token
        )
        self.waiting.append(w)
        w.timer = asyncio.get_running_loop().call_later(self.settings.ttl, self._expire, w)
        if not await self._ctcp(peer, "DCC " + dcc.format_offer(reply)):
            w.stop()
            self._forget(w)
            abandon()
            self.show(f"! dcc: could not answer {peer}'s offer")

    async def _connect_back(self, w: Waiting, reply: Offer) -> None:
        """The receiver listens (it could not reach us, or we offered passively)."""
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(reply.host, reply.port), self.settings.connect_timeout
            )
        except (OSError, TimeoutError) as err:
            why = getattr(err, "strerror", None) or "no answer"
            self.show(
                f"! dcc: can't reach {w.peer} at {reply.host}:{reply.port} ({why}) either:"
                f" gave up on {w.what()}"
            )
            return
        if w.token and dcc.is_salas_token(w.token):
            writer.write(w.token.encode() + b"\n")
        await self._run(w.then, reader, writer)

    # -- the transfers ----------------------------------------------------------------

    async def _send_file(
        self,
        peer: str,
        name: str,
        path: Path,
        size: int,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        stall = self.settings.stall
        digest = hashlib.sha256()
        sent = 0
        progress = Progress(self.show, name, size)
        final = (size & 0xFFFFFFFF).to_bytes(4, "big")

        acked = False  # the receiver acknowledges what it got (not every client does)
        written = 0  # handed to the socket: the receiver may acknowledge it before drain returns

        async def acks() -> None:
            nonlocal acked
            while True:
                got = await reader.readexactly(4)
                acked = True
                if got == final and written >= size:
                    return

        acking = asyncio.ensure_future(acks())
        self.show(f'> dcc: sending "{name}" to {peer}')
        try:
            with path.open("rb") as f:
                while sent < size:
                    chunk = f.read(min(CHUNK, size - sent))
                    if not chunk:
                        raise TransferError("the file got shorter while it was being sent")
                    if writer.is_closing():  # reset by the receiver (uvloop refuses the write)
                        raise TransferError(f"{peer} closed the connection")
                    writer.write(chunk)
                    written += len(chunk)
                    try:
                        await asyncio.wait_for(writer.drain(), stall)
                    except TimeoutError:
                        raise TransferError(f"{peer} took nothing for {stall:g} s") from None
                    digest.update(chunk)
                    sent += len(chunk)
                    progress.update(sent)
            try:
                await asyncio.wait_for(asyncio.shield(acking), stall)
            except (TimeoutError, asyncio.IncompleteReadError, OSError) as err:
                # A receiver that acknowledges stopped before the last byte:
                # it did not get the file. (One that never acknowledges can't
                # be told apart from one that got it all.)
                if acked:
                    lost = (
                        "closed the connection"
                        if not isinstance(err, TimeoutError)
                        else (f"acknowledged nothing more for {stall:g} s")
                    )
                    raise TransferError(f"{peer} {lost} before the end") from None
        except (TransferError, OSError) as err:
            why = err if isinstance(err, TransferError) else (err.strerror or "connection lost")
            self.show(f'! dcc: sending "{name}" to {peer} failed after {sent} bytes: {why}')
            return
        finally:
            acking.cancel()
        self.show(
            f'> dcc: sent "{name}" to {peer} ({dcc.size_text(size)}); SHA-256 {digest.hexdigest()}'
        )

    async def _receive_file(
        self,
        peer: str,
        offer: Offer,
        path: Path,
        fd: int,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        stall, size = self.settings.stall, offer.size
        digest = hashlib.sha256()
        got = 0
        completed = False
        progress = Progress(self.show, offer.name, size)
        self.show(f'> dcc: receiving "{offer.name}" from {peer}')
        try:
            with os.fdopen(fd, "wb") as f:
                while got < size:
                    try:
                        data = await asyncio.wait_for(reader.read(CHUNK), stall)
                    except TimeoutError:
                        raise TransferError(f"nothing came for {stall:g} s") from None
                    if not data:
                        raise TransferError(f"{peer} closed the connection at {got} of {size}")
                    if got + len(data) > size:
                        raise TransferError(f"{peer} sent more than the {size} bytes offered")
                    f.write(data)
                    digest.update(data)
                    got += len(data)
                    # A sender that doesn't read acknowledgements gets no more of them
                    # while they pile up here (the last one is always sent).
                    if writer.is_closing():  # the sender is gone: no one to acknowledge to
                        if got < size:
                            raise TransferError(f"{peer} closed the connection at {got} of {size}")
                    elif got >= size or writer.transport.get_write_buffer_size() <= ACK_BUFFER:
                        writer.write(dcc.ack(got))
                    progress.update(got)
                try:
                    extra = await asyncio.wait_for(reader.read(1), GRACE)
                except TimeoutError:
                    extra = b""
                if extra:
                    raise TransferError(f"{peer} sent more than the {size} bytes offered")
            completed = True
        except (TransferError, OSError) as err:
            _remove(path)  # before saying so
            why = err if isinstance(err, TransferError) else (err.strerror or "connection lost")
            self.show(
                f'! dcc: receiving "{offer.name}" from {peer} failed: {why};'
                " the partial file was removed"
            )
            return
        finally:
            if not completed:  # cut short (/quit, Ctrl-C, close()): no partial file stays
                _remove(path)
        self.show(
            f'> dcc: received "{offer.name}" from {peer} ({dcc.size_text(size)}) as {path};'
            f" SHA-256 {digest.hexdigest()}"
        )

    # -- direct chats -----------------------------------------------------------------

    async def _chat(
        self, peer: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        key = _fold(peer)
        old = self.chats.pop(key, None)
        if old is not None:
            old[1].close()
        self.chats[key] = (peer, writer)
        self.show(
            f"> dcc: direct chat with {peer} open: /dcc msg {peer} TEXT, /dcc close {peer} ends it"
        )
        try:
            while True:
                try:
                    raw = await reader.readline()
                except (ValueError, OSError, asyncio.LimitOverrunError):
                    break
                if not raw:
                    break
                text = L.safe(raw.decode("utf-8", "replace").rstrip("\r\n")[:MAX_CHAT_LINE])
                self.show(f"[={peer}] {text}")
        finally:
            if self.chats.get(key, (None, None))[1] is writer:
                del self.chats[key]
            self.show(f"> dcc: direct chat with {peer} closed")

    def _chat_say(self, peer: str, text: str) -> None:
        chat = self.chats.get(_fold(peer))
        if chat is None:
            self.show(f"! dcc: no direct chat with {peer}: /dcc chat {peer} offers one")
            return
        chat[1].write(text.encode() + b"\n")

    def _chat_close(self, peer: str) -> None:
        chat = self.chats.get(_fold(peer))
        if chat is None:
            self.show(f"! dcc: no direct chat with {peer}")
            return
        chat[1].close()

    def _list(self) -> None:
        rows = [
            f"  offer {n} from {i.peer}: {i.offer.kind} {i.offer.name}"
            for n, i in sorted(self.incoming.items())
        ]
        rows += [f"  waiting: {w.what()}" for w in self.waiting if not w.taken]
        rows += [f"  direct chat with {peer}" for peer, _ in self.chats.values()]
        if self.active:
            rows.append(f"  {self.active} connection(s) at work")
        self.show("> dcc: " + ("going on:" if rows else "nothing going on"))
        for row in rows:
            self.show(row)

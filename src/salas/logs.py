"""The server's event log: the console (as seeds 000 and 004 print it) and
rotating files in the data dir. Records are handed to a background thread, so
neither the console nor the disk ever holds up the event loop."""

from __future__ import annotations

import json
import logging
import logging.handlers
import queue
import threading
import zlib
from collections import deque
from collections.abc import Callable
from pathlib import Path

from salas.config import LogSettings
from salas.core.events import (
    Audit,
    Closing,
    Event,
    Joined,
    Left,
    Message,
    ModesChanged,
    OperGranted,
    OperRevoked,
    Private,
    Renamed,
    ShutdownAsked,
    TopicChanged,
    Welcome,
)
from salas.proto.line import safe

log = logging.getLogger("salas")
LOG_FILE = "salas.log"
#: Lines the admin console's ``logs`` can show without reading the files.
RECENT_LINES = 5000
#: Lines kept as text before they are packed into one compressed block: log
#: lines repeat themselves, so 5,000 of them take about a fifth of the memory
#: (a server holds the tail whether or not anyone reads it).
RECENT_BLOCK = 250
FILE_FORMAT = "%(asctime)s %(levelname)s %(message)s"


class Recent(logging.Handler):
    """The latest log lines in memory, and live copies for whoever follows them.

    Runs on the log listener's thread; followers are called there and must hand
    the line over to their own thread (``loop.call_soon_threadsafe``)."""

    def __init__(self, size: int = RECENT_LINES) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter(FILE_FORMAT))
        self.size = size
        #: Older lines, oldest first: (how many, zlib of their JSON list).
        self._blocks: deque[tuple[int, bytes]] = deque()
        self._packed = 0
        #: The newest lines, as text.
        self._open: list[str] = []
        self._followers: set[Callable[[str], None]] = set()
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        with self._guard:
            self._open.append(line)
            if len(self._open) >= RECENT_BLOCK:
                self._pack()
            followers = list(self._followers)
        for follower in followers:
            try:
                follower(line)
            except Exception:  # a follower gone away must not stop the log
                self.unfollow(follower)

    def _pack(self) -> None:
        lines, self._open = self._open, []
        self._blocks.append((len(lines), zlib.compress(json.dumps(lines).encode(), 1)))
        self._packed += len(lines)
        while self._blocks and self._packed - self._blocks[0][0] >= self.size:
            self._packed -= self._blocks.popleft()[0]

    def tail(self, n: int) -> list[str]:
        """The latest ``n`` lines (at most ``size``), oldest first."""
        n = min(n, self.size)
        if n <= 0:
            return []
        with self._guard:
            got = self._open[-n:]
            blocks = list(self._blocks)
        for _count, packed in reversed(blocks):
            if len(got) >= n:
                break
            got = json.loads(zlib.decompress(packed)) + got
        return got[-n:]

    def follow(self, follower: Callable[[str], None]) -> None:
        with self._guard:
            self._followers.add(follower)

    def unfollow(self, follower: Callable[[str], None]) -> None:
        with self._guard:
            self._followers.discard(follower)


class Logs:
    """Owns the handlers and the background listener; ``close()`` flushes both."""

    def __init__(self, settings: LogSettings, data_dir: Path | None) -> None:
        self.settings = settings
        handlers: list[logging.Handler] = []
        if settings.console:
            console = logging.StreamHandler()
            console.setFormatter(logging.Formatter("%(message)s"))
            handlers.append(console)
        self.file: Path | None = None
        if settings.file and data_dir is not None:
            logs_dir = data_dir / "logs"
            logs_dir.mkdir(parents=True, exist_ok=True)
            self.file = logs_dir / LOG_FILE
            rotating = logging.handlers.RotatingFileHandler(
                self.file,
                maxBytes=settings.file_max_bytes,
                backupCount=settings.file_backups,
                encoding="utf-8",
            )
            rotating.setFormatter(logging.Formatter(FILE_FORMAT))
            handlers.append(rotating)
        self.recent = Recent()
        handlers.append(self.recent)
        self._queue: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        self._listener = logging.handlers.QueueListener(
            self._queue, *handlers, respect_handler_level=True
        )
        self._handler = logging.handlers.QueueHandler(self._queue)
        log.handlers[:] = [self._handler]
        log.setLevel(settings.level.upper())
        log.propagate = False
        self._listener.start()

    def close(self) -> None:
        self._listener.stop()
        for h in self._listener.handlers:
            h.close()
        log.handlers[:] = []


def describe(ev: Event, settings: LogSettings) -> str | None:
    """One console line for an event worth logging, or None (never a terminal escape)."""
    line = _describe(ev, settings)
    return safe(line) if line is not None else None


def _describe(ev: Event, settings: LogSettings) -> str | None:
    match ev:
        case Welcome(user=u, online=n, door=door, address=addr):
            people = f"{n} user online" if n == 1 else f"{n} users online"
            return f"> New user {u.name} [{addr}] entered via {door} ({people})"
        case Message(room=r, sender=s, text=t, kind=k):
            if not settings.messages:
                return None
            if k == "action":
                return f"[{r}] * {s.name} {t}"
            return f"[{r}] [{s.name}] {t}"
        case Private(sender=s, target=t, text=text):
            if settings.private_messages:
                return f"[{s.name} -> {t.name}] {text}"
            return None
        case Joined(room=r, user=u, count=n):
            return f"> {u.name} joined {r} ({n} in room)"
        case Left(room=r, user=u, count=n, kind=kind, reason=why, by=by):
            extra = f" by {by.name}" if by is not None else ""
            return f"< {u.name} left {r} ({kind}{extra}; {n} in room)" + (f": {why}" if why else "")
        case Renamed(old=o, new=n):
            return f"> {o.name} is now known as {n.name}"
        case TopicChanged(room=r, topic=t, by=by):
            return f"> {by.name} set the topic of {r}: {t}"
        case ModesChanged(room=r, by=by, changes=changes):
            text = " ".join(
                ("+" if ch.add else "-") + ch.mode + (f" {ch.arg}" if ch.arg else "")
                for ch in changes
            )
            return f"> {by.name} set modes on {r}: {text}"
        case OperGranted(user=u):
            return f"! {u.name} is now a server operator"
        case OperRevoked(user=u):
            return f"! {u.name} is no longer a server operator"
        case Audit(by=by, action=action):
            return f"! {by} {action}"
        case ShutdownAsked(by=by, reason=why):
            return f"! {by} asked the server to shut down" + (f": {why}" if why else "")
        case Closing(kind="kill", reason=why):
            return f"! disconnected a user: {why}"
    return None

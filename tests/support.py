"""Shared helpers for tests that run the real server: start ``salas serve`` on
free loopback ports, and talk to it over real sockets. Every wait is bounded."""

from __future__ import annotations

import atexit
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Scales every timeout (slow machines: SALAS_TEST_TIME=3).
TIME = float(os.environ.get("SALAS_TEST_TIME", "1"))
LISTEN_RE = re.compile(r"listening: (\w+) on (\S+):(\d+)")
PYTHON = sys.executable


def salas_cmd(*args: str) -> list[str]:
    return [PYTHON, "-m", "salas", *args]


def test_env(tmp: Path) -> dict[str, str]:
    """An environment that keeps client state and data inside the test's tmp dir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SALAS__")}
    env.update(
        HOME=str(tmp / "home"),
        XDG_STATE_HOME=str(tmp / "state"),
        XDG_DATA_HOME=str(tmp / "xdg-data"),
        PYTHONUNBUFFERED="1",
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


@dataclass
class RunningServer:
    proc: subprocess.Popen[str]
    data_dir: Path
    ports: dict[str, int] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _pumped: bool = False

    @property
    def port(self) -> int:
        return self.ports["line"]

    def _pump(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._cond:
                self.log.append(line.rstrip("\n"))
                self._cond.notify_all()
        self.proc.stderr.close()  # at its end: nothing more to read
        with self._cond:
            self._pumped = True
            self._cond.notify_all()

    def wait_log(self, pattern: str, timeout: float = 5.0, start: int = 0) -> str:
        """The first console line from index ``start`` on that matches ``pattern`` (regex)."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout * TIME
        with self._cond:
            while True:
                for line in self.log[start:]:
                    if rx.search(line):
                        return line
                left = deadline - time.monotonic()
                exited = self.proc.poll() is not None and self._pumped
                if left <= 0 or exited:
                    shown = "\n".join(self.log)
                    raise AssertionError(f"no log line matching {pattern!r} in:\n{shown}")
                self._cond.wait(min(left, 0.2))

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout * TIME)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise

    def rss_kb(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")


def export_history(tmp: Path, room: str, *where: str) -> list[dict[str, Any]]:
    """``salas admin WHERE history export ROOM`` (WHERE: ``--data-dir DIR`` or
    ``--config FILE``): the room's stored messages, oldest first."""
    proc = subprocess.run(
        salas_cmd("admin", *where, "history", "export", room),
        capture_output=True,
        text=True,
        env=test_env(tmp),
        timeout=30 * TIME,
    )
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def bus_env() -> dict[str, str]:
    """With ``SALAS_TEST_BUS=1``, every server a test starts is a node on a bus
    (a Redis of its own): the same tests, through the cluster's path."""
    if os.environ.get("SALAS_TEST_BUS") != "1":
        return {}
    from redisrv import RedisServer

    redis = RedisServer()
    if not _REDISES:
        atexit.register(lambda: [r.close() for r in _REDISES])
    _REDISES.append(redis)
    return {"SALAS__BUS__URL": redis.url}


_REDISES: list[Any] = []

test_env.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


def start_server(
    tmp: Path,
    doors: tuple[str, ...] = ("line",),
    config: str | None = None,
    extra_args: tuple[str, ...] = (),
    ports: dict[str, int] | None = None,
    env: dict[str, str] | None = None,
) -> RunningServer:
    """``salas serve`` on loopback, each door on a free port (or on the port
    ``ports`` gives it: a restart on the same address, say). The data dir is
    ``tmp/data``, so a second server on the same ``tmp`` finds the first's data."""
    data = tmp / "data"
    args = ["serve", "--data-dir", str(data)]
    for door in doors:
        args += ["--listen", f"{door}:127.0.0.1:{(ports or {}).get(door, 0)}"]
    if config is not None:
        cfg = tmp / "salas.toml"
        cfg.write_text(config)
        args += ["--config", str(cfg)]
    proc = subprocess.Popen(
        salas_cmd(*args, *extra_args),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**test_env(tmp), **bus_env(), **(env or {})},
    )
    server = RunningServer(proc, data)
    threading.Thread(target=server._pump, daemon=True).start()
    deadline = time.monotonic() + 15 * TIME
    while len(server.ports) < len(doors):
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise AssertionError("server did not start:\n" + "\n".join(server.log))
        with server._cond:
            for line in server.log:
                m = LISTEN_RE.search(line)
                if m:
                    server.ports[m.group(1)] = int(m.group(3))
            if len(server.ports) < len(doors):
                server._cond.wait(0.1)
    return server


class Lines:
    """Reading lines with bounded waits: ``next_line`` comes from the subclass."""

    seen: list[str]

    def next_line(self, timeout: float = 5.0) -> str:
        raise NotImplementedError

    def expect(self, needle: str, timeout: float = 5.0) -> str:
        """Read lines until one contains ``needle``; return it."""
        deadline = time.monotonic() + timeout * TIME
        while True:
            left = (deadline - time.monotonic()) / TIME
            if left <= 0:
                raise TimeoutError(f"{needle!r} not seen; last lines: {self.seen[-12:]}")
            line = self.next_line(left)
            if needle in line:
                return line


class LineClient(Lines):
    """A netcat-like client for the line door."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.sock = socket.create_connection((host, port), timeout=5 * TIME)
        self.buf = b""
        self.seen: list[str] = []

    def tail(self, n: int = 12) -> list[str]:
        """The last lines seen, each cut short, for error messages."""
        return [line if len(line) < 120 else line[:117] + "..." for line in self.seen[-n:]]

    def send(self, text: str) -> None:
        self.sock.sendall(text.encode() + b"\n")

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self, deadline: float) -> bool:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return False
        if not data:
            raise ConnectionError("server closed the connection")
        self.buf += data
        return True

    def next_line(self, timeout: float = 5.0) -> str:
        deadline = time.monotonic() + timeout * TIME
        while b"\n" not in self.buf:
            if not self._fill(deadline):
                raise TimeoutError(f"no line within {timeout}s; last lines: {self.tail()}")
        raw, self.buf = self.buf.split(b"\n", 1)
        line = raw.decode("utf-8", "replace")
        self.seen.append(line)
        return line

    def drain(self, quiet: float = 0.3) -> list[str]:
        """Every line that arrives until the connection has been quiet for ``quiet`` s."""
        lines = []
        while True:
            try:
                lines.append(self.next_line(quiet))
            except TimeoutError:
                return lines

    def closed(self, timeout: float = 5.0) -> bool:
        """True once the server has closed the connection (reading what is left)."""
        deadline = time.monotonic() + timeout * TIME
        try:
            while self._fill(deadline):
                pass
        except (ConnectionError, OSError):
            return True
        return False

    def close(self) -> None:
        self.sock.close()


def welcome(port: int, name: str | None = None) -> LineClient:
    """A line client past its welcome (and renamed, when ``name`` is given)."""
    c = LineClient(port)
    c.expect("> You joined lobby")
    if name:
        c.send(f"/nick {name}")
        c.expect(f"> You are now known as {name}")
    return c


SHA_RE = re.compile(r"SHA-256 ([0-9a-f]{64})")


class ProcLines(Lines):
    """A subprocess's stdout, read line by line with bounded waits."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self.proc = proc
        self.fd = proc.stdout.fileno()
        self.buf = b""
        self.seen: list[str] = []
        self.eof = False

    def next_line(self, timeout: float = 5.0) -> str:
        deadline = time.monotonic() + timeout * TIME
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if self.eof or left <= 0:
                raise TimeoutError(f"no line within {timeout}s; seen: {self.seen[-15:]}")
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                data = os.read(self.fd, 65536)
                self.buf += data
                self.eof = not data
        raw, self.buf = self.buf.split(b"\n", 1)
        line = raw.decode("utf-8", "replace")
        self.seen.append(line)
        return line

    def rest(self, timeout: float = 5.0) -> list[str]:
        """Every line up to the end of its output."""
        lines = []
        deadline = time.monotonic() + timeout * TIME
        while time.monotonic() < deadline:
            try:
                lines.append(self.next_line((deadline - time.monotonic()) / TIME))
            except TimeoutError:
                break
        assert self.eof, f"output did not end; seen: {self.seen[-15:]}"
        return lines


class PipeChat(ProcLines):
    """``salas chat`` with stdin and stdout on pipes: lines in, lines out."""

    def __init__(self, args: list[str], tmp: Path, stderr: int = subprocess.DEVNULL) -> None:
        super().__init__(
            subprocess.Popen(
                salas_cmd("chat", *args),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=test_env(tmp),
            )
        )

    def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode() + b"\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if f is not None:
                f.close()


def sha_of(line: str) -> str:
    m = SHA_RE.search(line)
    assert m, line
    return m.group(1)

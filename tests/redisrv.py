"""A real Redis server for tests: Debian's ``redis-server`` on a free loopback
port with a temporary directory and nothing saved to disk, one per test (it
starts in a few tens of milliseconds), and restartable on the same port.
Anything missing is a skip that says what is missing."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

#: Seconds the server may take to answer PING.
READY_WAIT = 10.0


class Unavailable(Exception):
    """Why this machine can't run Redis for the tests (a skip reason)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ping(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    def __init__(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise Unavailable("redis-server is not installed (Debian package redis-server)")
        try:
            import redis  # noqa: F401
        except ImportError:
            raise Unavailable(
                "the redis client is not installed (pip install 'salas[redis]')"
            ) from None
        self.exe = exe
        self.dir = Path(tempfile.mkdtemp(prefix="salas-redistest-"))
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start (again) on the same port, empty: a restart loses everything, as
        a Redis without persistence does."""
        self.proc = subprocess.Popen(
            [
                self.exe,
                "--bind", "127.0.0.1",
                "--port", str(self.port),
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.dir),
                "--daemonize", "no",
                "--loglevel", "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + READY_WAIT
        while not ping(self.port):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise Unavailable(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(5)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def command(self, *args: str) -> str:
        """One command with redis-cli-like plain output (no event loop needed)."""
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)
        try:
            return repr(client.execute_command(*args))
        finally:
            client.close()

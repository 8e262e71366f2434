"""A real PostgreSQL server for tests: one cluster per test run, started from
the Debian PostgreSQL binaries (15 on Debian 12) on a free loopback port, and a fresh
database per test (``CREATE DATABASE``, a few tens of milliseconds).

initdb refuses to run as root, and the server's files must belong to the
user it runs as: as root, both run as user ``postgres`` (``Popen(user=...)``,
which passes our signals on, unlike ``runuser``) in a directory that user
owns. Anything missing (not root, no binaries, no asyncpg) is a skip that
says what is missing.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def find_bin() -> Path:
    """``SALAS_TEST_PG_BIN``, else the newest Debian PostgreSQL (15 on Debian 12)."""
    if os.environ.get("SALAS_TEST_PG_BIN"):
        return Path(os.environ["SALAS_TEST_PG_BIN"])
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
    )
    return found[-1].parent if found else Path("/usr/lib/postgresql/15/bin")


BIN = find_bin()
#: Seconds the server may take to accept connections.
READY_WAIT = 20.0


class Unavailable(Exception):
    """Why this machine can't run PostgreSQL for the tests (a skip reason)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    proc: subprocess.Popen[bytes]
    root: Path
    port: int
    _names: itertools.count[int]

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://test@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database; its URL."""
        name = f"t{os.getpid()}_{next(self._names)}"
        self.psql(f"CREATE DATABASE {name}")
        return self.dsn(name)

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL with the cluster's own client (no event loop needed)."""
        proc = subprocess.run(
            [
                str(BIN / "psql"),
                "-X",
                "-q",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                self.dsn(database),
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"psql {sql!r}: {proc.stderr.strip()}")
        return proc.stdout

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.root, ignore_errors=True)


def start_cluster() -> Cluster:
    """initdb and start a server; raises ``Unavailable`` with the reason."""
    if not (BIN / "initdb").exists() or not (BIN / "postgres").exists():
        raise Unavailable(f"no PostgreSQL server binaries in {BIN}")
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        raise Unavailable("asyncpg is not installed (pip install 'salas[postgres]')") from None
    if os.geteuid() != 0:
        raise Unavailable("starting PostgreSQL for tests needs root (initdb runs as postgres)")
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise Unavailable("there is no user postgres to run the server as") from None
    # pytest's tmp_path is private to root: the server's user could not reach it.
    root = Path(tempfile.mkdtemp(prefix="salas-pgtest-"))
    shutil.chown(root, "postgres", "postgres")
    as_pg: dict[str, Any] = {"user": "postgres", "group": "postgres", "extra_groups": []}
    made = subprocess.run(
        [
            str(BIN / "initdb"),
            "-D",
            str(root / "data"),
            "-U",
            "test",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ],
        capture_output=True,
        text=True,
        cwd=root,
        **as_pg,
    )
    if made.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise Unavailable(f"initdb failed: {made.stderr.strip()[-300:]}")
    port = free_port()
    log = open(root / "server.log", "wb")  # noqa: SIM115  # the server's, closed with it
    proc = subprocess.Popen(
        [
            str(BIN / "postgres"),
            "-D",
            str(root / "data"),
            "-p",
            str(port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"unix_socket_directories={root}",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=200",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        cwd=root,
        **as_pg,
    )
    log.close()
    cluster = Cluster(proc, root, port, itertools.count(1))
    deadline = time.monotonic() + READY_WAIT
    while True:
        ready = subprocess.run(
            [str(BIN / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)],
            capture_output=True,
        )
        if ready.returncode == 0:
            return cluster
        if proc.poll() is not None or time.monotonic() > deadline:
            text = (root / "server.log").read_text(errors="replace")[-500:]
            cluster.stop()
            raise Unavailable(f"PostgreSQL did not start: {text}")
        time.sleep(0.05)

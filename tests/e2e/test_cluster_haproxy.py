"""deploy/compose.yaml on loopback: three ``salas serve`` nodes sharing one
chat through a real Redis and a real PostgreSQL, and a real HAProxy in front
(TCP mode), with real line clients that connect only to HAProxy."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.test_cluster import node_config
from redisrv import RedisServer, free_port
from support import TIME, LineClient, RunningServer, start_server, welcome

pytestmark = pytest.mark.slow

#: Seconds HAProxy may take to start listening.
HAPROXY_START = 10.0


def haproxy_config(port: int, nodes: list[RunningServer], sock: Path) -> str:
    """deploy/haproxy.cfg's line door, on loopback: roundrobin (so that six
    clients in a row land on every node) and checks fast enough for a test.
    As there, the check asks the http door (HEAD /): a TCP check on the line
    door would be a guest joining and leaving the lobby."""
    servers = "\n".join(
        f"    server node{i} 127.0.0.1:{n.ports['line']} port {n.ports['http']}"
        for i, n in enumerate(nodes)
    )
    return f"""
global
    stats socket {sock} mode 600 level admin

defaults
    mode tcp
    balance roundrobin
    retries 2
    option redispatch
    timeout connect 1s
    timeout check 2s
    timeout client 1h
    timeout server 1h
    timeout tunnel 1h
    timeout client-fin 1s
    timeout server-fin 1s
    default-server check inter 200 fall 1 rise 1 on-marked-down shutdown-sessions

frontend line
    bind 127.0.0.1:{port}
    default_backend salas_line

backend salas_line
    option httpchk
    http-check send meth HEAD uri /
    http-check expect status 200
{servers}
"""


class HAProxy:
    def __init__(self, tmp: Path, nodes: list[RunningServer]) -> None:
        exe = shutil.which("haproxy")
        if exe is None:
            pytest.skip("haproxy is not installed (Debian package haproxy)")
        self.port = free_port()
        self.sock = tmp / "haproxy.sock"
        self.cfg = tmp / "haproxy.cfg"
        self.cfg.write_text(haproxy_config(self.port, nodes, self.sock))
        self.out = tmp / "haproxy.out"
        with open(self.out, "wb") as out:
            self.proc = subprocess.Popen(
                [exe, "-db", "-f", str(self.cfg)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + HAPROXY_START * TIME
        while not self._listening():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"haproxy did not start:\n{self.output()}")
            time.sleep(0.05)

    def _listening(self) -> bool:
        # The stats socket is bound with the frontend. (Not a connection to the
        # frontend: that would be a guest joining the lobby on some node.)
        try:
            return len(self.statuses()) == 3
        except OSError:
            return False

    def output(self) -> str:
        return self.out.read_text(errors="replace")

    def statuses(self) -> dict[str, str]:
        """Each server of the backend and its state (UP, DOWN, ...)."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(2)
            s.connect(str(self.sock))
            s.sendall(b"show stat\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        lines = data.decode().splitlines()
        if not lines:
            return {}
        head = lines[0].lstrip("# ").split(",")
        col = {name: i for i, name in enumerate(head)}
        out = {}
        for line in lines[1:]:
            row = line.split(",")
            if len(row) <= col["status"] or row[col["pxname"]] != "salas_line":
                continue
            if row[col["svname"]] not in ("FRONTEND", "BACKEND"):
                out[row[col["svname"]]] = row[col["status"]]
        return out

    def wait_status(self, server: str, status: str, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout * TIME
        while True:
            got = self.statuses()
            if got.get(server, "").startswith(status):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{server} is not {status}: {got}\n{self.output()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def nodes(tmp_path: Path, redis_server: RedisServer, pg_url: str) -> Iterator[list[RunningServer]]:
    """Three nodes, started one after the other (each joins the ones before)."""
    config = node_config(redis_server.url, pg_url)
    running: list[RunningServer] = []
    try:
        for i in range(3):
            where = tmp_path / f"node{i}"
            where.mkdir()
            running.append(start_server(where, ("line", "http"), config=config))
        yield running
    finally:
        for node in running:
            if node.proc.poll() is None:
                node.stop()


@pytest.fixture
def haproxy(tmp_path: Path, nodes: list[RunningServer]) -> Iterator[HAProxy]:
    proxy = HAProxy(tmp_path, nodes)
    try:
        yield proxy
    finally:
        proxy.stop()


def accepted_on(port: int) -> int:
    """Established TCP connections on the server side of a loopback port."""
    count = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            local, state = fields[1], fields[3]
            if state == "01" and int(local.rsplit(":", 1)[1], 16) == port:
                count += 1
    return count


def read_until(client: LineClient, needles: set[str], timeout: float = 5.0) -> None:
    """Read lines until every needle has been in one of them."""
    left = set(needles)
    deadline = time.monotonic() + timeout * TIME
    while left:
        wait = (deadline - time.monotonic()) / TIME
        if wait <= 0:
            raise AssertionError(f"never saw {sorted(left)}; last lines: {client.tail()}")
        try:
            line = client.next_line(wait)
        except TimeoutError:
            continue
        left = {n for n in left if n not in line}


def test_clients_through_haproxy_survive_a_killed_node(
    nodes: list[RunningServer], haproxy: HAProxy
) -> None:
    for i in range(3):
        haproxy.wait_status(f"node{i}", "UP")
    # The health checks (a few by now) ask the http door: nobody joined.
    time.sleep(0.5)
    for node in nodes:
        assert not any("New user" in line for line in node.log), node.log
    # Six clients, one after the other, each only ever talks to HAProxy.
    names = [f"user{i}" for i in range(6)]
    clients: dict[str, LineClient] = {}
    landed: dict[str, int] = {}
    for name in names:
        before = [accepted_on(n.ports["line"]) for n in nodes]
        clients[name] = welcome(haproxy.port, name)
        after = [accepted_on(n.ports["line"]) for n in nodes]
        grew = [i for i in range(3) if after[i] > before[i]]
        assert len(grew) == 1, (name, before, after)
        landed[name] = grew[0]
    assert sorted(set(landed.values())) == [0, 1, 2], landed
    # Each node says so in its log (every node logs the whole chat's events).
    for node in nodes:
        for name in names:
            node.wait_log(rf"is now known as {name}\b")
        node.wait_log(r"> New user guest\d+ \[127\.0\.0\.1:\d+\] entered via line")

    # Everyone sees everyone, whichever node they are on.
    for client in clients.values():
        client.send("/who")
        read_until(client, {f"{n} [127.0.0.1:" for n in names} | {"> Users in lobby (6)"})
    for name, client in clients.items():
        client.send(f"hello from {name}")
    for name, client in clients.items():
        read_until(client, {f"[{n}] hello from {n}" for n in names if n != name})

    # A node dies: its clients are cut off, the others see them leave.
    victim = 1
    gone = [n for n in names if landed[n] == victim]
    stay = [n for n in names if landed[n] != victim]
    nodes[victim].stop(signal.SIGKILL)
    for name in gone:
        assert clients[name].closed(timeout=5), f"{name} still connected"
    for name in stay:
        read_until(clients[name], {f"< {n} left lobby" for n in gone} | {"Node lost"})

    # They come back through HAProxy (to a live node), take their names back,
    # and find what was said before the node died.
    haproxy.wait_status(f"node{victim}", "DOWN")
    for name in gone:
        before = [accepted_on(n.ports["line"]) for n in nodes]
        clients[name] = welcome(haproxy.port, name)
        after = [accepted_on(n.ports["line"]) for n in nodes]
        grew = [i for i in range(3) if after[i] > before[i]]
        assert len(grew) == 1 and grew[0] != victim, (name, before, after)
    for name in gone:
        clients[name].send("/history 50")
        read_until(clients[name], {f"[{n}] hello from {n}" for n in names})
    for name in stay:
        read_until(clients[name], {f"is now known as {n}" for n in gone})
    for i, node in enumerate(nodes):
        if i != victim:
            assert node.proc.poll() is None, node.log
    for client in clients.values():
        client.close()

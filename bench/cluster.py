"""Several salas nodes as one chat, on loopback: what spreading a room over nodes costs.

One PostgreSQL (tests/pg.py) and one Redis (tests/redisrv.py) for the whole
benchmark; every run gets a fresh database, an emptied Redis and fresh nodes:
1, 2 or 3 ``salas serve`` with ``[store] url`` on that database and ``[bus] url``
on that Redis, so 1 node takes the cluster's path too (every operation goes
through the Redis stream and back before it is applied). The rest is
bench/compare's: ircload, bench/peers/salas.toml (no flood limit for loopback,
``log.messages = false``), a short wait for a quiet machine before each run,
the median of the repetitions; a failed run (lost deliveries, an ircload not
ok, a warning or error in a node's log) is run again, up to ``--attempts``.

Throughput: f100 (100 clients in 1 room, 10 senders, window 16) and f600x50
(600 clients in 50 rooms of 12, 50 senders, window 16: f500x50 with rooms of
12, so 1, 2 and 3 nodes all get whole rooms). The clients are split evenly
over the nodes, one ircload per node, all in the same rooms, so most
deliveries cross nodes. Latency: r100 (10 senders, 200 messages/s in all,
open loop, a room of 100) with the 10 senders on node 1 and the 90 listeners
on node 1 (same node) or on node 2 (other node), and 1 node for reference.

ircload has no option to spread one run's clients over several ports, and
two ircloads that both send can't share a room: each names its senders
0..S-1 in the message text, so each would take the other's messages for its
own (counted as delivered and ticking off its own senders' windows: a lost
delivery could be hidden by someone else's). So only the ircload on node 1
sends; the others listen: with the same ``--senders S`` and ``--rate 0.001``
(their senders never send), they count every message of node 1's senders
(as ``stray``, and as ``received``, with latency, when sent in their measure
window). Their window is made to cover the senders' whole run: ``--warmup 0``
everywhere, a longer ``--duration`` for listeners, and the sending ircload
starts once LIST shows every listener in the rooms. Deliveries are summed
over the ircloads and held to what was sent × (members of a room - 1), so a
delivery lost on any node is seen. A sender's window counts only the members
on node 1; the listeners' latency shows whether the other nodes keep up, and
deliveries/s is over the seconds of sending plus the slowest delivery.

Pinning, 2 CPUs: everything the chat needs (the nodes, Redis, PostgreSQL and
its backends) on CPU 0, the ircloads on CPU 1, as bench/compare pins the
server and ircload. So 2 or 3 nodes share the one CPU 1 node had: the ratios
show what spreading a room over more nodes costs on the same CPU (every node
applies every operation), not what more CPUs would buy.

    bench/cluster                       everything (about 7 minutes)
    bench/cluster --quick               a smoke run: 1 repetition, 2 s phases
    bench/cluster --parts latency --reps 1
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

# compare.py and store.py are beside this file (bench/ is not a package);
# pg.py and redisrv.py start the tests' PostgreSQL and Redis.
from compare import (
    HERE,
    LOAD_CPU,
    PEERS,
    SERVER_CPU,
    Server,
    build_ircload,
    pinned,
    raise_fd_limit,
    start,
    wait_quiet,
)

import pg
import redisrv
from store import source_note


@dataclass(frozen=True)
class Load:
    """One throughput scenario: clients in ``channels`` rooms of equal size."""

    clients: int
    channels: int
    senders: int
    #: ircload options for the sending ircload (after the common ones).
    pace: tuple[str, ...]
    #: ircload options for the listening ones.
    listen: tuple[str, ...] = ()


THROUGHPUT: dict[str, Load] = {
    "f100": Load(100, 1, 10, ("--window", "16", "--quickack"), ("--quickack",)),
    # f500x50 with rooms of 12 instead of 10, so 1, 2 and 3 nodes all get
    # whole rooms' shares (600 = 3 × 200 = 2 × 300, each a multiple of 50).
    "f600x50": Load(600, 50, 50, ("--window", "16", "--quickack"), ("--quickack",)),
}
NODE_COUNTS = (1, 2, 3)

#: r100: 10 senders, 200 messages/s in all, a room of 100 (normal ACKs).
LAT_SENDERS = 10
LAT_LISTENERS = 90
LAT_PACE = ("--rate", "200")
#: Layout name -> (nodes, index of the listeners' node); the senders are on the first.
SAME_NODE = "2 nodes, listeners on the senders' node"
OTHER_NODE = "2 nodes, listeners on the other node"
LAYOUTS: dict[str, tuple[int, int]] = {"1 node": (1, 0), SAME_NODE: (2, 0), OTHER_NODE: (2, 1)}

#: Listeners measure this much longer than the senders send: the senders'
#: set-up, then the last deliveries (a listener stops at its window's end).
LISTEN_MARGIN = 2.0
#: Most CPU (%) other work may take on a pinned CPU before a run is noted as noisy.
OTHERS_LIMIT = 15.0
#: Runs of one rep at most while they fail (lost deliveries, an ircload not ok, node errors).
ATTEMPTS = 2
#: Seconds to wait at most for a quiet machine before each run.
QUIET_WAIT = 5.0
#: What in a node's log (data/logs/salas.log) or output tells of trouble.
TROUBLE = (" WARNING ", " ERROR ", " CRITICAL ", "Traceback")


# -- PostgreSQL, Redis and the nodes -------------------------------------------------


def tasks_of(pid: int) -> list[int]:
    """``pid`` and its descendants (processes), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(children.get(p, []))
    return found


def pin_tree(pid: int, cpu: str) -> None:
    """Pin ``pid``, its threads and its descendants (later children inherit it)."""
    for p in tasks_of(pid):
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{p}/task").iterdir():
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(int(task.name), {int(cpu)})


class Backing:
    """PostgreSQL and Redis for the whole benchmark, pinned to the servers' CPU."""

    def __init__(self) -> None:
        self.pg: pg.Cluster | None = None
        self.redis: redisrv.RedisServer | None = None

    def __enter__(self) -> Backing:
        try:
            self.pg = pg.start_cluster()
            self.redis = redisrv.RedisServer()
        except (pg.Unavailable, redisrv.Unavailable) as why:
            self.close()
            raise SystemExit(f"cluster: can't start the backing servers: {why}") from None
        except BaseException:
            self.close()
            raise
        pin_tree(self.pg.proc.pid, SERVER_CPU)
        assert self.redis.proc is not None
        pin_tree(self.redis.proc.pid, SERVER_CPU)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.redis is not None:
            self.redis.close()
        if self.pg is not None:
            self.pg.stop()

    def pids(self) -> dict[str, list[int]]:
        assert self.pg is not None and self.redis is not None and self.redis.proc is not None
        return {"PostgreSQL": tasks_of(self.pg.proc.pid), "Redis": [self.redis.proc.pid]}

    @contextlib.contextmanager
    def fresh(self) -> Iterator[tuple[str, str]]:
        """A new database and an empty Redis: (store URL, bus URL)."""
        assert self.pg is not None and self.redis is not None
        self.redis.command("FLUSHALL")
        url = self.pg.new_database()
        try:
            yield url, self.redis.url
        finally:
            name = url.rsplit("/", 1)[1]
            with contextlib.suppress(RuntimeError, subprocess.SubprocessError):
                self.pg.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def node_config(workdir: Path, store_url: str, bus_url: str) -> Path:
    """bench/peers/salas.toml plus the store and the bus."""
    path = workdir / "salas.toml"
    base = (PEERS / "salas.toml").read_text().rstrip()
    path.write_text(f'{base}\n\n[store]\nurl = "{store_url}"\n\n[bus]\nurl = "{bus_url}"\n')
    return path


def start_nodes(count: int, workdir: Path, store_url: str, bus_url: str) -> list[Server]:
    """``count`` nodes, one after the other (each joins the ones before it)."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = node_config(workdir, store_url, bus_url)
    nodes: list[Server] = []
    try:
        for k in range(count):
            nodes.append(start("salas", workdir / f"node{k}", config))
    except BaseException:
        stop_nodes(nodes)
        # compare.start keeps no handle on a node that did not listen in time
        # (or was interrupted while starting): find it among our children.
        for pid in tasks_of(os.getpid())[1:]:
            with contextlib.suppress(OSError):
                if str(workdir).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(pid, signal.SIGKILL)
        raise
    return nodes


def stop_nodes(nodes: Sequence[Server]) -> None:
    """SIGTERM to every node at once, then wait for each (SIGKILL after 10 s)."""
    for node in nodes:
        if node.proc.poll() is None:
            with contextlib.suppress(OSError):
                node.proc.send_signal(signal.SIGTERM)
    for node in nodes:
        try:
            node.proc.wait(10)
        except subprocess.TimeoutExpired:
            node.proc.kill()
            node.proc.wait(5)


def node_logs(node: Server) -> list[Path]:
    """The node's log file and its output (tracebacks land there)."""
    return [node.workdir / "data" / "logs" / "salas.log", node.workdir / "server.log"]


def logged_at(line: str) -> float | None:
    """The time of a salas.log line ("2026-01-02 03:04:05,678 LEVEL ..."), or None."""
    try:
        return time.mktime(time.strptime(line[:19], "%Y-%m-%d %H:%M:%S")) + int(line[20:23]) / 1e3
    except ValueError:
        return None


def trouble(nodes: Sequence[Server], stopped: float) -> tuple[list[str], list[str]]:
    """Log lines of the nodes that tell of trouble (lost nodes, errors): those
    of the run, and those logged once they were told to stop (time.time())."""
    during: list[str] = []
    stopping: list[str] = []
    for k, node in enumerate(nodes):
        for path in node_logs(node):
            with contextlib.suppress(OSError):
                for line in path.read_text(errors="replace").splitlines():
                    if any(word in line for word in TROUBLE):
                        when = logged_at(line)
                        late = when is not None and when >= stopped
                        (stopping if late else during).append(f"node {k + 1}: {line[:240]}")
    return during, stopping


# -- watching the rooms fill ---------------------------------------------------------


def members_seen(port: int, prefix: str, want: int, timeout: float = 60.0) -> float:
    """Wait until the rooms named ``prefix``… hold ``want`` members in all, as
    node ``port`` lists them (LIST, from a client in no room); seconds waited."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        buf = b""

        def lines_until(code: bytes) -> list[bytes]:
            nonlocal buf
            got: list[bytes] = []
            while True:
                while b"\r\n" in buf:
                    line, buf = buf.split(b"\r\n", 1)
                    parts = line.split(b" ")
                    if parts[0] == b"PING":
                        s.sendall(b"PONG " + b" ".join(parts[1:]) + b"\r\n")
                        continue
                    got.append(line)
                    if len(parts) > 1 and parts[1] == code:
                        return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                s.settimeout(left)
                chunk = s.recv(65536)
                if not chunk:
                    raise ConnectionError("the node closed the watcher's connection")
                buf += chunk

        s.sendall(b"NICK benchwatch\r\nUSER benchwatch 0 * :benchwatch\r\n")
        try:
            lines_until(b"001")
            while True:
                s.sendall(b"LIST\r\n")
                total = 0
                for line in lines_until(b"323"):
                    parts = line.split(b" ")
                    named = len(parts) > 4 and parts[3].decode(errors="replace")
                    if parts[1] == b"322" and named and named.startswith(prefix):
                        total += int(parts[4])
                if total >= want:
                    return time.monotonic() - t0
                time.sleep(0.05)
        except TimeoutError:
            raise RuntimeError(f"listeners not all in the rooms after {timeout:.0f} s") from None


# -- CPU accounting ------------------------------------------------------------------


def ticks(pid: int) -> int:
    """utime + stime of ``pid`` (every thread), in clock ticks; 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, ValueError, IndexError):
        return 0


def cpu_stat() -> dict[int, list[int]]:
    """Per-CPU jiffies from /proc/stat (user nice system idle iowait irq softirq steal)."""
    out: dict[int, list[int]] = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                name, *vals = line.split()
                out[int(name[3:])] = [int(v) for v in vals[:8]]
    return out


@dataclass
class Sample:
    at: float
    groups: dict[str, dict[int, int]]
    cpus: dict[int, list[int]]
    children: float  # CPU seconds of waited-for children (the senders' ircload, once reaped)

    @staticmethod
    def take(groups: dict[str, list[int]]) -> Sample:
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        return Sample(
            time.monotonic(),
            {name: {p: ticks(p) for p in pids} for name, pids in groups.items()},
            cpu_stat(),
            ru.ru_utime + ru.ru_stime,
        )


def cpu_between(a: Sample, b: Sample, groups: dict[str, list[int]]) -> dict[str, object]:
    """CPU % of each group and of each CPU from ``a`` to ``b`` (100 = one CPU)."""
    hz = os.sysconf("SC_CLK_TCK")
    wall = max(1e-6, b.at - a.at)
    out: dict[str, object] = {"window_s": round(wall, 3)}
    for name, pids in groups.items():
        used = sum(max(0, b.groups[name].get(p, 0) - a.groups[name].get(p, 0)) for p in pids)
        out[name] = round(100 * used / hz / wall, 1)
    cpus = []
    for cpu, after in sorted(b.cpus.items()):
        before = a.cpus.get(cpu, after)
        d = [x - y for x, y in zip(after, before, strict=True)]
        tot = max(1, sum(d))
        cpus.append(
            {
                "cpu": cpu,
                "busy": round(100 * (tot - d[3] - d[4]) / tot, 1),
                "softirq": round(100 * d[6] / tot, 1),
                "steal": round(100 * d[7] / tot, 1),
            }
        )
    out["cpus"] = cpus
    return out


# -- one run -------------------------------------------------------------------------


@dataclass
class Part:
    """One ircload: its node, its clients, and whether it sends."""

    node: int
    clients: int
    sends: bool


@dataclass
class Plan:
    nodes: int
    parts: list[Part]
    channels: int
    senders: int
    pace: tuple[str, ...]
    listen: tuple[str, ...]

    @property
    def room(self) -> int:
        """Members of each room, every node together."""
        return sum(p.clients for p in self.parts) // self.channels


def throughput_plan(load: Load, nodes: int) -> Plan:
    share, extra = divmod(load.clients, nodes)
    sizes = [share + (1 if k < extra else 0) for k in range(nodes)]
    if load.channels > 1 and any(s % load.channels for s in sizes):
        raise ValueError(f"{load.clients} clients don't split over {nodes} nodes in whole rooms")
    parts = [Part(k, sizes[k], k == 0) for k in range(nodes)]
    return Plan(nodes, parts, load.channels, load.senders, load.pace, load.listen)


def latency_plan(layout: str) -> Plan:
    nodes, where = LAYOUTS[layout]
    parts = [Part(0, LAT_SENDERS, True), Part(where, LAT_LISTENERS, False)]
    return Plan(nodes, parts, 1, LAT_SENDERS, LAT_PACE, ())


def ircload_cmd(
    ircload: Path,
    plan: Plan,
    index: int,
    part: Part,
    node: Server,
    duration: float,
    drain: float,
    label: str,
) -> list[str]:
    common = [
        str(ircload),
        "--mode",
        "fanout",
        "--clients",
        str(part.clients),
        "--channels",
        str(plan.channels),
        "--senders",
        str(plan.senders),
        "--port",
        str(node.port),
        "--nick-prefix",
        f"p{index}n",
        "--warmup",
        "0",
        "--label",
        f"{label}/{'send' if part.sends else 'listen'}{index}@node{part.node + 1}",
    ]
    if part.sends:
        more = [*plan.pace, "--duration", str(duration), "--drain", str(drain)]
        more += ["--pid", str(node.proc.pid)]
    else:
        # Same --senders: the sender's every message counts here too. Rate mode
        # at 0.001/s: these senders never send in the run.
        more = [*plan.listen, "--rate", "0.001", "--duration", str(duration + LISTEN_MARGIN)]
        more += ["--drain", "0"]
    return pinned([*common, *more], LOAD_CPU)


def parse(done: subprocess.Popen[str], out: str, err: str) -> dict[str, object]:
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    if not lines:
        return {"ok": False, "error": (err or out)[-300:] or f"exit {done.returncode}"}
    result: dict[str, object] = json.loads(lines[-1])
    return result


def run_plan(
    ircload: Path,
    backing: Backing,
    plan: Plan,
    duration: float,
    drain: float,
    workdir: Path,
    label: str,
) -> dict[str, object]:
    """Fresh nodes, the listeners, then the senders; every figure of the run."""
    procs: list[subprocess.Popen[str]] = []
    results: list[dict[str, object]] = []
    record: dict[str, object] = {"nodes": plan.nodes}
    with backing.fresh() as (store_url, bus_url):
        nodes = start_nodes(plan.nodes, workdir, store_url, bus_url)
        try:
            listeners = [(i, p) for i, p in enumerate(plan.parts) if not p.sends]
            senders = [(i, p) for i, p in enumerate(plan.parts) if p.sends]
            assert len(senders) == 1
            for i, part in listeners:
                cmd = ircload_cmd(ircload, plan, i, part, nodes[part.node], duration, drain, label)
                procs.append(popen(cmd))
            if listeners:
                want = sum(p.clients for _, p in listeners)
                record["listeners_joined_s"] = round(members_seen(nodes[0].port, "#lb", want), 2)
                time.sleep(0.3)  # their ircloads read the last end of NAMES
            i, part = senders[0]
            groups = {f"node {k + 1}": [n.proc.pid] for k, n in enumerate(nodes)}
            groups |= backing.pids()
            groups["listening ircloads"] = [p.pid for p in procs]
            before = Sample.take(groups)
            cmd = ircload_cmd(ircload, plan, i, part, nodes[part.node], duration, drain, label)
            sender = popen(cmd)
            procs.insert(0, sender)
            out, err = sender.communicate(timeout=duration + drain + 120)
            groups["PostgreSQL"] = sorted(
                set(groups["PostgreSQL"]) | set(backing.pids()["PostgreSQL"])
            )
            after = Sample.take(groups)
            results.append(parse(sender, out, err))
            for proc in procs[1:]:
                out, err = proc.communicate(timeout=duration + LISTEN_MARGIN + 120)
                results.append(parse(proc, out, err))
            cpu = cpu_between(before, after, groups)
            wall = max(1e-6, after.at - before.at)
            cpu["sending ircload"] = round(100 * (after.children - before.children) / wall, 1)
            record["cpu"] = cpu
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(5)
            stopped = time.time()
            stop_nodes(nodes)
            record["trouble"], record["trouble_stopping"] = trouble(nodes, stopped)
    record["parts"] = [
        {"node": p.node + 1, "clients": p.clients, "sends": p.sends, **r}
        for p, r in zip(plan.parts, results, strict=False)
    ]
    return sum_up(plan, record, results)


def popen(cmd: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=raise_fd_limit,
    )


def num(value: object) -> float:
    return float(value) if isinstance(value, int | float) else float("nan")


def sum_up(
    plan: Plan, record: dict[str, object], results: list[dict[str, object]]
) -> dict[str, object]:
    """Deliveries over every ircload, held to what was sent; why the run is doubtful."""
    why: list[str] = []
    for part, r in zip(plan.parts, results, strict=False):
        if not r.get("ok", False):
            who = "sender" if part.sends else f"listener on node {part.node + 1}"
            why.append(f"{who} not ok: {r.get('abort') or r.get('error') or 'closed'}")
    if len(results) < len(plan.parts):
        why.append("an ircload printed nothing")
    sender = results[0] if results else {}
    sent = int(num(sender.get("sent"))) if isinstance(sender.get("sent"), int) else 0
    received = sum(int(num(r.get("received", 0))) for r in results)
    # Listeners count every message of the senders they get as "stray" (not their own).
    seen = int(num(sender.get("received", 0))) + sum(
        int(num(r.get("stray", 0))) for r in results[1:]
    )
    expected = sent * (plan.room - 1)
    duration = num(sender.get("duration_s"))
    # The slowest delivery (a listener's node may trail the senders' node, whose
    # members alone pace the senders): the rate counts it as time spent.
    slowest = max(
        (num(lat.get("max")) for r in results if isinstance(lat := r.get("lat_us"), dict)),
        default=0.0,
    )
    span = duration + slowest / 1e6
    record.update(
        sent=sent,
        expected=expected,
        delivered=received,
        delivered_all=seen,
        lost=max(0, expected - received),
        extra=max(0, received - expected),
        duration_s=duration,
        slowest_delivery_us=slowest,
        deliveries_per_s=received / span if duration > 0 else float("nan"),
        deliveries_per_s_sending=received / duration if duration > 0 else float("nan"),
        said_per_s=num(sender.get("sent_per_s")),
    )
    if expected and received < expected:
        why.append(f"lost {expected - received} of {expected} deliveries")
    if received > expected:
        why.append(f"{received - expected} deliveries more than sent × (room - 1)")
    if seen > received and results[1:]:
        why.append(f"{seen - received} deliveries outside the listeners' windows")
    if record.get("trouble"):
        why.append(f"node logs: {record['trouble'][0]}")  # type: ignore[index]
    record["disturbed"] = "; ".join(why)
    record["crowded"] = crowded(record.get("cpu"))
    return record


def crowded(cpu: object) -> str:
    """Other work on the pinned CPUs (the machine may be shared), or ''."""
    why: list[str] = []
    if isinstance(cpu, dict):
        mine = {int(SERVER_CPU): 0.0, int(LOAD_CPU): 0.0}
        for name, value in cpu.items():
            if name in ("window_s", "cpus") or not isinstance(value, int | float):
                continue
            mine[int(LOAD_CPU) if "ircload" in name else int(SERVER_CPU)] += float(value)
        for c in cpu.get("cpus", []):
            if c["cpu"] in mine:
                other = c["busy"] - min(100.0, mine[c["cpu"]]) - c["softirq"]
                if other > OTHERS_LIMIT:
                    why.append(f"{other:.0f}% of CPU {c['cpu']} busy with other work")
            if c["steal"] > 5:
                why.append(f"CPU {c['cpu']} steal {c['steal']}%")
    return "; ".join(why)


# -- repetitions and tables ----------------------------------------------------------


@dataclass
class Cell:
    runs: list[dict[str, object]] = field(default_factory=list)

    def median(self, *path: str) -> float:
        values = []
        for r in self.runs:
            v: object = r
            for key in path:
                v = v.get(key) if isinstance(v, dict) else None
            if isinstance(v, int | float) and v == v:
                values.append(float(v))
        return statistics.median(values) if values else float("nan")


def fmt(value: float, digits: int = 0) -> str:
    return "n/a" if value != value else f"{value:,.{digits}f}"


def lat_of(run: dict[str, object], key: str, sends: bool) -> float:
    """Latency figure ``key`` of the senders' ircload, or the worst of the listeners'."""
    values = []
    parts = run.get("parts")
    for p in parts if isinstance(parts, list) else []:
        if isinstance(p, dict) and bool(p.get("sends")) == sends:
            lat = p.get("lat_us")
            if isinstance(lat, dict):
                values.append(num(lat.get(key)))
    return max(values) if values else float("nan")


def lat_median(cell: Cell, key: str, sends: bool) -> float:
    values = [lat_of(r, key, sends) for r in cell.runs]
    values = [v for v in values if v == v]
    return statistics.median(values) if values else float("nan")


def checked(cell: Cell) -> str:
    """Deliveries seen over what was sent × (room - 1), every kept run together."""
    delivered = sum(int(num(r.get("delivered", 0))) for r in cell.runs)
    expected = sum(int(num(r.get("expected", 0))) for r in cell.runs)
    return f"{delivered:,} / {expected:,}" + ("" if delivered == expected else " **≠**")


def row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def throughput_table(cells: dict[tuple[str, int], Cell]) -> str:
    head = [
        "scenario",
        "nodes",
        "clients per node",
        "deliveries/s",
        "÷ 1 node",
        "messages said/s",
        "delivered / expected",
        "p99 µs: node 1 / worst other",
        "CPU 0 %: nodes + Redis + PostgreSQL",
        "µs of node CPU per delivery",
    ]
    rows = [row(head), "|" + "---|" * len(head)]
    for (scenario, n), cell in cells.items():
        if not cell.runs:
            continue
        rate = cell.median("deliveries_per_s")
        base = cells.get((scenario, 1))
        ratio = "n/a"
        if base is not None and base.runs:
            ratio = f"{rate / base.median('deliveries_per_s'):.2f}×"
        per_node = [cell.median("cpu", f"node {k + 1}") for k in range(n)]
        per_delivery = sum(per_node) / 100 / rate * 1e6 if rate else float("nan")
        parts = cell.runs[0].get("parts")
        sizes = "/".join(str(p.get("clients")) for p in (parts if isinstance(parts, list) else []))
        other = lat_median(cell, "p99", False) if n > 1 else float("nan")
        cpu = (
            f"{' + '.join(fmt(c) for c in per_node)} + {fmt(cell.median('cpu', 'Redis'))}"
            f" + {fmt(cell.median('cpu', 'PostgreSQL'))}"
        )
        rows.append(
            row(
                [
                    scenario,
                    str(n),
                    sizes or "?",
                    fmt(rate),
                    ratio,
                    fmt(cell.median("said_per_s")),
                    checked(cell),
                    f"{fmt(lat_median(cell, 'p99', True))} / {fmt(other)}",
                    cpu,
                    fmt(per_delivery, 2),
                ]
            )
        )
    return "\n".join(rows)


def scaling(cells: dict[tuple[str, int], Cell]) -> list[str]:
    """One line per scenario: n nodes ÷ 1 node."""
    out = []
    for scenario in dict.fromkeys(s for s, _ in cells):
        base = cells.get((scenario, 1))
        if base is None or not base.runs:
            continue
        one = base.median("deliveries_per_s")
        ratios = [
            f"{n} nodes ÷ 1 node = {cell.median('deliveries_per_s') / one:.2f}"
            for (s, n), cell in cells.items()
            if s == scenario and n != 1 and cell.runs
        ]
        if ratios:
            out.append(f"- {scenario}: " + ", ".join(ratios))
    return out


def latency_table(cells: dict[str, Cell]) -> str:
    head = [
        "layout",
        "listeners' p50 µs",
        "listeners' p99 µs",
        "added p50 / p99 µs (vs same node)",
        "senders' own p50 / p99 µs",
        "delivered / expected",
    ]
    rows = [row(head), "|" + "---|" * len(head)]
    same = cells.get(SAME_NODE)
    for layout, cell in cells.items():
        if not cell.runs:
            continue
        p50, p99 = lat_median(cell, "p50", False), lat_median(cell, "p99", False)
        added = "—"
        if layout == OTHER_NODE and same is not None and same.runs:
            added = (
                f"{p50 - lat_median(same, 'p50', False):+,.0f} / "
                f"{p99 - lat_median(same, 'p99', False):+,.0f}"
            )
        own = f"{fmt(lat_median(cell, 'p50', True))} / {fmt(lat_median(cell, 'p99', True))}"
        rows.append(row([layout, fmt(p50), fmt(p99), added, own, checked(cell)]))
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--parts", default="throughput,latency", help="throughput, latency or both (default)"
    )
    parser.add_argument("--scenarios", default=",".join(THROUGHPUT), help="(default: %(default)s)")
    parser.add_argument(
        "--nodes", default=",".join(map(str, NODE_COUNTS)), help="(default: %(default)s)"
    )
    parser.add_argument("--reps", type=int, default=3, help="(default: %(default)s)")
    parser.add_argument(
        "--quick", action="store_true", help="1 repetition, 2 s phases: a smoke run"
    )
    parser.add_argument(
        "--duration", type=float, default=5.0, help="seconds of sending (default: %(default)s)"
    )
    parser.add_argument("--out", default=str(HERE / "results"), help="where the results go")
    parser.add_argument(
        "--attempts",
        type=int,
        default=ATTEMPTS,
        help="runs of one rep at most while they fail (default: %(default)s)",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=QUIET_WAIT,
        help="seconds to wait at most for a quiet machine before each run (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    command = " ".join(["bench/cluster", *(sys.argv[1:] if argv is None else argv)])
    parts = {p for p in args.parts.split(",") if p}
    if not parts or not parts <= {"throughput", "latency"}:
        parser.error("--parts: throughput, latency or both")
    scenarios = [s for s in args.scenarios.split(",") if s]
    for s in scenarios:
        if s not in THROUGHPUT:
            parser.error(f"unknown scenario {s}; known: {', '.join(THROUGHPUT)}")
    try:
        counts = [int(n) for n in args.nodes.split(",") if n]
        for s in scenarios:
            for n in counts:
                throughput_plan(THROUGHPUT[s], n)
    except ValueError as err:
        parser.error(f"--nodes: {err}")
    if any(n < 1 for n in counts):
        parser.error("--nodes: at least 1")
    if args.quick:
        args.reps, args.duration = 1, 2.0
    drain = 2.0 if args.quick else 3.0
    if args.reps < 1 or args.attempts < 1:
        parser.error("--reps and --attempts: at least 1")
    if (os.cpu_count() or 1) < 2:
        parser.error("needs 2 CPUs: the servers on one, the load on the other")
    # SIGTERM unwinds like Ctrl-C: every process started here is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ircload = build_ircload()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    outdir = Path(args.out) / f"cluster-{stamp}"
    outdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    tput: dict[tuple[str, int], Cell] = {}
    lat: dict[str, Cell] = {}
    with (
        tempfile.TemporaryDirectory(prefix="salas-cluster-") as tmp,
        open(outdir / "raw.jsonl", "w") as raw,
        Backing() as backing,
    ):
        note = (
            f"{source_note()}; {os.cpu_count()} CPUs; PostgreSQL {pg.BIN.parent.name}"
            " (fsync, synchronous_commit and full_page_writes off: tests/pg.py's settings),"
            " Redis with no persistence (tests/redisrv.py)"
        )
        print(f"cluster: {note}", file=sys.stderr)

        def measure(plan: Plan, label: str, **tags: object) -> dict[str, object]:
            kept: dict[str, object] | None = None
            for attempt in range(args.attempts):
                if args.quiet_wait > 0:
                    wait_quiet(timeout=args.quiet_wait)
                workdir = Path(tmp) / f"{label}-{attempt}"
                try:
                    result = run_plan(ircload, backing, plan, args.duration, drain, workdir, label)
                except (RuntimeError, subprocess.TimeoutExpired, OSError) as err:
                    result = {"nodes": plan.nodes, "disturbed": f"failed: {err}"}
                result.update(tags, attempt=attempt, label=label)
                if result.get("disturbed") or result.get("trouble_stopping"):
                    # Evidence for whoever looks: the nodes' logs.
                    for node in sorted(workdir.glob("node*")):
                        for log in ("data/logs/salas.log", "server.log"):
                            if (node / log).exists():
                                dest = outdir / f"{workdir.name}-{node.name}-{Path(log).name}"
                                shutil.copy(node / log, dest)
                raw.write(json.dumps(result) + "\n")
                raw.flush()
                shutil.rmtree(workdir, ignore_errors=True)
                kept = result
                if not result.get("disturbed"):
                    break
                print(f"  {label}: failed ({result['disturbed']})", file=sys.stderr)
            assert kept is not None
            return kept

        def noted(r: dict[str, object]) -> str:
            if r.get("disturbed"):
                return f"  FAILED: {r['disturbed']}"
            return f"  (noisy: {r['crowded']})" if r.get("crowded") else ""

        if "throughput" in parts:
            for scenario in scenarios:
                for n in counts:
                    cell = tput[(scenario, n)] = Cell()
                    plan = throughput_plan(THROUGHPUT[scenario], n)
                    for rep in range(args.reps):
                        label = f"{scenario}-{n}nodes-rep{rep}"
                        r = measure(plan, label, part="throughput", scenario=scenario, rep=rep)
                        cell.runs.append(r)
                        print(
                            f"  {scenario:8} {n} node(s) rep {rep}: "
                            f"{fmt(num(r.get('deliveries_per_s')))} deliveries/s, "
                            f"{r.get('delivered')}/{r.get('expected')} delivered{noted(r)}",
                            file=sys.stderr,
                        )
        if "latency" in parts:
            for k, layout in enumerate(LAYOUTS):
                cell = lat[layout] = Cell()
                plan = latency_plan(layout)
                for rep in range(args.reps):
                    label = f"r100-layout{k + 1}-rep{rep}"
                    r = measure(plan, label, part="latency", layout=layout, rep=rep)
                    cell.runs.append(r)
                    print(
                        f"  r100 {layout}: listeners p50 {fmt(lat_of(r, 'p50', False))} µs,"
                        f" p99 {fmt(lat_of(r, 'p99', False))} µs{noted(r)}",
                        file=sys.stderr,
                    )
    elapsed = time.monotonic() - started
    text = [
        f"# salas as a cluster ({stamp})",
        "",
        f"`{command}`: median of {args.reps} run(s), {args.duration:g} s of sending each"
        f"{' (quick: a smoke run, not a measurement)' if args.quick else ''};"
        f" {elapsed:.0f} s in all. {note}.",
        "",
        f"Pinned: the salas nodes, Redis and PostgreSQL (the postmaster, so every backend)"
        f" on CPU {SERVER_CPU}; every ircload on CPU {LOAD_CPU}. So 2 and 3 nodes share the"
        " one CPU that 1 node had: the ratios show what spreading a room over more nodes"
        " costs on the same CPU (every node applies every operation), not what more CPUs"
        " would buy.",
    ]
    if tput:
        text += [
            "",
            "## Deliveries per second, each room's members spread over the nodes",
            "",
            "One ircload per node; only the one on node 1 sends (ircload can't share a room"
            " between senders of two processes: see bench/cluster.py). Deliveries/s:"
            " deliveries ÷ (seconds of sending + the slowest delivery's latency). CPU %"
            " over the sending ircload's run (100 = one CPU).",
            "",
            throughput_table(tput),
        ]
        if scaling(tput):
            text += ["", "Scaling (deliveries/s):", "", *scaling(tput)]
    if lat:
        text += [
            "",
            "## Latency of a delivery to another node (r100: 200 messages/s, a room of 100)",
            "",
            f"{LAT_SENDERS} senders on node 1; {LAT_LISTENERS} listeners on node 1 or node 2."
            " The senders' own figures are their deliveries to each other (on node 1).",
            "",
            latency_table(lat),
        ]
    runs = [r for cell in [*tput.values(), *lat.values()] for r in cell.runs]
    failed = [f"- {r.get('label')}: {r.get('disturbed')}" for r in runs if r.get("disturbed")]
    noisy = [f"- {r.get('label')}: {r.get('crowded')}" for r in runs if r.get("crowded")]
    if failed:
        text += ["", f"Kept though failing after {args.attempts} attempt(s):", "", *failed]
    if noisy:
        text += ["", "Runs with other work on the pinned CPUs (a shared machine):", "", *noisy]
    stopping = [
        f"- {r.get('label')}: {line}"
        for cell in [*tput.values(), *lat.values()]
        for r in cell.runs
        for line in (r.get("trouble_stopping") or [])  # type: ignore[attr-defined]
    ]
    if stopping:
        text += ["", "Logged by nodes while they stopped (after the run; logs kept beside):", ""]
        text += stopping
    summary = "\n".join(text) + "\n"
    (outdir / "summary.md").write_text(summary)
    print(summary)
    print(f"raw results and summary: {outdir}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

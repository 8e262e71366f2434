"""Several ``salas serve`` nodes as one chat: real Redis, real PostgreSQL, real
processes and real clients on loopback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from e2e.test_irc import IrcClient
from pg import Cluster
from redisrv import RedisServer
from support import (
    TIME,
    LineClient,
    RunningServer,
    export_history,
    salas_cmd,
    start_server,
    test_env,
    welcome,
)

pytestmark = pytest.mark.slow


def node_config(redis_url: str, pg_url: str, extra: str = "") -> str:
    return f"""
[store]
url = "{pg_url}"

[bus]
url = "{redis_url}"
heartbeat = 0.2
node_timeout = 1.0

[limits]
flood_exempt = ["127.0.0.0/8"]

[[operators]]
name = "root"
password = "rootpass"
{extra}
"""


class Nodes:
    """Nodes started one after the other (each joins the ones before it)."""

    def __init__(self, tmp: Path, redis: RedisServer, pg_url: str, extra: str = "") -> None:
        self.tmp = tmp
        self.config = node_config(redis.url, pg_url, extra)
        self.running: list[RunningServer] = []

    def start(
        self, doors: tuple[str, ...] = ("line", "irc"), env: dict[str, str] | None = None
    ) -> RunningServer:
        where = self.tmp / f"node{len(self.running)}"
        where.mkdir()
        node = start_server(where, doors, config=self.config, env=env)
        self.running.append(node)
        return node

    def pair(self) -> tuple[RunningServer, RunningServer, LineClient, LineClient]:
        """Two nodes, alice on the first and bob on the second, who see each other."""
        a = self.start()
        b = self.start()
        alice = welcome(a.port, "alice")
        bob = welcome(b.port, "bob")
        alice.expect("is now known as bob")
        return a, b, alice, bob

    def stop(self) -> None:
        slow = []
        for node in self.running:
            if node.proc.poll() is None:
                try:
                    node.stop()
                except subprocess.TimeoutExpired:
                    slow.append("\n".join(node.log[-30:]))
        assert not slow, "a node did not stop in time:\n" + "\n---\n".join(slow)


@pytest.fixture
def nodes(tmp_path: Path, redis_server: RedisServer, pg_url: str) -> Iterator[Nodes]:
    made = Nodes(tmp_path, redis_server, pg_url)
    yield made
    made.stop()


def test_a_message_said_on_one_node_reaches_the_others_on_every_door(nodes: Nodes) -> None:
    a = nodes.start()
    b = nodes.start()
    alice = welcome(a.port, "alice")
    bob = welcome(b.ports["line"], "bob")
    alice.expect("is now known as bob")
    irc = IrcClient(b.ports["irc"])
    irc.register("carol")
    irc.join("#lobby")
    alice.expect("> carol joined lobby (3 users")
    alice.send("hello from node A")
    bob.expect("[alice] hello from node A")
    assert irc.expect("PRIVMSG #lobby").raw.endswith(":hello from node A")
    irc.send("PRIVMSG #lobby :and from IRC on node B")
    alice.expect("[carol] and from IRC on node B")
    bob.expect("[carol] and from IRC on node B")
    # A burst bigger than one log entry holds arrives whole and in order.
    bob.send_raw(b"".join(f"burst {i}\n".encode() for i in range(600)))
    got = [alice.expect(f"[bob] burst {i}") for i in range(600)]
    assert len(got) == 600
    # Private messages cross too.
    bob.send("/msg alice psst")
    alice.expect("psst")
    # Listings agree on both nodes.
    for client in (alice, bob):
        client.send("/list")
        client.expect("lobby - 3")


def test_four_doors_on_three_nodes_in_one_room(nodes: Nodes) -> None:
    from e2e.test_everyone_meets import Cs168, Irc, Web

    a = nodes.start(("line", "http"))
    b = nodes.start(("irc",))
    c = nodes.start(("cs168",))
    web = Web(a.ports["http"], "webby")
    web.send("create", room="meet")
    web.expect("joined", room="meet", own=True)
    web.send("say", room="meet", text="said before the others came")
    irc = Irc(b.ports["irc"], "ircy")
    irc.send("JOIN #meet")
    irc.expect(lambda s: "said before the others came" in s, "playback from another node")
    cs = Cs168(c.ports["cs168"], "csy")
    cs.send("/join meet")
    assert web.expect("joined", who="csy")["count"] == 3
    irc.send("PRIVMSG #meet :from irc on B")
    cs.expect(lambda s: s == "[ircy] from irc on B", "IRC's message on CS168, node C")
    assert web.expect("message", text="from irc on B")["from"] == "ircy"
    cs.send("from cs168 on C")
    irc.expect(lambda s: s.startswith(":csy!") and "from cs168 on C" in s, "CS168 on IRC")
    assert web.expect("message", text="from cs168 on C")["from"] == "csy"


def test_names_stay_unique_across_nodes_even_racing(nodes: Nodes) -> None:
    a = nodes.start()
    b = nodes.start()
    first = welcome(a.port)
    second = welcome(b.port)
    # Both ask for the same name in the same instant: exactly one gets it.
    barrier = threading.Barrier(2)

    def ask(c: LineClient) -> None:
        barrier.wait(5)
        c.send("/nick zed")

    threads = [threading.Thread(target=ask, args=(c,)) for c in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    outcomes = []
    for c in (first, second):
        lines = c.drain(1.0)
        got = any("You are now known as zed" in line for line in lines)
        outcomes.append(got)
    assert sorted(outcomes) == [False, True], outcomes
    for c in (first, second):
        c.send("/who")
    who = first.drain(0.5)
    assert sum(" zed " in f" {line} " for line in who) == 1, who


def test_room_limits_hold_across_nodes(nodes: Nodes) -> None:
    a = nodes.start()
    b = nodes.start()
    owner = welcome(a.port, "owner")
    owner.send("/create Small 2")
    owner.expect("> You joined Small")
    guests = [welcome(p, n) for p, n in ((a.port, "g1"), (b.port, "g2"), (b.port, "g3"))]
    for g in guests:
        g.send("/join Small")
    joined = []
    for g in guests:
        lines = g.drain(1.0)
        joined.append(any("You joined Small" in line for line in lines))
    assert joined.count(True) == 1, joined
    owner.send("/list")
    owner.expect("Small - 2/2")


def test_a_node_that_joins_later_sees_the_chat_as_it_is(nodes: Nodes) -> None:
    a = nodes.start()
    alice = welcome(a.port, "alice")
    alice.send("/create Talk")
    alice.expect("> You joined Talk")
    alice.send("/topic Things we say")
    for i in range(3):
        alice.send(f"early {i}")
    time.sleep(0.3)
    b = nodes.start()
    bob = welcome(b.port, "bob")
    bob.send("/list")
    bob.expect("Talk - 1")
    bob.send("/join Talk")
    bob.expect("early 2")  # history on join, said before this node existed
    alice.expect("> bob joined Talk")
    bob.send("/who Talk")
    lines = bob.drain(0.5)
    assert any("alice" in line for line in lines), lines


def test_a_killed_node_s_people_leave_and_history_keeps_what_was_seen(
    nodes: Nodes, tmp_path: Path, pg_url: str
) -> None:
    a, b, alice, bob = nodes.pair()
    for i in range(200):
        bob.send(f"burst {i}")
    seen = []
    deadline = time.monotonic() + 5 * TIME
    while time.monotonic() < deadline:
        line = alice.next_line()
        if line.startswith("[bob] burst"):
            seen.append(line.split("] ", 1)[1])
            if len(seen) >= 50:
                break
    b.stop(signal.SIGKILL)
    # Alice reads the rest of what reached her, then sees bob leave.
    quit_line = alice.expect("< bob left lobby", timeout=5)
    assert "Node lost" in quit_line, quit_line
    for line in alice.seen:
        if line.startswith("[bob] burst"):
            seen.append(line.split("] ", 1)[1])
    # bob comes back through the other node, with his name free again.
    again = welcome(a.port, "bob")
    again.send("/history 500")
    got = again.drain(1.0)
    history = {line.split("] ", 1)[1] for line in got if "[bob] burst" in line}
    missing = set(seen) - history
    assert not missing, sorted(missing)[:5]
    assert a.proc.poll() is None


def test_redis_restarted_mid_chat(nodes: Nodes, redis_server: RedisServer) -> None:
    a, _b, alice, bob = nodes.pair()
    alice.send("/oper root rootpass")
    alice.expect("operator")
    alice.send("before")
    bob.expect("[alice] before")
    redis_server.stop()
    a.wait_log(r"bus: lost Redis", timeout=5)
    alice.expect("lost its bus (Redis)")  # operators hear of it where they are
    alice.send("during")  # waits: there is no order to apply it in
    time.sleep(0.5)
    redis_server.start()
    a.wait_log(r"bus: Redis is restarted", timeout=10)
    alice.expect("has its bus (Redis) back")
    bob.expect("[alice] during", timeout=10)
    bob.send("after")
    alice.expect("[bob] after", timeout=10)
    # Nobody was lost: both are still here, once each.
    alice.send("/who")
    lines = alice.drain(0.5)
    assert sum("bob" in line for line in lines) >= 1, lines
    # The message ids stayed unique: history has each line once.
    alice.send("/history 50")
    hist = [line for line in alice.drain(0.8) if "before" in line or "during" in line]
    assert len([h for h in hist if h.endswith("during")]) == 1, hist


def test_garbage_on_the_bus_is_logged_and_ignored(nodes: Nodes, redis_server: RedisServer) -> None:
    a, b, alice, bob = nodes.pair()
    newer = json.dumps({"v": 99, "node": 7, "seq": 1, "ops": []})
    for junk in ("not json", '{"v":1,"node":"x"}', "\xff\xfe", newer, "[" * 10000):
        redis_server.command("XADD", "salas:log", "*", "e", junk)
    a.wait_log(r"bus: entry .* ignored", timeout=5)
    a.wait_log(r"newer bus schema", timeout=5)
    alice.send("still here")
    bob.expect("[alice] still here")
    assert a.proc.poll() is None and b.proc.poll() is None


def test_admin_console_sees_the_whole_cluster(nodes: Nodes, tmp_path: Path) -> None:
    a, b, alice, bob = nodes.pair()
    out = subprocess.run(
        salas_cmd("admin", "--data-dir", str(a.data_dir), "users", "list"),
        capture_output=True,
        text=True,
        timeout=20,
        env=test_env(tmp_path / "node0"),
    )
    assert "alice" in out.stdout and "bob" in out.stdout, out
    out = subprocess.run(
        salas_cmd(
            "admin", "--data-dir", str(b.data_dir), "users", "kick", "alice", "--reason", "x"
        ),
        capture_output=True,
        text=True,
        timeout=20,
        env=test_env(tmp_path / "node1"),
    )
    assert out.returncode == 0, out
    assert alice.closed()
    bob.expect("< alice left lobby")


def export(tmp_path: Path, config: str, room: str) -> list[dict[str, Any]]:
    cfg = tmp_path / "export.toml"
    cfg.write_text(config)
    return export_history(tmp_path, room, "--config", str(cfg))


def test_a_node_whose_clock_is_minutes_off_does_not_reorder_history(
    nodes: Nodes, tmp_path: Path
) -> None:
    skew = tmp_path / "skew"
    skew.mkdir()
    # A real process whose wall clock runs ten minutes ahead.
    (skew / "sitecustomize.py").write_text(
        "import time\n_real = time.time\ntime.time = lambda: _real() + 600.0\n"
    )
    a = nodes.start()
    b = nodes.start(env={"PYTHONPATH": str(skew)})
    alice = welcome(a.port, "alice")
    bob = welcome(b.port, "bob")
    alice.expect("is now known as bob")
    order = ["one (A)", "two (B)", "three (A)", "four (B)"]
    for text in order:
        speaker, listener = (alice, bob) if "(A)" in text else (bob, alice)
        speaker.send(text)
        listener.expect(text)
    kept = export(tmp_path, nodes.config, "lobby")
    texts = [r["text"] for r in kept]
    assert texts == order
    times = [datetime.fromisoformat(str(r["time"])).timestamp() for r in kept]
    assert times == sorted(times)
    assert max(times) - min(times) < 60, times  # one clock for all: not ten minutes apart


def test_postgres_away_and_back_across_nodes(
    nodes: Nodes, tmp_path: Path, pg_url: str, pg_cluster: Cluster
) -> None:
    db = pg_url.rsplit("/", 1)[1]
    a, b, alice, bob = nodes.pair()
    alice.send("kept before")
    bob.expect("[alice] kept before")
    # The database goes away: every connection cut, and no new one let in.
    pg_cluster.psql(f"ALTER DATABASE {db} ALLOW_CONNECTIONS false")
    pg_cluster.psql(
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'"
    )
    alice.send("said while it was away")
    a.wait_log(r"store: can't write", timeout=10)
    alice.send("said while it was away, again")
    alice.expect("can't keep messages", timeout=10)
    pg_cluster.psql(f"ALTER DATABASE {db} ALLOW_CONNECTIONS true")
    a.wait_log(r"store: writing again", timeout=15)
    b.wait_log(r"store: writing again", timeout=15)
    alice.send("kept after")
    bob.expect("[alice] kept after", timeout=10)
    kept = export(tmp_path, nodes.config, "lobby")
    texts = [r["text"] for r in kept]
    assert texts.count("kept before") == 1 and texts.count("kept after") == 1, texts
    assert "said while it was away, again" not in texts
    ids = [r["id"] for r in kept]
    assert ids == sorted(set(ids))


def test_a_node_frozen_past_its_timeout_lets_its_people_go(nodes: Nodes) -> None:
    a, b, alice, bob = nodes.pair()
    b.proc.send_signal(signal.SIGSTOP)
    try:
        assert "Node lost" in alice.expect("< bob left lobby", timeout=5)
    finally:
        b.proc.send_signal(signal.SIGCONT)
    # Back, node B finds its heartbeat expired: the others have moved on without
    # it, so it lets bob go (not left talking to nobody) and stops with status
    # 1, for its service manager to start it again.
    bob.expect("please reconnect", timeout=5)
    assert bob.closed()
    b.wait_log(r"bus: this node was cut off from the chat", timeout=5)
    assert b.proc.wait(15) == 1
    again = welcome(a.port, "bob")
    again.send("back again")
    alice.expect("[bob] back again")


def test_a_node_with_other_rules_is_refused(nodes: Nodes) -> None:
    nodes.start()
    with pytest.raises(AssertionError) as failed:
        nodes.start(env={"SALAS__SERVER__LOBBY": "hall"})
    assert "settings differ from the running nodes': lobby = 'hall' here" in str(failed.value)


def test_single_server_tests_pass_through_the_bus(tmp_path: Path) -> None:
    """The end-to-end tests of the four doors, each server a node on a bus of
    its own: what users see must not change when their server joins a cluster."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/e2e/test_everyone_meets.py",
            "tests/e2e/test_line.py",
            "tests/e2e/test_cs168.py",
            "tests/e2e/test_fanout_order.py",
        ],
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "SALAS_TEST_BUS": "1"},
        capture_output=True,
        text=True,
        timeout=300 * TIME,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "skipped" not in proc.stdout, proc.stdout[-500:]


def test_past_max_waiting_people_are_told_and_nobody_is_left_stuck(
    nodes: Nodes, redis_server: RedisServer
) -> None:
    a = nodes.start(env={"SALAS__BUS__MAX_WAITING": "5"})
    alice = welcome(a.port, "alice")
    redis_server.stop()
    a.wait_log(r"bus: lost Redis", timeout=5)
    alice.send_raw(b"".join(f"waiting {i}\n".encode() for i in range(12)))
    refused = alice.expect("the chat is reconnecting", timeout=5)
    assert refused.startswith("! Not now")
    redis_server.start()
    a.wait_log(r"bus: Redis is restarted", timeout=10)
    # What waited went out; what was refused was said to be; and alice is not
    # left waiting for answers to commands that will never come back.
    alice.send("/help")
    alice.expect("/join", timeout=5)
    alice.send("after")
    alice.send("/history 20")
    lines = alice.drain(1.0)
    said = [line for line in lines if "[alice] " in line]
    assert any(s.endswith("[alice] after") for s in said), lines
    assert any(s.endswith("[alice] waiting 0") for s in said), lines


def test_admin_lists_the_nodes_and_who_is_on_each(nodes: Nodes, tmp_path: Path) -> None:
    a, b, alice, bob = nodes.pair()
    carol = welcome(b.port, "carol")
    alice.expect("is now known as carol")

    def admin_nodes(node: RunningServer, home: Path) -> list[dict[str, Any]]:
        out = subprocess.run(
            salas_cmd("admin", "--data-dir", str(node.data_dir), "nodes", "--json"),
            capture_output=True,
            text=True,
            timeout=20,
            env=test_env(home),
        )
        assert out.returncode == 0, out
        return list(json.loads(out.stdout))

    listed = admin_nodes(a, tmp_path / "node0")
    assert [n["people"] for n in listed if n["this"]] == [1]
    assert sorted(n["people"] for n in listed) == [1, 2]
    assert all(n["alive"] for n in listed) and len(listed) == 2
    b.stop()
    alice.expect("< carol left lobby")
    listed = admin_nodes(a, tmp_path / "node0")
    assert [(n["this"], n["people"]) for n in listed] == [(True, 1)]
    assert bob.closed() and carol.closed()

"""What lasts: real ``salas serve`` processes, killed and restarted on one data dir.

SPEC: a message any client received is in the history, even after SIGKILL;
rooms, accounts and history survive a restart; a store that can't be opened
stops the server with a clear error; a wrong password and an unknown name
get the same answer, and each failure slows the next try down.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

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

EXEMPT = '[limits]\nflood_exempt = ["127.0.0.0/8"]\n'
SAID_RE = re.compile(r"^\[([^\]]+)\] (.*)$")
HISTORY_ROW_RE = re.compile(r"^  (?:\d{4}-\d\d-\d\d )?\d\d:\d\d (.*)$")


def export(tmp: Path, room: str) -> list[dict[str, Any]]:
    return export_history(tmp, room, "--data-dir", str(tmp / "data"))


def serve_fails(tmp: Path, data: Path) -> tuple[int, str, float]:
    """Run ``salas serve`` expecting it to refuse: (status, stderr, seconds taken)."""
    began = time.monotonic()
    proc = subprocess.run(
        salas_cmd("serve", "--data-dir", str(data), "--listen", "line:127.0.0.1:0"),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=test_env(tmp),
        timeout=30 * TIME,
    )
    return proc.returncode, proc.stderr, time.monotonic() - began


def read_until_closed(client: LineClient, limit: float) -> None:
    """Everything the server sent before its end (or ``limit`` s), into ``client.seen``."""
    deadline = time.monotonic() + limit * TIME
    while time.monotonic() < deadline:
        try:
            client.next_line(max(0.05, (deadline - time.monotonic()) / TIME))
        except (ConnectionError, OSError, TimeoutError):
            return


def heard(client: LineClient) -> list[str]:
    """The texts of the room messages a client received."""
    return [m.group(2) for m in map(SAID_RE.match, client.seen) if m]


def shown(line: str) -> str:
    """A history row without its time: ``  12:34 [ana] hi`` (or with a date) → ``[ana] hi``."""
    m = HISTORY_ROW_RE.match(line)
    assert m, line
    return m.group(1)


def is_prefix_in_order(kept: list[str], sent: list[str]) -> bool:
    return kept == sent[: len(kept)]


class Sender(threading.Thread):
    """Says ``texts`` in small quick chunks until done, the time is up, or the server goes."""

    def __init__(self, client: LineClient, texts: list[str], chunk: int, pause: float) -> None:
        super().__init__(daemon=True)
        self.client, self.texts, self.chunk, self.pause = client, texts, chunk, pause
        self.sent = 0

    def run(self) -> None:
        deadline = time.monotonic() + 20 * TIME
        try:
            for i in range(0, len(self.texts), self.chunk):
                part = self.texts[i : i + self.chunk]
                self.client.send_raw("".join(t + "\n" for t in part).encode())
                self.sent += len(part)
                if time.monotonic() > deadline:
                    return
                time.sleep(self.pause)
        except OSError:
            return


# -- SIGKILL ---------------------------------------------------------------------


def test_sigkill_mid_burst_loses_nothing_anyone_received(tmp_path: Path) -> None:
    srv = start_server(tmp_path, config=EXEMPT)
    try:
        listener = welcome(srv.port, "listener")
        listener.send("/create burst")
        listener.expect("> You joined burst")
        names = [f"s{n}" for n in range(4)]
        per_sender = 400
        senders: list[Sender] = []
        for name in names:
            c = welcome(srv.port, name)
            c.send("/join burst")
            c.expect("> You joined burst")
            texts = [f"{name} says {i:03d} {os.urandom(3).hex()}" for i in range(per_sender)]
            senders.append(Sender(c, texts, chunk=50, pause=0.0))
        listener.drain(0.2)
        for s in senders:
            s.start()
        # Wait until the burst is well under way, then pull the plug.
        deadline = time.monotonic() + 20 * TIME
        while len(heard(listener)) < 100:
            assert time.monotonic() < deadline, f"burst too slow: {len(heard(listener))}"
            listener.next_line(10)
        os.kill(srv.proc.pid, signal.SIGKILL)
        srv.proc.wait(10 * TIME)
    finally:
        if srv.proc.poll() is None:
            srv.stop(signal.SIGKILL)
    read_until_closed(listener, 10)
    for s in senders:
        s.join(20 * TIME)
    received = heard(listener)
    assert len(received) >= 100

    # Restart on the same data dir: the export is read from the store file.
    srv = start_server(tmp_path, config=EXEMPT)
    try:
        rows = export(tmp_path, "burst")
        kept = [r["text"] for r in rows]
        ids = [r["id"] for r in rows]
        missing = set(received) - set(kept)
        assert not missing, f"{len(missing)} received but not kept, e.g. {sorted(missing)[:3]}"
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        assert len(set(kept)) == len(kept), "nothing kept twice"
        assert len(kept) < len(names) * per_sender, "the kill came after the burst was over"
        # Each sender's kept messages are what it said first, in order: nothing skipped.
        for name, s in zip(names, senders, strict=True):
            mine = [t for t in kept if t.startswith(f"{name} says ")]
            assert is_prefix_in_order(mine, s.texts), name

        # After the restart, new messages get higher ids, and joining shows the tail.
        a = welcome(srv.port, "after")
        a.send("/join burst")
        a.expect("> You joined burst")
        recent = a.expect("> Recent messages of burst")
        assert recent.startswith("> Recent messages of burst (20 messages")
        tail = [a.next_line() for _ in range(20)]
        assert [shown(line) for line in tail] == [f"[{t.split()[0]}] {t}" for t in kept[-20:]]
        b = welcome(srv.port, "witness")
        b.send("/join burst")
        b.expect("> You joined burst")
        a.send("first words after the restart")
        b.expect("[after] first words after the restart")
    finally:
        assert srv.stop() == 0
    rows = export(tmp_path, "burst")
    assert rows[-1]["text"] == "first words after the restart"
    assert rows[-1]["id"] > max(ids)


# -- SIGTERM ----------------------------------------------------------------------


def test_graceful_shutdown_keeps_every_message_the_server_took(tmp_path: Path) -> None:
    """Everything the server logged as said (so took in, and maybe had not
    committed yet) is in the store after a SIGTERM, not just what was seen."""
    srv = start_server(tmp_path, config=EXEMPT)
    a = welcome(srv.port, "talker")
    b = welcome(srv.port, "hearer")
    a.send("/create final")
    a.expect("> You joined final")
    b.send("/join final")
    b.expect("> You joined final")
    texts = [f"last words {i:03d}" for i in range(300)]
    sender = Sender(a, texts, chunk=10, pause=0.002)
    sender.start()
    b.expect("[talker] last words 020", timeout=10)
    assert srv.stop(signal.SIGTERM) == 0
    srv.wait_log(r"stopped$")  # the console is read to its end
    sender.join(20 * TIME)
    read_until_closed(b, 5)
    logged = [
        m.group(1) for line in srv.log if (m := re.search(r"\[final\] \[talker\] (.*)$", line))
    ]
    kept = [r["text"] for r in export(tmp_path, "final")]
    assert len(logged) >= 21
    assert set(logged) <= set(kept), [t for t in logged if t not in kept][:3]
    assert set(heard(b)) <= set(kept)
    assert is_prefix_in_order(kept, texts)


# -- restart ------------------------------------------------------------------------


def irc_set_key(port: int, room: str, key: str) -> socket.socket:
    """An IRC client makes ``#room`` and gives it a key (MODE +k): the line door can't."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5 * TIME)
    s.sendall(
        f"NICK keeper\r\nUSER keeper 0 * :K\r\nJOIN #{room}\r\nMODE #{room} +k {key}\r\n".encode()
    )
    seen, deadline = b"", time.monotonic() + 10 * TIME
    while f"MODE #{room} +k {key}".encode() not in seen:
        assert time.monotonic() < deadline, seen.decode(errors="replace")
        seen += s.recv(65536)
    return s


def test_restart_keeps_rooms_accounts_and_history(tmp_path: Path) -> None:
    srv = start_server(tmp_path, ("line", "irc"))
    try:
        alice = welcome(srv.port, "alice")
        alice.send("/register s3gredo!")
        alice.expect("> The name alice is now your account")
        bob = welcome(srv.port, "bob")
        alice.send("/create Sala 5")
        alice.expect("> You joined Sala")
        alice.send("/topic bem-vindos à sala")
        alice.expect("set the topic of Sala")
        bob.send("/join Sala")
        bob.expect("> You joined Sala")
        for text in ("primeira", "segunda 🙂", "terceira"):
            alice.send(text)
            bob.expect(f"[alice] {text}")
        bob.send("resposta do bob")
        alice.expect("[bob] resposta do bob")
        alice.send("/msg bob só para ti")
        bob.expect("só para ti")
        keeper = irc_set_key(srv.ports["irc"], "cofre", "chave")
        keeper.close()
    finally:
        assert srv.stop() == 0

    srv = start_server(tmp_path, ("line",))
    try:
        guest = welcome(srv.port)
        guest.send("/nick alice")
        refused = guest.expect("!")
        assert refused == "! The name alice belongs to an account: /login alice PASSWORD"
        guest.send("/list")
        guest.expect("> Rooms")
        rows = guest.drain()
        assert "  Sala - 0/5 users - bem-vindos à sala" in rows, rows
        assert any(row.startswith("  cofre - 0") for row in rows), rows
        guest.send("/join cofre")
        assert guest.expect("!") == "! Room cofre needs its key: /join cofre KEY"
        guest.send("/join cofre chave")
        guest.expect("> You joined cofre")

        alice = welcome(srv.port)
        alice.send("/login alice s3gredo!")
        alice.expect("> You are logged in as alice")
        alice.send("/join Sala")
        alice.expect("> You joined Sala (1 user online)")
        assert alice.next_line() == "> Topic of Sala: bem-vindos à sala (set by alice)"
        assert alice.next_line().startswith("> Recent messages of Sala (4 messages, times UTC)")
        assert [shown(alice.next_line()) for _ in range(4)] == [
            "[alice] primeira",
            "[alice] segunda 🙂",
            "[alice] terceira",
            "[bob] resposta do bob",
        ]
        assert alice.next_line() == "> End of history of Sala"
        alice.send("/history 2")
        assert alice.next_line().startswith("> History of Sala (2 messages")
        assert [shown(alice.next_line()) for _ in range(2)] == [
            "[alice] terceira",
            "[bob] resposta do bob",
        ]
        alice.send("/history @bob")
        alice.expect("> History of your conversation with bob (1 message")
        assert shown(alice.next_line()) == "[alice] só para ti"
        # The room is still alice's: she can change its topic.
        alice.send("/topic nova")
        alice.expect("> alice set the topic of Sala: nova")
    finally:
        assert srv.stop() == 0


# -- startup errors ---------------------------------------------------------------------


def test_a_corrupt_store_stops_the_server_with_a_clear_error(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    db = data / "salas.db"
    db.write_bytes(os.urandom(32 * 1024))
    before = db.read_bytes()
    code, err, took = serve_fails(tmp_path, data)
    assert code == 1, err
    assert took < 15 * TIME
    assert f"salas: {db}: can't be read as a salas database (file is not a database)" in err
    assert "Traceback" not in err
    assert db.read_bytes() == before


def test_a_damaged_store_stops_the_server_with_a_clear_error(tmp_path: Path) -> None:
    """A sound header over damaged pages: found at open or at load, never a traceback."""
    srv = start_server(tmp_path, config=EXEMPT)
    try:
        a = welcome(srv.port, "filler")
        a.send_raw(b"".join(f"line {i} {'x' * 300}\n".encode() for i in range(100)))
        a.send("/history 1")
        a.expect("> History of lobby (1 message")
    finally:
        assert srv.stop() == 0
    db = srv.data_dir / "salas.db"
    damaged = bytearray(db.read_bytes())
    assert len(damaged) > 16 * 1024
    damaged[4096:] = os.urandom(len(damaged) - 4096)
    db.write_bytes(bytes(damaged))
    code, err, _ = serve_fails(tmp_path, srv.data_dir)
    assert code == 1, err
    assert f"salas: {db}: can't be read as a salas database" in err
    assert "Traceback" not in err
    assert db.read_bytes() == bytes(damaged)


def test_a_second_server_on_the_same_data_dir_names_the_first(tmp_path: Path) -> None:
    first = start_server(tmp_path)
    try:
        code, err, took = serve_fails(tmp_path, first.data_dir)
        assert code == 1, err
        assert took < 15 * TIME
        assert f"is in use by another salas server (pid {first.proc.pid})" in err
        # The first is unharmed.
        c = welcome(first.port, "still")
        c.send("/echo here")
        c.expect("here")
    finally:
        assert first.stop() == 0


def test_a_schema_1_data_dir_is_upgraded_and_its_history_shown(tmp_path: Path) -> None:
    from salas.store.sqlite import MIGRATIONS  # the first schema, as it shipped

    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    db_path = data / "salas.db"
    db = sqlite3.connect(db_path, isolation_level=None)
    for statement in MIGRATIONS[0].split(";"):
        if statement.strip():
            db.execute(statement)
    db.execute("PRAGMA user_version = 1")
    now = time.time()
    db.execute(
        "INSERT INTO rooms (id, key, name, created_at, topic, topic_by, topic_at)"
        " VALUES (1, 'velha', 'Velha', ?, 'de antes', 'ana', ?)",
        (now - 60, now - 60),
    )
    db.executemany(
        "INSERT INTO messages (id, room_id, time, sender, username, host, kind, text)"
        " VALUES (?, 1, ?, 'ana', '~ana', '10.0.0.1', 'say', ?)",
        [(i, now - 50 + i, f"mensagem antiga {i}") for i in range(1, 4)],
    )
    db.close()
    os.chmod(db_path, 0o600)

    srv = start_server(tmp_path)
    try:
        srv.wait_log(r"upgraded to schema version 2")
        c = welcome(srv.port, "reader")
        c.send("/join Velha")
        c.expect("> You joined Velha")
        c.expect("> Recent messages of Velha (3 messages")
        rows = [shown(c.next_line()) for _ in range(3)]
        assert rows == [f"[ana] mensagem antiga {i}" for i in (1, 2, 3)]
        c.send("nova mensagem")
        c.send("/history 1")
        c.expect("> History of Velha (1 message")
        assert shown(c.next_line()) == "[reader] nova mensagem"
    finally:
        assert srv.stop() == 0
    assert (data / "salas.db.v1.bak").exists()
    rows = export(tmp_path, "velha")
    assert [(r["id"], r["text"]) for r in rows] == [
        (1, "mensagem antiga 1"),
        (2, "mensagem antiga 2"),
        (3, "mensagem antiga 3"),
        (4, "nova mensagem"),
    ]


# -- passwords -------------------------------------------------------------------------


def timed_login(c: LineClient, name: str, password: str) -> tuple[str, float]:
    began = time.monotonic()
    c.send(f"/login {name} {password}")
    line = c.expect("!", timeout=20)
    return line, time.monotonic() - began


def test_wrong_passwords_say_nothing_about_the_account_and_slow_down(
    server: RunningServer,
) -> None:
    owner = welcome(server.port, "dona")
    owner.send("/register certa123")
    owner.expect("> The name dona is now your account")
    c = welcome(server.port)
    first, t1 = timed_login(c, "dona", "errada")
    unknown, t2 = timed_login(c, "ninguem", "errada")
    third, t3 = timed_login(c, "dona", "errada")
    fourth, t4 = timed_login(c, "dona", "errada")
    assert first == unknown == third == fourth == "! Login failed: wrong name or password"
    # FAIL_DELAY 0.5 s, doubled by each failure (per name and per address).
    assert t2 >= t1 + 0.3, (t1, t2)
    assert t3 >= t1 + 0.6, (t1, t3)
    assert t4 >= t1 + 1.0, (t1, t4)
    assert t4 > t3 > t2 - 0.1

"""``[store] url = "postgresql://..."``: real ``salas serve`` processes keep
accounts, rooms and history in a real PostgreSQL server, started for the test.

SPEC (Scale): several nodes share rooms, names and history through a real
database, started by configuration, not by code changes. Rooms, accounts and
history survive a restart; a store that can't be used stops the server with
a clear error.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from pg import Cluster
from support import TIME, salas_cmd, start_server, test_env, welcome

pytestmark = pytest.mark.slow

EXEMPT = '[limits]\nflood_exempt = ["127.0.0.0/8"]\n'
#: A history row: ``  12:34 [ana] hi`` (or with a date before the time).
HISTORY_ROW_RE = re.compile(r"^  (?:\d{4}-\d\d-\d\d )?\d\d:\d\d (.*)$")


def shown(line: str) -> str:
    m = HISTORY_ROW_RE.match(line)
    assert m, line
    return m.group(1)


def config_for(url: str) -> str:
    return f'[store]\nurl = "{url}"\n\n{EXEMPT}'


def test_history_rooms_and_accounts_come_back_from_postgresql(tmp_path: Path, pg_url: str) -> None:
    srv = start_server(tmp_path, config=config_for(pg_url))
    try:
        srv.wait_log(r"store: postgresql://test@127\.0\.0\.1:\d+/\w+ \(0 rooms, 0 accounts\)")
        alice = welcome(srv.port, "alice")
        alice.send("/register s3gredo!")
        alice.expect("> The name alice is now your account")
        bob = welcome(srv.port, "bob")
        alice.send("/create Sala 5")
        alice.expect("> You joined Sala")
        bob.send("/join Sala")
        bob.expect("> You joined Sala")
        for text in ("primeira", "segunda 🙂", "terceira"):
            alice.send(text)
            bob.expect(f"[alice] {text}")
        alice.send("/msg bob só para ti")
        bob.expect("só para ti")
    finally:
        assert srv.stop() == 0

    srv = start_server(tmp_path, config=config_for(pg_url))
    try:
        srv.wait_log(r"\(\d+ rooms, 1 accounts\)")
        guest = welcome(srv.port)
        guest.send("/nick alice")
        assert guest.expect("!") == (
            "! The name alice belongs to an account: /login alice PASSWORD"
        )
        alice = welcome(srv.port)
        alice.send("/login alice s3gredo!")
        alice.expect("> You are logged in as alice")
        alice.send("/join Sala")
        alice.expect("> You joined Sala (1 user online)")
        assert alice.next_line().startswith("> Recent messages of Sala (3 messages, times UTC)")
        assert [shown(alice.next_line()) for _ in range(3)] == [
            "[alice] primeira",
            "[alice] segunda 🙂",
            "[alice] terceira",
        ]
        alice.send("/history @bob")
        alice.expect("> History of your conversation with bob (1 message")
        alice.send("depois do reinício")
        alice.send("/history 1")
        alice.expect("> History of Sala (1 message")
        assert shown(alice.next_line()) == "[alice] depois do reinício"
    finally:
        assert srv.stop() == 0

    # The export reads the database the config names.
    proc = subprocess.run(
        salas_cmd("admin", "--config", str(tmp_path / "salas.toml"), "history", "export", "Sala"),
        capture_output=True,
        text=True,
        env=test_env(tmp_path),
        timeout=30 * TIME,
    )
    assert proc.returncode == 0, proc.stderr
    kept = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["text"] for r in kept] == ["primeira", "segunda 🙂", "terceira", "depois do reinício"]
    ids = [r["id"] for r in kept]
    assert ids == sorted(set(ids))


def test_a_database_from_a_newer_salas_stops_the_server_with_one_clear_line(
    tmp_path: Path, pg_url: str, pg_cluster: Cluster
) -> None:
    srv = start_server(tmp_path, config=config_for(pg_url))
    assert srv.stop() == 0
    db = pg_url.rsplit("/", 1)[1]
    pg_cluster.psql("UPDATE meta SET value = 99 WHERE key = 'schema_version'", db)
    began = time.monotonic()
    proc = subprocess.run(
        salas_cmd(
            "serve",
            "--data-dir",
            str(tmp_path / "data"),
            "--config",
            str(tmp_path / "salas.toml"),
            "--listen",
            "line:127.0.0.1:0",
        ),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=test_env(tmp_path),
        timeout=30 * TIME,
    )
    assert proc.returncode == 1, proc.stderr
    assert time.monotonic() - began < 15 * TIME
    assert "Traceback" not in proc.stderr
    refusal = [line for line in proc.stderr.splitlines() if "newer than this salas" in line]
    assert len(refusal) == 1, proc.stderr
    assert f"/{db} has schema version 99, newer than this salas knows (3)" in refusal[0]
    assert pg_cluster.psql("SELECT value FROM meta WHERE key = 'schema_version'", db) == "99\n"

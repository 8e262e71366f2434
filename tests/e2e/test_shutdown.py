"""SPEC: Ctrl-C / SIGTERM: clients are told, exit 0. Logs go to the console
(as seeds 000 and 004 print them) and to rotating files in the data dir."""

from __future__ import annotations

import signal
import socket
import subprocess
from pathlib import Path

import pytest

from support import TIME, LineClient, salas_cmd, start_server, test_env, welcome


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_tells_every_client_and_exits_zero(tmp_path: Path, sig: int) -> None:
    srv = start_server(tmp_path, ("line", "cs168"))
    try:
        a = welcome(srv.port, "alice")
        cs = socket.create_connection(("127.0.0.1", srv.ports["cs168"]), timeout=5 * TIME)
        cs.sendall(b"Kay".ljust(200))
        a.send("/echo ready")
        a.expect("ready")
        srv.wait_log(r"New user Kay")
    finally:
        code = srv.stop(sig)
    assert code == 0
    assert a.expect("!") == "! Server shutting down"
    assert a.closed()
    data = b""
    while len(data) < 200:
        chunk = cs.recv(200)
        if not chunk:
            break
        data += chunk
    assert data == b"Server shutting down".ljust(200)
    assert cs.recv(200) == b""


def test_console_and_log_file_show_joins_leaves_and_messages(tmp_path: Path) -> None:
    srv = start_server(tmp_path)
    try:
        a = welcome(srv.port, "alice")
        b = welcome(srv.port, "bob")
        a.send("hello there")
        b.expect("[alice] hello there")
        b.close()
        srv.wait_log(r"< The user bob \[127\.0\.0\.1:\d+\] left \(1 user online\)")
    finally:
        assert srv.stop() == 0
    console = "\n".join(srv.log)
    assert "Chat server started" in console
    assert "> New user guest" in console
    assert "[lobby] [alice] hello there" in console
    assert "joined lobby (2 in room)" in console
    logfile = srv.data_dir / "logs" / "salas.log"
    text = logfile.read_text()
    assert "[lobby] [alice] hello there" in text
    assert "< The user bob" in text
    assert "stopped" in text


def test_unregistered_clients_are_closed_on_shutdown(tmp_path: Path) -> None:
    srv = start_server(tmp_path, ("cs168",))
    cs = socket.create_connection(("127.0.0.1", srv.ports["cs168"]), timeout=5 * TIME)
    cs.sendall(b"half a name")  # never completes its first frame
    assert srv.stop() == 0
    data = cs.recv(400)
    assert data.startswith(b"Disconnected: Server shutting down")


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    proc = subprocess.run(
        salas_cmd("serve", "--listen", f"line:127.0.0.1:{port}", "--data-dir", str(tmp_path / "d")),
        capture_output=True,
        text=True,
        env=test_env(tmp_path),
        timeout=30 * TIME,
    )
    holder.close()
    assert proc.returncode == 1
    assert "cannot listen" in proc.stderr


def test_bad_listen_and_config_are_clear_errors(tmp_path: Path) -> None:
    bad = subprocess.run(
        salas_cmd("serve", "--listen", "line:notaport"),
        capture_output=True,
        text=True,
        env=test_env(tmp_path),
        timeout=30 * TIME,
    )
    assert bad.returncode == 2
    assert "the port must be a number" in bad.stderr
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[limits]\nsendq_bytes = "lots"\n')
    wrong = subprocess.run(
        salas_cmd("serve", "--config", str(cfg), "--data-dir", str(tmp_path / "d")),
        capture_output=True,
        text=True,
        env=test_env(tmp_path),
        timeout=30 * TIME,
    )
    assert wrong.returncode == 2
    assert "limits.sendq_bytes" in wrong.stderr


def test_unknown_config_key_is_a_warning(tmp_path: Path) -> None:
    srv = start_server(tmp_path, config='[server]\nname = "chat.example"\ncolour = "blue"\n')
    try:
        line = srv.wait_log("unknown key")
        assert "server.colour" in line
        c = LineClient(srv.port)
        assert c.next_line() == "> Welcome to chat.example. /help lists commands."
    finally:
        srv.stop()

"""``salas admin`` with no command: seed 001's server menu, under a real pty, against a
real ``salas serve`` (a line client watches what the menu does to its room)."""

from __future__ import annotations

import os
import pwd
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from support import TIME, RunningServer, salas_cmd, start_server, test_env, welcome

BY = f"admin console ({pwd.getpwuid(os.getuid()).pw_name})"
PROMPT = "admin>"  # the space after it is drawn on its own


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    server = start_server(tmp_path_factory.mktemp("menu"), ("line",))
    yield server
    server.stop()


def spawn_menu(data: Path, tmp: Path) -> pexpect.spawn:
    env = test_env(tmp)
    # A terminal that does not answer cursor-position queries: prompt_toolkit then
    # draws without waiting for the answers (the keys and the text are the same).
    env.update(TERM="xterm-256color", PROMPT_TOOLKIT_NO_CPR="1")
    cmd = salas_cmd("admin", "--data-dir", str(data))
    return pexpect.spawn(cmd[0], cmd[1:], env=env, dimensions=(40, 120), timeout=10 * TIME)


@pytest.fixture
def menu(srv: RunningServer, tmp_path: Path) -> Iterator[pexpect.spawn]:
    child = spawn_menu(srv.data_dir, tmp_path)
    yield child
    if child.isalive():
        child.terminate(force=True)
    child.close()


def run(child: pexpect.spawn, line: str) -> None:
    """Type ``line`` at the menu's prompt once it is shown, then Enter."""
    child.expect_exact(PROMPT)
    child.send(line + "\r")


def test_the_menu_creates_lists_completes_closes_and_quits(
    srv: RunningServer, menu: pexpect.spawn
) -> None:
    menu.expect_exact("===== MENU =====")
    for entry in (
        "/CREATE NAME [LIMIT] (/CRIAR) ----> create a room",
        "/LIST (/LISTAR) ----> list rooms with members/limit",
        "/WHO ROOM (/PARTICIPANTES) ----> list a room's participants",
        "/CLOSE ROOM [REASON] (/ENCERRAR) ----> close a room (members are told)",
        "/LOGS [N|-f] ----> the event log",
        "/QUIT (/SAIR) ----> leave the console (the server keeps running)",
    ):
        menu.expect_exact(entry)

    # /criar with no arguments asks for the name, then for the limit.
    run(menu, "/criar")
    menu.expect_exact("Room name:")
    menu.send("Tabulado\r")
    menu.expect_exact("Participant limit (Enter: none):")
    menu.send("5\r")
    menu.expect_exact("Created: Tabulado - 0/5")

    run(menu, "/listar")
    menu.expect_exact("Tabulado - 0/5")

    lina = welcome(srv.port, "lina")
    lina.send("/join Tabulado")
    lina.expect("> You joined Tabulado")

    # Tab completes the room's name: the prefix alone names no room.
    menu.expect_exact(PROMPT)
    menu.send("/who Tabu")
    menu.send("\t")
    menu.send("\r")
    menu.expect_exact('***** PARTICIPANTS OF ROOM "Tabulado" (1) *****')
    menu.expect(r"lina +line +127\.0\.0\.1:\d+ +Tabulado")

    run(menu, "/participantes")
    menu.expect_exact("Room:")
    menu.send("Tabulado\r")
    menu.expect_exact('***** PARTICIPANTS OF ROOM "Tabulado" (1) *****')
    run(menu, "/participantes Nowhere")
    menu.expect_exact("! There is no room named Nowhere")
    run(menu, "/frobnicate")
    menu.expect_exact("Unknown command /frobnicate: /help shows the menu")

    run(menu, "/encerrar Tabulado")
    menu.expect_exact("Room Tabulado closed")
    assert lina.expect("< Room") == "< Room Tabulado was closed"
    run(menu, "/listar")
    menu.expect_exact(PROMPT)  # the list has been printed in full
    assert "Tabulado" not in menu.before.decode()

    run(menu, "/logs 5")
    menu.expect_exact(f"! {BY} closed room Tabulado")
    run(menu, "/logs")
    menu.expect_exact(f"! {BY} created room Tabulado: limit 5")

    run(menu, "/sair")
    menu.expect(pexpect.EOF)
    menu.close()
    assert menu.exitstatus == 0, (menu.exitstatus, menu.signalstatus)
    lina.send("/echo still connected")  # leaving the console leaves the server running
    lina.expect("still connected")
    lina.close()


def test_the_menu_with_no_server(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    child = spawn_menu(empty, tmp_path)
    try:
        child.expect_exact("no server is running")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 1


def test_no_command_off_a_terminal_is_a_usage_error(srv: RunningServer, tmp_path: Path) -> None:
    r = subprocess.run(
        salas_cmd("admin", "--data-dir", str(srv.data_dir)),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=test_env(tmp_path),
        timeout=20 * TIME,
    )
    assert "usage: salas admin" in r.stdout + r.stderr
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)

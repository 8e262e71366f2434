"""A real IRC program, irssi (in tmux), takes a file from ``salas chat`` and
sends one back, by DCC through salas's IRC door: the bytes go peer to peer,
the server carries only the offers. Every wait is bounded."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import TIME, PipeChat, RunningServer, sha_of, start_server

pytestmark = pytest.mark.skipif(
    not (shutil.which("irssi") and shutil.which("tmux")),
    reason="needs irssi and tmux (./test installs them)",
)


def irssi_config(downloads: Path) -> str:
    return f"""settings = {{
  core = {{ real_name = "Carol"; user_name = "carol"; nick = "carol"; }};
  "irc/core" = {{ cmd_queue_speed = "0msec"; cmds_max_at_once = "1000"; }};
  "irc/dcc" = {{ dcc_download_path = "{downloads}"; dcc_autoget = "no"; }};
  "fe-common/core" = {{ theme = "default"; }};
}};
"""


class Irssi:
    def __init__(self, srv: RunningServer, home: Path, downloads: Path) -> None:
        home.mkdir()
        downloads.mkdir()
        (home / "config").write_text(irssi_config(downloads))
        self.sock = f"salas-dcc-{srv.proc.pid}"
        cmd = f"irssi --home={home} -c 127.0.0.1 -p {srv.ports['irc']} -n carol"
        size = ["-x", "200", "-y", "50"]
        subprocess.run(
            ["tmux", "-L", self.sock, "new-session", "-d", "-s", "carol", *size, cmd], check=True
        )

    def pane(self) -> str:
        return subprocess.run(
            ["tmux", "-L", self.sock, "capture-pane", "-p", "-J", "-t", "carol"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout

    def wait(self, needle: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout * TIME
        text = ""
        while time.monotonic() < deadline:
            text = self.pane()
            if needle in text:
                return text
            time.sleep(0.1)
        raise AssertionError(f"{needle!r} not on irssi's screen:\n{text}")

    def type(self, text: str) -> None:
        subprocess.run(
            ["tmux", "-L", self.sock, "send-keys", "-t", "carol", text, "Enter"],
            check=True,
            timeout=10,
        )

    def stop(self) -> None:
        subprocess.run(["tmux", "-L", self.sock, "kill-server"], capture_output=True, timeout=10)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[RunningServer, Irssi, PipeChat, Path]]:
    srv = start_server(tmp_path, ("line", "irc"))
    irssi = Irssi(srv, tmp_path / "irssi", tmp_path / "irssi-downloads")
    alice: PipeChat | None = None
    try:
        irssi.wait("MOTD File is missing")
        down = tmp_path / "alice-downloads"
        down.mkdir()
        url = f"line://127.0.0.1:{srv.port}"
        alice = PipeChat([url, "--name", "alice", "--downloads", str(down)], tmp_path)
        alice.expect("> You are now known as alice")
        yield srv, irssi, alice, down
    finally:
        if alice is not None:
            alice.stop()
        irssi.stop()
        srv.stop()


def test_irssi_receives_a_file_from_salas_chat(
    setup: tuple[RunningServer, Irssi, PipeChat, Path], tmp_path: Path
) -> None:
    _, irssi, alice, _ = setup
    data = os.urandom(1024 * 1024 + 17)
    want = hashlib.sha256(data).hexdigest()
    (tmp_path / "for-carol.bin").write_bytes(data)
    alice.send(f"/send carol {tmp_path / 'for-carol.bin'}")
    alice.expect('> dcc: offered "for-carol.bin"')
    irssi.wait("DCC SEND from alice")
    irssi.type("/dcc get alice")
    assert sha_of(alice.expect('> dcc: sent "for-carol.bin"', 20)) == want
    got = tmp_path / "irssi-downloads" / "for-carol.bin"
    deadline = time.monotonic() + 10 * TIME
    while time.monotonic() < deadline and not (got.exists() and got.stat().st_size == len(data)):
        time.sleep(0.1)
    assert hashlib.sha256(got.read_bytes()).hexdigest() == want


def test_irssi_sends_a_file_to_salas_chat(
    setup: tuple[RunningServer, Irssi, PipeChat, Path], tmp_path: Path
) -> None:
    _, irssi, alice, down = setup
    data = os.urandom(700 * 1024 + 5)
    want = hashlib.sha256(data).hexdigest()
    src = tmp_path / "from-carol.bin"
    src.write_bytes(data)
    irssi.type(f"/dcc send alice {src}")
    offer = alice.expect("> dcc: carol offers", 10)
    assert '"from-carol.bin"' in offer
    alice.send("/accept")
    assert sha_of(alice.expect('> dcc: received "from-carol.bin"', 20)) == want
    assert hashlib.sha256((down / "from-carol.bin").read_bytes()).hexdigest() == want

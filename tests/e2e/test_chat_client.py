"""The terminal client on the line door: ``salas chat`` with pipes and under a pty
(prompt_toolkit's screen, read back through pyte), and ``salas send``."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pexpect
import pyte
import pytest

from support import TIME, PipeChat, RunningServer, salas_cmd, test_env, welcome


@pytest.fixture
def pipe_chat(tmp_path: Path) -> Iterator[Callable[..., PipeChat]]:
    procs: list[PipeChat] = []

    def start(*args: str) -> PipeChat:
        p = PipeChat(list(args), tmp_path, stderr=subprocess.PIPE)
        procs.append(p)
        return p

    yield start
    for p in procs:
        p.stop()


def line_url(server: RunningServer) -> str:
    return f"line://127.0.0.1:{server.port}"


# -- pipe mode ---------------------------------------------------------------------------


def test_pipe_mode_talks_and_quits_cleanly(server: RunningServer, pipe_chat) -> None:
    erin = welcome(server.port, "erin")
    erin.send("/create tas")
    erin.expect("> You joined tas")
    carol = pipe_chat(line_url(server), "--name", "carol", "--room", "tas")
    carol.expect("> You are now known as carol")
    carol.expect("> You joined tas (2 users online)")
    erin.expect("> carol joined tas (2 users online)")

    erin.send("hi carol")
    assert carol.expect("[erin]") == "[erin] hi carol"
    carol.send("hello erin")
    assert erin.expect("[carol]") == "[carol] hello erin"
    carol.send("/me waves")
    assert erin.expect("carol waves") == "* carol waves"

    assert carol.proc.stdin is not None
    carol.proc.stdin.close()  # end of input: the client says /quit and leaves
    assert "> Bye" in carol.rest()
    assert carol.proc.wait(5 * TIME) == 0
    assert erin.expect("< carol").startswith("< carol left tas (1 user online)")
    assert not any("disconnected" in line for line in carol.seen), carol.seen
    erin.close()


def test_ctrl_c_leaves_without_a_traceback(server: RunningServer, pipe_chat) -> None:
    carol = pipe_chat(line_url(server), "--name", "carol")
    carol.expect("> You are now known as carol")
    carol.proc.send_signal(signal.SIGINT)
    assert carol.proc.wait(5 * TIME) == 130
    assert carol.proc.stderr is not None
    assert "Traceback" not in carol.proc.stderr.read().decode()


def test_output_into_a_reader_that_stops_is_no_traceback(
    server: RunningServer, tmp_path: Path
) -> None:
    # ``salas chat URL | head -1``: the reader goes away after one line.
    chat = subprocess.Popen(
        [*salas_cmd(), "chat", line_url(server), "--name", "dana", "--room", "lobby"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=test_env(tmp_path),
    )
    assert chat.stdout is not None and chat.stdin is not None and chat.stderr is not None
    chat.stdout.readline()
    chat.stdout.close()
    for _ in range(50):  # enough output to meet the closed pipe, then leave
        with contextlib.suppress(BrokenPipeError):
            chat.stdin.write(b"/who\n")
            chat.stdin.flush()
    with contextlib.suppress(BrokenPipeError):
        chat.stdin.close()
    assert chat.wait(10 * TIME) == 0
    assert "Traceback" not in chat.stderr.read().decode()


def server_goes_away(server: RunningServer, carol: PipeChat) -> None:
    carol.expect("> You are now known as carol")
    server.stop(signal.SIGTERM)
    lines = carol.rest()
    assert "! Server shutting down" in lines, lines
    assert lines[-1] == f"Server at 127.0.0.1:{server.port} has disconnected", lines
    carol.proc.wait(5 * TIME)


def test_pipe_mode_reports_the_server_going_away(server: RunningServer, pipe_chat) -> None:
    carol = pipe_chat(line_url(server), "--name", "carol")
    server_goes_away(server, carol)


def test_pipe_mode_exits_0_when_the_server_goes_away(server: RunningServer, pipe_chat) -> None:
    carol = pipe_chat(line_url(server), "--name", "carol")
    server_goes_away(server, carol)
    assert carol.proc.stderr is not None
    err = carol.proc.stderr.read().decode("utf-8", "replace")
    assert carol.proc.returncode == 0, err
    assert "Fatal Python error" not in err


def test_pipe_mode_join_of_a_missing_room_fails_clearly(server: RunningServer, pipe_chat) -> None:
    carol = pipe_chat(line_url(server), "--name", "carol", "--room", "nowhere")
    assert carol.expect("nowhere") == "! No room named nowhere. Create it with /create nowhere"
    carol.send("/who")
    carol.expect("> Users in lobby (1):")  # still in the lobby


# -- salas send --------------------------------------------------------------------------


def run_send(server: RunningServer, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        salas_cmd("send", *args),
        capture_output=True,
        text=True,
        env=test_env(tmp),
        timeout=20 * TIME,
        stdin=subprocess.DEVNULL,
    )


def send_into_tas(server: RunningServer, tmp: Path, *args: str) -> None:
    erin = welcome(server.port, "erin")
    erin.send("/create tas")
    erin.expect("> You joined tas")
    done = run_send(server, tmp, *args)
    assert (done.returncode, done.stderr) == (0, "")
    assert erin.expect("[bot]") == "[bot] build passed"
    assert erin.expect("< bot").startswith("< bot left tas")
    erin.close()


def test_send_says_one_thing_in_a_room(server: RunningServer, tmp_path: Path) -> None:
    url = line_url(server)
    send_into_tas(server, tmp_path, "--room", "tas", "--name", "bot", url, "build passed")


def test_send_in_the_spec_argument_order(server: RunningServer, tmp_path: Path) -> None:
    url = line_url(server)
    send_into_tas(server, tmp_path, url, "--room", "tas", "--name", "bot", "build passed")


def test_send_to_a_missing_room_says_nothing(server: RunningServer, tmp_path: Path) -> None:
    lobby = welcome(server.port, "erin")
    url = line_url(server)
    done = run_send(server, tmp_path, "--room", "nowhere", "--name", "bot", url, "build passed")
    assert done.returncode == 1
    assert done.stderr == "salas send: No room named nowhere. Create it with /create nowhere\n"
    lobby.send("/echo end-of-test")
    lobby.expect("end-of-test")
    assert not any(line.startswith("[bot]") for line in lobby.seen), lobby.seen
    assert not any("build passed" in line for line in lobby.seen), lobby.seen
    lobby.close()


# -- screen mode under a pty --------------------------------------------------------------


class Terminal:
    """A pty running ``salas chat``, shown on an 80x24 pyte screen. A thread keeps reading
    the child's output and answers its cursor-position queries at once, as a real
    terminal does (prompt_toolkit sizes its layout from those answers)."""

    def __init__(self, args: list[str], tmp: Path) -> None:
        env = test_env(tmp)
        env["TERM"] = "xterm-256color"
        cmd = salas_cmd("chat", *args)
        self.child = pexpect.spawn(cmd[0], cmd[1:], dimensions=(24, 80), env=env, timeout=5)
        child = self.child

        class Screen(pyte.Screen):
            def write_process_input(self, data: str) -> None:
                child.send(data)

        self.screen = Screen(80, 24)
        self.stream = pyte.ByteStream(self.screen)
        self.lock = threading.Lock()
        self.eof = threading.Event()
        self.reader = threading.Thread(target=self._pump, daemon=True)
        self.reader.start()

    def _pump(self) -> None:
        while not self.eof.is_set():
            try:
                data = self.child.read_nonblocking(65536, timeout=0.05)
            except pexpect.TIMEOUT:
                continue
            except (pexpect.EOF, OSError, ValueError):
                break
            with self.lock:
                self.stream.feed(data)
        self.eof.set()

    def send(self, keys: str) -> None:
        self.child.send(keys)

    def rows(self) -> list[str]:
        with self.lock:
            return [row.rstrip() for row in self.screen.display]

    def wait_for(self, check: Callable[[list[str]], bool], what: str, timeout: float = 5.0):
        """Poll the screen until ``check(rows)`` holds; return those rows."""
        deadline = time.monotonic() + timeout * TIME
        while True:
            rows = self.rows()
            if check(rows):
                return rows
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} not on screen:\n" + "\n".join(rows))
            time.sleep(0.02)

    def wait_text(self, needle: str, timeout: float = 5.0) -> list[str]:
        return self.wait_for(lambda rows: needle in "\n".join(rows), repr(needle), timeout)

    def wait_input(self, text: str) -> list[str]:
        """Wait until the input line (the last prompt, just above the status bar) is ``text``."""
        return self.wait_for(lambda rows: input_line(rows) == text, f"input line {text!r}")

    def wait_exit(self, timeout: float = 10.0) -> int | None:
        self.eof.wait(timeout * TIME)
        self.child.close()
        return self.child.exitstatus

    def close(self) -> None:
        if self.child.isalive():
            self.child.terminate(force=True)
        self.eof.set()
        self.reader.join(2)
        self.child.close()


def input_line(rows: list[str]) -> str | None:
    prompts = [r for r in rows if r.startswith("[You]")]
    return prompts[-1] if prompts else None


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Callable[..., Terminal]]:
    terms: list[Terminal] = []

    def start(*args: str) -> Terminal:
        t = Terminal(list(args), tmp_path)
        terms.append(t)
        return t

    yield start
    for t in terms:
        t.close()


def test_screen_mode(server: RunningServer, terminal) -> None:
    eve = welcome(server.port, "eve")
    term = terminal(line_url(server), "--name", "dave")
    term.wait_text("dave in lobby")
    eve.expect("is now known as dave")
    term.wait_text("> You are now known as dave")

    term.send("hello\r")
    assert eve.expect("[dave]") == "[dave] hello"
    term.wait_text("[You] hello")
    term.wait_input("[You]")

    # Someone speaks while a line is half typed: the line shows above it, input intact.
    term.send("half typed")
    term.wait_input("[You] half typed")
    eve.send("interrupting")

    def interrupted(rows: list[str]) -> bool:
        return (
            "[eve] interrupting" in rows
            and input_line(rows) == "[You] half typed"
            and rows[-1].startswith(" dave in lobby @ 127.0.0.1:")
        )

    rows = term.wait_for(interrupted, "the message above the intact input line")
    said, typing = rows.index("[eve] interrupting"), rows.index("[You] half typed")
    assert rows.index("[You] hello") < said < typing, "\n".join(rows)
    assert not any(r.strip() for r in rows[typing + 1 : -1]), "\n".join(rows)
    term.send("\x15")  # Ctrl-U: the half-typed line is dropped, never sent
    term.wait_input("[You]")

    eve.send("/create tas")
    eve.expect("> You joined tas")
    term.send("/join tas\r")
    term.wait_text("dave in tas")
    eve.expect("> dave joined tas (2 users online)")

    term.send("\x1b[A")  # Up: the previous line comes back from history
    term.wait_input("[You] /join tas")
    term.send("\x1b[A")
    term.wait_input("[You] hello")
    term.send("\x15")
    term.wait_input("[You]")

    term.send("\x04")  # Ctrl-D on an empty line: leave
    assert term.wait_exit() == 0
    assert eve.expect("< dave").startswith("< dave left tas (1 user online)")
    assert not any("half typed" in line for line in eve.seen), eve.seen
    eve.close()


def test_a_pasted_line_is_taken_as_if_typed(server: RunningServer, terminal) -> None:
    eve = welcome(server.port, "eve")
    term = terminal(line_url(server), "--name", "paula")
    term.wait_text("paula in lobby")
    # Bracketed paste of two lines, the second the client's own /quit.
    term.send("\x1b[200~bye all\r/quit\x1b[201~\r")
    assert eve.expect("[paula]") == "[paula] bye all"
    assert eve.expect("< paula").startswith("< paula left lobby")
    assert term.wait_exit() == 0
    assert not any("has disconnected" in row for row in term.rows())  # asked for: no surprise
    eve.close()


def test_screen_mode_reports_the_server_going_away(server: RunningServer, terminal) -> None:
    term = terminal(line_url(server), "--name", "dave")
    term.wait_text("dave in lobby")
    term.send("half typed")
    term.wait_input("[You] half typed")
    server.stop(signal.SIGTERM)
    term.wait_text(f"Server at 127.0.0.1:{server.port} has disconnected")
    assert term.wait_exit() == 0
    # It was never sent: it isn't left on the screen as if it had been.
    assert not any("half typed" in row for row in term.rows()), "\n".join(term.rows())


def test_ctrl_c_leaves_no_half_typed_line_behind(server: RunningServer, terminal) -> None:
    term = terminal(line_url(server), "--name", "cleo")
    term.wait_text("cleo in lobby")
    term.send("never sent")
    term.wait_input("[You] never sent")
    term.send("\x03")
    term.wait_exit()
    assert not any("never sent" in row for row in term.rows()), "\n".join(term.rows())


def test_no_server_to_connect_to(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"line://127.0.0.1:{port}"
    env = test_env(tmp_path)
    sent = subprocess.run(
        salas_cmd("send", "--room", "tas", url, "hi"),
        capture_output=True,
        text=True,
        env=env,
        timeout=20 * TIME,
    )
    assert sent.returncode == 1
    assert sent.stderr.strip() == f"Unable to connect to 127.0.0.1:{port}"
    chat = subprocess.run(
        salas_cmd("chat", url, "--name", "carol"),
        capture_output=True,
        text=True,
        env=env,
        timeout=20 * TIME,
        stdin=subprocess.DEVNULL,
    )
    assert chat.returncode == 1
    assert chat.stdout == f"Unable to connect to 127.0.0.1:{port}\n"

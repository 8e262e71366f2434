"""The screen client's own state: its input history (no passwords) and the
names Tab completes, followed from the server's lines."""

from __future__ import annotations

from pathlib import Path

import pytest
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document

from salas.client import screen


def test_lines_with_a_password_are_not_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    history = screen._history()
    for line in (
        "hello",
        "/login alice s3cret",
        "/REGISTER s3cret",
        "/password a b",
        "/oper o p",
        "/me waves",
    ):
        history.append_string(line)
    kept = (tmp_path / "salas" / "chat-history").read_text()
    assert "s3cret" not in kept and "/password" not in kept and "/oper" not in kept
    assert "hello" in kept and "/me waves" in kept
    assert list(history.get_strings()) == ["hello", "/me waves"]


def test_tab_completes_everyone_seen_not_only_those_who_spoke() -> None:
    state = screen.State("line://x")
    for line in (
        "> You joined lobby (4 users online)",
        "> In lobby with you: bobby, carol and 3 more",
        "> dave joined lobby (5 users online)",
        "> dave is now known as davide",
        "  @erin [127.0.0.1:5000] line, idle 5s",
        "[fran] hello",
    ):
        state.follow(line)
    assert state.names >= {"bobby", "carol", "dave", "davide", "erin", "fran"}
    assert "You" not in state.names
    completer = screen.ChatCompleter(state, ["join"])
    got = completer.get_completions(Document("hi bo"), CompleteEvent())
    assert [c.text for c in got] == ["bobby"]


def test_the_cs168_status_bar_follows_joins_the_door_does_not_confirm() -> None:
    state = screen.State("cs168://x")
    state.try_room("tas")  # /create tas: nothing comes back when it works
    assert state.room == "tas"
    state.try_room("nowhere")
    state.follow("No channel named nowhere exists. Try '/create nowhere'?")
    assert state.room == "tas"  # refused: still where it was
    state.try_room("tas2")
    state.follow("[Alice] hello")  # others talking says nothing about it
    assert state.room == "tas2"

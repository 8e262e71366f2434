"""The screen client's input history keeps no passwords."""

from __future__ import annotations

from pathlib import Path

import pytest

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

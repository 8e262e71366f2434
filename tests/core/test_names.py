"""Names of people and rooms: the rules every door relies on."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from salas.core.names import (
    NAME_MAX,
    ROOM_MAX,
    fold,
    guest_name,
    sanitize_name,
    valid_name,
    valid_room,
)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Alice", "alice"),
        ("ALICE", "alice"),
        ("guest12345", "guest12345"),
        ("Kay[1]", "kay[1]"),
        # ASCII case mapping only: brackets and braces are not folded together...
        ("a[b]", "a[b]"),
        ("a{b}", "a{b}"),
        # ...and neither is anything outside ASCII.
        ("ÄB", "Äb"),
    ],
)
def test_fold_is_ascii_case_mapping(a: str, b: str) -> None:
    assert fold(a) == b


def test_fold_keeps_brackets_and_braces_apart() -> None:
    assert fold("a[") != fold("a{")


@pytest.mark.parametrize(
    "name",
    [
        "a",
        "Kay",
        "guest12345",
        "Panda",
        "Alice_2",
        "a-1",
        "_",
        "[x]",
        "{a}|b",
        "`back",
        "^hat",
        "\\slash",
        "a" * NAME_MAX,
    ],
)
def test_valid_names(name: str) -> None:
    assert valid_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "1abc",
        "-abc",
        "a b",
        "a,b",
        "a:b",
        "a!b",
        "a@b",
        "#tas",
        "José",
        "a\n",
        "a\x00",
        "a" * (NAME_MAX + 1),
    ],
)
def test_invalid_names(name: str) -> None:
    assert not valid_name(name)


@pytest.mark.parametrize(
    "room",
    [
        "tas",
        "168_tas",
        "Teste",
        "sala-1",
        "a.b",
        "a+b",
        "a&b",
        "a~b",
        "日本語",
        "1",
        "_x",
        "x" * 49,
    ],
)
def test_valid_rooms(room: str) -> None:
    assert valid_room(room)


@pytest.mark.parametrize(
    "room",
    ["", "#tas", "-x", ".x", "a b", "a,b", "a:b", "a*", "a?", "a\n", "a\x07", "x" * (ROOM_MAX + 1)],
)
def test_invalid_rooms(room: str) -> None:
    assert not valid_room(room)


def test_guest_names_look_like_seed_004_and_are_valid_everywhere() -> None:
    rng = random.Random(7)
    for _ in range(200):
        name = guest_name(rng)
        assert re.fullmatch(r"guest\d{5}", name)
        assert valid_name(name)


def test_guest_names_follow_the_seed() -> None:
    assert [guest_name(random.Random(3)) for _ in range(3)] == [guest_name(random.Random(3))] * 3


@pytest.mark.parametrize(
    ("wanted", "expected"),
    [
        ("Kay", "Kay"),
        ("  Kay  ", "Kay"),
        ("Ana Maria", "Ana_Maria"),
        ("José", "Jos_"),
        ("a,b:c", "a_b_c"),
        ("1abc", "_1abc"),
        ("-x", "_-x"),
        ("a" * 40, "a" * NAME_MAX),
        ("9" * NAME_MAX, "_" + "9" * (NAME_MAX - 1)),
        ("", ""),
        ("   ", ""),
    ],
)
def test_sanitize_name(wanted: str, expected: str) -> None:
    assert sanitize_name(wanted) == expected


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_sanitize_gives_a_valid_name_or_nothing(wanted: str) -> None:
    cleaned = sanitize_name(wanted)
    if wanted.strip():
        assert valid_name(cleaned), (wanted, cleaned)
    else:
        assert cleaned == ""


@given(st.from_regex(r"[A-Za-z\[\]\\`_^{|}][A-Za-z0-9\[\]\\`_^{|}\-]{0,29}", fullmatch=True))
def test_sanitize_leaves_valid_names_alone(name: str) -> None:
    assert valid_name(name)
    assert sanitize_name(name) == name

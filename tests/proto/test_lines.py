"""Splitting a byte stream into bounded lines."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from salas.proto.lines import LineBuffer, TooLong

T = TooLong(8)


def feed_all(limit: int, chunks: list[bytes]) -> list[bytes | TooLong]:
    buf = LineBuffer(limit)
    out: list[bytes | TooLong] = []
    for chunk in chunks:
        out += buf.feed(chunk)
    return out


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", []),
        (b"hello", []),  # no newline yet: held
        (b"hello\n", [b"hello"]),
        (b"a\nb\n", [b"a", b"b"]),
        (b"a\r\nb\r\n", [b"a", b"b"]),
        (b"\n", [b""]),
        (b"\r\n", [b""]),
        (b"\n\n", [b"", b""]),
        (b"a\r\r\n", [b"a\r"]),  # only one \r before the \n is dropped
        (b"a\rb\n", [b"a\rb"]),  # a lone \r is not a line end
        (b"a\n\rb\n", [b"a", b"\rb"]),
        (b"12345678\n", [b"12345678"]),  # exactly the limit
        (b"123456789\n", [T]),  # one past it
        (b"12345678\r\n", [b"12345678"]),  # the \r does not count
        (b"123456789\nok\n", [T, b"ok"]),
        (b"x" * 100 + b"\nok\n", [T, b"ok"]),
        (b"\xff\xfe\n", [b"\xff\xfe"]),  # bytes, not text: decoding is the door's job
    ],
)
def test_feed_whole(data: bytes, expected: list[bytes | TooLong]) -> None:
    assert feed_all(8, [data]) == expected


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        ([b"hel", b"lo\n"], [b"hello"]),
        ([b"a\r", b"\n"], [b"a"]),
        ([b"a", b"\r\n", b"b", b"\n"], [b"a", b"b"]),
        ([b"a\nb", b"c\nd"], [b"a", b"bc"]),
        ([b"12345", b"6789", b"more", b"\nok\n"], [T, b"ok"]),
        ([b"123456789", b"\n"], [T]),
        ([b"x" * 20, b"x" * 20, b"\n", b"y\n"], [T, b"y"]),
    ],
)
def test_feed_in_pieces(chunks: list[bytes], expected: list[bytes | TooLong]) -> None:
    assert feed_all(8, chunks) == expected


def test_too_long_is_reported_once_and_the_rest_skipped() -> None:
    buf = LineBuffer(8)
    assert buf.feed(b"x" * 9) == [T]
    assert buf.pending == 0
    for _ in range(100):
        assert buf.feed(b"x" * 50) == []
        assert buf.pending == 0
    assert buf.feed(b"xx\nnext\n") == [b"next"]


def test_pending_counts_the_unfinished_line() -> None:
    buf = LineBuffer(8)
    buf.feed(b"abc")
    assert buf.pending == 3
    buf.feed(b"de")
    assert buf.pending == 5
    buf.feed(b"\n")
    assert buf.pending == 0


def test_bytes_after_the_last_newline_wait_for_the_next_feed() -> None:
    buf = LineBuffer(100)
    assert buf.feed(b"one\ntw") == [b"one"]
    assert buf.feed(b"o\n") == [b"two"]


def test_a_crlf_line_at_the_limit_does_not_depend_on_how_it_is_split() -> None:
    assert feed_all(8, [b"12345678\r", b"\n"]) == [b"12345678"]
    assert feed_all(8, [b"12345678", b"\r", b"\n"]) == [b"12345678"]
    # One byte more is too long however it arrives.
    assert feed_all(8, [b"123456789\r", b"\n"]) == [T]
    assert feed_all(8, [b"12345678\rx", b"\n"]) == [T]


def test_a_held_carriage_return_that_is_not_a_line_end_is_too_long() -> None:
    buf = LineBuffer(8)
    assert buf.feed(b"12345678\r") == []
    assert buf.pending == 9
    assert buf.feed(b"x") == [T]
    assert buf.pending == 0
    assert buf.feed(b"\nok\n") == [b"ok"]


STREAMS = st.lists(
    st.sampled_from([b"a", b"b", b"\xc3\xa9", b"\n", b"\n", b"\r", b"\r\n", b"xxxxx"])
).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(data=STREAMS, limit=st.integers(min_value=1, max_value=12))
def test_byte_at_a_time_equals_whole(data: bytes, limit: int) -> None:
    assert feed_all(limit, bytewise(data)) == feed_all(limit, [data])


@settings(max_examples=300, deadline=None)
@given(data=STREAMS, limit=st.integers(min_value=1, max_value=12), cuts=st.data())
def test_any_split_equals_whole(data: bytes, limit: int, cuts: st.DataObject) -> None:
    points = sorted(cuts.draw(st.lists(st.integers(min_value=0, max_value=len(data)), max_size=10)))
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    assert feed_all(limit, chunks) == feed_all(limit, [data])


@settings(max_examples=300, deadline=None)
@given(data=STREAMS, limit=st.integers(min_value=1, max_value=12))
def test_lines_are_what_a_split_on_newline_gives(data: bytes, limit: int) -> None:
    """The model: cut at \\n, drop one \\r before it, lines over the limit become one TooLong
    each; an unfinished line is reported as soon as it can no longer fit (a trailing \\r may
    still be dropped)."""
    *complete, rest = data.split(b"\n")
    expected: list[bytes | TooLong] = []
    for line in complete:
        line = line[:-1] if line.endswith(b"\r") else line
        expected.append(line if len(line) <= limit else TooLong(limit))
    if len(rest) > limit + 1 or (len(rest) == limit + 1 and not rest.endswith(b"\r")):
        expected.append(TooLong(limit))
    assert feed_all(limit, [data]) == expected


@settings(max_examples=200, deadline=None)
@given(
    chunks=st.lists(st.binary(max_size=40), max_size=30),
    limit=st.integers(min_value=1, max_value=16),
)
def test_memory_stays_bounded(chunks: list[bytes], limit: int) -> None:
    buf = LineBuffer(limit)
    for chunk in chunks:
        for item in buf.feed(chunk):
            if isinstance(item, bytes):
                assert len(item) <= limit
                assert b"\n" not in item
            else:
                assert item == TooLong(limit)
        assert buf.pending <= limit + 1  # a held \r may still end a line of `limit` bytes

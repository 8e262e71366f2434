"""The latest log lines kept in memory for ``salas admin logs``."""

from __future__ import annotations

import logging

from salas.logs import RECENT_BLOCK, Recent


def record(text: str) -> logging.LogRecord:
    return logging.LogRecord("salas", logging.INFO, __file__, 1, text, None, None)


def test_the_tail_spans_packed_blocks_in_order_and_keeps_at_most_its_size() -> None:
    recent = Recent(size=1000)
    total = 3 * 1000 + 17
    for i in range(total):
        recent.emit(record(f'line {i} with \\n, "quotes" and ünïcode\nand a second line'))
    last = recent.tail(10_000)
    assert len(last) == 1000
    wanted = [f"line {i} with \\n" for i in range(total - 1000, total)]
    assert [line.split("INFO ", 1)[1].split(', "')[0] for line in last] == wanted
    assert recent.tail(3) == last[-3:]
    assert recent.tail(RECENT_BLOCK + 5) == last[-(RECENT_BLOCK + 5) :]
    assert recent.tail(0) == []


def test_followers_see_every_line_as_it_comes() -> None:
    recent = Recent(size=10)
    seen: list[str] = []
    recent.follow(seen.append)
    for i in range(3):
        recent.emit(record(f"n{i}"))
    assert [line.rsplit(" ", 1)[1] for line in seen] == ["n0", "n1", "n2"]

"""Splitting a byte stream into bounded lines."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TooLong:
    """A line went past the bound; its bytes were thrown away."""

    limit: int


class LineBuffer:
    """Cuts a stream at ``\\n`` (a ``\\r`` before it is dropped).

    Memory is bounded by ``limit`` (plus one byte: a ``\r`` that may yet be
    followed by its ``\n``): a line that grows past it is reported once
    as ``TooLong`` and the rest of it, up to the next newline, is skipped.
    """

    __slots__ = ("_buf", "_skipping", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        # Immutable and usually empty (the shared b""): nothing held per idle client.
        self._buf = b""
        self._skipping = False

    def feed(self, data: bytes) -> list[bytes | TooLong]:
        out: list[bytes | TooLong] = []
        start = 0
        end = len(data)
        while start < end:
            nl = data.find(b"\n", start)
            if nl < 0:
                if not self._skipping:
                    buf = self._buf + data[start:]
                    # A held \r may still end a line of exactly ``limit`` bytes.
                    over = len(buf) - self.limit
                    if over > 1 or (over == 1 and not buf.endswith(b"\r")):
                        out.append(TooLong(self.limit))
                        buf = b""
                        self._skipping = True
                    self._buf = buf
                break
            if self._skipping:
                self._skipping = False
                start = nl + 1
                continue
            if self._buf:
                line = self._buf + data[start:nl]
                self._buf = b""
            else:
                line = data[start:nl]
            start = nl + 1
            if line.endswith(b"\r"):
                line = line[:-1]
            if len(line) > self.limit:
                out.append(TooLong(self.limit))
            else:
                out.append(line)
        return out

    @property
    def pending(self) -> int:
        """Bytes held for an unfinished line."""
        return len(self._buf)

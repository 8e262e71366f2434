"""SASL PLAIN over IRC's ``AUTHENTICATE`` (IRCv3 sasl 3.1 and 3.2), sans I/O.

The client names a mechanism, the server answers ``AUTHENTICATE +``, and the
client sends its base64 payload in chunks of at most 400 bytes. A chunk of
exactly 400 bytes means more follows; the payload ends with a shorter chunk, or
with ``+`` (an empty chunk) when its length is a multiple of 400. PLAIN's
payload is ``authzid NUL authcid NUL password`` (RFC 4616).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

from salas.core.names import fold

MECHANISMS = ("PLAIN",)
#: A chunk: longer is ERR_SASLTOOLONG.
CHUNK = 400
#: The whole base64 payload. PLAIN needs 2 names of 30 bytes, a password of up to
#: 256 and two NULs, about 430 bytes of base64: four chunks leave room to spare.
PAYLOAD_MAX = 4 * CHUNK


class SaslFailed(ValueError):
    """The exchange ends in ERR_SASLFAIL (904)."""


class SaslTooLong(ValueError):
    """The exchange ends in ERR_SASLTOOLONG (905)."""


@dataclass(slots=True)
class PlainExchange:
    """One ``AUTHENTICATE PLAIN`` exchange, between the ``+`` and the credentials."""

    chunks: list[str] = field(default_factory=list)
    size: int = 0

    def feed(self, chunk: str) -> str | None:
        """The whole base64 payload once its last chunk is in, None while more is due.

        Raises SaslTooLong for a chunk over 400 bytes or a payload past the bound."""
        if len(chunk) > CHUNK:
            raise SaslTooLong(chunk[:20])
        if chunk == "+":
            chunk = ""
        self.size += len(chunk)
        if self.size > PAYLOAD_MAX:
            raise SaslTooLong("payload")
        self.chunks.append(chunk)
        if len(chunk) == CHUNK:
            return None
        return "".join(self.chunks)


def decode_plain(payload: str) -> tuple[str, str]:
    """``(authcid, password)`` from a PLAIN payload in base64. Raises SaslFailed when
    it is not valid base64, not UTF-8, not three NUL-separated fields, has no
    name, or asks to act as someone else (an authzid that is not the authcid)."""
    try:
        raw = base64.b64decode(payload.encode("ascii"), validate=True)
        text = raw.decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError) as err:
        raise SaslFailed("not base64 UTF-8") from err
    parts = text.split("\x00")
    if len(parts) != 3:
        raise SaslFailed("not authzid NUL authcid NUL password")
    authzid, authcid, password = parts
    if not authcid or not password:
        raise SaslFailed("empty name or password")
    if authzid and fold(authzid) != fold(authcid):
        raise SaslFailed("authorization identity differs")
    return authcid, password


def encode_plain(authcid: str, password: str, authzid: str = "") -> list[str]:
    """The ``AUTHENTICATE`` arguments a client sends for these credentials (tests and tools)."""
    data = base64.b64encode(f"{authzid}\x00{authcid}\x00{password}".encode()).decode()
    chunks = [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)] or [""]
    if len(chunks[-1]) == CHUNK:
        chunks.append("")
    return [ch or "+" for ch in chunks]

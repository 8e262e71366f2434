"""Direct offers between clients in IRC's DCC wire form, without any I/O.

An offer travels through the server as a CTCP private message:

* ``DCC SEND <file> <ip> <port> <size> [token]`` (a file), and
* ``DCC CHAT chat <ip> <port> [token]`` (a conversation),

with ``<ip>`` an IPv4 address as one integer (or an IPv6 address as text) and
``<file>`` in double quotes when it has spaces. Port 0 with a token is the
passive (reverse) form: the receiver listens and answers with the same line
carrying its own address and port and the same token. ``DCC REJECT SEND <file>``
or ``DCC REJECT CHAT chat`` declines.

Tokens made by salas clients start with ``s`` (``s`` and 24 hex digits); a
connection to an offer with such a token must begin with the token and a
newline, sent by whoever connects. IRC clients' passive ids are numbers and
their connections carry no token.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Kind = Literal["SEND", "CHAT"]

#: A file name sent in an offer or saved from one is at most this many bytes.
MAX_NAME = 200
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
#: Characters that change how a name is shown, not what it is: bidirectional
#: overrides (``rep\u202etxt.exe`` shows as ``repexe.txt``), zero-width ones.
_INVISIBLE = re.compile(r"[\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")
_SALAS_TOKEN = re.compile(r"^s[0-9a-f]{24}$")
_TOKEN = re.compile(r"^[A-Za-z0-9]{1,64}$")
_NUMBER = re.compile(r"^[0-9]{1,20}$")


class OfferError(ValueError):
    """An offer line that does not parse."""


@dataclass(frozen=True, slots=True)
class Offer:
    kind: Kind
    #: The file's name as offered (for CHAT: ``chat``).
    name: str
    host: str
    port: int
    size: int = 0
    token: str | None = None

    @property
    def passive(self) -> bool:
        """The offerer can't be reached: the receiver is to listen instead."""
        return self.port == 0

    @property
    def salas(self) -> bool:
        """Made by a salas client: connections to it begin with the token."""
        return self.token is not None and is_salas_token(self.token)


@dataclass(frozen=True, slots=True)
class Reject:
    kind: Kind
    name: str


def new_token() -> str:
    return "s" + secrets.token_hex(12)


def is_salas_token(token: str) -> bool:
    return bool(_SALAS_TOKEN.match(token))


def token_matches(expected: str, got: str) -> bool:
    return hmac.compare_digest(expected.encode(), got.encode())


def host_to_wire(host: str) -> str:
    """An IPv4 address as the integer DCC uses; an IPv6 address as text."""
    addr = ipaddress.ip_address(host)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    if isinstance(addr, ipaddress.IPv4Address):
        return str(int(addr))
    return str(addr)


def host_from_wire(text: str) -> str:
    if _NUMBER.match(text):
        value = int(text)
        if value >= 1 << 32:
            raise OfferError(f"{text}: not an IPv4 address")
        return str(ipaddress.IPv4Address(value))
    try:
        return str(ipaddress.ip_address(text))
    except ValueError as err:
        raise OfferError(f"{text}: not an address") from err


def _quote(name: str) -> str:
    name = name.replace('"', "'")
    return f'"{name}"' if " " in name or not name else name


def format_offer(offer: Offer) -> str:
    """The text after ``DCC `` for this offer."""
    where = f"{host_to_wire(offer.host)} {offer.port}"
    if offer.kind == "SEND":
        text = f"SEND {_quote(offer.name)} {where} {offer.size}"
    else:
        text = f"CHAT chat {where}"
    return text + (f" {offer.token}" if offer.token else "")


def format_reject(kind: Kind, name: str) -> str:
    return f"REJECT {kind} {_quote(name) if kind == 'SEND' else 'chat'}"


def _split(text: str) -> list[str]:
    """Words, a double-quoted one kept whole (without its quotes)."""
    words: list[str] = []
    rest = text.strip()
    while rest:
        if rest.startswith('"'):
            end = rest.find('"', 1)
            if end < 0:
                raise OfferError("an unclosed quote")
            words.append(rest[1:end])
            rest = rest[end + 1 :].lstrip()
        else:
            word, _, rest = rest.partition(" ")
            words.append(word)
            rest = rest.lstrip()
    return words


def _int(text: str, what: str, high: int) -> int:
    if not _NUMBER.match(text) or int(text) > high:
        raise OfferError(f"{text}: not a {what}")
    return int(text)


def parse(text: str) -> Offer | Reject:
    """The text after ``DCC `` (``SEND ...``, ``CHAT ...``, ``REJECT ...``)."""
    words = _split(text)
    if not words:
        raise OfferError("empty")
    verb = words[0].upper()
    if verb == "REJECT":
        if len(words) < 2 or words[1].upper() not in ("SEND", "CHAT"):
            raise OfferError("REJECT of what?")
        kind: Kind = "SEND" if words[1].upper() == "SEND" else "CHAT"
        return Reject(kind, words[2] if len(words) > 2 else "")
    if verb == "SEND":
        if len(words) not in (5, 6):
            raise OfferError("expected SEND FILE IP PORT SIZE [TOKEN]")
        name, host, port, size = words[1], words[2], words[3], words[4]
        token = words[5] if len(words) == 6 else None
        sz = _int(size, "size", 1 << 62)
    elif verb == "CHAT":
        if len(words) not in (4, 5):
            raise OfferError("expected CHAT chat IP PORT [TOKEN]")
        name, host, port = words[1], words[2], words[3]
        token = words[4] if len(words) == 5 else None
        sz = 0
    else:
        raise OfferError(f"DCC {words[0]} is not supported")
    if token is not None and not _TOKEN.match(token):
        raise OfferError(f"{token}: not a token")
    p = _int(port, "port", 65535)
    if p == 0 and token is None:
        raise OfferError("port 0 without a token")
    return Offer("SEND" if verb == "SEND" else "CHAT", name, host_from_wire(host), p, sz, token)


def clean_name(name: str) -> str:
    """A name safe to save under a downloads directory: one path component, no
    control characters or characters that disguise it, no ``..``, no leading
    dot (nothing hidden), not empty."""
    name = _INVISIBLE.sub("", _CONTROLS.sub("", name))
    name = name.replace("/", "_").replace("\\", "_")
    name = re.sub(r"\.{2,}", "_", name)
    name = name.strip().lstrip(".").strip()
    if not name:
        name = "download"
    while len(name.encode()) > MAX_NAME:
        stem, dot, ext = name.rpartition(".")
        keep_ext = dot and 0 < len(ext) <= 16 and stem
        name = stem[:-1] + "." + ext if keep_ext else name[:-1]
    return name


def open_new(directory: Path, name: str, limit: int = 1000) -> tuple[Path, int]:
    """Create a new file for ``name`` (cleaned) in ``directory``, never overwriting
    one: ``name (1).ext``, ``name (2).ext``... Returns the path and a descriptor
    open for writing."""
    base = clean_name(name)
    stem, dot, ext = base.rpartition(".")
    if not stem:
        stem, dot, ext = base, "", ""
    root = directory.resolve()
    for i in range(limit):
        candidate = base if i == 0 else f"{stem} ({i}){dot}{ext}"
        path = root / candidate
        if path.parent != root:
            raise OfferError(f"{name}: not a plain file name")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        except FileExistsError:
            continue
        return path, fd
    raise OfferError(f"{name}: too many files of that name in {directory}")


def size_text(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{value:.1f} {unit}"


def ack(total: int) -> bytes:
    """The receiver's acknowledgement: bytes received so far, 4 bytes big-endian."""
    return (total & 0xFFFFFFFF).to_bytes(4, "big")

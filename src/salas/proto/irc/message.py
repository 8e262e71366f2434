"""IRC lines: parsing and building, with IRCv3 message tags.

``parse`` is total on bytes: it returns a ``Line`` or raises ``IrcParseError``
and nothing else (hypothesis tests hold it to that).
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: RFC 1459: a line is at most 512 bytes with its CR LF.
MAX_LINE = 512
#: IRCv3 message-tags: the tag part a client may send, with its ``@`` and space.
MAX_CLIENT_TAGS = 4096
#: All the tags a line may carry (client and server), with ``@`` and space.
MAX_TAGS = 8191
#: What the line buffer holds before giving up on a line: tags plus body.
MAX_INPUT = MAX_TAGS + MAX_LINE

_UNESCAPE = {":": ";", "s": " ", "\\": "\\", "r": "\r", "n": "\n"}
_ESCAPE = str.maketrans({";": "\\:", " ": "\\s", "\\": "\\\\", "\r": "\\r", "\n": "\\n"})


class IrcParseError(ValueError):
    pass


@dataclass(slots=True)
class Line:
    command: str
    params: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    source: str = ""


def unescape_tag(value: str) -> str:
    if "\\" not in value:
        return value
    out = []
    i = 0
    n = len(value)
    while i < n:
        ch = value[i]
        if ch == "\\":
            i += 1
            if i < n:
                nxt = value[i]
                out.append(_UNESCAPE.get(nxt, nxt))
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def escape_tag(value: str) -> str:
    return value.translate(_ESCAPE)


def parse(raw: bytes) -> Line:
    """One line without its CR LF. Invalid UTF-8 is read as Latin-1, as many servers do."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    if "\x00" in text:
        raise IrcParseError("NUL in line")
    tags: dict[str, str] = {}
    rest = text.lstrip(" ")
    if rest.startswith("@"):
        tag_part, _, rest = rest[1:].partition(" ")
        if len(tag_part.encode()) + 2 > MAX_CLIENT_TAGS:
            raise IrcParseError("tags too long")
        for item in tag_part.split(";"):
            if not item:
                continue
            key, _, value = item.partition("=")
            if key:
                tags[key] = unescape_tag(value)
        rest = rest.lstrip(" ")
    # RFC 1459 2.3: everything after the tags counts, source prefix included.
    if len(rest.encode()) > MAX_LINE - 2:
        raise IrcParseError("line too long")
    source = ""
    if rest.startswith(":"):
        source, _, rest = rest[1:].partition(" ")
        rest = rest.lstrip(" ")
    trailing: str | None = None
    if " :" in rest:
        rest, _, trailing = rest.partition(" :")
    elif rest.startswith(":"):
        rest, trailing = "", rest[1:]
    words = [w for w in rest.split(" ") if w]
    if not words:
        raise IrcParseError("no command")
    command = words[0].upper()
    params = words[1:]
    if trailing is not None:
        params.append(trailing)
    return Line(command, params, tags, source)


def build(
    command: str,
    *params: str,
    source: str = "",
    tags: dict[str, str] | None = None,
) -> bytes:
    """One line with CR LF. The last parameter gets a ``:`` when it needs one."""
    parts: list[str] = []
    if tags:
        parts.append("@" + ";".join(f"{k}={escape_tag(v)}" if v else k for k, v in tags.items()))
    if source:
        parts.append(":" + source)
    parts.append(command)
    if params:
        *middle, last = params
        for p in middle:
            # Only the last parameter may be empty, hold spaces or start with
            # ":". An IPv6 host (``::1``) or a client's odd word echoed back
            # (``NICK :a b``) must not break the line: hosts get the usual
            # leading 0 (``0::1``), spaces become "_", nothing becomes "*".
            if not p or p[0] == ":" or " " in p:
                p = ("0" + p if p[:1] == ":" else p).replace(" ", "_") or "*"
            parts.append(p)
        if not last or " " in last or last.startswith(":"):
            parts.append(":" + last)
        else:
            parts.append(last)
    line = " ".join(parts)
    if "\r" in line or "\n" in line or "\x00" in line:
        # Never a second line: whatever reached here unchecked is flattened.
        line = line.replace("\r", " ").replace("\n", " ").replace("\x00", " ")
    return (line + "\r\n").encode()

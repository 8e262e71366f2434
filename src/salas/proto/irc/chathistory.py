"""IRCv3 ``CHATHISTORY`` requests (the ``draft/chathistory`` specification), sans I/O.

::

    CHATHISTORY LATEST  <target> <* | msgid=N | timestamp=T> <limit>
    CHATHISTORY BEFORE  <target> <msgid=N | timestamp=T> <limit>
    CHATHISTORY AFTER   <target> <msgid=N | timestamp=T> <limit>
    CHATHISTORY AROUND  <target> <msgid=N | timestamp=T> <limit>
    CHATHISTORY BETWEEN <target> <msgid=N | timestamp=T> <msgid=N | timestamp=T> <limit>
    CHATHISTORY TARGETS <timestamp=T> <timestamp=T> <limit>

A request becomes a core ``FetchHistory`` or ``FetchTargets``; anything wrong
with it is a ``RequestError`` carrying the standard reply (``FAIL CHATHISTORY
CODE context... :text``) to send back.
"""

from __future__ import annotations

from datetime import UTC, datetime

from salas.core import commands as c
from salas.core.names import valid_name, valid_room

#: The subcommand each mode is asked by.
MODES: dict[str, c.HistoryMode] = {
    "LATEST": "latest",
    "BEFORE": "before",
    "AFTER": "after",
    "AROUND": "around",
    "BETWEEN": "between",
}
#: Timestamps on the wire have milliseconds; a message's own time is finer. A bound
#: that excludes what comes before it is moved to the end of its millisecond, so
#: ``AFTER timestamp=<a message's time>`` leaves that message out, as it should.
MILLI = 0.000999


class RequestError(ValueError):
    """``FAIL CHATHISTORY code *context :text``."""

    def __init__(self, code: str, context: tuple[str, ...], text: str) -> None:
        super().__init__(code)
        self.code = code
        self.context = context
        self.text = text


def parse_timestamp(text: str) -> float:
    """``YYYY-MM-DDThh:mm:ss.sssZ`` (other ISO 8601 forms too; no zone means UTC)."""
    if not text.isascii() or len(text) > 40:
        raise ValueError(text)
    when = datetime.fromisoformat(text)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def parse_ref(sub: str, word: str) -> c.Bound:
    """``msgid=N`` or ``timestamp=T``."""
    kind, sep, value = word.partition("=")
    if sep and kind == "msgid":
        if value.isascii() and value.isdigit() and len(value) < 19:
            return c.Bound(id=int(value))
        raise RequestError("INVALID_PARAMS", (sub, word), "Unknown msgid")
    if sep and kind == "timestamp":
        try:
            return c.Bound(time=parse_timestamp(value))
        except ValueError:
            raise RequestError("INVALID_PARAMS", (sub, word), "Invalid timestamp") from None
    raise RequestError(
        "INVALID_PARAMS", (sub, word), "Messages are referred to by msgid= or timestamp="
    )


def _limit(sub: str, word: str) -> int:
    if word.isascii() and word.isdigit() and 0 < len(word) < 10 and int(word) > 0:
        return int(word)
    raise RequestError("INVALID_PARAMS", (sub, word), "Invalid limit")


def _after_side(b: c.Bound) -> c.Bound:
    return c.Bound(time=b.time + MILLI) if b.time is not None else b


def parse_request(params: list[str], tag: str = "") -> c.FetchHistory | c.FetchTargets:
    """The core command a ``CHATHISTORY`` line asks for (its parameters after the verb)."""
    if not params or not params[0]:
        raise RequestError("INVALID_PARAMS", ("*",), "Insufficient parameters")
    sub = params[0].upper()
    args = params[1:]
    if sub == "TARGETS":
        return _targets(sub, args, tag)
    mode = MODES.get(sub)
    if mode is None:
        raise RequestError("UNKNOWN_COMMAND", (params[0],), "Unknown command")
    want = 4 if mode == "between" else 3
    if len(args) < want:
        raise RequestError("INVALID_PARAMS", (sub,), "Insufficient parameters")
    if len(args) > want:
        raise RequestError("INVALID_PARAMS", (sub,), "Too many parameters")
    target = args[0]
    room = target.startswith("#")
    if not (valid_room(target[1:]) if room else valid_name(target)):
        raise RequestError("INVALID_TARGET", (sub, target), "Messages could not be retrieved")
    name = target[1:] if room else target
    limit = _limit(sub, args[-1])
    start: c.Bound | None = None
    end: c.Bound | None = None
    if mode == "latest":
        if args[1] != "*":
            start = _after_side(parse_ref(sub, args[1]))
    elif mode == "between":
        start, end = parse_ref(sub, args[1]), parse_ref(sub, args[2])
        if start.time is not None and end.time is not None and start.time > end.time:
            end = _after_side(end)  # backwards in time: the end is the older bound
        else:
            start = _after_side(start)
    else:
        start = parse_ref(sub, args[1])
        if mode == "after":
            start = _after_side(start)
    return c.FetchHistory(name, room, limit, mode, start, end, tag)


def _targets(sub: str, args: list[str], tag: str) -> c.FetchTargets:
    if len(args) < 3:
        raise RequestError("INVALID_PARAMS", (sub,), "Insufficient parameters")
    if len(args) > 3:
        raise RequestError("INVALID_PARAMS", (sub,), "Too many parameters")
    times: list[float] = []
    for word in args[:2]:
        ref = parse_ref(sub, word)
        if ref.time is None:
            raise RequestError("INVALID_PARAMS", (sub, word), "TARGETS takes timestamps")
        times.append(ref.time)
    limit = _limit(sub, args[2])
    since, until = min(times), max(times)
    # TARGETS <later> <earlier>: counting back from the later one, the newest first.
    return c.FetchTargets(since, until + MILLI, limit, tag, newest=times[0] > times[1])

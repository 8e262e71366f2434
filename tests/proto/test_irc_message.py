"""IRC lines: the pure parser and builder (RFC 1459/2812 framing, IRCv3 message tags).

Vectors marked "parser-tests" follow the public-domain ircdocs/parser-tests suite
(msg-split); the verb is compared upper-cased since ``parse`` normalises it.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from salas.proto.irc.message import (
    MAX_CLIENT_TAGS,
    MAX_LINE,
    IrcParseError,
    Line,
    build,
    escape_tag,
    parse,
    unescape_tag,
)

# -- splitting lines into atoms ---------------------------------------------------------------

SPLIT = [
    # (input, tags, source, verb, params)  -- parser-tests msg-split
    (b"foo bar baz asdf", {}, "", "FOO", ["bar", "baz", "asdf"]),
    (b":coolguy foo bar baz asdf", {}, "coolguy", "FOO", ["bar", "baz", "asdf"]),
    (b"foo bar baz :asdf quux", {}, "", "FOO", ["bar", "baz", "asdf quux"]),
    (b"foo bar baz :", {}, "", "FOO", ["bar", "baz", ""]),
    (b"foo bar baz ::asdf", {}, "", "FOO", ["bar", "baz", ":asdf"]),
    (b":coolguy foo bar baz :  asdf quux ", {}, "coolguy", "FOO", ["bar", "baz", "  asdf quux "]),
    (b":coolguy PRIVMSG bar :lol :) ", {}, "coolguy", "PRIVMSG", ["bar", "lol :) "]),
    (b":coolguy foo bar baz :  ", {}, "coolguy", "FOO", ["bar", "baz", "  "]),
    (b"@a=b;c=32;k;rt=ql7 foo", {"a": "b", "c": "32", "k": "", "rt": "ql7"}, "", "FOO", []),
    (
        rb"@a=b\\and\nk;c=72\s45;d=gh\:764 foo",
        {"a": "b\\and\nk", "c": "72 45", "d": "gh;764"},
        "",
        "FOO",
        [],
    ),
    (b"@c;h=;a=b :quux ab cd", {"c": "", "h": "", "a": "b"}, "quux", "AB", ["cd"]),
    (b":src JOIN #chan", {}, "src", "JOIN", ["#chan"]),
    (b":src JOIN :#chan", {}, "src", "JOIN", ["#chan"]),
    (b":src AWAY", {}, "src", "AWAY", []),
    (b":src AWAY ", {}, "src", "AWAY", []),
    (b":cool\tguy foo bar baz", {}, "cool\tguy", "FOO", ["bar", "baz"]),
    (
        b":coolguy!ag@net\x035w\x03ork.admin PRIVMSG foo :bar baz",
        {},
        "coolguy!ag@net\x035w\x03ork.admin",
        "PRIVMSG",
        ["foo", "bar baz"],
    ),
    (
        b"@tag1=value1;tag2;vendor1/tag3=value2;vendor2/tag4= :irc.example.com COMMAND "
        b"param1 param2 :param3 param3",
        {"tag1": "value1", "tag2": "", "vendor1/tag3": "value2", "vendor2/tag4": ""},
        "irc.example.com",
        "COMMAND",
        ["param1", "param2", "param3 param3"],
    ),
    (b"COMMAND", {}, "", "COMMAND", []),
    (rb"@foo=\\\\\:\\s\s\r\n COMMAND", {"foo": "\\\\;\\s \r\n"}, "", "COMMAND", []),
    (
        b":gravel.mozilla.org 432  #momo :Erroneous Nickname: Illegal characters",
        {},
        "gravel.mozilla.org",
        "432",
        ["#momo", "Erroneous Nickname: Illegal characters"],
    ),
    (b":gravel.mozilla.org MODE #tckk +n ", {}, "gravel.mozilla.org", "MODE", ["#tckk", "+n"]),
    (
        b":services.esper.net MODE #foo-bar +o foobar  ",
        {},
        "services.esper.net",
        "MODE",
        ["#foo-bar", "+o", "foobar"],
    ),
    (rb"@tag1=value\\ntest COMMAND", {"tag1": "value\\ntest"}, "", "COMMAND", []),
    (rb"@tag1=value\1 COMMAND", {"tag1": "value1"}, "", "COMMAND", []),
    (b"@tag1=value1\\ COMMAND", {"tag1": "value1"}, "", "COMMAND", []),
    (
        b"@tag1=1;tag2=3;tag3=4;tag1=5;vendor/tag2=8 COMMAND",
        {"tag1": "5", "tag2": "3", "tag3": "4", "vendor/tag2": "8"},
        "",
        "COMMAND",
        [],
    ),
    (b":SomeOp MODE #channel :+i", {}, "SomeOp", "MODE", ["#channel", "+i"]),
    (
        b":SomeOp MODE #channel +oo SomeUser :AnotherUser",
        {},
        "SomeOp",
        "MODE",
        ["#channel", "+oo", "SomeUser", "AnotherUser"],
    ),
    # salas's own cases
    (b"privmsg #Chan :Hi", {}, "", "PRIVMSG", ["#Chan", "Hi"]),  # verbs are case-insensitive
    (b"  PING   a  ", {}, "", "PING", ["a"]),  # runs of spaces split like one
    (b"USER guest 0 * :Ronnie Reagan", {}, "", "USER", ["guest", "0", "*", "Ronnie Reagan"]),
    (b"@label=abc PING :x y", {"label": "abc"}, "", "PING", ["x y"]),
    (b"@+typing=active TAGMSG #c", {"+typing": "active"}, "", "TAGMSG", ["#c"]),
    (b"PRIVMSG #c ::-)", {}, "", "PRIVMSG", ["#c", ":-)"]),
    (b"PRIVMSG #c :a\tb", {}, "", "PRIVMSG", ["#c", "a\tb"]),
    ("PRIVMSG #c :héllo ☃".encode(), {}, "", "PRIVMSG", ["#c", "héllo ☃"]),
]


@pytest.mark.parametrize(("raw", "tags", "source", "verb", "params"), SPLIT)
def test_split(raw: bytes, tags: dict[str, str], source: str, verb: str, params: list[str]) -> None:
    assert parse(raw) == Line(verb, params, tags, source)


def test_invalid_utf8_is_read_as_latin1() -> None:
    assert parse(b"PRIVMSG #c :caf\xe9").params == ["#c", "café"]


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"", "no command"),
        (b"   ", "no command"),
        (b":source.only", "no command"),
        (b":source.only   ", "no command"),
        (b"@a=b", "no command"),
        (b"@a=b :src", "no command"),
        (b"PRIVMSG #c :nul\x00inside", "NUL in line"),
        (b"\x00", "NUL in line"),
    ],
)
def test_lines_without_a_command_or_with_nul_are_refused(raw: bytes, why: str) -> None:
    with pytest.raises(IrcParseError, match=why):
        parse(raw)


def test_the_512_byte_limit_counts_the_body_without_tags() -> None:
    head = b"PRIVMSG #c :"
    fits = head + b"x" * (MAX_LINE - 2 - len(head))  # 510 bytes: with CR LF, 512
    assert parse(fits).params[1] == "x" * (MAX_LINE - 2 - len(head))
    with pytest.raises(IrcParseError, match="line too long"):
        parse(fits + b"x")
    # Bytes, not characters: 2-byte letters reach the limit at half the count.
    with pytest.raises(IrcParseError, match="line too long"):
        parse(head + "é".encode() * 250)
    # Tags do not count against the 512 bytes of the body.
    assert parse(b"@a=" + b"v" * 3000 + b" " + fits).tags == {"a": "v" * 3000}


def test_the_512_byte_limit_counts_a_source_prefix() -> None:
    line = b":" + b"s" * 100 + b" PRIVMSG #c :" + b"x" * 420
    with pytest.raises(IrcParseError, match="line too long"):
        parse(line)


def test_client_tags_are_limited_to_4094_bytes() -> None:
    room = MAX_CLIENT_TAGS - 2  # 4094: without the "@" and the space
    value = "v" * (room - 2)  # "a=" + value
    assert parse(f"@a={value} PING x".encode()).tags == {"a": value}
    with pytest.raises(IrcParseError, match="tags too long"):
        parse(f"@a={value}v PING x".encode())


def test_client_tag_limit_is_in_bytes() -> None:
    with pytest.raises(IrcParseError, match="tags too long"):
        parse(("@a=" + "é" * 2100 + " PING x").encode())


# -- tag escaping -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("", ""),
        ("plain", "plain"),
        ("a;b", "a\\:b"),
        ("a b", "a\\sb"),
        ("back\\slash", "back\\\\slash"),
        ("cr\rlf\n", "cr\\rlf\\n"),
        ("\\s", "\\\\s"),  # a backslash then s: not a space
        ("; \\\r\n", "\\:\\s\\\\\\r\\n"),
        ("2024-01-01T00:00:00.000Z", "2024-01-01T00:00:00.000Z"),
        ("☃=é", "☃=é"),
    ],
)
def test_escape_and_unescape(value: str, escaped: str) -> None:
    assert escape_tag(value) == escaped
    assert unescape_tag(escaped) == value


@pytest.mark.parametrize(
    ("escaped", "value"),
    [
        ("value\\1", "value1"),  # an unknown escape drops the backslash
        ("trailing\\", "trailing"),  # a lone backslash at the end is dropped
        ("\\b\\t", "bt"),
        ("\\\\n", "\\n"),  # char by char: an escaped backslash, then n
    ],
)
def test_unescape_is_lenient(escaped: str, value: str) -> None:
    assert unescape_tag(escaped) == value


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_escape_round_trips_and_leaves_no_separators(value: str) -> None:
    escaped = escape_tag(value)
    assert unescape_tag(escaped) == value
    assert not set(escaped) & {" ", ";", "\r", "\n"}


# -- building lines -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "line"),
    [
        (("PING", "token"), {}, b"PING token\r\n"),
        (("QUIT",), {}, b"QUIT\r\n"),
        (("PRIVMSG", "#c", "hello world"), {}, b"PRIVMSG #c :hello world\r\n"),
        (("PRIVMSG", "#c", "one"), {"source": "n!u@h"}, b":n!u@h PRIVMSG #c one\r\n"),
        (("PRIVMSG", "#c", ":-)"), {}, b"PRIVMSG #c ::-)\r\n"),
        (("AWAY", ""), {}, b"AWAY :\r\n"),
        (("001", "nick", "Welcome"), {"source": "srv"}, b":srv 001 nick Welcome\r\n"),
        (
            ("PRIVMSG", "#c", "hi there"),
            {"source": "n!u@h", "tags": {"time": "2024-01-01T00:00:00.000Z", "msgid": "7"}},
            b"@time=2024-01-01T00:00:00.000Z;msgid=7 :n!u@h PRIVMSG #c :hi there\r\n",
        ),
        (("ACK",), {"source": "srv", "tags": {"label": "a;b c"}}, b"@label=a\\:b\\sc :srv ACK\r\n"),
        (
            ("BATCH", "+x", "labeled-response"),
            {"tags": {"k": ""}},
            b"@k BATCH +x labeled-response\r\n",
        ),
        (("PING", "x"), {"tags": {}}, b"PING x\r\n"),
    ],
)
def test_build(args: tuple[str, ...], kwargs: dict[str, object], line: bytes) -> None:
    assert build(*args, **kwargs) == line  # type: ignore[arg-type]


def test_build_then_parse_keeps_everything() -> None:
    raw = build(
        "PRIVMSG",
        "#chan",
        " : leading space, colons : and ;semicolons; ",
        source="nick!~user@host",
        tags={"label": "x y;z\\", "time": "2024-01-01T00:00:00.000Z", "bare": ""},
    )
    assert raw.endswith(b"\r\n") and raw.count(b"\r\n") == 1
    assert parse(raw[:-2]) == Line(
        "PRIVMSG",
        ["#chan", " : leading space, colons : and ;semicolons; "],
        {"label": "x y;z\\", "time": "2024-01-01T00:00:00.000Z", "bare": ""},
        "nick!~user@host",
    )


_NO_BREAKS = st.characters(blacklist_characters="\x00\r\n", blacklist_categories=("Cs",))
_WORD = st.text(_NO_BREAKS, min_size=1, max_size=12).filter(
    lambda w: " " not in w and not w.startswith(":")
)
_KEY = st.from_regex(r"\+?([a-z0-9.-]+/)?[A-Za-z0-9-]{1,10}", fullmatch=True)


@settings(max_examples=300, deadline=None)
@given(
    command=st.one_of(
        st.from_regex(r"[A-Z]{1,10}", fullmatch=True), st.from_regex(r"[0-9]{3}", fullmatch=True)
    ),
    middle=st.lists(_WORD, max_size=6),
    last=st.one_of(st.none(), st.text(_NO_BREAKS, max_size=60)),
    source=st.one_of(st.just(""), _WORD),
    tags=st.dictionaries(_KEY, st.text(_NO_BREAKS, max_size=20), max_size=4),
)
def test_build_parse_round_trip(
    command: str,
    middle: list[str],
    last: str | None,
    source: str,
    tags: dict[str, str],
) -> None:
    params = [*middle, *([] if last is None else [last])]
    raw = build(command, *params, source=source, tags=tags)
    assert raw.endswith(b"\r\n") and b"\n" not in raw[:-2] and b"\r" not in raw[:-2]
    assert parse(raw[:-2]) == Line(command.upper(), params, tags, source)


# -- totality -------------------------------------------------------------------------------------

_IRCISH = st.lists(
    st.one_of(
        st.sampled_from(
            [
                b"@",
                b":",
                b" ",
                b";",
                b"=",
                b"\\",
                b"PRIVMSG",
                b"#c",
                b"+",
                b"\xff",
                b"\xc3",
                b"\x00",
            ]
        ),
        st.binary(max_size=8),
        st.just(b"x" * 600),
        st.just(b"t" * 4100),
    ),
    max_size=30,
).map(b"".join)


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.binary(max_size=9000), _IRCISH))
def test_parse_is_total(raw: bytes) -> None:
    """Any bytes: a Line or IrcParseError, never another exception."""
    try:
        line = parse(raw)
    except IrcParseError:
        return
    assert isinstance(line, Line)
    assert line.command and " " not in line.command
    assert all(isinstance(p, str) for p in line.params)
    assert all(" " not in p for p in line.params[:-1])


def test_the_plain_privmsg_fast_path_makes_the_bytes_the_long_way_makes() -> None:
    """The fan-out renders a plain room ``say`` without the general builder: the
    bytes must be exactly those of the long way, for every text shape."""
    from salas.core.events import Message
    from salas.core.model import UserRef
    from salas.proto.irc.door import IrcDoor, _plain_privmsg

    door = IrcDoor(1, "127.0.0.1", 5000)
    who = UserRef(2, "ann", "~ann", "127.0.0.1")
    texts = ["hi", "hi there", ":colon", " lead", "x" * 440, "é" * 230, "x" * 600, "日本" * 90]
    for text in texts:
        for kind in ("say", "action", "notice"):
            ev = Message(7, 1.0, "tas", who, text, kind)  # type: ignore[arg-type]
            fast = _plain_privmsg(ev)
            slow = door._render(ev)
            if fast is not None:
                assert fast == slow, (text[:20], kind)
                assert kind == "say" and fast.count(b"\r\n") == 1
    # The common case takes the fast path.
    assert _plain_privmsg(Message(7, 1.0, "tas", who, "hi there")) is not None


@pytest.mark.parametrize(
    ("room", "name"), [("tas", "ann"), ("日本語チャンネル", "ann"), ("tas", "日本語")]
)
@pytest.mark.parametrize("text", ["x" * 480, "é" * 240, "日本" * 100, "x" * 4000])
@pytest.mark.parametrize("kind", ["say", "action", "notice"])
def test_every_message_line_fits_in_512_bytes_whatever_the_names(
    room: str, name: str, text: str, kind: str
) -> None:
    from salas.core.events import Message
    from salas.core.model import UserRef
    from salas.proto.irc.door import IrcDoor, _plain_privmsg

    who = UserRef(2, name, "~" + name, "127.0.0.1")
    ev = Message(7, 1.0, room, who, text, kind)  # type: ignore[arg-type]
    fast = _plain_privmsg(ev)
    out = fast if fast is not None else IrcDoor(1, "127.0.0.1", 5000)._render(ev)
    lines = out.split(b"\r\n")[:-1]
    assert all(len(line) + 2 <= 512 for line in lines), max(map(len, lines))
    bodies = [parse(line).params[1] for line in lines]
    if kind == "action":
        bodies = [b.removeprefix("\x01ACTION ").removesuffix("\x01") for b in bodies]
    assert "".join(bodies) == text  # split, nothing lost


def test_build_never_makes_a_second_line() -> None:
    from salas.proto.irc.message import build

    raw = build("KICK", "#xy", "bob", "bye\r\n:evil!e@e PRIVMSG bob :injected\x00", source="s")
    assert raw.count(b"\r\n") == 1 and raw.endswith(b"\r\n")
    assert b"\n:evil" not in raw and b"\x00" not in raw


@pytest.mark.parametrize(
    ("middle", "read_back"),
    [
        ("::1", "0::1"),  # an IPv6 host, as in WHO and WHOIS replies
        ("a b", "a_b"),  # a client's odd word echoed back (NICK :a b)
        (":x", "0:x"),
        ("", "*"),
    ],
)
def test_a_middle_parameter_that_could_not_be_read_back_is_made_readable(
    middle: str, read_back: str
) -> None:
    raw = build("352", "me", "#tas", "~u", middle, "salas.local", "u", "H", "0 Real Name")
    assert parse(raw[:-2]).params == [
        "me",
        "#tas",
        "~u",
        read_back,
        "salas.local",
        "u",
        "H",
        "0 Real Name",
    ]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(_NO_BREAKS, max_size=8), min_size=1, max_size=5), st.text(_NO_BREAKS))
def test_built_lines_always_read_back_with_as_many_parameters(middle: list[str], last: str) -> None:
    raw = build("401", *middle, last)
    assert len(parse(raw[:-2]).params) == len(middle) + 1


def test_a_long_unicode_topic_from_another_door_is_cut_by_bytes() -> None:
    from salas.core.events import TopicChanged, TopicIs
    from salas.core.model import UserRef
    from salas.proto.irc.door import IrcDoor

    door = IrcDoor(1, "127.0.0.1", 5000)
    topic = "日" * 390  # 390 characters, as the line door allows: 1170 bytes
    ann = UserRef(2, "ann", "~ann", "127.0.0.1")
    for ev in (TopicChanged("tas", topic, ann, 1.0), TopicIs("tas", topic, "ann", 1.0)):
        first = door._render(ev).split(b"\r\n")[0]  # TOPIC, or 332 (then 333)
        assert len(first) + 2 <= 512
        shown = parse(first).params[-1]
        assert len(shown) > 100 and topic.startswith(shown)


def test_a_full_length_topic_fits_beside_the_longest_names() -> None:
    from salas.core.events import TopicChanged, TopicIs
    from salas.core.model import UserRef
    from salas.core.names import NAME_MAX, ROOM_MAX
    from salas.proto.irc.door import IrcDoor

    door = IrcDoor(1, "127.0.0.1", 5000)
    door.nick = "n" * NAME_MAX
    room, topic = "r" * ROOM_MAX, "t" * 390  # TOPICLEN
    who = UserRef(2, "a" * NAME_MAX, "~" + "u" * 9, "h" * 63)
    for ev in (TopicChanged(room, topic, who, 1.0), TopicIs(room, topic, "a" * NAME_MAX, 1.0)):
        first = door._render(ev).split(b"\r\n")[0]
        assert len(first) + 2 <= 512, len(first)
        assert topic.startswith(parse(first).params[-1])


def test_a_long_broadcast_is_several_notices_within_512_bytes() -> None:
    from salas.core.events import ServerNotice
    from salas.proto.irc.door import IrcDoor

    text = "w" * 470 + " " + "é" * 900
    lines = IrcDoor(1, "127.0.0.1", 5000)._render(ServerNotice(text, "root")).split(b"\r\n")[:-1]
    assert len(lines) > 1 and all(len(line) + 2 <= 512 for line in lines)
    assert "".join(parse(line).params[-1] for line in lines) == "[root] " + text

"""The line door: what a netcat user types becomes which command, and what they read."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from salas.core import commands as c
from salas.core import errors as e
from salas.core.events import (
    AccountRegistered,
    AwayChanged,
    Closing,
    Echoed,
    Event,
    Failed,
    HistoryReply,
    Invited,
    Joined,
    Left,
    LoggedIn,
    Message,
    NameList,
    OperGranted,
    PasswordChanged,
    Private,
    Renamed,
    RoomList,
    ServerNotice,
    TopicChanged,
    TopicIs,
    UserList,
    Welcome,
    WhoisReply,
)
from salas.core.hub import Hub
from salas.core.model import Member, RoomInfo, UserInfo, UserRef
from salas.proto.door import Input
from salas.proto.line import (
    COMMANDS,
    DCC_FROM_RE,
    MAX_LINE,
    WELCOME_RE,
    WHOIS_RE,
    YOU_JOINED_RE,
    YOU_LEFT_RE,
    YOU_RENAMED_RE,
    LineDoor,
    help_text,
    parse_line,
    safe,
)

BAD_UTF8 = b"! That line was not valid UTF-8, so it was not sent\n"
CONTROL = b"! Control characters are not allowed, so that line was not sent\n"


def usage(name: str) -> bytes:
    return f"! Usage: /{name} {COMMANDS[name].args}".rstrip().encode() + b"\n"


def ref(sid: int, name: str) -> UserRef:
    return UserRef(sid, name, name, "127.0.0.1")


ME = ref(1, "alice")
BOB = ref(2, "bob")
CAROL = ref(3, "carol")


@pytest.fixture
def door() -> LineDoor:
    d = LineDoor(1, "127.0.0.1", 5000)
    d.name = "alice"
    return d


# -- parsing ---------------------------------------------------------------------

PARSE_CASES: list[tuple[bytes, Input | None]] = [
    # Plain text is said in the current room; only the right end is trimmed.
    (b"hello", c.Say(None, "hello")),
    (b"  hello there  ", c.Say(None, "  hello there")),
    (b"a\tb", c.Say(None, "a    b")),
    (b"ol\xc3\xa1", c.Say(None, "olá")),
    (b"//join tas", c.Say(None, "/join tas")),
    (b"//", c.Say(None, "/")),
    (b"///x", c.Say(None, "//x")),
    # Blank lines are ignored.
    (b"", None),
    (b"   ", None),
    (b"\t\t", None),
    # Commands, case-insensitive command words.
    (b"/nick Kay", c.Rename("Kay")),
    (b"/NICK Kay", c.Rename("Kay")),
    (b"/nick", usage("nick")),
    (b"/nick a b", usage("nick")),
    (b"/join tas", c.Join("tas", None, switch=True)),
    (b"/join #tas", c.Join("tas", None, switch=True)),
    (b"/join tas s3cret", c.Join("tas", "s3cret", switch=True)),
    (b"/join #", c.Join("#", None, switch=True)),
    (b"/join", usage("join")),
    (b"/join a b c", usage("join")),
    (b"/create Teste", c.Create("Teste", None, switch=True)),
    (b"/create #Teste 2", c.Create("Teste", 2, switch=True)),
    (b"/create big 100000", c.Create("big", 100000, switch=True)),
    (b"/create x 0", usage("create")),
    (b"/create x 100001", usage("create")),
    (b"/create x -1", usage("create")),
    (b"/create x two", usage("create")),
    (b"/create", usage("create")),
    (b"/create a 2 3", usage("create")),
    (b"/leave", c.Leave(None)),
    (b"/leave #tas", c.Leave("tas")),
    (b"/leave a b", usage("leave")),
    (b"/list", c.ListRooms()),
    (b"/who", c.ListUsers(None)),
    (b"/who *", c.ListUsers(everyone=True)),
    (b"/who #tas", c.ListUsers("tas")),
    (b"/who a b", usage("who")),
    (b"/msg bob hi  there", c.Tell("bob", "hi  there")),
    (b"/msg bob", usage("msg")),
    (b"/msg", usage("msg")),
    (b"/me waves", c.Say(None, "waves", "action")),
    (b"/me", usage("me")),
    (b"/notice hi all", c.Say(None, "hi all", "notice")),
    (b"/notice", usage("notice")),
    (b"/echo ping  pong", c.Echo("ping  pong")),
    (b"/whois bob", c.Whois("bob")),
    (b"/ctcp bob DCC CHAT chat 1 2", c.Tell("bob", "\x01DCC CHAT chat 1 2\x01")),
    (b"/ctcp bob", usage("ctcp")),
    (b"/echo", usage("echo")),
    (b"/topic", c.Topic(None, None)),
    (b"/topic exams on friday", c.Topic(None, "exams on friday")),
    (b"/away", c.SetAway(None)),
    (b"/away lunch", c.SetAway("lunch")),
    (b"/invite bob", c.Invite("bob", None)),
    (b"/invite bob #priv", c.Invite("bob", "priv")),
    (b"/invite", usage("invite")),
    (b"/invite a b c", usage("invite")),
    (b"/kick bob", c.Kick(None, "bob", "")),
    (b"/kick bob stop spamming", c.Kick(None, "bob", "stop spamming")),
    (b"/kick", usage("kick")),
    (b"/history", c.FetchHistory(None, True, 20)),
    (b"/history 5", c.FetchHistory(None, True, 5)),
    (b"/history #tas", c.FetchHistory("tas", True, 20)),
    (b"/history 7 tas", c.FetchHistory("tas", True, 7)),
    (b"/history tas 7", c.FetchHistory("tas", True, 7)),
    (b"/history @bob", c.FetchHistory("bob", False, 20)),
    (b"/history 0", usage("history")),
    (b"/history a b", usage("history")),
    (b"/history 1 2 3", usage("history")),
    (b"/register s3cret", c.RegisterAccount("s3cret")),
    (b"/register", usage("register")),
    (b"/register two words", usage("register")),
    (b"/login alice s3cret", c.LogIn("alice", "s3cret")),
    (b"/login alice", usage("login")),
    (b"/password old new", c.ChangePassword("old", "new")),
    (b"/password old", usage("password")),
    (b"/oper operuser operpassword", c.OperUp("operuser", "operpassword")),
    (b"/close tas end of term", c.CloseRoom("tas", "end of term")),
    (b"/kill bob spam", c.Kill("bob", "spam")),
    (b"/broadcast back soon", c.Broadcast("back soon")),
    (b"/shutdown upgrade", c.Shutdown("upgrade")),
    (b"/quit", c.Quit("")),
    (b"/quit see you", c.Quit("see you")),
    (b"/help join", b"> /join ROOM [KEY]: go to a room (leaving the one you are in)\n"),
    (b"/help /msg", b"> /msg NAME TEXT: a private message\n"),
    (b"/frobnicate", b"! Unknown command /frobnicate; /help lists them\n"),
    (b"/", b"! Unknown command /; /help lists them\n"),
    # What can't be sent.
    (b"\xff\xfehi", BAD_UTF8),
    (b"/join \xc3", BAD_UTF8),
    (b"hi \x1b[31mred", CONTROL),
    (b"a\x00b", CONTROL),
    (b"a\rb", CONTROL),
    (b"\x07bell", CONTROL),
    (b"del\x7fete", CONTROL),
    (b"c1 \xc2\x9b", CONTROL),
    # Controls that str.rstrip() would take for white space are still refused.
    (b"hi\x1f", CONTROL),
    (b"hi\x1c", CONTROL),
    (b"hi \xc2\x85", CONTROL),
    (b"hi   ", c.Say(None, "hi")),
]


@pytest.mark.parametrize(("raw", "expected"), PARSE_CASES)
def test_parse_line(raw: bytes, expected: Input | None) -> None:
    assert parse_line(raw) == expected


def test_every_command_word_is_covered_by_the_table() -> None:
    words = {
        raw[1:].split(b" ")[0].decode().lower()
        for raw, _ in PARSE_CASES
        if raw.startswith(b"/") and not raw.startswith(b"//")
    }
    assert set(COMMANDS) - {"help"} <= words


def test_help_lists_every_command() -> None:
    text = help_text().decode()
    assert text.startswith("> Commands (anything else is said in your room):\n")
    for name in COMMANDS:
        assert f"  /{name}" in text
    assert "//TEXT" in text
    assert parse_line(b"/help") == help_text()
    assert parse_line(b"/help nosuch") == help_text()


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_on_one_command_is_one_line(name: str) -> None:
    out = parse_line(f"/help {name}".encode())
    assert isinstance(out, bytes)
    assert out.startswith(f"> /{name}".encode())
    assert out.count(b"\n") == 1 and out.endswith(b"\n")


def test_create_with_a_superscript_digit_limit_is_a_usage_error() -> None:
    assert parse_line("/create tas ²".encode()) == usage("create")


# -- receive_data --------------------------------------------------------------------


def test_start_registers_a_guest_into_the_lobby() -> None:
    d = LineDoor(7, "::1", 4242)
    assert d.start() == [c.Register(None, "line", "::1", 4242, lobby=True)]


def test_receive_data_joins_reads_and_accepts_crlf(door: LineDoor) -> None:
    assert door.receive_data(b"/join t") == []
    assert door.receive_data(b"as\r\nhi\r\n\r\n/li") == [
        c.Join("tas", None, switch=True),
        c.Say(None, "hi"),
    ]
    assert door.receive_data(b"st\n") == [c.ListRooms()]


def test_receive_data_refuses_overlong_lines_once(door: LineDoor) -> None:
    too_long = b"! Line too long (over 4096 bytes), so it was not sent\n"
    assert door.receive_data(b"x" * MAX_LINE + b"\n") == [c.Say(None, "x" * MAX_LINE)]
    out = door.receive_data(b"y" * (MAX_LINE + 1))
    assert out == [too_long]
    assert door.receive_data(b"y" * 10_000) == []
    assert door.receive_data(b"yyy\nafter\n") == [c.Say(None, "after")]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=20))
def test_receive_data_is_total(chunks: list[bytes]) -> None:
    door = LineDoor(1, "h", 1)
    for chunk in chunks:
        for item in door.receive_data(chunk):
            if callable(item):  # the confirmation around /close and /kill
                item = item()
            assert isinstance(item, bytes) or type(item).__module__ == "salas.core.commands"
            if isinstance(item, bytes):
                assert item.endswith(b"\n")


# Digits of every script (the "²" above, "٣", full-width ones) are what isdigit() lets by.
ARGS = st.text(st.characters(exclude_categories=["Cs"]), max_size=20) | st.from_regex(
    r"\w{1,5} [\d²³¹٣０-９]{1,4}", fullmatch=True
)


@settings(max_examples=300, deadline=None)
@given(word=st.sampled_from(sorted(COMMANDS)), args=ARGS)
def test_every_command_takes_any_arguments(word: str, args: str) -> None:
    out = parse_line(f"/{word} {args}".encode())
    assert out is None or isinstance(out, bytes) or type(out).__module__ == "salas.core.commands"


# -- rendering -----------------------------------------------------------------------

RENDER_CASES: list[tuple[Event, str]] = [
    (Message(1, 0.0, "tas", BOB, "hi"), "[bob] hi\n"),
    (Message(1, 0.0, "tas", BOB, "waves", "action"), "* bob waves\n"),
    (Message(1, 0.0, "tas", BOB, "meeting at 3", "notice"), "-bob- meeting at 3\n"),
    (Message(1, 0.0, "tas", BOB, "\x1b[2Jgotcha\x07"), "[bob] [2Jgotcha\n"),
    (Joined("tas", ME, 2), "> You joined tas (2 users online)\n"),
    (Joined("tas", BOB, 1), "> bob joined tas (1 user online)\n"),
    (Left("tas", ME, 1), "< You left tas\n"),
    (Left("tas", ME, 1, "kick", "spam", CAROL), "< You were kicked from tas by carol: spam\n"),
    (Left("tas", BOB, 1), "< bob left tas (1 user online)\n"),
    (Left("tas", BOB, 0, "quit", "bye"), "< bob left tas (0 users online): bye\n"),
    (
        Left("tas", BOB, 3, "kick", "spam", CAROL),
        "< bob was kicked from tas by carol (3 users online): spam\n",
    ),
    (Left("tas", ME, 0, "close", "maintenance"), "< Room tas was closed: maintenance\n"),
    (Left("tas", BOB, 0, "close"), "< Room tas was closed\n"),
    (Private(1, 0.0, BOB, ME, "psst"), "[bob -> you] psst\n"),
    (Private(1, 0.0, ME, BOB, "psst"), "[you -> bob] psst\n"),
    (Private(1, 0.0, ME, ME, "note"), "[alice -> you] note\n"),
    (Private(1, 0.0, BOB, ME, "winks", "action"), "* bob (private) winks\n"),
    (Private(1, 0.0, BOB, ME, "\x1b]0;title\x07x"), "[bob -> you] ]0;titlex\n"),
    (Renamed(BOB, ref(2, "robert")), "> bob is now known as robert\n"),
    (NameList("tas", (Member(ME, "o"),)), ""),
    (
        NameList("tas", (Member(BOB, "o"), Member(ME, ""), Member(CAROL, ""))),
        "> In tas with you: bob, carol\n",
    ),
    (TopicIs("tas", "", "", 0.0), "> tas has no topic\n"),
    (TopicIs("tas", "exams", "bob", 0.0), "> Topic of tas: exams (set by bob)\n"),
    (TopicIs("tas", "exams", "", 0.0), "> Topic of tas: exams\n"),
    (TopicChanged("tas", "exams", BOB, 0.0), "> bob set the topic of tas: exams\n"),
    (TopicChanged("tas", "", BOB, 0.0), "> bob cleared the topic of tas\n"),
    (RoomList(()), "> No rooms yet: /create ROOM makes one\n"),
    (
        RoomList(
            (
                RoomInfo("lobby", 1, None, "", False, False),
                RoomInfo("Teste", 2, 2, "", False, False),
                RoomInfo("sala", 1, 5, "", False, False),
                RoomInfo("sec", 0, None, "our \x1b[1mplace", True, True),
            )
        ),
        "> Rooms (4):\n"
        "  lobby - 1 user\n"
        "  Teste - 2/2 users\n"
        "  sala - 1/5 users\n"
        "  sec - 0 users [private] [key] - our [1mplace\n",
    ),
    (Echoed("ping"), "ping\n"),
    (Closing("bye", "quit"), "> Bye\n"),
    (Closing("maintenance", "shutdown"), "! Server shutting down: maintenance\n"),
    (Closing("", "shutdown"), "! Server shutting down\n"),
    (Closing("flooding", "kill"), "! Disconnected: flooding\n"),
    (Closing("", "error"), "! Disconnected\n"),
    (ServerNotice("restart at 5"), "! Notice from the server: restart at 5\n"),
    (ServerNotice("hi", "admin"), "! Notice from admin: hi\n"),
    (Invited("priv", BOB, ME), "> bob invites you to priv: /join priv\n"),
    (Invited("priv", ME, BOB), "> You invited bob to priv\n"),
    (AwayChanged(ME, "lunch"), "> You are marked away: lunch\n"),
    (AwayChanged(ME, None), "> You are back\n"),
    (AwayChanged(BOB, "lunch"), ""),
    (OperGranted(ME), "> You are now a server operator\n"),
]


@pytest.mark.parametrize(("event", "text"), RENDER_CASES)
def test_render(door: LineDoor, event: Event, text: str) -> None:
    assert door.render(event) == text.encode()


def test_render_welcome_remembers_the_name() -> None:
    door = LineDoor(1, "127.0.0.1", 5000)
    out = door.render(Welcome(ref(1, "guest12345"), 3, "salas.local")).decode()
    assert out == (
        "> Welcome to salas.local. /help lists commands.\n"
        "> Connected to the chat server as guest12345 (3 users online)\n"
    )
    assert door.name == "guest12345"
    m = WELCOME_RE.match(out.splitlines()[1])
    assert m is not None and m.group(1) == "guest12345"


def test_render_own_rename_remembers_the_name(door: LineDoor) -> None:
    out = door.render(Renamed(ME, ref(1, "Alice"))).decode()
    assert out == "> You are now known as Alice\n"
    assert door.name == "Alice"
    m = YOU_RENAMED_RE.match(out.rstrip("\n"))
    assert m is not None and m.group(1) == "Alice"


def test_client_patterns_match_the_rendered_lines(door: LineDoor) -> None:
    joined = YOU_JOINED_RE.match(door.render(Joined("tas", ME, 1)).decode())
    assert joined is not None and joined.group(1) == "tas"
    for ev in (Left("tas", ME, 0), Left("tas", ME, 0, "kick", "", BOB)):
        left = YOU_LEFT_RE.match(door.render(ev).decode())
        assert left is not None and left.group(1) == "tas"


def test_render_names_shows_thirty_and_counts_the_rest(door: LineDoor) -> None:
    others = tuple(Member(ref(i, f"u{i}"), "") for i in range(10, 45))
    out = door.render(NameList("big", (Member(ME, ""), *others))).decode()
    assert out.startswith("> In big with you: u10, u11, ")
    assert out.endswith("u39 and 5 more\n")


def who(name: str, address: str, door: str, idle: float, **kw: object) -> UserInfo:
    fields: dict[str, object] = {
        "username": name,
        "host": address.rsplit(":", 1)[0].strip("[]"),
        "realname": "",
        "rooms": ("tas",),
        "connected_at": 0.0,
        "account": None,
        "away": None,
        "oper": False,
    }
    fields.update(kw)
    return UserInfo(name=name, address=address, door=door, idle=idle, **fields)  # type: ignore[arg-type]


def test_render_user_list(door: LineDoor) -> None:
    people = (
        who("alice", "127.0.0.1:5000", "line", 5.0, modes="o"),
        who("bob", "[::1]:6000", "cs168", 125.0, away="lunch \x1b[5m"),
        who("root", "10.0.0.1:1", "irc", 3725.0, oper=True, rooms=()),
    )
    assert door.render(UserList("tas", people)).decode() == (
        "> Users in tas (3):\n"
        "  @alice [127.0.0.1:5000] line, idle 5s\n"
        "  bob [::1]:6000 cs168, idle 2m, away: lunch [5m\n"
        "  root [10.0.0.1:1] irc, idle 1h02m, server operator\n"
    )
    assert door.render(UserList(None, people[:1])).decode() == (
        "> Users online (1):\n  @alice [127.0.0.1:5000] line, idle 5s\n"
    )


@pytest.mark.parametrize(
    ("error", "text"),
    [
        (e.RoomFull("tas", 2), "Room tas is full (2/2)"),
        (e.NoSuchRoom("x"), "No room named x. Create it with /create x"),
        (
            e.NoSuchRoom("-1"),  # no hint that would only be refused in turn
            "-1 is not a valid room name: letters, digits and - _ . + & ~, at most 49",
        ),
        (e.RoomExists("tas"), "Room tas already exists; /join tas to enter it"),
        (e.InviteOnly("priv"), "Room priv is private: you need an invitation"),
        (e.BadKey("sec"), "Room sec needs its key: /join sec KEY"),
        (e.Banned("tas"), "You are banned from tas"),
        (e.NotInRoom(""), "You are not in a room: /list shows them, /join ROOM enters one"),
        (e.NotInRoom("tas"), "You are not in tas"),
        (e.NoSuchUser("zed"), "Nobody here is called zed"),
        (e.UserNotInRoom("bob", "tas"), "bob is not in tas"),
        (e.AlreadyInRoom("alice", "tas"), "You are already in tas"),
        (e.AlreadyInRoom("bob", "tas"), "bob is already in tas"),
        (e.NotRoomOperator("tas"), "Only operators of tas can do that"),
        (e.NotServerOperator(), "Only server operators can do that"),
        (e.CannotSend("tas"), "You can't send to tas"),
        (e.TextInvalid("empty"), "Not sent: empty"),
        (e.NameTaken("bob"), "The name bob is taken"),
        (e.LimitInvalid("0"), "0 is not a valid limit: a whole number from 1 to 100000"),
        (e.TooManyRooms(5), "There are too many rooms already (5)"),
        (e.RoomProtected("lobby"), "lobby can't be changed that way"),
        (e.NameReserved("ann"), "The name ann belongs to an account: /login ann PASSWORD"),
        (e.LoginFailed(), "Login failed: wrong name or password"),
        (e.AccountExists("ann"), "ann is already registered: /login ann PASSWORD"),
        (e.PasswordInvalid("no spaces"), "That password won't do: no spaces"),
        (e.NotLoggedIn(), "You are not logged in: /register PASSWORD or /login NAME PASSWORD"),
        (e.AlreadyLoggedIn("ann"), "You are already logged in as ann"),
        (e.TryLater("server busy"), "Not now (server busy): try again in a moment"),
        (
            e.StoreUnavailable(),
            "Not sent: the server can't keep messages right now; try again soon",
        ),
        (
            e.StoreUnavailable("accounts"),
            "Not done: the server can't keep accounts right now; try again soon",
        ),
    ],
)
def test_render_errors_as_one_line(door: LineDoor, error: e.ChatError, text: str) -> None:
    assert door.render(Failed(error)) == f"! {text}\n".encode()


def test_render_name_errors_explain_the_rules(door: LineDoor) -> None:
    out = door.render(Failed(e.NameInvalid("1x")))
    assert out.startswith(b"! 1x is not a valid name: up to 30 ")
    assert out.count(b"\n") == 1
    out = door.render(Failed(e.RoomNameInvalid("a b")))
    assert out.startswith(b"! a b is not a valid room name")
    assert out.count(b"\n") == 1


def test_error_close_and_flood_notice(door: LineDoor) -> None:
    assert (
        door.render_error_close("Send queue exceeded") == b"! Disconnected: Send queue exceeded\n"
    )
    notice = door.render_flood_notice()
    assert notice.startswith(b"! You are sending too fast") and notice.count(b"\n") == 1


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain", "plain"),
        ("olá 日本", "olá 日本"),
        ("\x1b[31mred\x1b[0m", "[31mred[0m"),
        ("\x1b]0;pwned\x07", "]0;pwned"),
        ("\x9b2J", "2J"),
        ("a\tb\r\nc\x00\x7f", "a bc"),  # a tab becomes a space
    ],
)
def test_safe_strips_terminal_controls(text: str, shown: str) -> None:
    assert safe(text) == shown


@given(st.text())
def test_safe_leaves_no_control_character(text: str) -> None:
    out = safe(text)
    assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in out)


# -- the door and the hub together: what two netcat users see -----------------------


class World:
    """A hub and line doors wired as the network adapter wires them."""

    def __init__(self) -> None:
        self.hub = Hub(seed=4)
        self.doors: dict[int, LineDoor] = {}
        self.screens: dict[int, list[str]] = {}
        self.now = 0.0

    def connect(self, sid: int) -> None:
        door = self.doors[sid] = LineDoor(sid, "127.0.0.1", 5000 + sid)
        self.screens[sid] = []
        for item in door.start():
            self._run(sid, item)

    def type(self, sid: int, line: str) -> None:
        for item in self.doors[sid].receive_data(line.encode() + b"\n"):
            self._run(sid, item)

    def _run(self, sid: int, item: Input) -> None:
        if callable(item):  # a reply made when its turn comes
            item = item()
        if isinstance(item, bytes):
            self.screens[sid] += item.decode().splitlines()
            return
        self.now += 1.0
        for d in self.hub.handle(sid, item, self.now):
            for to in d.to:
                if to != d.exclude and to in self.doors:
                    self.screens[to] += self.doors[to].render(d.event).decode().splitlines()

    def read(self, sid: int) -> list[str]:
        lines, self.screens[sid] = self.screens[sid], []
        return lines


def test_two_netcat_users_in_a_small_room() -> None:
    w = World()
    w.connect(1)
    w.connect(2)
    w.connect(3)
    w.type(1, "/nick alice")
    w.type(2, "/nick bob")
    w.type(3, "/nick carol")
    for sid in (1, 2, 3):
        w.read(sid)
    w.type(1, "/create Teste 2")
    assert w.read(1) == ["< You left lobby", "> You joined Teste (1 user online)"]
    assert w.read(2) == ["< alice left lobby (2 users online)"]
    w.type(2, "/join #teste")
    assert w.read(2) == [
        "< You left lobby",
        "> You joined Teste (2 users online)",
        "> In Teste with you: alice",
    ]
    assert w.read(1) == ["> bob joined Teste (2 users online)"]
    assert w.read(3) == [
        "< alice left lobby (2 users online)",
        "< bob left lobby (1 user online)",
    ]
    w.type(3, "/join Teste")
    assert w.read(3) == ["! Room Teste is full (2/2)"]
    w.type(3, "/list")
    assert w.read(3) == ["> Rooms (2):", "  lobby - 1 user", "  Teste - 2/2 users"]
    w.type(2, "hi")
    assert w.read(1) == ["[bob] hi"]
    assert w.read(2) == []
    assert w.read(3) == []
    w.type(2, "/msg carol psst")
    assert w.read(3) == ["[bob -> you] psst"]
    assert w.read(2) == []
    w.type(1, "/topic exams")
    assert w.read(1) == ["> alice set the topic of Teste: exams"]
    assert w.read(2) == ["> alice set the topic of Teste: exams"]
    w.type(2, "/topic mine")
    assert w.read(2) == ["! Only operators of Teste can do that"]
    w.type(2, "/quit")
    assert w.read(2) == ["< You left Teste", "> Bye"]
    assert w.read(1) == ["< bob left Teste (1 user online)"]


# -- history and accounts ----------------------------------------------------------

T0 = 1_764_748_800.0  # 2025-12-03 08:00:00 UTC


def test_render_history_marks_it_as_history_with_times(door: LineDoor) -> None:
    msgs = (
        Message(1, T0, "tas", ref(2, "bob"), "hi", "say"),
        Message(2, T0 + 61, "tas", ref(2, "bob"), "waves", "action"),
        Message(3, T0 + 125, "tas", ref(0, "carol"), "\x1b[31mred", "notice"),
    )
    out = door.render(HistoryReply("tas", True, msgs, "request")).decode()
    assert out == (
        "> History of tas (3 messages, times UTC):\n"
        "  08:00 [bob] hi\n"
        "  08:01 * bob waves\n"
        "  08:02 -carol- [31mred\n"
        "> End of history of tas\n"
    )


def test_render_history_over_several_days_shows_dates(door: LineDoor) -> None:
    msgs = (
        Message(1, T0, "tas", ref(2, "bob"), "a"),
        Message(2, T0 + 86400, "tas", ref(2, "bob"), "b"),
    )
    out = door.render(HistoryReply("tas", True, msgs, "join")).decode().splitlines()
    assert out[0] == "> Recent messages of tas (2 messages, times UTC):"
    assert out[1:3] == ["  2025-12-03 08:00 [bob] a", "  2025-12-04 08:00 [bob] b"]


def test_render_private_history_and_empty_history(door: LineDoor) -> None:
    msgs = (Private(1, T0, ref(2, "bob"), ref(1, "me"), "psst"),)
    out = door.render(HistoryReply("bob", False, msgs)).decode()
    assert out.startswith("> History of your conversation with bob (1 message, times UTC):\n")
    assert door.render(HistoryReply("tas", True, ())) == b"> No messages in tas yet\n"
    assert door.render(HistoryReply("tas", True, (), "join")) == b""


def test_render_account_answers(door: LineDoor) -> None:
    assert door.render(LoggedIn("ann", "ann")) == b"> You are logged in as ann\n"
    assert door.render(AccountRegistered("ann")) == (
        b"> The name ann is now your account: /login ann PASSWORD next time\n"
    )
    assert door.render(PasswordChanged("ann")) == b"> Your password was changed\n"


# -- client-to-client requests (DCC offers) ----------------------------------------


def test_ctcp_wraps_the_text_for_the_other_client() -> None:
    assert parse_line(b"/ctcp bob DCC SEND a.txt 2130706433 5000 10") == c.Tell(
        "bob", "\x01DCC SEND a.txt 2130706433 5000 10\x01"
    )
    assert parse_line(b"/ctcp bob") == usage("ctcp")
    assert parse_line(b"/ctcp bob \x01DCC\x01") == CONTROL  # no raw marks from the client


def test_whois_asks_about_one_person() -> None:
    assert parse_line(b"/whois bob") == c.Whois("bob")
    assert parse_line(b"/whois") == usage("whois")


def test_a_dcc_offer_arrives_in_words_without_control_characters(door: LineDoor) -> None:
    offer = Private(1, 0.0, BOB, ME, '\x01DCC SEND "a b.txt" 2130706433 5000 10 s1\x01')
    out = door.render(offer)
    assert out == b'> DCC from bob: SEND "a b.txt" 2130706433 5000 10 s1\n'
    assert DCC_FROM_RE.match(out.decode().rstrip("\n"))
    assert b"\x01" not in door.render(Private(2, 0.0, BOB, ME, "\x01VERSION\x01"))
    assert door.render(Private(2, 0.0, BOB, ME, "\x01VERSION\x01")) == b"> CTCP from bob: VERSION\n"
    reply = Private(3, 0.0, BOB, ME, "\x01VERSION irssi\x01", "notice")
    assert door.render(reply) == b"> CTCP reply from bob: VERSION irssi\n"
    sneaky = Private(4, 0.0, BOB, ME, "\x01DCC SEND x\x1b[2J 1 2 3\x01")
    assert door.render(sneaky) == b"> DCC from bob: SEND x[2J 1 2 3\n"
    mine = Private(5, 0.0, ME, BOB, "\x01DCC CHAT chat 1 2\x01")
    assert door.render(mine) == b"> CTCP to bob: DCC CHAT chat 1 2\n"


def test_whois_answer_names_the_door(door: LineDoor) -> None:
    info = who("bob", "127.0.0.1:4000", "irc", 5.0)
    text = door.render(WhoisReply(info, (("tas", "@"),))).decode().rstrip("\n")
    assert text == "> bob [127.0.0.1:4000] via irc, idle 5s, in @tas"
    m = WHOIS_RE.match(text)
    assert m and m.groups() == ("bob", "irc")

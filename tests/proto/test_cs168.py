"""The CS168 door (seed 002): 200-byte frames, the course's exact texts."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from salas.core import commands as c
from salas.core import errors as e
from salas.core.events import (
    Closing,
    Event,
    Failed,
    Invited,
    Joined,
    Left,
    Message,
    NameList,
    Private,
    Renamed,
    RoomList,
    ServerNotice,
    TopicChanged,
    TopicIs,
    Welcome,
)
from salas.core.hub import Hub
from salas.core.model import Member, RoomInfo, UserRef
from salas.proto import cs168
from salas.proto.cs168 import FRAME, Cs168Door, FrameBuffer, decode_frame, frames, pack_lines
from salas.proto.door import Input


def pad(text: str) -> bytes:
    data = text.encode()
    assert len(data) <= FRAME
    return data + b" " * (FRAME - len(data))


def ref(sid: int, name: str) -> UserRef:
    return UserRef(sid, name, name, "127.0.0.1")


ME = ref(1, "Panda")
KAY = ref(2, "Kay")


@pytest.fixture
def door() -> Cs168Door:
    return Cs168Door(1, "127.0.0.1", 5000)


@pytest.fixture
def named(door: Cs168Door) -> Cs168Door:
    door.receive_data(pad("Panda"))
    return door


# -- the course's texts, byte for byte (SPEC.md, Protocols: cs168) -------------------


@pytest.mark.parametrize(
    ("template", "spec"),
    [
        (
            cs168.INVALID_CONTROL_MESSAGE,
            "{0} is not a valid control message. Valid messages are /create, /list, and /join.",
        ),
        (cs168.NO_CHANNEL_EXISTS, "No channel named {0} exists. Try '/create {0}'?"),
        (
            cs168.JOIN_REQUIRES_ARGUMENT,
            "/join command must be followed by the name of a channel to join.",
        ),
        (cs168.CLIENT_JOINED_CHANNEL, "{0} has joined"),
        (cs168.CLIENT_LEFT_CHANNEL, "{0} has left"),
        (cs168.CHANNEL_EXISTS, "Room {0} already exists, so cannot be created."),
        (
            cs168.CREATE_REQUIRES_ARGUMENT,
            "/create command must be followed by the name of a channel to create",
        ),
        (
            cs168.CLIENT_NOT_IN_CHANNEL,
            "Not currently in any channel. Must join a channel before sending messages.",
        ),
        (cs168.CLIENT_MESSAGE_PREFIX, "[Me] "),
        (cs168.CLIENT_CANNOT_CONNECT, "Unable to connect to {0}:{1}"),
        (cs168.CLIENT_SERVER_DISCONNECTED, "Server at {0}:{1} has disconnected"),
    ],
)
def test_texts_are_the_courses(template: str, spec: str) -> None:
    assert template == spec


@pytest.mark.parametrize(
    ("event", "text"),
    [
        (
            Failed(e.NoSuchRoom("168_tas")),
            "No channel named 168_tas exists. Try '/create 168_tas'?",
        ),
        (Failed(e.RoomExists("168_tas")), "Room 168_tas already exists, so cannot be created."),
        (
            Failed(e.NotInRoom("")),
            "Not currently in any channel. Must join a channel before sending messages.",
        ),
        (
            Failed(e.NotInRoom("tas")),
            "Not currently in any channel. Must join a channel before sending messages.",
        ),
        (Failed(e.RoomFull("tas", 2)), "Room tas is full (2/2)."),
        (Failed(e.InviteOnly("priv")), "Room priv is private: you need an invitation."),
        (Failed(e.BadKey("sec")), "Room sec needs a key, which this client can't send."),
        (Failed(e.Banned("tas")), "You are banned from tas."),
        (Failed(e.RoomNameInvalid("a/b")), "a/b is not a valid channel name."),
        (Failed(e.CannotSend("tas")), "You can't send to tas."),
        (Failed(e.TextInvalid("empty")), "Not sent: empty."),
        (Failed(e.TooManyRooms(9)), "There are too many channels already."),
        (Failed(e.NameTaken("x")), "That did not work."),
        (Joined("tas", KAY, 2), "Kay has joined"),
        (Left("tas", KAY, 1), "Kay has left"),
        (Left("tas", KAY, 1, "quit", "bye"), "Kay has left"),
        (Left("tas", KAY, 1, "kick", "spam", ME), "Kay has left"),
        (Left("tas", ME, 1, "kick", "spam", KAY), "You were removed from tas: spam"),
        (Left("tas", ME, 1, "kick", "", KAY), "You were removed from tas"),
        (Left("tas", ME, 0, "close", "done"), "Room tas was closed: done"),
        (Message(1, 0.0, "tas", KAY, "Hi everyone!"), "[Kay] Hi everyone!"),
        (Message(1, 0.0, "tas", KAY, "waves", "action"), "* Kay waves"),
        (Message(1, 0.0, "tas", KAY, "\x1b[2Jgone"), "[Kay] [2Jgone"),
        (Private(1, 0.0, KAY, ME, "psst"), "[Kay -> you] psst"),
        (Renamed(KAY, ref(2, "Kay2")), "Kay is now known as Kay2"),
        (TopicChanged("tas", "exams", KAY, 0.0), "Kay set the topic of tas: exams"),
        (Closing("maintenance", "shutdown"), "Server shutting down: maintenance"),
        (Closing("", "shutdown"), "Server shutting down"),
        (Closing("flooding", "kill"), "Disconnected: flooding"),
        (Closing("\x1b[2J\x1b[31mgone", "kill"), "Disconnected: [2J[31mgone"),
        (Closing("\x1b[2Jback soon", "shutdown"), "Server shutting down: [2Jback soon"),
        (ServerNotice("restart at 5"), "[server] restart at 5"),
        (ServerNotice("hi", "admin"), "[admin] hi"),
        (Invited("priv", KAY, ME), "Kay invites you to priv: /join priv"),
    ],
)
def test_render_is_one_padded_frame(door: Cs168Door, event: Event, text: str) -> None:
    out = door.render(event)
    assert len(out) == FRAME
    assert out == pad(text)


@pytest.mark.parametrize(
    "event",
    [
        Joined("tas", ME, 1),  # the joiner is not told of its own join
        Left("tas", ME, 0),
        Left("tas", ME, 0, "quit"),
        Private(1, 0.0, ME, KAY, "own copy"),
        Failed(e.AlreadyInRoom("Panda", "tas")),
        Closing("bye", "quit"),
        Welcome(ME, 1, "salas.local"),
        NameList("tas", (Member(ME, "o"),)),
        TopicIs("tas", "t", "Kay", 0.0),
        Invited("priv", ME, KAY),
    ],
)
def test_render_says_nothing(door: Cs168Door, event: Event) -> None:
    assert door.render(event) == b""


def test_error_close_and_flood_notice(door: Cs168Door) -> None:
    assert door.render_error_close("Send queue exceeded") == pad(
        "Disconnected: Send queue exceeded"
    )
    assert door.render_error_close("Killed: \x1b[2Jbye") == pad("Disconnected: Killed: [2Jbye")
    out = door.render_flood_notice()
    assert len(out) == FRAME and out.startswith(b"You are sending too fast")


# -- frames: padding and splitting ---------------------------------------------------


def split_frames(data: bytes) -> list[bytes]:
    assert len(data) % FRAME == 0
    return [data[i : i + FRAME] for i in range(0, len(data), FRAME)]


def test_a_text_of_exactly_one_frame() -> None:
    assert frames("x" * FRAME) == b"x" * FRAME
    assert frames("x" * 193, "[Kay] ") == b"[Kay] " + b"x" * 193 + b" "
    assert frames("") == b" " * FRAME


def test_long_text_goes_on_in_more_frames_each_with_the_prefix() -> None:
    text = "".join(f"{i:03d}," for i in range(150))  # 600 bytes
    out = split_frames(frames(text, "[Kay] "))
    assert len(out) == 4
    assert all(f.startswith(b"[Kay] ") for f in out)
    assert "".join(decode_frame(f)[len("[Kay] ") :] for f in out) == text


def test_long_text_is_cut_between_characters() -> None:
    text = "é" * 300 + "日本" * 50  # 900 bytes, 2- and 3-byte characters
    out = split_frames(frames(text, "[Kay] "))
    bodies = [f.decode("utf-8")[len("[Kay] ") :].rstrip(" ") for f in out]
    assert "".join(bodies) == text


PREFIXES = st.sampled_from(["", "[Kay] ", "* Kay ", "[" + "n" * 30 + "] ", "[Kay -> you] "])


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(st.characters(exclude_characters=" ", exclude_categories=["Cs"])), head=PREFIXES
)
def test_frames_property(text: str, head: str) -> None:
    out = split_frames(frames(text, head))
    body = b""
    for f in out:
        assert len(f) == FRAME
        assert f.startswith(head.encode())
        f.decode("utf-8")  # never cut inside a character
        body += f[len(head.encode()) :].rstrip(b" ")
    assert body.decode() == text


def test_pack_lines_puts_names_in_as_few_frames_as_fit() -> None:
    assert pack_lines([]) == b""
    assert pack_lines(["168_tas"]) == pad("168_tas")
    assert pack_lines(["a", "b", "c"]) == pad("a\nb\nc")
    names = [f"room{i:02d}-" + "x" * 40 for i in range(10)]  # 48 bytes each
    out = split_frames(pack_lines(names))
    assert len(out) == 3
    lines = [line for f in out for line in decode_frame(f).split("\n")]
    assert lines == names


def test_list_renders_sorted_names(door: Cs168Door) -> None:
    rooms = tuple(RoomInfo(n, 1, None, "", False, False) for n in ("tas", "168_tas", "Zeta", "a"))
    assert door.render(RoomList(rooms)) == pad("168_tas\nZeta\na\ntas")


# -- frame buffer ----------------------------------------------------------------------


def test_frame_buffer_holds_a_partial_frame() -> None:
    buf = FrameBuffer()
    assert buf.feed(b"x" * 150) == []
    assert buf.pending == 150
    assert buf.feed(b"y" * 50) == [b"x" * 150 + b"y" * 50]
    assert buf.pending == 0


def test_frame_buffer_several_frames_in_one_read() -> None:
    buf = FrameBuffer()
    data = pad("one") + pad("two") + pad("thr")[:10]
    assert buf.feed(data) == [pad("one"), pad("two")]
    assert buf.pending == 10
    assert buf.feed(pad("thr")[10:]) == [pad("thr")]


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=FRAME * 4 + 37), cuts=st.data())
def test_frame_buffer_any_split_equals_whole(data: bytes, cuts: st.DataObject) -> None:
    points = sorted(cuts.draw(st.lists(st.integers(0, len(data)), max_size=12)))
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    whole, pieces = FrameBuffer(), FrameBuffer()
    got: list[bytes] = []
    for chunk in chunks:
        got += pieces.feed(chunk)
        assert pieces.pending < FRAME
    assert got == whole.feed(data)
    assert got == [data[i : i + FRAME] for i in range(0, len(data) - len(data) % FRAME, FRAME)]
    assert pieces.pending == len(data) % FRAME


def test_byte_at_a_time_equals_whole() -> None:
    data = pad("Panda") + pad("/create 168_tas") + pad("Hello world!")
    whole = Cs168Door(1, "h", 1).receive_data(data)
    door = Cs168Door(1, "h", 1)
    bytewise: list[Input] = []
    for i in range(len(data)):
        bytewise += door.receive_data(data[i : i + 1])
    assert bytewise == whole
    assert len(whole) == 3


# -- receive_data --------------------------------------------------------------------


def test_nothing_happens_before_the_name(door: Cs168Door) -> None:
    assert door.start() == []


def test_first_frame_registers_the_name(door: Cs168Door) -> None:
    assert door.receive_data(pad("Panda")) == [
        c.Register("Panda", "cs168", "127.0.0.1", 5000, uniquify=True)
    ]


def test_a_blank_name_asks_for_a_guest_name(door: Cs168Door) -> None:
    assert door.receive_data(pad("")) == [
        c.Register(None, "cs168", "127.0.0.1", 5000, uniquify=True)
    ]


def test_only_the_first_frame_is_a_name(door: Cs168Door) -> None:
    out = door.receive_data(pad("/join tas") + pad("/join tas"))
    assert out == [
        c.Register("/join tas", "cs168", "127.0.0.1", 5000, uniquify=True),
        c.Join("tas", switch=True),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/join 168_tas", c.Join("168_tas", switch=True)),
        ("/join   168_tas   extra", c.Join("168_tas", switch=True)),
        ("/create 168_tas", c.Create("168_tas", switch=True)),
        ("/list", c.ListRooms()),
        ("/list please", c.ListRooms()),
        ("Hello world!", c.Say(None, "Hello world!")),
        ("  indented", c.Say(None, "  indented")),
        ("olá", c.Say(None, "olá")),
        ("/join", pad("/join command must be followed by the name of a channel to join.")),
        ("/join   ", pad("/join command must be followed by the name of a channel to join.")),
        ("/create", pad("/create command must be followed by the name of a channel to create")),
        (
            "/joir x",
            pad(
                "/joir is not a valid control message."
                " Valid messages are /create, /list, and /join."
            ),
        ),
        (
            "/JOIN x",
            pad(
                "/JOIN is not a valid control message."
                " Valid messages are /create, /list, and /join."
            ),
        ),
        (
            "/",
            pad("/ is not a valid control message. Valid messages are /create, /list, and /join."),
        ),
    ],
)
def test_frames_after_the_name(named: Cs168Door, text: str, expected: Input) -> None:
    assert named.receive_data(pad(text)) == [expected]


def test_blank_frames_are_ignored(named: Cs168Door) -> None:
    assert named.receive_data(pad("") + pad("   ")) == []


def test_invalid_utf8_is_replaced_not_fatal(named: Cs168Door) -> None:
    out = named.receive_data(b"hi \xff" + b" " * (FRAME - 4))
    assert out == [c.Say(None, "hi \ufffd")]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=450), max_size=8))
def test_receive_data_is_total(chunks: list[bytes]) -> None:
    door = Cs168Door(1, "h", 1)
    for chunk in chunks:
        for item in door.receive_data(chunk):
            if isinstance(item, bytes):
                assert len(item) % FRAME == 0 and item
            else:
                assert type(item).__module__ == "salas.core.commands"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_render_of_any_message_is_whole_frames(text: str) -> None:
    door = Cs168Door(1, "h", 1)
    out = door.render(Message(1, 0.0, "tas", KAY, text))
    assert len(out) % FRAME == 0 and out
    for f in split_frames(out):
        assert f.startswith(b"[Kay] ")
        f.decode("utf-8")


# -- the door and the hub together: seed 002's transcript ------------------------------


class World:
    def __init__(self) -> None:
        self.hub = Hub(seed=2)
        self.doors: dict[int, Cs168Door] = {}
        self.screens: dict[int, list[str]] = {}
        self.now = 0.0

    def connect(self, sid: int, name: str) -> None:
        self.doors[sid] = Cs168Door(sid, "127.0.0.1", 6000 + sid)
        self.screens[sid] = []
        self.send(sid, name)

    def send(self, sid: int, text: str) -> None:
        for item in self.doors[sid].receive_data(pad(text)):
            self._run(sid, item)

    def _run(self, sid: int, item: Input) -> None:
        if callable(item):  # a reply made when its turn comes
            item = item()
        if isinstance(item, bytes):
            self._show(sid, item)
            return
        self.now += 1.0
        for d in self.hub.handle(sid, item, self.now):
            self._deliver(d.to, d.exclude, d.event)

    def _deliver(self, to: tuple[int, ...], exclude: int, event: Event) -> None:
        for sid in to:
            if sid != exclude and sid in self.doors:
                self._show(sid, self.doors[sid].render(event))

    def _show(self, sid: int, data: bytes) -> None:
        self.screens[sid] += [decode_frame(f) for f in split_frames(data)]

    def disconnect(self, sid: int) -> None:
        self.now += 1.0
        del self.doors[sid]
        for d in self.hub.disconnect(sid, "Connection closed", self.now):
            self._deliver(d.to, d.exclude, d.event)

    def read(self, sid: int) -> list[str]:
        lines, self.screens[sid] = self.screens[sid], []
        return lines


def test_seed_002_transcript() -> None:
    w = World()
    w.connect(1, "Panda")
    assert w.read(1) == []
    w.send(1, "Hello world!")
    assert w.read(1) == [
        "Not currently in any channel. Must join a channel before sending messages."
    ]
    w.send(1, "/list")
    assert w.read(1) == []
    w.send(1, "/create 168_tas")
    assert w.read(1) == []
    w.send(1, "/list")
    assert w.read(1) == ["168_tas"]
    w.send(1, "Hello world!")
    assert w.read(1) == []

    w.connect(2, "Alice")
    w.send(2, "/list")
    assert w.read(2) == ["168_tas"]
    w.send(2, "/join 168_tas")
    assert w.read(2) == []
    assert w.read(1) == ["Alice has joined"]
    msg = "Hi everyone! Does anyone know what we're doing on the first day of lecture?"
    w.send(2, msg)
    assert w.read(1) == [f"[Alice] {msg}"]
    assert w.read(2) == []

    w.disconnect(1)
    assert w.read(2) == ["Panda has left"]


def panda_and_alice_in(room: str) -> World:
    """Panda creates ``room`` and Alice joins it (Panda has read that she did)."""
    w = World()
    w.connect(1, "Panda")
    w.connect(2, "Alice")
    w.send(1, f"/create {room}")
    w.send(2, f"/join {room}")
    w.read(1)
    return w


def test_a_message_with_control_characters_is_refused_not_made_a_ctcp_request() -> None:
    w = panda_and_alice_in("tas")
    w.send(2, "\x01ACTION fakes\x01")
    assert w.read(2) == ["Not sent: control characters."]
    w.send(2, "plain")
    assert w.read(1) == ["[Alice] plain"]


def test_a_failed_join_keeps_the_current_channel() -> None:
    w = panda_and_alice_in("cs168_tas")
    w.send(2, "/join nowhere")
    assert w.read(2) == ["No channel named nowhere exists. Try '/create nowhere'?"]
    w.send(2, "/create cs168_tas")
    assert w.read(2) == ["Room cs168_tas already exists, so cannot be created."]
    w.send(2, "/create CS168_TAS")  # names are the same whatever their case
    assert w.read(2) == ["Room cs168_tas already exists, so cannot be created."]
    w.send(2, "still here")
    assert w.read(1) == ["[Alice] still here"]


def test_switching_channels_tells_both_channels() -> None:
    w = World()
    for sid, name in ((1, "Panda"), (2, "Alice"), (3, "Kay")):
        w.connect(sid, name)
    w.send(1, "/create a")
    w.send(2, "/create b")
    w.send(3, "/join a")
    assert w.read(1) == ["Kay has joined"]
    w.send(3, "/join b")
    assert w.read(1) == ["Kay has left"]
    assert w.read(2) == ["Kay has joined"]
    assert w.read(3) == []


def test_a_taken_name_gets_a_number() -> None:
    w = World()
    w.connect(1, "Kay")
    w.connect(2, "Kay")
    w.send(1, "/create tas")
    w.send(2, "/join tas")
    assert w.read(1) == ["Kay2 has joined"]
    w.send(2, "hello")
    assert w.read(1) == ["[Kay2] hello"]


def test_a_long_message_from_the_line_door_arrives_in_several_frames() -> None:
    w = World()
    w.connect(1, "Panda")
    w.connect(2, "Alice")
    w.send(1, "/create tas")
    w.send(2, "/join tas")
    w.read(1)
    text = "word " * 100  # 500 bytes: said through another door, no frame limit there
    w.now += 1
    for d in w.hub.handle(2, c.Say(None, text.strip()), w.now):
        w._deliver(d.to, d.exclude, d.event)
    lines = w.read(1)
    assert len(lines) == 3
    assert all(line.startswith("[Alice] ") for line in lines)

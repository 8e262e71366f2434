"""The hub: every command, who hears about it, and refusals that change nothing."""

from __future__ import annotations

import re

import pytest

from hubstate import refused, register, snapshot
from salas.core import commands as c
from salas.core import errors as e
from salas.core.events import (
    AwayChanged,
    BanList,
    Closing,
    Delivery,
    Echoed,
    Event,
    Failed,
    Invited,
    Joined,
    Left,
    Message,
    ModesAre,
    ModesChanged,
    NameList,
    OperGranted,
    Private,
    Renamed,
    RoomList,
    ServerNotice,
    StatsReply,
    TopicChanged,
    TopicIs,
    UserList,
    Welcome,
    WhoisReply,
)
from salas.core.hub import MAX_LIMIT, MAX_TEXT_BYTES, Hub, HubSettings, check_text, recipients_of
from salas.core.names import NAME_MAX, TOPIC_MAX, fold, valid_name

# -- helpers ------------------------------------------------------------------


def events_of(out: list[Delivery], sid: int) -> list[Event]:
    return recipients_of(out).get(sid, [])


def kinds(out: list[Delivery], sid: int) -> list[type]:
    return [type(ev) for ev in events_of(out, sid)]


def members(hub: Hub, room: str) -> dict[str, str]:
    r = hub.room_named(room)
    assert r is not None
    return {hub.users[sid].name: modes for sid, modes in r.members.items()}


@pytest.fixture
def hub() -> Hub:
    return Hub(seed=1)


@pytest.fixture
def trio(hub: Hub) -> Hub:
    """alice (1), bob (2) and carol (3), registered, in no room."""
    register(hub, 1, "alice")
    register(hub, 2, "bob")
    register(hub, 3, "carol")
    return hub


@pytest.fixture
def tas(trio: Hub) -> Hub:
    """alice made tas; bob joined it; carol is in no room."""
    trio.handle(1, c.Create("tas"), 1.0)
    trio.handle(2, c.Join("tas"), 2.0)
    return trio


# -- register -----------------------------------------------------------------


def test_register_guest_gets_a_name_valid_as_an_irc_nick(hub: Hub) -> None:
    out = register(hub, 1)
    assert len(out) == 1
    assert out[0].to == (1,)
    ev = out[0].event
    assert isinstance(ev, Welcome)
    assert re.fullmatch(r"guest\d{5}", ev.user.name)
    assert valid_name(ev.user.name)
    assert ev.online == 1
    assert ev.server == "salas.local"
    assert ev.door == "line"
    assert ev.address == "127.0.0.1:40001"
    assert hub.user_named(ev.user.name.upper()) is hub.users[1]


def test_guest_names_are_unique(hub: Hub) -> None:
    for sid in range(1, 101):
        register(hub, sid)
    assert len({fold(u.name) for u in hub.users.values()}) == 100


def test_register_with_name_fills_username_realname_and_echo(hub: Hub) -> None:
    register(hub, 1, "Kay", echo=True)
    user = hub.users[1]
    assert (user.name, user.username, user.realname, user.echo) == ("Kay", "Kay", "Kay", True)
    assert hub.by_name == {"kay": user}


def test_welcome_counts_everyone_online(hub: Hub) -> None:
    register(hub, 1, "a")
    out = register(hub, 2, "b")
    assert recipients_of(out) == {2: [out[0].event]}
    assert isinstance(out[0].event, Welcome)
    assert out[0].event.online == 2


@pytest.mark.parametrize("taken", ["Kay", "kay", "KAY"])
def test_register_refuses_a_taken_name_case_insensitively(hub: Hub, taken: str) -> None:
    register(hub, 1, "Kay")
    err = refused(hub, 2, c.Register(taken, "line", "h", 1))
    assert err == e.NameTaken(taken)


def test_register_refuses_an_invalid_name(hub: Hub) -> None:
    assert refused(hub, 1, c.Register("Ana Maria", "line", "h", 1)) == e.NameInvalid("Ana Maria")
    assert hub.users == {}


def test_register_twice_on_one_session_is_refused(hub: Hub) -> None:
    register(hub, 1, "Kay")
    assert refused(hub, 1, c.Register("Other", "line", "h", 1)) == e.NameTaken("Kay")


def test_uniquify_adds_a_number_to_a_taken_name(hub: Hub) -> None:
    register(hub, 1, "Kay")
    register(hub, 2, "Kay", door="cs168", uniquify=True)
    register(hub, 3, "kay", door="cs168", uniquify=True)
    assert [u.name for u in hub.users.values()] == ["Kay", "Kay2", "kay3"]


def test_uniquify_keeps_a_long_name_within_the_limit(hub: Hub) -> None:
    long = "x" * NAME_MAX
    register(hub, 1, long)
    register(hub, 2, long, uniquify=True)
    name = hub.users[2].name
    assert name == "x" * (NAME_MAX - 1) + "2"
    assert valid_name(name)


@pytest.mark.parametrize(
    ("wanted", "got"),
    [("Ana Maria", "Ana_Maria"), ("1up", "_1up"), ("José", "Jos_"), ("y" * 40, "y" * NAME_MAX)],
)
def test_uniquify_sanitizes_an_invalid_name(hub: Hub, wanted: str, got: str) -> None:
    out = register(hub, 1, wanted, door="cs168", uniquify=True)
    assert isinstance(out[0].event, Welcome)
    assert out[0].event.user.name == got


def test_uniquify_sanitizes_and_then_numbers(hub: Hub) -> None:
    register(hub, 1, "Ana_Maria")
    register(hub, 2, "Ana Maria", uniquify=True)
    assert hub.users[2].name == "Ana_Maria2"


def test_uniquify_with_nothing_usable_gives_a_guest_name(hub: Hub) -> None:
    register(hub, 1, "   ", uniquify=True)
    assert re.fullmatch(r"guest\d{5}", hub.users[1].name)


def test_register_in_lobby_makes_a_permanent_lobby_without_operators(hub: Hub) -> None:
    out = register(hub, 1, "alice", lobby=True)
    assert kinds(out, 1) == [Welcome, Joined, NameList]
    joined = out[1].event
    assert isinstance(joined, Joined)
    assert (joined.room, joined.user.name, joined.count) == ("lobby", "alice", 1)
    lobby = hub.room_named("lobby")
    assert lobby is not None and lobby.permanent
    assert members(hub, "lobby") == {"alice": ""}

    out = register(hub, 2, "bob", lobby=True)
    assert kinds(out, 1) == [Joined]
    assert kinds(out, 2) == [Welcome, Joined, NameList]
    assert members(hub, "lobby") == {"alice": "", "bob": ""}


def test_joining_the_lobby_makes_it_when_nobody_has_yet(hub: Hub) -> None:
    # The web client logs in first and then joins the lobby, on a fresh server too.
    register(hub, 1, "alice")
    assert Joined in kinds(hub.handle(1, c.Join("Lobby"), 1.0), 1)
    lobby = hub.room_named("lobby")
    assert lobby is not None and lobby.permanent
    assert members(hub, "lobby") == {"alice": ""}
    assert refused(hub, 1, c.Join("elsewhere")) == e.NoSuchRoom("elsewhere")


def test_lobby_name_follows_the_settings() -> None:
    hub = Hub(HubSettings(lobby="praca"), seed=1)
    register(hub, 1, "alice", lobby=True)
    assert list(hub.rooms) == ["praca"]


def test_register_into_a_full_lobby_registers_and_reports_the_lobby(hub: Hub) -> None:
    register(hub, 1, "alice", door="cs168")
    hub.handle(1, c.Create("lobby", limit=1), 1.0)
    out = register(hub, 2, "bob", lobby=True)
    # Registered (and told so); only the lobby join is refused, as a Failed for the Join.
    assert 2 in hub.users
    assert hub.user_named("bob") is hub.users[2]
    assert hub.users[2].rooms == {}
    assert kinds(out, 2) == [Welcome, Failed]
    assert set(recipients_of(out)) == {2}
    failed = out[1].event
    assert isinstance(failed, Failed)
    assert failed.error == e.RoomFull("lobby", 1)
    assert isinstance(failed.command, c.Join) and failed.command.room == "lobby"


def test_register_when_the_lobby_cannot_be_made_still_registers() -> None:
    hub = Hub(HubSettings(max_rooms=1), seed=1)
    register(hub, 1, "alice")
    hub.handle(1, c.Create("other"), 1.0)
    out = register(hub, 2, "bob", lobby=True)
    assert 2 in hub.users
    assert kinds(out, 2) == [Welcome, Failed]
    assert isinstance(out[1].event, Failed)
    assert out[1].event.error == e.TooManyRooms(1)
    assert set(hub.rooms) == {"other"}


def test_the_lobby_cannot_be_taken_over_by_creating_it_first(hub: Hub) -> None:
    register(hub, 1, "mallory", door="cs168")
    hub.handle(1, c.Create("lobby", switch=True), 1.0)
    register(hub, 2, "bob", lobby=True)
    lobby = hub.room_named("lobby")
    assert lobby is not None
    assert lobby.permanent
    assert "o" not in lobby.members.get(1, "")


# -- rename -------------------------------------------------------------------


def test_rename_tells_oneself_and_room_mates_only(tas: Hub) -> None:
    out = tas.handle(2, c.Rename("robert"), 5.0)
    assert set(recipients_of(out)) == {1, 2}
    ev = out[0].event
    assert isinstance(ev, Renamed)
    assert (ev.old.name, ev.new.name) == ("bob", "robert")
    assert tas.user_named("bob") is None
    assert tas.user_named("ROBERT") is tas.users[2]
    assert tas.users[2].username == "robert"
    assert set(tas.by_name) == {"alice", "robert", "carol"}


def test_rename_with_no_rooms_tells_only_oneself(trio: Hub) -> None:
    out = trio.handle(3, c.Rename("caroline"), 1.0)
    assert set(recipients_of(out)) == {3}


@pytest.mark.parametrize("taken", ["bob", "Bob", "BOB"])
def test_rename_to_a_taken_name_is_refused_case_insensitively(trio: Hub, taken: str) -> None:
    assert refused(trio, 1, c.Rename(taken)) == e.NameTaken(taken)


def test_rename_changing_only_case_is_allowed(trio: Hub) -> None:
    out = trio.handle(1, c.Rename("Alice"), 1.0)
    assert len(out) == 1
    ev = out[0].event
    assert isinstance(ev, Renamed)
    assert (ev.old.name, ev.new.name) == ("alice", "Alice")
    assert trio.users[1].name == "Alice"
    assert trio.by_name["alice"] is trio.users[1]
    assert len(trio.by_name) == 3


def test_rename_to_the_same_name_does_nothing(trio: Hub) -> None:
    before = snapshot(trio)
    assert trio.handle(1, c.Rename("alice"), 1.0) == []
    assert snapshot(trio) == before


@pytest.mark.parametrize("bad", ["", "1x", "a b", "x" * (NAME_MAX + 1), "#chan"])
def test_rename_to_an_invalid_name_is_refused(trio: Hub, bad: str) -> None:
    assert refused(trio, 1, c.Rename(bad)) == e.NameInvalid(bad)


def test_a_name_given_up_can_be_taken(trio: Hub) -> None:
    trio.handle(2, c.Rename("robert"), 1.0)
    out = register(trio, 4, "Bob")
    assert isinstance(out[0].event, Welcome)


def test_keeps_a_chosen_username_on_rename(hub: Hub) -> None:
    hub.handle(1, c.Register("kay", "irc", "h", 1, username="kuser"), 0.0)
    hub.handle(1, c.Rename("kay2"), 1.0)
    assert hub.users[1].username == "kuser"


# -- create, join, leave --------------------------------------------------------


def test_create_makes_the_creator_its_operator(trio: Hub) -> None:
    out = trio.handle(1, c.Create("tas"), 1.0)
    assert kinds(out, 1) == [Joined, NameList]
    joined = out[0].event
    assert isinstance(joined, Joined)
    assert (joined.room, joined.count) == ("tas", 1)
    room = trio.room_named("TAS")
    assert room is not None and not room.permanent
    assert room.owner == "alice"
    assert members(trio, "tas") == {"alice": "o"}
    assert trio.users[1].current_room() is room


def test_join_tells_every_member_and_gives_names_to_the_newcomer(tas: Hub) -> None:
    out = tas.handle(3, c.Join("TAS"), 3.0)
    per = recipients_of(out)
    assert set(per) == {1, 2, 3}
    assert [type(ev) for ev in per[1]] == [Joined]
    assert [type(ev) for ev in per[3]] == [Joined, NameList]
    joined = per[1][0]
    assert isinstance(joined, Joined)
    assert (joined.room, joined.user.name, joined.count) == ("tas", "carol", 3)
    names = per[3][1]
    assert isinstance(names, NameList)
    assert [(m.user.name, m.modes) for m in names.members] == [
        ("alice", "o"),
        ("bob", ""),
        ("carol", ""),
    ]


def test_join_a_missing_room_is_refused(trio: Hub) -> None:
    assert refused(trio, 1, c.Join("nowhere")) == e.NoSuchRoom("nowhere")


@pytest.mark.parametrize("name", ["", "#", "-1", "a b"])
def test_join_a_name_no_room_can_have_says_so(trio: Hub, name: str) -> None:
    assert refused(trio, 1, c.Join(name)) == e.RoomNameInvalid(name)


def test_join_with_create_makes_the_room(trio: Hub) -> None:
    trio.handle(1, c.Join("new", create=True), 1.0)
    assert members(trio, "new") == {"alice": "o"}


def test_join_with_create_refuses_an_invalid_room_name(trio: Hub) -> None:
    assert refused(trio, 1, c.Join("a b", create=True)) == e.RoomNameInvalid("a b")


def test_join_a_room_one_is_in_is_refused(tas: Hub) -> None:
    assert refused(tas, 2, c.Join("tas", switch=True)) == e.AlreadyInRoom("bob", "tas")


@pytest.mark.parametrize("name", ["tas", "TAS", "Tas"])
def test_create_an_existing_room_is_refused_case_insensitively(tas: Hub, name: str) -> None:
    assert refused(tas, 3, c.Create(name)) == e.RoomExists("tas")


@pytest.mark.parametrize("name", ["", "#tas", "a b", "a,b", "x" * 50])
def test_create_an_invalid_room_is_refused(trio: Hub, name: str) -> None:
    assert refused(trio, 1, c.Create(name)) == e.RoomNameInvalid(name)


@pytest.mark.parametrize("limit", [0, -1, MAX_LIMIT + 1])
def test_create_with_a_bad_limit_is_refused(trio: Hub, limit: int) -> None:
    assert refused(trio, 1, c.Create("tas", limit=limit)) == e.LimitInvalid(str(limit))


def test_create_refused_when_there_are_too_many_rooms() -> None:
    hub = Hub(HubSettings(max_rooms=1), seed=1)
    register(hub, 1, "alice")
    register(hub, 2, "bob")
    hub.handle(1, c.Create("one"), 1.0)
    assert refused(hub, 2, c.Create("two")) == e.TooManyRooms(1)


def test_join_with_switch_leaves_the_old_room_first(tas: Hub) -> None:
    tas.handle(3, c.Create("other"), 3.0)
    out = tas.handle(2, c.Join("other", switch=True), 4.0)
    per = recipients_of(out)
    assert [type(ev) for ev in per[1]] == [Left]
    assert [type(ev) for ev in per[2]] == [Left, Joined, NameList]
    assert [type(ev) for ev in per[3]] == [Joined]
    left = per[1][0]
    assert isinstance(left, Left)
    assert (left.room, left.user.name, left.count, left.kind) == ("tas", "bob", 1, "leave")
    assert list(tas.users[2].rooms) == ["other"]
    assert members(tas, "tas") == {"alice": "o"}
    assert members(tas, "other") == {"carol": "o", "bob": ""}


def test_join_without_switch_keeps_the_old_rooms(tas: Hub) -> None:
    tas.handle(3, c.Create("other"), 3.0)
    tas.handle(2, c.Join("other"), 4.0)
    assert list(tas.users[2].rooms) == ["tas", "other"]
    current = tas.users[2].current_room()
    assert current is not None and current.name == "other"


def test_create_with_switch_leaves_the_old_room(tas: Hub) -> None:
    out = tas.handle(2, c.Create("mine", switch=True), 3.0)
    assert kinds(out, 1) == [Left]
    assert list(tas.users[2].rooms) == ["mine"]
    assert members(tas, "mine") == {"bob": "o"}


def _full_private_keyed(hub: Hub) -> None:
    """carol is in 'home'; rooms: full (limit 1), priv (private), locked (key s3cret)."""
    hub.handle(3, c.Create("home"), 1.0)
    hub.handle(1, c.Create("full", limit=1), 1.0)
    hub.handle(1, c.Create("priv", private=True), 1.0)
    hub.handle(1, c.Create("locked", key="s3cret"), 1.0)


@pytest.mark.parametrize(
    ("cmd", "error"),
    [
        (c.Join("nowhere", switch=True), e.NoSuchRoom("nowhere")),
        (c.Join("full", switch=True), e.RoomFull("full", 1)),
        (c.Join("priv", switch=True), e.InviteOnly("priv")),
        (c.Join("locked", switch=True), e.BadKey("locked")),
        (c.Join("locked", "wrong", switch=True), e.BadKey("locked")),
        (c.Create("full", switch=True), e.RoomExists("full")),
        (c.Create("bad name", switch=True), e.RoomNameInvalid("bad name")),
    ],
)
def test_a_refused_switch_stays_in_the_old_room(
    trio: Hub, cmd: c.Command, error: e.ChatError
) -> None:
    _full_private_keyed(trio)
    assert refused(trio, 3, cmd) == error
    assert list(trio.users[3].rooms) == ["home"]


def test_room_limit(trio: Hub) -> None:
    trio.handle(1, c.Create("Teste", limit=2), 1.0)
    trio.handle(2, c.Join("teste"), 2.0)
    assert refused(trio, 3, c.Join("Teste")) == e.RoomFull("Teste", 2)
    trio.handle(2, c.Leave("Teste"), 3.0)
    out = trio.handle(3, c.Join("Teste"), 4.0)
    assert Joined in kinds(out, 3)


def test_private_room_needs_an_invitation(trio: Hub) -> None:
    trio.handle(1, c.Create("priv", private=True), 1.0)
    assert refused(trio, 2, c.Join("priv")) == e.InviteOnly("priv")
    out = trio.handle(1, c.Invite("BOB", "priv"), 2.0)
    per = recipients_of(out)
    assert set(per) == {1, 2}
    ev = per[2][0]
    assert isinstance(ev, Invited)
    assert (ev.room, ev.by.name, ev.target.name) == ("priv", "alice", "bob")
    # Only bob: the invitation is by name.
    assert refused(trio, 3, c.Join("priv")) == e.InviteOnly("priv")
    assert Joined in kinds(trio.handle(2, c.Join("priv"), 3.0), 2)
    # An invitation is used up by joining.
    trio.handle(2, c.Leave("priv"), 4.0)
    assert refused(trio, 2, c.Join("priv")) == e.InviteOnly("priv")


def test_invite_uses_the_current_room_when_none_is_named(trio: Hub) -> None:
    trio.handle(1, c.Create("priv", private=True), 1.0)
    trio.handle(1, c.Invite("bob", None), 2.0)
    room = trio.room_named("priv")
    assert room is not None and room.invited == {"bob"}


def test_invite_refusals(trio: Hub) -> None:
    trio.handle(1, c.Create("priv", private=True), 1.0)
    trio.handle(1, c.Invite("bob", "priv"), 1.0)
    trio.handle(2, c.Join("priv"), 1.0)
    # bob is a member but not an operator of the private room.
    assert refused(trio, 2, c.Invite("carol", "priv")) == e.NotRoomOperator("priv")
    assert refused(trio, 3, c.Invite("bob", "priv")) == e.NotInRoom("priv")
    assert refused(trio, 1, c.Invite("bob", "priv")) == e.AlreadyInRoom("bob", "priv")
    assert refused(trio, 1, c.Invite("nobody", "priv")) == e.NoSuchUser("nobody")
    assert refused(trio, 3, c.Invite("bob", None)) == e.NotInRoom("")
    assert refused(trio, 1, c.Invite("bob", "nowhere")) == e.NoSuchRoom("nowhere")


def test_room_key(trio: Hub) -> None:
    trio.handle(1, c.Create("locked", key="s3cret"), 1.0)
    assert refused(trio, 2, c.Join("locked")) == e.BadKey("locked")
    assert refused(trio, 2, c.Join("locked", "S3CRET")) == e.BadKey("locked")
    assert Joined in kinds(trio.handle(2, c.Join("locked", "s3cret"), 2.0), 2)


def test_leave_the_current_room(tas: Hub) -> None:
    out = tas.handle(2, c.Leave(None, "later"), 5.0)
    per = recipients_of(out)
    assert set(per) == {1, 2}
    ev = per[1][0]
    assert isinstance(ev, Left)
    assert (ev.room, ev.user.name, ev.count, ev.kind, ev.reason, ev.by) == (
        "tas",
        "bob",
        1,
        "leave",
        "later",
        None,
    )
    assert tas.users[2].rooms == {}
    assert members(tas, "tas") == {"alice": "o"}


def test_leave_refusals(tas: Hub) -> None:
    assert refused(tas, 3, c.Leave(None)) == e.NotInRoom("")
    assert refused(tas, 3, c.Leave("tas")) == e.NotInRoom("tas")
    assert refused(tas, 1, c.Leave("nowhere")) == e.NoSuchRoom("nowhere")


def test_an_emptied_room_stays_until_it_expires(tas: Hub) -> None:
    tas.handle(2, c.Leave("tas"), 5.0)
    tas.handle(1, c.Leave("tas"), 6.0)
    room = tas.room_named("tas")
    assert room is not None
    assert room.members == {}
    assert room.empty_since == 6.0


def test_first_member_of_an_emptied_user_room_gets_operator(tas: Hub) -> None:
    tas.handle(1, c.Leave("tas"), 3.0)
    tas.handle(2, c.Leave("tas"), 3.0)
    tas.handle(3, c.Join("tas"), 4.0)
    assert members(tas, "tas") == {"carol": "o"}


def test_the_creator_gets_operator_back_on_rejoining(tas: Hub) -> None:
    tas.handle(1, c.Leave("tas"), 3.0)
    tas.handle(1, c.Join("tas"), 4.0)
    assert members(tas, "tas") == {"bob": "", "alice": "o"}


# -- say and tell ---------------------------------------------------------------


def test_say_reaches_the_other_members_only(tas: Hub) -> None:
    tas.handle(3, c.Create("other"), 2.0)
    out = tas.handle(1, c.Say(None, "hi"), 7.0)
    per = recipients_of(out)
    assert set(per) == {2}
    ev = per[2][0]
    assert isinstance(ev, Message)
    assert (ev.room, ev.sender.name, ev.text, ev.kind, ev.time) == ("tas", "alice", "hi", "say", 7)


def test_say_echoes_to_the_sender_when_asked(trio: Hub) -> None:
    register(trio, 4, "dave", echo=True)
    trio.handle(1, c.Create("tas"), 1.0)
    trio.handle(4, c.Join("tas"), 1.0)
    per = recipients_of(trio.handle(4, c.Say("tas", "me too", "action"), 2.0))
    assert set(per) == {1, 4}
    assert len(per[4]) == 1
    assert per[1] == per[4]
    trio.handle(4, c.SetEcho(False), 3.0)
    assert set(recipients_of(trio.handle(4, c.Say("tas", "quiet"), 4.0))) == {1}


def test_message_ids_increase(tas: Hub) -> None:
    ids = []
    for i in range(3):
        (d,) = tas.handle(1, c.Say(None, f"m{i}"), 1.0)
        assert isinstance(d.event, Message)
        ids.append(d.event.id)
    assert ids == sorted(ids) and len(set(ids)) == 3


def test_say_speaks_in_the_most_recently_joined_room(tas: Hub) -> None:
    tas.handle(3, c.Create("other"), 2.0)
    tas.handle(2, c.Join("other"), 3.0)
    per = recipients_of(tas.handle(2, c.Say(None, "hey"), 4.0))
    assert set(per) == {3}


@pytest.mark.parametrize(
    ("cmd", "error"),
    [
        (c.Say(None, "hi"), e.NotInRoom("")),
        (c.Say("tas", "hi"), e.CannotSend("tas")),
        (c.Say("nowhere", "hi"), e.NoSuchRoom("nowhere")),
    ],
)
def test_say_refused_outside_a_room(tas: Hub, cmd: c.Command, error: e.ChatError) -> None:
    assert refused(tas, 3, cmd) == error


@pytest.mark.parametrize(
    "text", ["", "   ", "a\nb", "a\rb", "a\x00b", "a" * (MAX_TEXT_BYTES + 1), "é" * 2001]
)
def test_say_refuses_text_no_door_can_carry(tas: Hub, text: str) -> None:
    err = refused(tas, 1, c.Say(None, text))
    assert isinstance(err, e.TextInvalid)


@pytest.mark.parametrize("text", ["a" * MAX_TEXT_BYTES, "é" * 2000, "日" * 1333, " x "])
def test_check_text_accepts_up_to_the_limit(text: str) -> None:
    check_text(text)


def test_tell_reaches_the_target_only(tas: Hub) -> None:
    out = tas.handle(1, c.Tell("CAROL", "psst"), 3.0)
    per = recipients_of(out)
    assert set(per) == {3}
    ev = per[3][0]
    assert isinstance(ev, Private)
    assert (ev.sender.name, ev.target.name, ev.text, ev.kind) == ("alice", "carol", "psst", "say")


def test_tell_echoes_to_the_sender_when_asked(trio: Hub) -> None:
    trio.handle(1, c.SetEcho(True), 1.0)
    per = recipients_of(trio.handle(1, c.Tell("bob", "hi"), 1.0))
    assert set(per) == {1, 2}
    assert per[1] == per[2]


def test_tell_oneself_arrives_once(trio: Hub) -> None:
    out = trio.handle(1, c.Tell("alice", "note"), 1.0)
    assert recipients_of(out).keys() == {1}
    assert len(recipients_of(out)[1]) == 1


def test_tell_refusals(trio: Hub) -> None:
    assert refused(trio, 1, c.Tell("nobody", "hi")) == e.NoSuchUser("nobody")
    assert isinstance(refused(trio, 1, c.Tell("bob", " ")), e.TextInvalid)


# -- topic ------------------------------------------------------------------------


def test_room_operator_sets_the_topic(tas: Hub) -> None:
    out = tas.handle(1, c.Topic(None, "  exams on friday  "), 9.0)
    per = recipients_of(out)
    assert set(per) == {1, 2}
    ev = per[2][0]
    assert isinstance(ev, TopicChanged)
    assert (ev.room, ev.topic, ev.by.name, ev.time) == ("tas", "exams on friday", "alice", 9.0)
    room = tas.room_named("tas")
    assert room is not None
    assert (room.topic, room.topic_by, room.topic_at) == ("exams on friday", "alice", 9.0)


def test_topic_lock_keeps_non_operators_out(tas: Hub) -> None:
    assert refused(tas, 2, c.Topic(None, "mine")) == e.NotRoomOperator("tas")
    assert refused(tas, 3, c.Topic("tas", "mine")) == e.NotInRoom("tas")
    assert refused(tas, 3, c.Topic(None, "mine")) == e.NotInRoom("")


def test_topic_query_goes_to_the_asker(tas: Hub) -> None:
    tas.handle(1, c.Topic(None, "hello"), 2.0)
    out = tas.handle(3, c.Topic("tas"), 3.0)
    assert recipients_of(out) == {3: [TopicIs("tas", "hello", "alice", 2.0)]}


def test_newcomer_is_told_the_topic(tas: Hub) -> None:
    tas.handle(1, c.Topic(None, "hello"), 2.0)
    out = tas.handle(3, c.Join("tas"), 3.0)
    assert kinds(out, 3) == [Joined, TopicIs, NameList]
    assert kinds(out, 1) == [Joined]


def test_topic_can_be_cleared(tas: Hub) -> None:
    tas.handle(1, c.Topic(None, "hello"), 2.0)
    out = tas.handle(1, c.Topic(None, "   "), 3.0)
    ev = out[0].event
    assert isinstance(ev, TopicChanged) and ev.topic == ""


def test_topic_length(tas: Hub) -> None:
    tas.handle(1, c.Topic(None, "t" * TOPIC_MAX), 2.0)
    assert isinstance(refused(tas, 1, c.Topic(None, "t" * (TOPIC_MAX + 1))), e.TextInvalid)
    assert isinstance(refused(tas, 1, c.Topic(None, "a\nb")), e.TextInvalid)


def test_nobody_is_operator_of_the_lobby(hub: Hub) -> None:
    register(hub, 1, "alice", lobby=True)
    register(hub, 2, "bob", lobby=True)
    assert refused(hub, 1, c.Topic(None, "mine")) == e.NotRoomOperator("lobby")
    assert refused(hub, 1, c.Kick(None, "bob")) == e.NotRoomOperator("lobby")


# -- listings ----------------------------------------------------------------------


def test_list_rooms_permanent_first_then_by_age(hub: Hub) -> None:
    register(hub, 1, "alice")
    hub.handle(1, c.Create("Teste", limit=2, key="k"), 1.0)
    hub.handle(1, c.Create("priv", private=True), 2.0)
    register(hub, 2, "bob", lobby=True, now=3.0)
    out = hub.handle(2, c.ListRooms(), 4.0)
    assert recipients_of(out).keys() == {2}
    ev = out[0].event
    assert isinstance(ev, RoomList)
    assert [(r.name, r.count, r.limit, r.private, r.keyed) for r in ev.rooms] == [
        ("lobby", 1, None, False, False),
        ("Teste", 1, 2, False, True),
        ("priv", 1, None, True, False),
    ]


def test_list_users_of_the_current_room_shows_operators(tas: Hub) -> None:
    out = tas.handle(2, c.ListUsers(), 12.0)
    ev = out[0].event
    assert isinstance(ev, UserList)
    assert ev.room == "tas"
    assert [(u.name, u.modes, u.rooms, u.address, u.door) for u in ev.users] == [
        ("alice", "o", ("tas",), "127.0.0.1:40001", "line"),
        ("bob", "", ("tas",), "127.0.0.1:40002", "line"),
    ]
    assert ev.users[1].idle == 10.0


def test_list_users_everyone(tas: Hub) -> None:
    for cmd, sid in ((c.ListUsers(everyone=True), 1), (c.ListUsers(), 3)):
        ev = tas.handle(sid, cmd, 1.0)[0].event
        assert isinstance(ev, UserList)
        assert ev.room is None
        assert [u.name for u in ev.users] == ["alice", "bob", "carol"]


def test_private_rooms_hide_their_members(trio: Hub) -> None:
    trio.handle(1, c.Create("priv", private=True), 1.0)
    assert refused(trio, 2, c.ListUsers("priv")) == e.NotInRoom("priv")
    assert refused(trio, 2, c.Names("priv")) == e.NotInRoom("priv")
    assert refused(trio, 2, c.Topic("priv")) == e.NotInRoom("priv")


def test_names(tas: Hub) -> None:
    out = tas.handle(3, c.Names("TAS"), 1.0)
    ev = out[0].event
    assert isinstance(ev, NameList)
    assert [(m.user.name, m.modes) for m in ev.members] == [("alice", "o"), ("bob", "")]
    assert refused(tas, 3, c.Names("nowhere")) == e.NoSuchRoom("nowhere")


# -- kick --------------------------------------------------------------------------


def test_operator_kicks_a_member(tas: Hub) -> None:
    tas.handle(3, c.Join("tas"), 2.0)
    out = tas.handle(1, c.Kick(None, "BOB"), 3.0)
    per = recipients_of(out)
    assert set(per) == {1, 2, 3}
    ev = per[2][0]
    assert isinstance(ev, Left)
    assert (ev.room, ev.user.name, ev.count, ev.kind) == ("tas", "bob", 2, "kick")
    # Who kicked is in ``by``; the reason is only what the kicker gave.
    assert ev.by is not None and ev.by.name == "alice"
    assert ev.reason == ""
    assert members(tas, "tas") == {"alice": "o", "carol": ""}
    assert tas.users[2].rooms == {}


def test_kick_with_a_reason(tas: Hub) -> None:
    ev = tas.handle(1, c.Kick("tas", "bob", "spam"), 3.0)[0].event
    assert isinstance(ev, Left) and ev.reason == "spam"


def test_kick_refusals(tas: Hub) -> None:
    assert refused(tas, 2, c.Kick(None, "alice")) == e.NotRoomOperator("tas")
    assert refused(tas, 3, c.Kick("tas", "bob")) == e.NotInRoom("tas")
    assert refused(tas, 3, c.Kick(None, "bob")) == e.NotInRoom("")
    assert refused(tas, 1, c.Kick(None, "carol")) == e.UserNotInRoom("carol", "tas")
    assert refused(tas, 1, c.Kick(None, "nobody")) == e.NoSuchUser("nobody")


# -- quit, disconnect, shutdown, expiry -------------------------------------------------


def test_quit_tells_room_mates_and_frees_the_name(tas: Hub) -> None:
    out = tas.handle(2, c.Quit("bye"), 5.0)
    per = recipients_of(out)
    assert set(per) == {1, 2}
    left = per[1][0]
    assert isinstance(left, Left)
    assert (left.room, left.user.name, left.count, left.kind, left.reason) == (
        "tas",
        "bob",
        1,
        "quit",
        "bye",
    )
    assert per[2][-1] == Closing("bye", "quit")
    assert 2 not in tas.users
    assert tas.user_named("bob") is None
    assert members(tas, "tas") == {"alice": "o"}
    # A session that is gone can't do anything.
    assert tas.handle(2, c.Say(None, "ghost"), 6.0) == []


def test_disconnect_looks_like_a_quit_to_others(tas: Hub) -> None:
    out = tas.disconnect(2, "Connection reset", 5.0)
    per = recipients_of(out)
    ev = per[1][0]
    assert isinstance(ev, Left)
    assert (ev.kind, ev.reason, ev.count) == ("quit", "Connection reset", 1)
    assert not any(isinstance(x, Closing) for x in per.get(2, []))
    assert 2 not in tas.users
    assert tas.disconnect(2, "again", 6.0) == []


def test_quit_leaves_every_room(trio: Hub) -> None:
    trio.handle(1, c.Create("a"), 1.0)
    trio.handle(2, c.Create("b"), 1.0)
    trio.handle(3, c.Join("a"), 1.0)
    trio.handle(3, c.Join("b"), 1.0)
    per = recipients_of(trio.handle(3, c.Quit(), 2.0))
    assert [type(ev) for ev in per[1]] == [Left]
    assert [type(ev) for ev in per[2]] == [Left]
    assert members(trio, "a") == {"alice": "o"}
    assert members(trio, "b") == {"bob": "o"}


def test_shutdown_tells_everyone_and_changes_nothing(tas: Hub) -> None:
    before = snapshot(tas)
    out = tas.shutdown("maintenance")
    assert out == [Delivery((1, 2, 3), Closing("maintenance", "shutdown"))]
    assert snapshot(tas) == before
    assert Hub().shutdown("x") == []


def test_broadcast(tas: Hub) -> None:
    out = tas.broadcast("hello all", "admin console (ops)", "admin")
    assert recipients_of(out) == {sid: [ServerNotice("hello all", "admin")] for sid in (1, 2, 3)}
    with pytest.raises(e.TextInvalid):
        tas.broadcast("")


def test_expire_forgets_empty_user_rooms_after_the_ttl() -> None:
    hub = Hub(HubSettings(empty_room_ttl=60.0), seed=1)
    register(hub, 1, "alice", lobby=True)
    hub.handle(1, c.Create("tmp"), 0.0)
    hub.handle(1, c.Create("busy"), 0.0)
    hub.handle(1, c.Leave("tmp"), 100.0)
    hub.handle(1, c.Leave("lobby"), 100.0)
    assert hub.expire_rooms(159.0) == []
    assert hub.expire_rooms(160.0) == ["tmp"]
    assert hub.room_named("tmp") is None
    assert hub.expire_rooms(10_000.0) == []
    assert set(hub.rooms) == {"lobby", "busy"}
    # The name is free again.
    out = hub.handle(1, c.Create("TMP"), 10_001.0)
    assert Joined in kinds(out, 1)


def test_a_room_rejoined_before_the_ttl_is_kept() -> None:
    hub = Hub(HubSettings(empty_room_ttl=60.0), seed=1)
    register(hub, 1, "alice")
    hub.handle(1, c.Create("tmp"), 0.0)
    hub.handle(1, c.Leave("tmp"), 10.0)
    hub.handle(1, c.Join("tmp"), 50.0)
    assert hub.expire_rooms(1000.0) == []


# -- small commands -----------------------------------------------------------------


def test_echo(trio: Hub) -> None:
    assert recipients_of(trio.handle(1, c.Echo("ping"), 1.0)) == {1: [Echoed("ping")]}


def test_away_is_told_to_room_mates(tas: Hub) -> None:
    out = tas.handle(1, c.SetAway("  lunch "), 1.0)
    assert set(recipients_of(out)) == {1, 2}
    assert out[0].event == AwayChanged(tas.users[1].ref, "lunch")
    assert tas.users[1].away == "lunch"
    tas.handle(1, c.SetAway(None), 2.0)
    assert tas.users[1].away is None


def test_unregistered_sessions_get_nothing(hub: Hub) -> None:
    for cmd in (c.Say(None, "hi"), c.Join("x"), c.ListRooms(), c.Quit()):
        assert hub.handle(9, cmd, 1.0) == []


@pytest.mark.parametrize(
    "cmd",
    [
        c.Rename("ALICE"),
        c.Join("nowhere"),
        c.Create("tas"),
        c.Leave("other"),
        c.Say(None, ""),
        c.Tell("nobody", "x"),
        c.Topic("tas", "x"),
        c.ListUsers("nowhere"),
        c.Names("nowhere"),
        c.Kick(None, "alice"),
        c.Invite("nobody", None),
        c.SetAway("a\nb"),
    ],
)
def test_every_refusal_is_one_failed_to_the_sender(tas: Hub, cmd: c.Command) -> None:
    refused(tas, 2, cmd)


# -- room modes (IRC's MODE), bans, operators --------------------------------------------


def mode(add: bool, m: str, arg: str | None = None) -> c.ModeChange:
    return c.ModeChange(add, m, arg)


def test_modes_query_shows_key_only_to_members(tas: Hub) -> None:
    tas.handle(1, c.SetModes("tas", (mode(True, "k", "s3cret"), mode(True, "l", "5"))), 1.0)
    member = tas.handle(2, c.SetModes("tas"), 2.0)
    outsider = tas.handle(3, c.SetModes("tas"), 2.0)
    assert recipients_of(member).keys() == {2}
    ev = member[0].event
    assert isinstance(ev, ModesAre)
    assert (ev.room, ev.modes, ev.args) == ("tas", "klnt", ("s3cret", "5"))
    ev = outsider[0].event
    assert isinstance(ev, ModesAre)
    assert ev.args == ("5",)


def test_operator_sets_limit_key_and_privacy(tas: Hub) -> None:
    changes = (mode(True, "l", "2"), mode(True, "k", "pw"), mode(True, "i"), mode(False, "t"))
    out = tas.handle(1, c.SetModes("tas", changes), 3.0)
    assert set(recipients_of(out)) == {1, 2}
    ev = out[0].event
    assert isinstance(ev, ModesChanged)
    assert ev.changes == changes
    room = tas.room_named("tas")
    assert room is not None
    assert (room.limit, room.password, room.private, room.topic_locked) == (2, "pw", True, False)
    # -t: any member may now set the topic.
    assert TopicChanged in kinds(tas.handle(2, c.Topic(None, "free"), 4.0), 2)


def test_modes_that_change_nothing_tell_nobody(tas: Hub) -> None:
    assert tas.handle(1, c.SetModes("tas", (mode(True, "t"), mode(True, "n"))), 1.0) == []
    tas.handle(1, c.SetModes("tas", (mode(True, "l", "5"), mode(True, "k", "sesame"))), 1.0)
    again = (mode(True, "l", "5"), mode(True, "k", "sesame"))
    assert tas.handle(1, c.SetModes("tas", again), 2.0) == []


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ((mode(True, "l"),), e.ModeArgMissing("l")),
        ((mode(True, "l", "0"),), e.LimitInvalid("0")),
        ((mode(True, "l", "many"),), e.LimitInvalid("many")),
        ((mode(True, "l", "²"),), e.LimitInvalid("²")),
        ((mode(True, "l", str(MAX_LIMIT + 1)),), e.LimitInvalid(str(MAX_LIMIT + 1))),
        ((mode(True, "k"),), e.ModeArgMissing("k")),
        ((mode(True, "k", "a b"),), e.ModeArgInvalid("k", "no spaces, commas or colons in a key")),
        ((mode(True, "k", "k" * 33),), e.ModeArgInvalid("k", "at most 32 characters")),
        ((mode(True, "b", "m" * 151),), e.ModeArgInvalid("b", "at most 150 characters")),
        ((mode(True, "o"),), e.ModeArgMissing("o")),
        ((mode(True, "o", "nobody"),), e.NoSuchUser("nobody")),
        ((mode(True, "v", "carol"),), e.UserNotInRoom("carol", "tas")),
        ((mode(True, "b"),), e.ModeArgMissing("b")),
        ((mode(True, "x"),), e.UnknownMode("x")),
        # All or nothing: a good change next to a bad one is not applied either.
        ((mode(True, "l", "5"), mode(True, "o", "nobody")), e.NoSuchUser("nobody")),
        ((mode(True, "i"), mode(True, "z")), e.UnknownMode("z")),
    ],
)
def test_bad_modes_are_refused_whole(
    tas: Hub, changes: tuple[c.ModeChange, ...], error: e.ChatError
) -> None:
    assert refused(tas, 1, c.SetModes("tas", changes)) == error


def test_only_operators_change_modes(tas: Hub) -> None:
    assert refused(tas, 2, c.SetModes("tas", (mode(True, "i"),))) == e.NotRoomOperator("tas")
    assert refused(tas, 3, c.SetModes("tas", (mode(True, "i"),))) == e.NotInRoom("tas")
    assert refused(tas, 1, c.SetModes("nowhere", ())) == e.NoSuchRoom("nowhere")


def test_operator_gives_and_takes_operator(tas: Hub) -> None:
    out = tas.handle(1, c.SetModes("tas", (mode(True, "o", "BOB"),)), 1.0)
    ev = out[0].event
    assert isinstance(ev, ModesChanged) and ev.changes == (mode(True, "o", "bob"),)
    assert members(tas, "tas") == {"alice": "o", "bob": "o"}
    tas.handle(2, c.SetModes("tas", (mode(False, "o", "alice"),)), 2.0)
    assert members(tas, "tas") == {"alice": "", "bob": "o"}
    assert refused(tas, 1, c.Kick(None, "bob")) == e.NotRoomOperator("tas")


def test_moderated_room_needs_voice(tas: Hub) -> None:
    tas.handle(1, c.SetModes("tas", (mode(True, "m"),)), 1.0)
    assert refused(tas, 2, c.Say(None, "hi")) == e.CannotSend("tas")
    tas.handle(1, c.SetModes("tas", (mode(True, "v", "bob"),)), 2.0)
    assert members(tas, "tas") == {"alice": "o", "bob": "v"}
    assert set(recipients_of(tas.handle(2, c.Say(None, "hi"), 3.0))) == {1}


def test_no_external_off_lets_outsiders_speak(tas: Hub) -> None:
    tas.handle(1, c.SetModes("tas", (mode(False, "n"),)), 1.0)
    out = tas.handle(3, c.Say("tas", "from outside"), 2.0)
    assert set(recipients_of(out)) == {1, 2}


def test_a_ban_keeps_a_user_out_and_quiet(tas: Hub) -> None:
    out = tas.handle(1, c.SetModes("tas", (mode(True, "b", "Carol"),)), 1.0)
    ev = out[0].event
    assert isinstance(ev, ModesChanged) and ev.changes == (mode(True, "b", "Carol!*@*"),)
    assert refused(tas, 3, c.Join("tas")) == e.Banned("tas")
    tas.handle(1, c.SetModes("tas", (mode(True, "b", "bob!*@127.0.0.*"),)), 2.0)
    assert refused(tas, 2, c.Say(None, "hi")) == e.CannotSend("tas")
    bans = tas.handle(2, c.ListBans("tas"), 3.0)[0].event
    assert isinstance(bans, BanList) and bans.masks == ("Carol!*@*", "bob!*@127.0.0.*")
    tas.handle(1, c.SetModes("tas", (mode(False, "b", "carol!*@*"),)), 4.0)
    assert Joined in kinds(tas.handle(3, c.Join("tas"), 5.0), 3)


def test_an_ipv6_host_is_banned_as_irc_shows_it_or_as_it_is(tas: Hub) -> None:
    tas.handle(4, c.Register("dan", "irc", "::1", 1, username="d"), 0.0)
    tas.handle(1, c.SetModes("tas", (mode(True, "b", "*!*@0::1"),)), 1.0)  # as WHO shows it
    assert refused(tas, 4, c.Join("tas")) == e.Banned("tas")
    tas.handle(
        1, c.SetModes("tas", (mode(False, "b", "*!*@0::1"), mode(True, "b", "*!*@::1"))), 2.0
    )
    assert refused(tas, 4, c.Join("tas")) == e.Banned("tas")
    tas.handle(
        1, c.SetModes("tas", (mode(False, "b", "*!*@::1"), mode(True, "b", "*!*@0::2"))), 3.0
    )
    assert Joined in kinds(tas.handle(4, c.Join("tas"), 4.0), 4)


def test_a_banned_outsider_cannot_send_to_a_room_open_to_outsiders(tas: Hub) -> None:
    tas.handle(1, c.SetModes("tas", (mode(False, "n"), mode(True, "b", "carol"))), 1.0)
    assert refused(tas, 3, c.Say("tas", "still here")) == e.CannotSend("tas")


def test_a_server_operator_passes_every_room_check(tas: Hub) -> None:
    tas.handle(1, c.Create("vip", limit=1, key="k", private=True), 1.0)
    tas.handle(1, c.SetModes("vip", (mode(True, "b", "carol"),)), 1.0)
    out = tas.handle(3, c.BecomeOper("carol"), 2.0)
    assert recipients_of(out) == {3: [OperGranted(tas.users[3].ref)]}
    assert tas.users[3].oper
    assert Joined in kinds(tas.handle(3, c.Join("vip"), 3.0), 3)
    assert TopicChanged in kinds(tas.handle(3, c.Topic("vip", "mine"), 4.0), 3)
    assert Left in kinds(tas.handle(3, c.Kick("tas", "bob"), 5.0), 2)


def test_whois_hides_private_rooms_from_outsiders(tas: Hub) -> None:
    tas.handle(1, c.Create("priv", private=True), 1.0)
    ev = tas.handle(3, c.Whois("ALICE", "t1"), 2.0)[0].event
    assert isinstance(ev, WhoisReply)
    assert (ev.user.name, ev.rooms, ev.tag) == ("alice", (("tas", "@"),), "t1")
    ev = tas.handle(1, c.Whois("alice"), 2.0)[0].event
    assert isinstance(ev, WhoisReply)
    assert ev.rooms == (("tas", "@"), ("priv", "@"))
    assert refused(tas, 1, c.Whois("nobody")) == e.NoSuchUser("nobody")


def test_stats(tas: Hub) -> None:
    assert recipients_of(tas.handle(3, c.Stats(), 1.0)) == {3: [StatsReply(3, 1, 0)]}


def test_leave_all(tas: Hub) -> None:
    tas.handle(2, c.Create("b"), 1.0)
    out = tas.handle(2, c.LeaveAll(), 2.0)
    assert kinds(out, 1) == [Left]
    assert kinds(out, 2) == [Left, Left]
    assert tas.users[2].rooms == {}
    assert tas.handle(2, c.LeaveAll(), 3.0) == []

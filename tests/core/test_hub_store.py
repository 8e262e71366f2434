"""The hub's side of keeping things: what it journals, what it restores,
history on joining, accounts and the names they reserve."""

from __future__ import annotations

import pytest

from hubstate import refused, register
from salas.core import commands as c
from salas.core import errors as e
from salas.core.events import (
    AccountChanged,
    AccountRegistered,
    Closing,
    Delivery,
    Failed,
    HistoryReply,
    HistoryWanted,
    Joined,
    LoggedIn,
    Message,
    NameList,
    OperGranted,
    PasswordChanged,
    Private,
    Renamed,
    TargetsWanted,
)
from salas.core.hub import Hub, HubSettings, recipients_of
from salas.core.model import UserRef
from salas.core.records import AccountRecord, Loaded, RoomClosed, RoomRecord


def said(hub: Hub, sid: int, text: str, now: float = 5.0) -> Message:
    out = hub.handle(sid, c.Say(None, text), now)
    msgs = [d.event for d in out if isinstance(d.event, Message)]
    assert msgs, out
    return msgs[0]


def events(out: list[Delivery], sid: int) -> list[object]:
    return list(recipients_of(out).get(sid, []))


@pytest.fixture
def hub() -> Hub:
    return Hub(HubSettings(history_on_join=3), seed=1)


@pytest.fixture
def pair(hub: Hub) -> Hub:
    """alice (1) made tas, bob (2) joined it; the journal is emptied."""
    register(hub, 1, "alice")
    register(hub, 2, "bob")
    hub.handle(1, c.Create("tas", limit=5), 1.0)
    hub.handle(2, c.Join("tas"), 2.0)
    hub.journal.clear()
    return hub


# -- the journal ----------------------------------------------------------------


def test_a_room_message_is_journaled_with_its_room_id(pair: Hub) -> None:
    msg = said(pair, 1, "hello")
    room = pair.room_named("tas")
    assert room is not None and room.id > 0
    assert pair.journal == [(room.id, msg)]


def test_a_private_message_is_journaled_without_a_room(pair: Hub) -> None:
    out = pair.handle(1, c.Tell("bob", "psst"), 5.0)
    (priv,) = [d.event for d in out if isinstance(d.event, Private)]
    assert pair.journal == [(0, priv)]


def test_message_ids_grow(pair: Hub) -> None:
    ids = [said(pair, 1, f"m{i}").id for i in range(3)]
    assert ids == sorted(ids) and len(set(ids)) == 3


def test_a_refused_message_journals_nothing(pair: Hub) -> None:
    refused(pair, 1, c.Say(None, ""))
    assert pair.journal == []


def test_a_new_room_is_journaled_whole(hub: Hub) -> None:
    register(hub, 1, "alice")
    hub.journal.clear()
    hub.handle(1, c.Create("tas", limit=7), 1.0)
    (rec,) = [r for r in hub.journal if isinstance(r, RoomRecord)]
    assert (rec.name, rec.key, rec.limit, rec.owner) == ("tas", "tas", 7, "alice")


def test_topic_and_room_modes_are_journaled_but_not_member_ranks(pair: Hub) -> None:
    pair.handle(1, c.Topic(None, "talk"), 3.0)
    pair.handle(1, c.SetModes("tas", (c.ModeChange(True, "o", "bob"),)), 3.0)
    pair.handle(1, c.SetModes("tas", (c.ModeChange(True, "k", "sesame"),)), 3.0)
    recs = [r for r in pair.journal if isinstance(r, RoomRecord)]
    assert [(r.topic, r.password) for r in recs] == [("talk", None), ("talk", "sesame")]


def test_an_expired_guest_room_is_journaled_closed(pair: Hub) -> None:
    pair.handle(1, c.Leave("tas"), 3.0)
    pair.handle(2, c.Leave("tas"), 3.0)
    room = pair.room_named("tas")
    assert room is not None
    assert pair.expire_rooms(3.0 + pair.settings.empty_room_ttl) == ["tas"]
    assert pair.journal[-1] == RoomClosed(room.id, 3.0 + pair.settings.empty_room_ttl)


def test_a_room_owned_by_an_account_lasts_when_empty(hub: Hub) -> None:
    register(hub, 1, "alice")
    hub.register_account(1, "$argon2id$x", 1.0)
    hub.handle(1, c.Create("club"), 2.0)
    hub.handle(1, c.Leave("club"), 3.0)
    assert hub.expire_rooms(10**9) == []
    assert hub.room_named("club") is not None


# -- history on joining ---------------------------------------------------------


def test_a_newcomer_is_shown_the_last_messages_after_the_names(pair: Hub) -> None:
    texts = [said(pair, 1, f"m{i}").text for i in range(5)]
    register(pair, 3, "carol")
    out = pair.handle(3, c.Join("tas"), 9.0)
    evs = events(out, 3)
    assert [type(ev) for ev in evs] == [Joined, NameList, HistoryReply]
    reply = evs[-1]
    assert isinstance(reply, HistoryReply)
    assert reply.reason == "join" and reply.room and reply.target == "tas"
    assert [m.text for m in reply.messages] == texts[-3:]
    # Only the newcomer is shown it.
    assert not any(isinstance(ev, HistoryReply) for ev in events(out, 1))


def joined_playback(hub: Hub, sid: int, name: str, now: float) -> list[str]:
    """What ``name`` (a newcomer) is shown on joining tas."""
    register(hub, sid, name)
    shown = events(hub.handle(sid, c.Join("tas"), now), sid)
    return [m.text for ev in shown if isinstance(ev, HistoryReply) for m in ev.messages]


def test_a_newcomer_is_shown_no_more_than_retention_keeps() -> None:
    hub = Hub(HubSettings(history_on_join=20, history_kept=3), seed=1)
    register(hub, 1, "alice")
    hub.handle(1, c.Create("tas"), 1.0)
    for i in range(6):
        said(hub, 1, f"m{i}")
    assert joined_playback(hub, 2, "bob", 9.0) == ["m3", "m4", "m5"]


def test_a_newcomer_is_not_shown_what_retention_by_age_dropped(pair: Hub) -> None:
    for i in range(3):
        said(pair, 1, f"m{i}", 10.0 * (i + 1))  # at 10, 20 and 30
    pair.forget_before(25.0)
    assert joined_playback(pair, 3, "carol", 40.0) == ["m2"]


def test_no_history_shown_when_the_setting_is_zero() -> None:
    hub = Hub(HubSettings(history_on_join=0), seed=1)
    register(hub, 1, "alice")
    register(hub, 2, "bob")
    hub.handle(1, c.Create("tas"), 1.0)
    said(hub, 1, "hi")
    out = hub.handle(2, c.Join("tas"), 2.0)
    assert not any(isinstance(ev, HistoryReply) for ev in events(out, 2))


def test_an_empty_room_shows_no_history(pair: Hub) -> None:
    register(pair, 3, "carol")
    out = pair.handle(3, c.Join("tas"), 9.0)
    assert not any(isinstance(ev, HistoryReply) for ev in events(out, 3))


# -- restoring what was kept ----------------------------------------------------

LOADED = Loaded(
    rooms=(
        RoomRecord(
            4,
            "tas",
            "tas",
            100.0,
            "alice",
            9,
            "sesame",
            True,
            "talk",
            "alice",
            150.0,
            "nt",
            ("*!*@bad",),
        ),
    ),
    accounts=(AccountRecord("alice", "alice", "$argon2id$h", True, 50.0),),
    last_message_id=41,
    last_room_id=6,
)


def test_rooms_and_accounts_come_back_as_they_were() -> None:
    hub = Hub(seed=1, loaded=LOADED, now=200.0)
    room = hub.room_named("tas")
    assert room is not None
    assert (room.id, room.limit, room.password, room.private, room.topic, room.owner) == (
        4,
        9,
        "sesame",
        True,
        "talk",
        "alice",
    )
    assert room.topic_locked and room.no_external and not room.moderated
    assert room.bans == ["*!*@bad"]
    assert room.empty_since == 200.0
    assert "alice" in hub.accounts


def test_ids_go_on_from_where_the_store_left_off() -> None:
    hub = Hub(seed=1, loaded=LOADED, now=200.0)
    register(hub, 1, "bob")
    hub.handle(1, c.Create("new"), 201.0)
    new = hub.room_named("new")
    assert new is not None and new.id == 7
    assert said(hub, 1, "first").id == 42


def test_a_restored_rooms_tail_is_read_once_from_the_store() -> None:
    calls: list[tuple[int, str, int]] = []
    old = Message(40, 140.0, "tas", UserRef(0, "alice", "alice", "h"), "before the restart")

    def recent(room_id: int, name: str, n: int) -> list[Message]:
        calls.append((room_id, name, n))
        return [old]

    hub = Hub(HubSettings(history_on_join=5), seed=1, loaded=LOADED, recent=recent, now=200.0)
    register(hub, 1, "bob")
    room = hub.room_named("tas")
    assert room is not None
    room.private = False  # open it up, so anyone may join
    room.password = None
    out = hub.handle(1, c.Join("tas"), 202.0)
    (reply,) = [ev for ev in events(out, 1) if isinstance(ev, HistoryReply)]
    assert [m.text for m in reply.messages] == ["before the restart"]
    said(hub, 1, "after")
    register(hub, 2, "carol")
    out = hub.handle(2, c.Join("tas"), 203.0)
    (reply,) = [ev for ev in events(out, 2) if isinstance(ev, HistoryReply)]
    assert [m.text for m in reply.messages] == ["before the restart", "after"]
    assert calls == [(4, "tas", 5)]


# -- names that accounts reserve ------------------------------------------------


def test_a_guest_cannot_take_a_registered_name() -> None:
    hub = Hub(seed=1, loaded=LOADED, now=0.0)
    register(hub, 1, "bob")
    err = refused(hub, 1, c.Rename("Alice"))
    assert err == e.NameReserved("Alice")
    out = register(hub, 2, "alice")
    assert isinstance(out[0].event, Failed) and out[0].event.error == e.NameReserved("alice")


def test_a_door_that_cannot_refuse_gets_another_name() -> None:
    hub = Hub(seed=1, loaded=LOADED, now=0.0)
    register(hub, 1, "alice", uniquify=True)
    assert hub.users[1].name == "alice2"


def test_guest_names_avoid_accounts() -> None:
    hub = Hub(seed=1, loaded=LOADED, now=0.0)
    register(hub, 1)
    assert hub.users[1].name.startswith("guest")


def test_proving_an_account_before_registering_allows_its_name(hub: Hub) -> None:
    hub = Hub(seed=1, loaded=LOADED, now=0.0)
    out = hub.log_in(1, "alice", "sasl", 1.0)
    assert [type(d.event) for d in out] == [LoggedIn]
    register(hub, 1, "alice")
    user = hub.users[1]
    assert (user.name, user.account, user.oper) == ("alice", "alice", True)
    assert hub.preauth == {}


def test_a_session_that_goes_before_registering_forgets_its_proof() -> None:
    hub = Hub(seed=1, loaded=LOADED, now=0.0)
    hub.log_in(1, "alice", "sasl", 1.0)
    hub.disconnect(1, "gone", 2.0)
    assert hub.preauth == {}


# -- accounts -------------------------------------------------------------------


def test_registering_makes_the_name_an_account(pair: Hub) -> None:
    out = pair.register_account(1, "$argon2id$h", 3.0)
    assert pair.users[1].account == "alice"
    assert isinstance(events(out, 1)[-1], AccountRegistered)
    # bob shares tas with alice: he is told (IRC account-notify).
    (note,) = events(out, 2)
    assert isinstance(note, AccountChanged) and note.account == "alice"
    (rec,) = pair.journal
    assert isinstance(rec, AccountRecord) and rec.key == "alice" and rec.hash == "$argon2id$h"


def test_a_name_is_registered_once(pair: Hub) -> None:
    pair.register_account(1, "$argon2id$h", 3.0)
    pair.handle(1, c.Rename("alice2"), 4.0)  # an account's owner may use another name
    pair.handle(2, c.Rename("bobby"), 4.0)
    out = pair.handle(2, c.Rename("alice"), 5.0)
    assert isinstance(out[0].event, Failed) and out[0].event.error == e.NameReserved("alice")
    with pytest.raises(e.AlreadyLoggedIn):
        pair.check_register(1)


def test_register_refuses_a_taken_account_name(pair: Hub) -> None:
    pair.accounts["bob"] = AccountRecord("bob", "bob", "$argon2id$x", False, 0.0)
    out = pair.register_account(2, "$argon2id$h", 3.0)
    assert isinstance(out[0].event, Failed) and out[0].event.error == e.AccountExists("bob")


def test_logging_in_takes_the_accounts_name_and_puts_out_whoever_held_it(pair: Hub) -> None:
    pair.register_account(1, "$argon2id$h", 3.0)
    register(pair, 3, "carol")
    out = pair.log_in(3, "alice", "login", 4.0)
    assert 1 not in pair.users
    assert any(isinstance(ev, Closing) for ev in events(out, 1))
    user = pair.users[3]
    assert (user.name, user.account) == ("alice", "alice")
    assert any(isinstance(ev, Renamed) for ev in events(out, 3))
    assert isinstance(events(out, 3)[-1], LoggedIn)


def test_sasl_after_registering_keeps_the_nick(pair: Hub) -> None:
    pair.accounts["ace"] = AccountRecord("ace", "Ace", "$argon2id$x", True, 0.0)
    out = pair.log_in(2, "ace", "sasl", 4.0)
    user = pair.users[2]
    assert (user.name, user.account, user.oper) == ("bob", "Ace", True)
    assert any(isinstance(ev, OperGranted) for ev in events(out, 2))


def test_changing_a_password_keeps_the_new_hash(pair: Hub) -> None:
    out = pair.set_password(1, "$argon2id$new", 3.0)
    assert isinstance(out[0].event, Failed) and out[0].event.error == e.NotLoggedIn()
    pair.register_account(1, "$argon2id$old", 3.0)
    out = pair.set_password(1, "$argon2id$new", 4.0)
    assert isinstance(out[0].event, PasswordChanged)
    assert pair.accounts["alice"].hash == "$argon2id$new"
    assert pair.journal[-1] == pair.accounts["alice"]


# -- a store that can't write -------------------------------------------------------


def test_messages_are_refused_while_the_store_cannot_write(pair: Hub) -> None:
    pair.store_ok = False
    assert refused(pair, 1, c.Say(None, "hi")) == e.StoreUnavailable()
    assert refused(pair, 1, c.Tell("bob", "hi")) == e.StoreUnavailable()
    with pytest.raises(e.StoreUnavailable) as refusal:
        pair.check_register(1)
    assert refusal.value.what == "accounts"  # said as such, not as a message not sent


# -- history requests ---------------------------------------------------------------


def test_a_history_request_is_checked_then_handed_on(pair: Hub) -> None:
    out = pair.handle(1, c.FetchHistory(None, True, 10**9, tag="t1"), 5.0)
    (d,) = out
    ev = d.event
    assert d.to == (1,) and isinstance(ev, HistoryWanted)
    room = pair.room_named("tas")
    assert room is not None
    assert (ev.target, ev.room_id, ev.limit, ev.tag) == ("tas", room.id, 1000, "t1")


def test_a_private_history_request_names_the_peers_account_and_when_mine_was_made(
    pair: Hub,
) -> None:
    pair.register_account(1, "$argon2id$a", 3.0)  # alice's account, made at 3.0
    pair.register_account(2, "$argon2id$b", 4.0)
    pair.handle(2, c.Rename("bobby"), 5.0)  # bob, logged in, under another nick
    (d,) = pair.handle(1, c.FetchHistory("bob", False, 10), 6.0)
    assert isinstance(d.event, HistoryWanted)
    assert (d.event.peer_account, d.event.since) == ("bob", 3.0)
    (d,) = pair.handle(1, c.FetchHistory("carol", False, 10), 6.0)  # not registered
    assert isinstance(d.event, HistoryWanted)
    assert (d.event.peer_account, d.event.since) == (None, 3.0)


def test_history_of_a_private_room_is_for_its_members(pair: Hub) -> None:
    pair.handle(1, c.SetModes("tas", (c.ModeChange(True, "i"),)), 3.0)
    register(pair, 3, "carol")
    assert refused(pair, 3, c.FetchHistory("tas")) == e.NotInRoom("tas")


def test_history_of_an_open_room_is_for_anyone(pair: Hub) -> None:
    register(pair, 3, "carol")
    out = pair.handle(3, c.FetchHistory("tas"), 5.0)
    assert isinstance(out[0].event, HistoryWanted)


def test_private_history_needs_an_account(pair: Hub) -> None:
    assert refused(pair, 1, c.FetchHistory("bob", room=False)) == e.NotLoggedIn()
    pair.register_account(1, "$argon2id$h", 3.0)
    out = pair.handle(1, c.FetchHistory("bob", room=False), 5.0)
    ev = out[0].event
    assert isinstance(ev, HistoryWanted) and ev.room_id == 0 and ev.account == "alice"


def test_targets_lists_the_askers_rooms(pair: Hub) -> None:
    out = pair.handle(2, c.FetchTargets(0.0, 10.0), 5.0)
    ev = out[0].event
    assert isinstance(ev, TargetsWanted)
    assert [name for _, name in ev.rooms] == ["tas"]


@pytest.mark.parametrize("name", ["NickServ", "chanserv", "OPERSERV"])
def test_service_names_are_nobodys_on_any_door(hub: Hub, name: str) -> None:
    out = register(hub, 1, name)
    assert isinstance(out[0].event, Failed) and out[0].event.error == e.NameTaken(name)
    register(hub, 2, "bob")
    assert refused(hub, 2, c.Rename(name)) == e.NameTaken(name)
    register(hub, 3, name, uniquify=True)
    assert hub.users[3].name.lower() == name.lower() + "2"

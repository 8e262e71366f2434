"""Operator actions in the hub: what a server operator (or the admin console)
may do, who hears of it, the audit line that names who did it, and refusals
for everyone else that change nothing."""

from __future__ import annotations

import pytest

from hubstate import refused, register, snapshot
from salas.core import commands as c
from salas.core import errors as e
from salas.core.events import (
    AccountChanged,
    Audit,
    Closing,
    Delivery,
    Event,
    Left,
    Message,
    ModesChanged,
    OperDone,
    OperGranted,
    OperRevoked,
    OverviewReply,
    ServerNotice,
    ShutdownAsked,
    TopicChanged,
)
from salas.core.hub import SERVER_OWNER, Hub, HubSettings, recipients_of
from salas.core.records import AccountDeleted, AccountRecord, IdsUsed, RoomClosed

ADMIN = "admin console (ops)"


def events_of(out: list[Delivery], sid: int) -> list[Event]:
    return recipients_of(out).get(sid, [])


def audits(out: list[Delivery]) -> list[Audit]:
    return [d.event for d in out if isinstance(d.event, Audit) and d.to == ()]


@pytest.fixture
def hub() -> Hub:
    """alice (1) and bob (2) in room ``tas``; carol (3) in the lobby only."""
    h = Hub(HubSettings(), seed=1)
    for sid, name in ((1, "alice"), (2, "bob"), (3, "carol")):
        register(h, sid, name, lobby=True)
    h.handle(1, c.Create("tas", 5), 1.0)
    h.handle(2, c.Join("tas", switch=False), 1.0)
    h.journal.clear()
    return h


NON_OPERATOR_COMMANDS: list[c.Command] = [
    c.CloseRoom("tas", "no"),
    c.Kill("bob", "no"),
    c.Broadcast("hello"),
    c.Shutdown("now"),
    c.Overview(),
]


@pytest.mark.parametrize("cmd", NON_OPERATOR_COMMANDS, ids=lambda cmd: type(cmd).__name__)
def test_everyone_else_is_refused_and_nothing_changes(hub: Hub, cmd: c.Command) -> None:
    # alice owns the room and is its operator: still not a server operator.
    assert refused(hub, 1, cmd) == e.NotServerOperator()


def test_close_room_tells_each_member_once_and_forgets_the_room(hub: Hub) -> None:
    hub.users[3].oper = True
    out = hub.handle(3, c.CloseRoom("tas", "maintenance"), 2.0)
    for sid, name in ((1, "alice"), (2, "bob")):
        (ev,) = events_of(out, sid)  # one line each, however many members
        assert isinstance(ev, Left)
        assert (ev.room, ev.user.name, ev.kind, ev.reason) == ("tas", name, "close", "maintenance")
        assert ev.by is not None and ev.by.name == "carol"
        assert "tas" not in hub.users[sid].rooms
    assert hub.room_named("tas") is None
    assert any(isinstance(r, RoomClosed) for r in hub.journal)
    (audit,) = audits(out)
    assert audit == Audit("carol", "closed room tas: maintenance")


def test_the_lobby_cannot_be_closed(hub: Hub) -> None:
    hub.users[3].oper = True
    assert refused(hub, 3, c.CloseRoom("lobby")) == e.RoomProtected("lobby")
    with pytest.raises(e.NoSuchRoom):
        hub.close_room("nowhere", "", ADMIN, 1.0)


def test_kill_removes_the_user_and_others_see_a_quit(hub: Hub) -> None:
    hub.users[3].oper = True
    out = hub.handle(3, c.Kill("bob", "spam"), 2.0)
    assert events_of(out, 2)[-1] == Closing("Removed by carol: spam", "kill")
    quits = [ev for ev in events_of(out, 1) if isinstance(ev, Left)]
    assert quits and all(ev.kind == "quit" and ev.user.name == "bob" for ev in quits)
    assert hub.user_named("bob") is None
    assert audits(out) == [Audit("carol", "removed bob from the server: spam")]
    with pytest.raises(e.NoSuchUser):
        hub.kill("nobody", "", ADMIN, 2.0)


def test_broadcast_reaches_everyone_online_and_is_checked(hub: Hub) -> None:
    hub.users[3].oper = True
    out = hub.handle(3, c.Broadcast("restart at five"), 2.0)
    for sid in (1, 2, 3):
        assert ServerNotice("restart at five", "carol") in events_of(out, sid)
    assert audits(out) == [Audit("carol", "broadcast: restart at five")]
    # From the admin console, people see the server as the sender.
    out = hub.broadcast("hello", ADMIN)
    assert ServerNotice("hello", "") in events_of(out, 1)
    assert refused(hub, 3, c.Broadcast("two\nlines")) == e.TextInvalid("line breaks or NUL")


def test_shutdown_from_an_operator_asks_the_server_to_stop(hub: Hub) -> None:
    hub.users[2].oper = True
    before = snapshot(hub)
    out = hub.handle(2, c.Shutdown("upgrade"), 2.0)
    assert [d.event for d in out] == [ShutdownAsked("bob", "upgrade")]
    assert out[0].to == ()
    assert snapshot(hub) == before


def test_overview_lists_every_room_and_everyone(hub: Hub) -> None:
    hub.users[1].oper = True
    (ev,) = events_of(hub.handle(1, c.Overview(), 2.0), 1)
    assert isinstance(ev, OverviewReply)
    assert {r.name: r.count for r in ev.rooms} == {"lobby": 3, "tas": 2}
    assert [u.name for u in ev.users] == ["alice", "bob", "carol"]
    assert ev.users[0].rooms == ("lobby", "tas")


def test_admin_rooms_last_and_carry_their_settings(hub: Hub) -> None:
    out = hub.create_room("Teste", ADMIN, 5.0, limit=2, private=False, key="k", topic="hi")
    room = hub.room_named("Teste")
    assert room is not None
    assert (room.limit, room.password, room.topic, room.owner) == (2, "k", "hi", SERVER_OWNER)
    assert hub.lasting(room)
    assert audits(out) == [Audit(ADMIN, "created room Teste: limit 2, key")]
    assert hub.expire_rooms(10**9) == []  # never forgotten while empty
    with pytest.raises(e.RoomExists):
        hub.create_room("teste", ADMIN, 5.0)
    with pytest.raises(e.LimitInvalid):
        hub.create_room("other", ADMIN, 5.0, limit=0)
    with pytest.raises(e.ModeArgInvalid):  # the same bound as MODE +k (KEYLEN)
        hub.create_room("other", ADMIN, 5.0, key="k" * 33)
    # Its first member is not made its operator: the server owns it.
    hub.handle(3, c.Join("Teste", "k", switch=False), 6.0)
    assert room.members[3] == ""


def test_admin_room_changes_are_seen_by_members_from_the_server(hub: Hub) -> None:
    out = hub.set_room(
        "tas",
        ADMIN,
        3.0,
        (c.ModeChange(True, "l", "9"), c.ModeChange(True, "i")),
        topic="new topic",
    )
    got = events_of(out, 2)
    modes = next(ev for ev in got if isinstance(ev, ModesChanged))
    assert modes.by.sid < 0 and modes.by.name == hub.settings.server_name
    assert [(ch.add, ch.mode, ch.arg) for ch in modes.changes] == [
        (True, "l", "9"),
        (True, "i", None),
    ]
    assert any(isinstance(ev, TopicChanged) and ev.topic == "new topic" for ev in got)
    room = hub.room_named("tas")
    assert room is not None and room.limit == 9 and room.private
    before = snapshot(hub)
    with pytest.raises(e.LimitInvalid):
        hub.set_room("tas", ADMIN, 4.0, (c.ModeChange(True, "i"), c.ModeChange(True, "l", "x")))
    with pytest.raises(e.UnknownMode):
        hub.set_room("tas", ADMIN, 4.0, (c.ModeChange(True, "o", "bob"),))
    assert snapshot(hub) == before


def test_admin_promotes_and_demotes_a_session(hub: Hub) -> None:
    out = hub.set_oper("Carol", True, ADMIN)
    assert events_of(out, 3) == [OperGranted(hub.users[3].ref)]
    assert hub.users[3].oper
    out = hub.set_oper("carol", False, ADMIN)
    assert events_of(out, 3) == [OperRevoked(hub.users[3].ref)]
    assert audits(out) == [Audit(ADMIN, "took operator status from carol")]


def test_accounts_made_deleted_and_flagged_by_the_admin(hub: Hub) -> None:
    hub.create_account("dave", "$argon2id$x", True, ADMIN, 1.0)
    assert hub.accounts["dave"].oper
    assert isinstance(hub.journal[-1], AccountRecord)
    with pytest.raises(e.AccountExists):
        hub.create_account("DAVE", "$argon2id$y", False, ADMIN, 1.0)
    with pytest.raises(e.NameTaken):  # the services' name: taken, never an account
        hub.create_account("nickserv", "$argon2id$y", False, ADMIN, 1.0)
    with pytest.raises(e.NameInvalid):
        hub.create_account("9lives", "$argon2id$y", False, ADMIN, 1.0)
    # bob registers, logs in; the flag follows his session at once.
    hub.handle(2, c.Rename("bob"), 1.0)
    hub.register_account(2, "$argon2id$z", 1.0)
    out = hub.set_account_oper("bob", True, ADMIN)
    assert OperGranted(hub.users[2].ref) in events_of(out, 2)
    assert hub.users[2].oper
    out = hub.set_account_oper("bob", False, ADMIN)
    assert OperRevoked(hub.users[2].ref) in events_of(out, 2)
    out = hub.delete_account("bob", ADMIN, 2.0)
    assert "bob" not in hub.accounts
    assert hub.users[2].account is None
    assert any(isinstance(ev, AccountChanged) and ev.account is None for ev in events_of(out, 1))
    assert isinstance(hub.journal[-1], AccountDeleted)
    with pytest.raises(e.NoSuchAccount):
        hub.delete_account("bob", ADMIN, 2.0)
    with pytest.raises(e.NoSuchAccount):
        hub.set_account_oper("nobody", True, ADMIN)


def test_store_down_refuses_account_changes(hub: Hub) -> None:
    hub.store_ok = False
    with pytest.raises(e.StoreUnavailable):
        hub.create_account("erin", "$argon2id$x", False, ADMIN, 1.0)
    assert "erin" not in hub.accounts


def test_an_operator_outside_the_room_sees_their_kick_and_modes_done(hub: Hub) -> None:
    hub.users[3].oper = True  # carol is not in tas
    out = hub.handle(3, c.Kick("tas", "bob", "enough"), 2.0)
    (kicked,) = events_of(out, 3)
    assert isinstance(kicked, Left) and kicked.kind == "kick" and kicked.user.name == "bob"
    out = hub.handle(3, c.SetModes("tas", (c.ModeChange(True, "m"),)), 2.0)
    assert [type(ev) for ev in events_of(out, 3)] == [ModesChanged]
    assert [type(ev) for ev in events_of(out, 1)] == [ModesChanged]


def test_giving_up_operator_status_is_logged(hub: Hub) -> None:
    hub.users[3].oper = True
    out = hub.handle(3, c.DropOper(), 2.0)
    assert audits(out) == [Audit("carol", "gave up operator status")]
    assert not hub.users[3].oper


INJECTION = "bye\r\n:evil!e@e PRIVMSG bob :injected\x00"


def one_line(text: str) -> bool:
    return "\r" not in text and "\n" not in text and "\x00" not in text


def test_every_reason_reaches_other_doors_as_one_line(hub: Hub) -> None:
    """Reasons are never refused (leaving must always work) but never carry a line break."""
    hub.users[3].oper = True
    reasons: list[str] = []
    for sid, cmd in (
        (2, c.Leave("tas", INJECTION)),
        (3, c.Kick("tas", "alice", INJECTION)),
    ):
        out = hub.handle(sid, cmd, 2.0)
        reasons += [d.event.reason for d in out if isinstance(d.event, Left)]
    hub.handle(1, c.Join("tas", switch=False), 2.0)
    out = hub.close_room("tas", INJECTION, ADMIN, 3.0)
    reasons += [d.event.reason for d in out if isinstance(d.event, Left)]
    out = hub.kill("bob", INJECTION, ADMIN, 3.0)
    reasons += [d.event.reason for d in out if isinstance(d.event, Left | Closing)]
    out = hub.handle(1, c.Quit(INJECTION), 3.0)
    reasons += [d.event.reason for d in out if isinstance(d.event, Left | Closing)]
    reasons += [d.event.reason for d in hub.shutdown(INJECTION) if isinstance(d.event, Closing)]
    assert len(reasons) >= 6
    assert all(one_line(r) and "injected" in r for r in reasons), reasons


def test_deleting_an_operator_account_takes_the_power_away(hub: Hub) -> None:
    hub.create_account("dave", "$argon2id$x", True, ADMIN, 1.0)
    register(hub, 5, "visitor", door="line")
    hub.log_in(5, "dave", "login", 1.0)
    assert hub.users[5].oper
    out = hub.delete_account("dave", ADMIN, 2.0)
    assert not hub.users[5].oper
    assert OperRevoked(hub.users[5].ref) in events_of(out, 5)


def test_ctcp_to_a_room_passes_but_is_not_history_and_dcc_obeys_direct() -> None:
    h = Hub(HubSettings(direct=False), seed=1)
    register(h, 1, "ann", lobby=True)
    register(h, 2, "bob", lobby=True)
    h.journal.clear()
    out = h.handle(1, c.Say("lobby", "\x01VERSION\x01"), 1.0)
    (said,) = events_of(out, 2)
    assert isinstance(said, Message) and h.journal == [IdsUsed(said.id)]  # not kept: its id is
    room = h.room_named("lobby")
    assert room is not None and not room.recent
    assert refused(h, 1, c.Say("lobby", "\x01DCC SEND x 2130706433 5000 10\x01")) == e.DirectOff()


def test_the_operator_hears_that_a_close_or_removal_is_done(hub: Hub) -> None:
    hub.users[3].oper = True  # carol, in neither the room nor near bob
    assert OperDone("close", "tas", "bye") in events_of(
        hub.handle(3, c.CloseRoom("tas", "bye"), 2.0), 3
    )
    assert OperDone("kill", "bob", "") in events_of(hub.handle(3, c.Kill("bob"), 2.0), 3)

"""Direct calls in the hub: who is told what, signalling only between the two
sides of an accepted call, and calls that end however they end."""

from __future__ import annotations

import pytest

from hubstate import refused, register
from salas.core import commands as c
from salas.core import errors as e
from salas.core.events import CallSignalled, CallUpdate, Delivery, Event, Private
from salas.core.hub import MAX_CALLS, MAX_SIGNAL, Hub, HubSettings, recipients_of
from salas.core.records import IdsUsed


def events_of(out: list[Delivery], sid: int) -> list[Event]:
    return recipients_of(out).get(sid, [])


def only(out: list[Delivery], sid: int) -> CallUpdate:
    (ev,) = [x for x in events_of(out, sid) if isinstance(x, CallUpdate)]
    return ev


@pytest.fixture
def hub() -> Hub:
    """ann (1) and bea (2) on the web client, lin (3) on the line door, eve (4) on the web."""
    h = Hub(HubSettings(offer_ttl=60.0), seed=1)
    register(h, 1, "ann", door="web", lobby=True)
    register(h, 2, "bea", door="web", lobby=True)
    register(h, 3, "lin", door="line", lobby=True)
    register(h, 4, "eve", door="web", lobby=True)
    return h


def ring(hub: Hub, media: c.CallMedia = "video") -> int:
    out = hub.handle(1, c.CallStart("bea", media, "t1"), 1.0)
    mine = only(out, 1)
    assert (mine.state, mine.peer.name, mine.media, mine.tag) == ("ringing", "bea", media, "t1")
    theirs = only(out, 2)
    assert (theirs.state, theirs.peer.name, theirs.call) == ("incoming", "ann", mine.call)
    assert events_of(out, 4) == []
    return mine.call


def test_a_call_rings_is_accepted_and_carries_signalling_both_ways(hub: Hub) -> None:
    call = ring(hub)
    out = hub.handle(2, c.CallAnswer(call, True), 2.0)
    assert only(out, 1).state == "accepted" and only(out, 1).peer.name == "bea"
    assert only(out, 2).state == "accepted" and only(out, 2).peer.name == "ann"
    out = hub.handle(1, c.CallSignal(call, '{"sdp": "offer"}'), 2.0)
    assert out == [Delivery((2,), CallSignalled(call, hub.users[1].ref, '{"sdp": "offer"}'))]
    out = hub.handle(2, c.CallSignal(call, '{"sdp": "answer"}'), 2.0)
    assert [d.to for d in out] == [(1,)]
    out = hub.handle(2, c.CallEnd(call), 3.0)
    assert only(out, 1).state == "ended" and only(out, 1).reason == "bea hung up"
    assert only(out, 2).state == "ended"
    assert hub.calls == {}


def test_no_signalling_passes_before_the_callee_says_yes(hub: Hub) -> None:
    call = ring(hub)
    # The caller can't push anything at someone who has not accepted.
    assert refused(hub, 1, c.CallSignal(call, "{}")) == e.NoSuchCall(call)
    # Nor can anyone outside the call, at any time.
    hub.handle(2, c.CallAnswer(call, True), 2.0)
    assert refused(hub, 4, c.CallSignal(call, "{}")) == e.NoSuchCall(call)
    assert refused(hub, 4, c.CallEnd(call)) == e.NoSuchCall(call)
    assert refused(hub, 4, c.CallSignal(999, "{}")) == e.NoSuchCall(999)
    big = "x" * (MAX_SIGNAL + 1)
    assert isinstance(refused(hub, 1, c.CallSignal(call, big)), e.TextInvalid)


def test_only_the_callee_answers_and_only_once(hub: Hub) -> None:
    call = ring(hub)
    assert refused(hub, 1, c.CallAnswer(call, True)) == e.NoSuchCall(call)
    hub.handle(2, c.CallAnswer(call, True), 2.0)
    assert refused(hub, 2, c.CallAnswer(call, True)) == e.NoSuchCall(call)


def test_decline_tells_both_sides(hub: Hub) -> None:
    call = ring(hub)
    out = hub.handle(2, c.CallAnswer(call, False), 2.0)
    assert only(out, 1).reason == "bea declined" and only(out, 2).state == "ended"
    assert call not in hub.calls


def test_leaving_the_server_ends_the_call_for_the_other_side(hub: Hub) -> None:
    call = ring(hub)
    out = hub.disconnect(2, "gone", 3.0)
    ended = only(out, 1)
    assert (ended.call, ended.state, ended.reason) == (call, "ended", "bea left")
    assert hub.calls == {}


def test_an_unanswered_call_ends_with_no_answer_after_the_ttl(hub: Hub) -> None:
    call = ring(hub)
    assert hub.expire_calls(30.0) == []
    out = hub.expire_calls(61.5)
    assert only(out, 1).reason == "no answer" and only(out, 2).call == call
    # An accepted call is not a ringing one: it lasts.
    call = ring(hub)
    hub.handle(2, c.CallAnswer(call, True), 2.0)
    assert hub.expire_calls(10_000.0) == []


def test_calls_that_cannot_be_made(hub: Hub) -> None:
    assert refused(hub, 1, c.CallStart("nobody")) == e.NoSuchUser("nobody")
    assert refused(hub, 1, c.CallStart("ann")) == e.CannotCall("ann", "that is you")
    err = refused(hub, 1, c.CallStart("lin"))
    assert err == e.CannotCall("lin", "they are not on the web client")
    for _ in range(MAX_CALLS):
        hub.handle(1, c.CallStart("bea"), 1.0)
    err = refused(hub, 4, c.CallStart("bea"))
    assert err == e.CannotCall("bea", "too many calls at once")


def test_operators_can_turn_direct_connections_off() -> None:
    hub = Hub(HubSettings(direct=False), seed=1)
    register(hub, 1, "ann", door="web")
    register(hub, 2, "bea", door="web")
    assert refused(hub, 1, c.CallStart("bea")) == e.DirectOff()
    dcc = "\x01DCC SEND report.pdf 2130706433 5000 1024\x01"
    assert refused(hub, 1, c.Tell("bea", dcc)) == e.DirectOff()
    # Other CTCP still passes.
    assert any(
        isinstance(ev, Private)
        for ev in events_of(hub.handle(1, c.Tell("bea", "\x01VERSION\x01"), 1.0), 2)
    )


def test_dcc_offers_pass_but_are_not_kept_in_history(hub: Hub) -> None:
    dcc = "\x01DCC SEND report.pdf 2130706433 5000 1024\x01"
    hub.journal.clear()
    out = hub.handle(1, c.Tell("lin", dcc), 1.0)
    (ev,) = events_of(out, 3)
    assert isinstance(ev, Private) and ev.text == dcc
    assert hub.journal == [IdsUsed(ev.id)]  # only that its id was given

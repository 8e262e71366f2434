"""Calls in the web client's JSON protocol (proto/webjson.py): the call requests
and messages, the ICE servers and the ``direct`` switch in ``welcome``, and the
codec driven against a real hub, so signalling passes only inside an accepted
call. docs/protocols/web.md ("Calls") is the contract these cases check."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from salas.config import Config, DirectSettings
from salas.core import commands as c
from salas.core.events import CallSignalled, CallUpdate, Event, Welcome
from salas.core.hub import MAX_SIGNAL, Hub, HubSettings
from salas.core.model import UserRef
from salas.net.doors import door_factories
from salas.proto.door import Deferred, Input
from salas.proto.http import HttpDoor
from salas.proto.webjson import REQUESTS, CallSettings, WebJson, ice_servers

ME = UserRef(1, "ann", "ann", "127.0.0.1")
BEA = UserRef(2, "bea", "bea", "127.0.0.1")
CALL_TYPES = {"call", "call_answer", "call_signal", "call_end"}


def msgs(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.decode().split("\n") if line]


def registered(calls: CallSettings | None = None) -> WebJson:
    codec = WebJson(1, "127.0.0.1", 5000, calls=calls)
    codec.render(Welcome(ME, 1, "salas.local"))
    return codec


def raw(request: dict[str, Any] | str) -> bytes:
    return request.encode() if isinstance(request, str) else json.dumps(request).encode()


def run(items: list[Input], hub_answer: Any = None) -> tuple[list[c.Command], list[Any]]:
    """Inputs as the server runs them: commands to ``hub_answer`` (which gives the
    events this connection then renders), callables called, bytes read."""
    cmds: list[c.Command] = []
    out: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, bytes):
            out += msgs(item)
        elif isinstance(item, Deferred):
            more_cmds, more_out = run(item.resolve(), hub_answer)
            cmds += more_cmds
            out += more_out
        elif callable(item):
            out += msgs(item())
        else:
            cmds.append(item)  # type: ignore[arg-type]
            if hub_answer is not None:
                out += hub_answer(item)
    return cmds, out


def ask(codec: WebJson, request: dict[str, Any] | str) -> tuple[list[c.Command], list[Any]]:
    return run(codec.receive(raw(request)))


# -- requests ---------------------------------------------------------------------------

CALL_CASES: list[tuple[dict[str, Any], c.Command]] = [
    ({"type": "call", "to": "bea", "media": "video"}, c.CallStart("bea", "video")),
    ({"type": "call", "to": "bea", "media": "audio"}, c.CallStart("bea", "audio")),
    ({"type": "call", "to": "bea"}, c.CallStart("bea", "audio")),
    ({"type": "call", "to": "bea", "id": 7}, c.CallStart("bea", "audio", tag="7")),
    ({"type": "call", "to": "bea", "id": "c1"}, c.CallStart("bea", "audio", tag='"c1"')),
    ({"type": "call_answer", "call": 3, "accept": True}, c.CallAnswer(3, True)),
    ({"type": "call_answer", "call": 3, "accept": False}, c.CallAnswer(3, False)),
    (
        {"type": "call_signal", "call": 3, "data": {"sdp": {"type": "offer", "sdp": "v=0"}}},
        c.CallSignal(3, '{"sdp":{"type":"offer","sdp":"v=0"}}'),
    ),
    ({"type": "call_signal", "call": 3, "data": "ünï"}, c.CallSignal(3, '"ünï"')),
    ({"type": "call_signal", "call": 3, "data": [1, 2.5, False]}, c.CallSignal(3, "[1,2.5,false]")),
    ({"type": "call_end", "call": 3}, c.CallEnd(3)),
    (
        {"type": "call_end", "call": 3, "reason": "Could not connect"},
        c.CallEnd(3, "Could not connect"),
    ),
]


@pytest.mark.parametrize(("request_", "command"), CALL_CASES)
def test_each_call_request_is_its_command(request_: dict[str, Any], command: c.Command) -> None:
    cmds, _ = ask(registered(), request_)
    assert cmds == [command]


def test_every_call_request_type_is_covered() -> None:
    assert {r["type"] for r, _ in CALL_CASES} == CALL_TYPES
    assert set(REQUESTS) >= CALL_TYPES


BAD_CALLS: list[tuple[dict[str, Any] | str, str, str]] = [
    ({"type": "call"}, "bad_request", "to must be a string"),
    ({"type": "call", "to": 5}, "bad_request", "to must be a string"),
    (
        {"type": "call", "to": "bea", "media": "screen"},
        "bad_request",
        "media must be audio or video",
    ),
    ({"type": "call", "to": "bea", "media": None}, "bad_request", "media must be audio or video"),
    ({"type": "call_answer", "call": 1}, "bad_request", "accept must be true or false"),
    (
        {"type": "call_answer", "call": 1, "accept": 1},
        "bad_request",
        "accept must be true or false",
    ),
    ({"type": "call_answer", "accept": True}, "bad_request", "call must be"),
    ({"type": "call_answer", "call": "1", "accept": True}, "bad_request", "call must be"),
    ({"type": "call_answer", "call": True, "accept": True}, "bad_request", "call must be"),
    ({"type": "call_answer", "call": 0, "accept": True}, "bad_request", "call must be"),
    ({"type": "call_answer", "call": 2**60, "accept": True}, "bad_request", "call must be"),
    ({"type": "call_answer", "call": 1.0, "accept": True}, "bad_request", "call must be"),
    ({"type": "call_signal", "call": 1}, "bad_request", "data is missing"),
    ({"type": "call_signal", "call": 1, "data": None}, "bad_request", "data is missing"),
    ('{"type":"call_signal","call":1,"data":[NaN]}', "bad_request", "no NaN or Infinity"),
    ('{"type":"call_signal","call":1,"data":"\\ud800"}', "bad_request", "not valid Unicode"),
    ({"type": "call_signal", "data": {}}, "bad_request", "call must be"),
    ({"type": "call_end"}, "bad_request", "call must be"),
    ({"type": "call_end", "call": 1, "reason": 3}, "bad_request", "reason must be a string"),
]


@pytest.mark.parametrize(("request_", "code", "text"), BAD_CALLS)
def test_bad_call_requests_are_refused_before_the_hub(
    request_: dict[str, Any] | str, code: str, text: str
) -> None:
    cmds, out = ask(registered(), request_)
    assert cmds == []
    assert [(m["type"], m["code"]) for m in out] == [("error", code)]
    assert text in out[0]["text"]


def test_signalling_over_16_kib_once_serialised_is_refused_clearly() -> None:
    # Small on the wire (1e9 is 3 characters), large once serialised (1000000000.0).
    request = '{"type":"call_signal","call":1,"id":4,"data":[' + ",".join(["1e9"] * 3000) + "]}"
    assert len(request) < 16 * 1024
    cmds, out = ask(registered(), request)
    assert cmds == []
    assert out == [
        {
            "type": "error",
            "code": "too_long",
            "text": "call_signal: data is over 16 KiB once serialised",
            "re": 4,
        }
    ]
    # Just under the bound passes: 1260 numbers are 16381 bytes serialised.
    request = '{"type":"call_signal","call":1,"data":[' + ",".join(["1e9"] * 1260) + "]}"
    cmds, _ = ask(registered(), request)
    assert cmds == [c.CallSignal(1, "[" + ",".join(["1000000000.0"] * 1260) + "]")]
    assert len(cmds[0].data) == 16381 < MAX_SIGNAL  # type: ignore[attr-defined]


def test_call_requests_wait_for_the_welcome() -> None:
    codec = WebJson(1, "h", 1)
    for request, _ in CALL_CASES:
        cmds, out = ask(codec, request)
        assert cmds == []
        assert [m["code"] for m in out] == ["not_registered"]


# -- messages -----------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["ringing", "incoming", "accepted", "ended"])
def test_a_call_update_renders_as_a_call_message(state: str) -> None:
    ev = CallUpdate(9, state, BEA, "video", "bea declined" if state == "ended" else "")  # type: ignore[arg-type]
    assert msgs(registered().render(ev)) == [
        {
            "type": "call",
            "call": 9,
            "state": state,
            "peer": "bea",
            "media": "video",
            "reason": "bea declined" if state == "ended" else "",
        }
    ]


def test_signalling_comes_out_as_the_json_it_went_in_as() -> None:
    data = {"cand": {"candidate": "candidate:1 1 udp 1 127.0.0.1 5000 typ host", "sdpMid": "0"}}
    sent, _ = ask(registered(), {"type": "call_signal", "call": 2, "data": data})
    (cmd,) = sent
    assert isinstance(cmd, c.CallSignal)
    out = msgs(registered().render(CallSignalled(2, BEA, cmd.data)))
    assert out == [{"type": "call_signal", "call": 2, "from": "bea", "data": data}]
    # Signalling that is not JSON (never made by this codec) is passed on as a string.
    out = msgs(registered().render(CallSignalled(2, BEA, "not {json")))
    assert out[0]["data"] == "not {json"


def test_the_ringing_answers_the_call_request_with_its_id_and_no_ok() -> None:
    codec = registered()

    def hub(cmd: c.Command) -> list[dict[str, Any]]:
        assert isinstance(cmd, c.CallStart)
        return msgs(codec.render(CallUpdate(4, "ringing", BEA, cmd.media, tag=cmd.tag)))

    _, out = run(codec.receive(raw({"type": "call", "to": "bea", "media": "video", "id": 11})), hub)
    assert out == [
        {
            "type": "call",
            "call": 4,
            "state": "ringing",
            "peer": "bea",
            "media": "video",
            "reason": "",
            "re": 11,
        }
    ]
    # Its tag alone pairs it, even outside the request (as history answers are).
    out = msgs(codec.render(CallUpdate(5, "ringing", BEA, "audio", tag='"x"')))
    assert out[0]["re"] == "x"


def test_welcome_says_whether_calls_are_on_and_which_ice_servers_to_use() -> None:
    welcome = msgs(WebJson(1, "h", 1).render(Welcome(ME, 1, "salas.local")))[0]
    assert (welcome["direct"], welcome["ice_servers"]) == (True, [])
    servers = ice_servers(["stun:stun.example.org:3478"], ["turn:t.example.org"], "u", "p")
    calls = CallSettings(direct=True, ice_servers=servers)
    welcome = msgs(WebJson(1, "h", 1, calls=calls).render(Welcome(ME, 1, "salas.local")))[0]
    assert welcome["ice_servers"] == [
        {"urls": ["stun:stun.example.org:3478"]},
        {"urls": ["turn:t.example.org"], "username": "u", "credential": "p"},
    ]
    off = WebJson(1, "h", 1, calls=CallSettings(direct=False))
    assert msgs(off.render(Welcome(ME, 1, "salas.local")))[0]["direct"] is False


def test_ice_servers_from_the_settings() -> None:
    assert ice_servers([], []) == ()
    assert ice_servers(["stun:a", "stun:b"], []) == ({"urls": ["stun:a", "stun:b"]},)
    assert ice_servers([], ["turn:t"]) == ({"urls": ["turn:t"]},)


def _http_calls(config: Config) -> CallSettings | None:
    door = door_factories(config)["http"](1, "127.0.0.1", 5000)
    assert isinstance(door, HttpDoor)
    return door.calls


def test_the_http_door_gets_the_direct_settings_from_the_configuration() -> None:
    assert _http_calls(Config()) == CallSettings(True, ())
    direct = DirectSettings(stun=["stun:s:3478"], turn=["turn:t:3478"], turn_username="u")
    calls = _http_calls(Config(direct=direct))
    assert calls == CallSettings(
        True, ({"urls": ["stun:s:3478"]}, {"urls": ["turn:t:3478"], "username": "u"})
    )
    direct = DirectSettings(enabled=False, stun=["stun:s:3478"])
    assert _http_calls(Config(direct=direct)) == CallSettings(False, ())


# -- with a real hub ---------------------------------------------------------------------


class Pair:
    """A hub and web codecs for ann (1), bea (2) and cy (3): requests in, what each sees out."""

    def __init__(self, hub_settings: HubSettings | None = None) -> None:
        self.hub = Hub(hub_settings or HubSettings(), seed=1)
        self.codecs = {sid: WebJson(sid, "127.0.0.1", 5000 + sid) for sid in (1, 2, 3)}
        self.seen: dict[int, list[dict[str, Any]]] = {1: [], 2: [], 3: []}
        for sid, name in ((1, "ann"), (2, "bea"), (3, "cy")):
            self.send(sid, {"type": "hello", "name": name, "lobby": False})
        self.clear()

    def clear(self) -> None:
        for seen in self.seen.values():
            seen.clear()

    def send(self, sid: int, request: dict[str, Any]) -> None:
        def answer(cmd: c.Command) -> list[dict[str, Any]]:
            mine: list[dict[str, Any]] = []
            for d in self.hub.handle(sid, cmd, 1.0):
                for to in d.to:
                    out = msgs(self.codecs[to].render(d.event))
                    (mine if to == sid else self.seen[to]).extend(out)
            return mine

        _, out = run(self.codecs[sid].receive(raw(request)), answer)
        self.seen[sid].extend(out)

    def types(self, sid: int) -> list[tuple[str, str]]:
        return [(m["type"], m.get("state") or m.get("code") or "") for m in self.seen[sid]]


def test_a_call_through_the_hub_signalling_only_inside_the_accepted_call() -> None:
    p = Pair()
    p.send(1, {"type": "call", "to": "bea", "media": "video", "id": 1})
    (ringing,) = p.seen[1]
    assert (ringing["state"], ringing["peer"], ringing["re"]) == ("ringing", "bea", 1)
    call = ringing["call"]
    assert p.seen[2] == [
        {
            "type": "call",
            "call": call,
            "state": "incoming",
            "peer": "ann",
            "media": "video",
            "reason": "",
        }
    ]
    p.clear()
    # Before bea says yes nothing passes, from either side or from cy.
    p.send(1, {"type": "call_signal", "call": call, "data": {"sdp": "early"}, "id": 2})
    p.send(3, {"type": "call_signal", "call": call, "data": {"sdp": "stray"}, "id": 3})
    assert p.types(1) == [("error", "no_such_call")]
    assert p.types(3) == [("error", "no_such_call")]
    assert p.seen[2] == []
    p.clear()
    p.send(2, {"type": "call_answer", "call": call, "accept": True, "id": 4})
    assert p.types(1) == [("call", "accepted")] and p.types(2) == [("call", "accepted")]
    p.clear()
    offer = {"sdp": {"type": "offer", "sdp": "v=0\r\n"}}
    p.send(1, {"type": "call_signal", "call": call, "data": offer, "id": 5})
    assert p.seen[2] == [{"type": "call_signal", "call": call, "from": "ann", "data": offer}]
    assert p.seen[1] == [{"type": "ok", "re": 5}]
    p.clear()
    # cy was never offered this call: refused, and neither side hears a thing.
    p.send(3, {"type": "call_signal", "call": call, "data": {"cand": "from cy"}, "id": 6})
    assert p.seen[3][0]["code"] == "no_such_call" and p.seen[3][0]["re"] == 6
    assert p.seen[1] == [] and p.seen[2] == []
    p.send(2, {"type": "call_end", "call": call})
    assert p.seen[1] == [
        {
            "type": "call",
            "call": call,
            "state": "ended",
            "peer": "bea",
            "media": "video",
            "reason": "bea hung up",
        }
    ]
    assert p.types(2) == [("call", "ended")]


def test_a_declined_call_and_calls_turned_off() -> None:
    p = Pair()
    p.send(1, {"type": "call", "to": "bea"})
    call = p.seen[1][0]["call"]
    p.clear()
    p.send(2, {"type": "call_answer", "call": call, "accept": False})
    assert [m["reason"] for m in p.seen[1] + p.seen[2]] == ["bea declined", "bea declined"]

    off = Pair(HubSettings(direct=False))
    off.send(1, {"type": "call", "to": "bea", "media": "video", "id": 9})
    assert off.seen[1] == [
        {
            "type": "error",
            "code": "direct_off",
            "text": "Direct connections (calls and file transfers) are turned off on this server",
            "re": 9,
        }
    ]
    assert off.seen[2] == []


# -- totality -----------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
call_requests = st.fixed_dictionaries(
    {"type": st.sampled_from(sorted(CALL_TYPES))},
    optional={
        "id": json_values,
        "to": json_values,
        "media": st.sampled_from(["audio", "video", "x"]) | json_values,
        "call": st.integers(min_value=-2, max_value=2**54) | json_values,
        "accept": json_values,
        "data": json_values,
        "reason": json_values,
    },
)


@settings(max_examples=400, deadline=None)
@given(call_requests)
def test_any_call_request_shape_gives_inputs_never_an_exception(request: dict[str, Any]) -> None:
    for codec in (registered(), WebJson(1, "h", 1)):
        for item in codec.receive(json.dumps(request).encode()):
            assert isinstance(item, bytes | Deferred)
            if isinstance(item, Deferred):
                for sub in item.resolve():
                    if callable(sub):
                        sub()


@settings(max_examples=200, deadline=None)
@given(json_values.filter(lambda v: v is not None))
def test_any_signalling_comes_back_out_as_it_went_in(data: Any) -> None:
    cmds, out = ask(registered(), {"type": "call_signal", "call": 1, "data": data})
    if out:  # refused: NaN or Infinity, or text that is not Unicode
        assert out[0]["type"] == "error"
        return
    (cmd,) = cmds
    assert isinstance(cmd, c.CallSignal)
    ev: Event = CallSignalled(1, BEA, cmd.data)
    (got,) = msgs(registered().render(ev))
    assert got["data"] == json.loads(json.dumps(data))

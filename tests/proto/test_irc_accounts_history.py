"""The IRC door's accounts and history, sans I/O: SASL PLAIN, REGISTER, NickServ,
CHATHISTORY and history played back on JOIN.

The door is driven as the server drives it: bytes in, inputs out (commands for the
hub, bytes or callables sent back, deferred lines resolved in turn), events rendered.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from salas.core import commands as c
from salas.core import errors as e
from salas.core.events import (
    AccountChanged,
    AccountRegistered,
    Event,
    Failed,
    HistoryReply,
    HistoryTargets,
    Joined,
    LoggedIn,
    Message,
    NameList,
    PasswordChanged,
    Private,
    Welcome,
)
from salas.core.model import Member, UserRef
from salas.proto.door import Deferred, Input
from salas.proto.irc import chathistory
from salas.proto.irc.door import IrcDoor, IrcInfo, isupport
from salas.proto.irc.message import Line, parse
from salas.proto.irc.sasl import (
    CHUNK,
    PAYLOAD_MAX,
    PlainExchange,
    SaslFailed,
    SaslTooLong,
    decode_plain,
    encode_plain,
)

SERVER = "irc.test"
T0 = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC).timestamp()
ISO0 = "2026-01-02T03:04:05.678Z"


# -- driving a door ---------------------------------------------------------------------------


class Driver:
    """One IrcDoor, fed lines and events; collects what it sends and the commands it makes."""

    def __init__(self, sid: int = 7) -> None:
        self.door = IrcDoor(sid, "10.0.0.7", 4242, IrcInfo(server=SERVER, history_max=500))
        self.sid = sid

    def send(self, *lines: str) -> tuple[list[c.Command], list[Line]]:
        data = b"".join(x.encode() + b"\r\n" for x in lines)
        cmds: list[c.Command] = []
        out = bytearray()

        def run(item: Input) -> None:
            if isinstance(item, bytes):
                out.extend(item)
            elif isinstance(item, Deferred):
                for sub in item.resolve():
                    run(sub)
            elif callable(item):
                out.extend(item())
            else:
                cmds.append(item)

        for item in self.door.receive_data(data):
            run(item)
        return cmds, lines_of(bytes(out))

    def render(self, ev: Event) -> list[Line]:
        return lines_of(self.door.render(ev))

    def register(self, nick: str = "amy", caps: str = "", account: str | None = None) -> None:
        if caps:
            self.send("CAP LS 302", f"CAP REQ :{caps}")
        cmds, _ = self.send(f"NICK {nick}", "USER amy 0 * :Amy", *(["CAP END"] if caps else []))
        assert [type(x) for x in cmds] == [c.Register]
        self.render(Welcome(self.ref(nick, account), 1, SERVER))
        assert self.door.registered

    def ref(self, nick: str = "amy", account: str | None = None) -> UserRef:
        return UserRef(self.sid, nick, "~amy", "10.0.0.7", account)


def lines_of(data: bytes) -> list[Line]:
    assert not data or data.endswith(b"\r\n"), data
    return [parse(x) for x in data.split(b"\r\n") if x]


def one(lines: list[Line]) -> Line:
    assert len(lines) == 1, lines
    return lines[0]


BOB = UserRef(0, "bob", "bob", "10.0.0.9", "bob")
CAROL = UserRef(0, "carol", "~carol", "10.0.0.10", None)


def msg(mid: int, text: str, ts: float = T0, sender: UserRef = BOB, kind: str = "say") -> Message:
    return Message(mid, ts, "tas", sender, text, kind)  # type: ignore[arg-type]


# -- SASL PLAIN: the pure parts -----------------------------------------------------------------


def test_plain_payload_decodes_to_name_and_password() -> None:
    payload = base64.b64encode(b"\x00alice\x00s3cret").decode()
    assert decode_plain(payload) == ("alice", "s3cret")
    same = base64.b64encode(b"ALICE\x00alice\x00s3cret").decode()
    assert decode_plain(same) == ("alice", "s3cret")  # authzid = authcid (any case) is fine


@pytest.mark.parametrize(
    "payload",
    [
        "not base64!",
        "YWJj=",  # bad padding
        base64.b64encode(b"\xff\xfe\x00alice\x00pw").decode(),  # not UTF-8
        base64.b64encode(b"alice\x00pw").decode(),  # two fields
        base64.b64encode(b"\x00alice\x00pw\x00more").decode(),  # four fields
        base64.b64encode(b"\x00\x00pw").decode(),  # no name
        base64.b64encode(b"\x00alice\x00").decode(),  # no password
        base64.b64encode(b"root\x00alice\x00pw").decode(),  # acting as someone else
        "",
    ],
)
def test_malformed_plain_payloads_fail(payload: str) -> None:
    with pytest.raises(SaslFailed):
        decode_plain(payload)


def test_chunks_of_400_continue_and_plus_ends_the_payload() -> None:
    x = PlainExchange()
    assert x.feed("A" * CHUNK) is None
    assert x.feed("B" * 10) == "A" * CHUNK + "B" * 10
    x = PlainExchange()
    assert x.feed("A" * CHUNK) is None
    assert x.feed("+") == "A" * CHUNK  # a multiple of 400 ends with an empty chunk
    assert PlainExchange().feed("+") == ""


def test_oversize_chunks_and_payloads_are_refused() -> None:
    with pytest.raises(SaslTooLong):
        PlainExchange().feed("A" * (CHUNK + 1))
    x = PlainExchange()
    with pytest.raises(SaslTooLong):
        for _ in range(PAYLOAD_MAX // CHUNK + 1):
            x.feed("A" * CHUNK)


def test_encode_plain_splits_like_a_client() -> None:
    # 300 bytes of credentials are exactly 400 of base64: a "+" has to follow.
    password = "p" * (300 - len("\x00alice\x00"))
    chunks = encode_plain("alice", password)
    assert [len(ch) for ch in chunks] == [400, 1] and chunks[1] == "+"
    x = PlainExchange()
    assert [x.feed(ch) for ch in chunks][-1] is not None
    assert decode_plain("".join(chunks[:1])) == ("alice", password)
    assert encode_plain("a", "b") == [base64.b64encode(b"\x00a\x00b").decode()]


# -- SASL in the door ---------------------------------------------------------------------------


def test_cap_ls_offers_sasl_plain_and_the_account_and_history_caps() -> None:
    d = Driver()
    _, out = d.send("CAP LS 302")
    caps = one(out).params[-1].split()
    for cap in ("sasl=PLAIN", "account-notify", "draft/chathistory"):
        assert cap in caps
    assert "draft/account-registration" in caps
    _, out = Driver().send("CAP LS")
    assert "sasl" in one(out).params[-1].split()  # no values before CAP 302


def test_sasl_success_before_registration() -> None:
    d = Driver()
    d.send("CAP LS 302", "CAP REQ :sasl", "NICK amy", "USER amy 0 * :Amy")
    cmds, out = d.send("AUTHENTICATE PLAIN")
    assert not cmds and one(out).command == "AUTHENTICATE" and out[0].params == ["+"]
    cmds, out = d.send("AUTHENTICATE " + encode_plain("Amy", "pw12")[0])
    assert cmds == [c.LogIn("Amy", "pw12", "sasl")] and not out
    done = d.render(LoggedIn("Amy", "", "sasl"))
    assert [m.command for m in done] == ["900", "903"]
    assert done[0].params == ["amy", "amy!~amy@10.0.0.7", "Amy", "You are now logged in as Amy"]
    assert done[0].source == SERVER
    cmds, _ = d.send("CAP END")
    assert [type(x) for x in cmds] == [c.Register]
    _, out = d.send("AUTHENTICATE PLAIN")
    assert one(out).command == "907"


def test_sasl_without_a_nick_says_star() -> None:
    d = Driver()
    d.send("CAP REQ sasl", "AUTHENTICATE PLAIN")
    d.send("AUTHENTICATE " + encode_plain("amy", "pw12")[0])
    out = d.render(LoggedIn("amy", "", "sasl"))
    assert out[0].params[:3] == ["*", "*!*@10.0.0.7", "amy"]


def test_sasl_failure_is_904_whatever_the_reason() -> None:
    d = Driver()
    d.send("CAP REQ sasl", "NICK amy", "USER amy 0 * :Amy", "AUTHENTICATE PLAIN")
    cmds, _ = d.send("AUTHENTICATE " + encode_plain("amy", "wrong")[0])
    for err in (e.LoginFailed(), e.TryLater("server busy")):
        out = d.render(Failed(err, cmds[0]))
        assert one(out).command == "904" and out[0].params == ["amy", "SASL authentication failed"]
    assert d.door.account is None


def test_sasl_continuation_at_exactly_400_bytes() -> None:
    d = Driver()
    d.send("CAP REQ sasl", "AUTHENTICATE PLAIN")
    password = "p" * (300 - len("\x00amy\x00"))
    first, last = encode_plain("amy", password)
    cmds, out = d.send("AUTHENTICATE " + first)
    assert not cmds and not out
    cmds, out = d.send("AUTHENTICATE " + last)
    assert cmds == [c.LogIn("amy", password, "sasl")]


@pytest.mark.parametrize(
    ("lines", "code"),
    [
        (["AUTHENTICATE PLAIN", "AUTHENTICATE !!!notbase64"], "904"),
        (["AUTHENTICATE PLAIN", "AUTHENTICATE " + "A" * 401], "905"),
        (["AUTHENTICATE PLAIN", "AUTHENTICATE *"], "906"),
        (["AUTHENTICATE SCRAM-SHA-256"], "904"),
        (["AUTHENTICATE"], "461"),
    ],
)
def test_sasl_errors(lines: list[str], code: str) -> None:
    d = Driver()
    d.send("CAP REQ sasl")
    for line in lines[:-1]:
        d.send(line)
    cmds, out = d.send(lines[-1])
    assert not cmds
    assert out[-1].command == code, out
    if code == "904" and "SCRAM" in lines[-1]:
        assert [m.command for m in out] == ["908", "904"] and out[0].params[1] == "PLAIN"
    # Whatever went wrong, a new exchange can start.
    _, out = d.send("AUTHENTICATE PLAIN")
    assert one(out).command == "AUTHENTICATE"


def test_authenticate_needs_the_sasl_cap() -> None:
    d = Driver()
    cmds, out = d.send("AUTHENTICATE PLAIN")
    assert not cmds and one(out).command == "904"


def test_cap_end_during_an_exchange_aborts_it_and_registers() -> None:
    d = Driver()
    d.send("CAP REQ sasl", "NICK amy", "USER amy 0 * :Amy", "AUTHENTICATE PLAIN")
    cmds, out = d.send("CAP END")
    assert one(out).command == "906"
    assert [type(x) for x in cmds] == [c.Register]


def test_sasl_after_registration_keeps_the_nick() -> None:
    d = Driver()
    d.register("amy", "sasl")
    d.send("AUTHENTICATE PLAIN")
    cmds, _ = d.send("AUTHENTICATE " + encode_plain("amy", "pw12")[0])
    assert cmds == [c.LogIn("amy", "pw12", "sasl")]
    out = d.render(LoggedIn("amy", "amy", "sasl"))
    assert [m.command for m in out] == ["900", "903"]
    assert d.door.account == "amy"


def test_welcome_of_a_logged_in_session_counts_as_authenticated() -> None:
    d = Driver()
    d.register("amy", "sasl", account="amy")
    _, out = d.send("AUTHENTICATE PLAIN")
    assert one(out).command == "907"


# -- NameReserved, StoreUnavailable, account-notify ---------------------------------------------


def test_a_reserved_nick_is_433_before_and_after_registration() -> None:
    d = Driver()
    cmds, _ = d.send("NICK alice", "USER amy 0 * :Amy")
    out = d.render(Failed(e.NameReserved("alice"), cmds[0]))
    assert one(out).command == "433" and out[0].params[:2] == ["*", "alice"]
    assert "SASL" in out[0].params[2] and "NickServ IDENTIFY" in out[0].params[2]
    assert d.door.nick == ""  # free to try another
    cmds, _ = d.send("NICK amy")
    assert [type(x) for x in cmds] == [c.Register]
    d.render(Welcome(d.ref("amy"), 1, SERVER))
    out = d.render(Failed(e.NameReserved("alice"), c.Rename("alice")))
    assert one(out).command == "433" and out[0].params[:2] == ["amy", "alice"]


def test_store_unavailable_is_404_for_rooms_and_nicks() -> None:
    d = Driver()
    d.register("amy")
    out = d.render(Failed(e.StoreUnavailable(), c.Say("tas", "hi")))
    assert one(out).command == "404" and out[0].params[1] == "#tas"
    assert "can't be stored" in out[0].params[2]
    out = d.render(Failed(e.StoreUnavailable(), c.Tell("bob", "hi")))
    assert one(out).params[1] == "bob"
    assert d.render(Failed(e.StoreUnavailable(), c.Say("tas", "x", "notice"))) == []


def test_account_notify() -> None:
    d = Driver()
    d.register("amy", "account-notify")
    m = one(d.render(AccountChanged(BOB, "bob")))
    assert (m.source, m.command, m.params) == ("bob!bob@10.0.0.9", "ACCOUNT", ["bob"])
    m = one(d.render(AccountChanged(CAROL, None)))
    assert m.params == ["*"]
    plain = Driver()
    plain.register("amy")
    assert plain.render(AccountChanged(BOB, "bob")) == []


def test_extended_join_shows_the_account() -> None:
    d = Driver()
    d.register("amy", "extended-join")
    m = one(d.render(Joined("tas", BOB, 2, "Bob B")))
    assert m.params == ["#tas", "bob", "Bob B"]


# -- REGISTER (draft/account-registration) ------------------------------------------------------


def test_register_before_connecting_is_refused() -> None:
    d = Driver()
    d.send("NICK amy")
    cmds, out = d.send("REGISTER * * pw12")
    assert not cmds
    m = one(out)
    assert m.command == "FAIL" and m.params[:2] == ["REGISTER", "COMPLETE_CONNECTION_REQUIRED"]


def test_register_success() -> None:
    d = Driver()
    d.register("amy", "draft/account-registration")
    cmds, _ = d.send("REGISTER * * pw12")
    assert cmds == [c.RegisterAccount("pw12")]
    out = d.render(AccountRegistered("amy"))
    assert [m.command for m in out] == ["REGISTER", "900"]
    assert out[0].params[:2] == ["SUCCESS", "amy"]
    assert d.door.account == "amy"
    _, out = d.send("REGISTER amy x@y pw12")
    assert one(out).params[:3] == ["REGISTER", "ALREADY_AUTHENTICATED", "amy"]


def test_register_under_the_nick_name_only() -> None:
    d = Driver()
    d.register("amy")
    cmds, _ = d.send("REGISTER AMY amy@example.org pw12")
    assert cmds == [c.RegisterAccount("pw12")]  # the nick, in any case
    cmds, out = d.send("REGISTER bea * pw12")
    assert not cmds
    assert one(out).params[:3] == ["REGISTER", "ACCOUNT_NAME_MUST_BE_NICK", "bea"]
    _, out = d.send("REGISTER *")
    assert one(out).command == "461"


@pytest.mark.parametrize(
    ("err", "code", "context"),
    [
        (e.AccountExists("amy"), "ACCOUNT_EXISTS", "amy"),
        (e.AlreadyLoggedIn("bea"), "ALREADY_AUTHENTICATED", "bea"),
        (e.PasswordInvalid("at least 4 characters"), "WEAK_PASSWORD", "amy"),
        (e.PasswordInvalid("no spaces"), "UNACCEPTABLE_PASSWORD", "amy"),
        (e.PasswordInvalid("at most 256 bytes"), "UNACCEPTABLE_PASSWORD", "amy"),
        (e.TryLater("server busy"), "TEMPORARILY_UNAVAILABLE", "amy"),
        (e.StoreUnavailable(), "TEMPORARILY_UNAVAILABLE", "amy"),
    ],
)
def test_register_failures_are_standard_replies(err: e.ChatError, code: str, context: str) -> None:
    d = Driver()
    d.register("amy")
    cmds, _ = d.send("REGISTER * * pw12")
    m = one(d.render(Failed(err, cmds[0])))
    assert m.command == "FAIL" and m.params[:3] == ["REGISTER", code, context]
    assert d.door.account is None


# -- NickServ -----------------------------------------------------------------------------------


def ns_texts(lines: list[Line]) -> list[str]:
    assert all(m.command == "NOTICE" and m.source == f"NickServ!NickServ@{SERVER}" for m in lines)
    return [m.params[1] for m in lines]


@pytest.mark.parametrize(
    ("text", "cmd"),
    [
        ("IDENTIFY pw12", c.LogIn(None, "pw12", "login")),
        ("identify Amy pw12", c.LogIn("Amy", "pw12", "login")),
        ("ID pw12", c.LogIn(None, "pw12", "login")),
        ("REGISTER pw12", c.RegisterAccount("pw12")),
        ("REGISTER pw12 amy@example.org", c.RegisterAccount("pw12")),
        ("SET PASSWORD old1 new2", c.ChangePassword("old1", "new2")),
        ("password old1 new2", c.ChangePassword("old1", "new2")),
    ],
)
def test_nickserv_commands(text: str, cmd: c.Command) -> None:
    for target in ("NickServ", "nickserv", "NICKSERV"):
        d = Driver()
        d.register("amy")
        cmds, out = d.send(f"PRIVMSG {target} :{text}")
        assert cmds == [cmd] and not out
    d = Driver()
    d.register("amy")
    assert d.send(f"NICKSERV {text}")[0] == [cmd]
    assert d.send(f"NS {text}")[0] == [cmd]


def test_nickserv_never_reaches_the_hub() -> None:
    d = Driver()
    d.register("amy")
    # The one-target fast path included: a password must not become a private message.
    cmds, _ = d.send("PRIVMSG NickServ :IDENTIFY pw12", "PRIVMSG bob,NickServ :hello")
    assert cmds == [c.LogIn(None, "pw12", "login"), c.Tell("bob", "hello")]
    cmds, out = d.send("NOTICE NickServ :IDENTIFY pw12")
    assert not cmds and not out


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("HELP", "REGISTER <password>"),
        ("", "IDENTIFY <password>"),
        ("IDENTIFY", "Usage: IDENTIFY"),
        ("REGISTER", "Usage: REGISTER"),
        ("SET PASSWORD onlyone", "Usage: SET PASSWORD"),
        ("FROB x", "Unknown command FROB"),
    ],
)
def test_nickserv_help_and_usage(text: str, needle: str) -> None:
    d = Driver()
    d.register("amy")
    cmds, out = d.send(f"PRIVMSG NickServ :{text}" if text else "NICKSERV")
    assert not cmds
    assert any(needle in t for t in ns_texts(out)), out


def test_nickserv_answers() -> None:
    d = Driver()
    d.register("amy")
    d.send("PRIVMSG NickServ :IDENTIFY pw12")
    out = d.render(LoggedIn("amy", "amy", "login"))
    assert [m.command for m in out] == ["900", "NOTICE"]
    assert ns_texts(out[1:]) == ["You are now identified for amy."]
    d.send("PRIVMSG NickServ :SET PASSWORD pw12 pw34")
    assert ns_texts(d.render(PasswordChanged("amy"))) == ["Your password has been changed."]
    d2 = Driver()
    d2.register("bea")
    d2.send("PRIVMSG NickServ :REGISTER pw12")
    out = d2.render(AccountRegistered("bea"))
    assert [m.command for m in out] == ["900", "NOTICE"]
    assert "bea is now your account" in out[1].params[1]


@pytest.mark.parametrize(
    ("text", "err", "needle"),
    [
        ("IDENTIFY pw12", e.LoginFailed(), "Invalid account or password."),
        ("IDENTIFY pw12", e.TryLater("too many attempts"), "too many attempts"),
        ("REGISTER pw12", e.AccountExists("amy"), "amy is already registered."),
        ("REGISTER pw", e.PasswordInvalid("at least 4 characters"), "at least 4 characters"),
        ("SET PASSWORD a1234 b1234", e.LoginFailed(), "current password is not right"),
        ("SET PASSWORD a1234 b1234", e.NotLoggedIn(), "not logged in"),
    ],
)
def test_nickserv_failures(text: str, err: e.ChatError, needle: str) -> None:
    d = Driver()
    d.register("amy")
    cmds, _ = d.send(f"PRIVMSG NickServ :{text}")
    texts = ns_texts(d.render(Failed(err, cmds[0])))
    assert len(texts) == 1 and needle in texts[0]


def test_nickserv_echo_whois_who_and_its_nick() -> None:
    d = Driver()
    d.register("amy", "echo-message")
    cmds, out = d.send("PRIVMSG NickServ :IDENTIFY pw12")
    assert len(cmds) == 1
    assert one(out).command == "PRIVMSG" and out[0].source == "amy!~amy@10.0.0.7"
    _, out = d.send("WHOIS nickserv")
    assert [m.command for m in out] == ["311", "312", "313", "318"]
    assert out[0].params[1:4] == ["NickServ", "NickServ", SERVER]
    _, out = d.send("WHO NickServ")
    assert [m.command for m in out] == ["352", "315"]
    cmds, out = d.send("NICK NickServ")
    assert not cmds and one(out).command == "432"
    fresh = Driver()
    cmds, out = fresh.send("NICK nickSERV", "USER a 0 * :a")
    assert not cmds and out[0].command == "432"


def test_a_labeled_account_command_gets_its_label_when_the_answer_comes() -> None:
    d = Driver()
    d.register("amy", "labeled-response batch")
    cmds, out = d.send("@label=id1 PRIVMSG NickServ :IDENTIFY pw12")
    assert cmds == [c.LogIn(None, "pw12", "login")]
    assert out == []  # no ACK: the answer is still to come
    out = d.render(LoggedIn("amy", "amy", "login"))
    assert out[0].command == "BATCH" and out[0].tags == {"label": "id1"}
    assert [m.command for m in out[1:]] == ["900", "NOTICE", "BATCH"]
    assert d.render(PasswordChanged("amy"))[0].tags.get("label") is None  # used once


# -- CHATHISTORY: parsing -----------------------------------------------------------------------

TS = "timestamp=" + ISO0


@pytest.mark.parametrize(
    ("line", "want"),
    [
        ("LATEST #tas * 50", c.FetchHistory("tas", True, 50, "latest", None, None)),
        (
            "latest #tas msgid=12 5",
            c.FetchHistory("tas", True, 5, "latest", c.Bound(id=12), None),
        ),
        (
            f"LATEST bob {TS} 5",
            c.FetchHistory("bob", False, 5, "latest", c.Bound(time=T0 + chathistory.MILLI)),
        ),
        ("BEFORE #tas msgid=12 10", c.FetchHistory("tas", True, 10, "before", c.Bound(id=12))),
        (f"BEFORE #tas {TS} 10", c.FetchHistory("tas", True, 10, "before", c.Bound(time=T0))),
        ("AFTER #tas msgid=3 10", c.FetchHistory("tas", True, 10, "after", c.Bound(id=3))),
        (
            f"AFTER #tas {TS} 10",
            c.FetchHistory("tas", True, 10, "after", c.Bound(time=T0 + chathistory.MILLI)),
        ),
        ("AROUND #tas msgid=7 4", c.FetchHistory("tas", True, 4, "around", c.Bound(id=7))),
        (
            "BETWEEN #tas msgid=2 msgid=9 100",
            c.FetchHistory("tas", True, 100, "between", c.Bound(id=2), c.Bound(id=9)),
        ),
        (
            f"BETWEEN #tas {TS} timestamp=2026-01-02T03:04:00.000Z 100",
            c.FetchHistory(
                "tas",
                True,
                100,
                "between",
                c.Bound(time=T0),
                c.Bound(time=T0 - 5.678 + chathistory.MILLI),
            ),
        ),
    ],
)
def test_chathistory_forms(line: str, want: c.FetchHistory) -> None:
    got = chathistory.parse_request(line.split())
    assert isinstance(got, c.FetchHistory)
    assert (got.target, got.room, got.limit, got.mode) == (
        want.target,
        want.room,
        want.limit,
        want.mode,
    )
    for a, b in ((got.start, want.start), (got.end, want.end)):
        if a is None or b is None:
            assert a is b
        else:
            assert a.id == b.id
            assert (a.time is None) == (b.time is None)
            assert a.time is None or b.time is None or abs(a.time - b.time) < 1e-6


def test_chathistory_targets_form() -> None:
    got = chathistory.parse_request(
        ["TARGETS", "timestamp=2026-01-03T00:00:00.000Z", "timestamp=2026-01-01T00:00:00Z", "20"]
    )
    assert isinstance(got, c.FetchTargets)
    jan1 = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    assert got.since == jan1 and got.limit == 20
    assert abs(got.until - (jan1 + 2 * 86400 + chathistory.MILLI)) < 1e-6


@pytest.mark.parametrize(
    ("line", "code", "context"),
    [
        ("", "INVALID_PARAMS", ["*"]),
        ("FROB #tas * 5", "UNKNOWN_COMMAND", ["FROB"]),
        ("LATEST #tas *", "INVALID_PARAMS", ["LATEST"]),
        ("LATEST #tas * 5 extra", "INVALID_PARAMS", ["LATEST"]),
        ("BETWEEN #tas msgid=1 5", "INVALID_PARAMS", ["BETWEEN"]),
        ("TARGETS timestamp=2026-01-01T00:00:00Z 5", "INVALID_PARAMS", ["TARGETS"]),
        ("BEFORE #tas * 5", "INVALID_PARAMS", ["BEFORE", "*"]),
        ("BEFORE #tas timestamp=yesterday 5", "INVALID_PARAMS", ["BEFORE", "timestamp=yesterday"]),
        ("BEFORE #tas msgid=abc 5", "INVALID_PARAMS", ["BEFORE", "msgid=abc"]),
        ("BEFORE #tas msgid=-1 5", "INVALID_PARAMS", ["BEFORE", "msgid=-1"]),
        ("BEFORE #tas id=3 5", "INVALID_PARAMS", ["BEFORE", "id=3"]),
        ("AFTER #tas msgid=3 0", "INVALID_PARAMS", ["AFTER", "0"]),
        ("AFTER #tas msgid=3 -2", "INVALID_PARAMS", ["AFTER", "-2"]),
        ("AFTER #tas msgid=3 ten", "INVALID_PARAMS", ["AFTER", "ten"]),
        ("LATEST #bad*room * 5", "INVALID_TARGET", ["LATEST", "#bad*room"]),
        ("LATEST # * 5", "INVALID_TARGET", ["LATEST", "#"]),
        ("LATEST 9lives * 5", "INVALID_TARGET", ["LATEST", "9lives"]),
        ("LATEST * * 5", "INVALID_TARGET", ["LATEST", "*"]),
        ("TARGETS msgid=1 timestamp=2026-01-01T00:00:00Z 5", "INVALID_PARAMS", ["TARGETS"]),
    ],
)
def test_chathistory_errors(line: str, code: str, context: list[str]) -> None:
    with pytest.raises(chathistory.RequestError) as got:
        chathistory.parse_request(line.split())
    assert got.value.code == code
    assert list(got.value.context[: len(context)]) == context
    # And the door says it as a standard reply.
    d = Driver()
    d.register("amy", "draft/chathistory")
    cmds, out = d.send(f"CHATHISTORY {line}".rstrip())
    assert not cmds
    m = one(out)
    assert m.command == "FAIL" and m.params[:2] == ["CHATHISTORY", code]
    assert m.params[2 : 2 + len(context)] == context


def test_chathistory_needs_registration() -> None:
    cmds, out = Driver().send("CHATHISTORY LATEST #tas * 5")
    assert not cmds and one(out).command == "451"


def test_chathistory_for_nickserv_is_an_empty_batch() -> None:
    d = Driver()
    d.register("amy", "draft/chathistory batch")
    cmds, out = d.send("CHATHISTORY LATEST NickServ * 50")
    assert not cmds
    assert [(m.command, m.params[1:]) for m in out] == [
        ("BATCH", ["chathistory", "NickServ"]),
        ("BATCH", []),
    ]


# -- CHATHISTORY: answers ------------------------------------------------------------------------


def test_history_reply_in_a_chathistory_batch() -> None:
    d = Driver()
    d.register("amy", "draft/chathistory batch server-time message-tags account-tag")
    cmds, _ = d.send("CHATHISTORY LATEST #tas * 50")
    assert cmds == [c.FetchHistory("tas", True, 50, "latest")]
    reply = HistoryReply("tas", True, (msg(3, "one"), msg(4, "waves", kind="action")), "request")
    out = d.render(reply)
    start, first, second, end = out
    assert start.command == "BATCH" and start.params[1:] == ["chathistory", "#tas"]
    ref = start.params[0][1:]
    assert start.params[0] == "+" + ref and end.params == ["-" + ref]
    assert first.tags == {"batch": ref, "time": ISO0, "msgid": "3", "account": "bob"}
    assert (first.source, first.command, first.params) == (
        "bob!bob@10.0.0.9",
        "PRIVMSG",
        ["#tas", "one"],
    )
    assert second.params == ["#tas", "\x01ACTION waves\x01"]


def test_private_history_lines_are_as_they_were() -> None:
    d = Driver()
    d.register("amy", "draft/chathistory batch")
    me = d.ref("amy", "amy")
    talk = (
        Private(5, T0, BOB, me, "hi amy"),
        Private(6, T0 + 1, me, UserRef(0, "bob", "bob", "", "bob"), "hi bob"),
    )
    out = d.render(HistoryReply("bob", False, talk, "request"))
    assert out[0].params[1:] == ["chathistory", "bob"]
    assert [(m.source, m.params) for m in out[1:3]] == [
        ("bob!bob@10.0.0.9", ["amy", "hi amy"]),
        ("amy!~amy@10.0.0.7", ["bob", "hi bob"]),
    ]


def test_history_reply_without_batch_is_plain_lines() -> None:
    d = Driver()
    d.register("amy", "draft/chathistory")
    out = d.render(HistoryReply("tas", True, (msg(3, "one"), msg(4, "two")), "request"))
    assert [m.params for m in out] == [["#tas", "one"], ["#tas", "two"]]
    assert all(not m.tags for m in out)
    assert d.render(HistoryReply("tas", True, (), "request")) == []


def test_empty_history_is_an_empty_batch() -> None:
    d = Driver()
    d.register("amy", "draft/chathistory batch")
    out = d.render(HistoryReply("tas", True, (), "request"))
    assert [m.command for m in out] == ["BATCH", "BATCH"]


def test_labeled_chathistory_puts_the_label_on_the_batch() -> None:
    d = Driver()
    d.register("amy", "draft/chathistory batch labeled-response")
    cmds, out = d.send("@label=h1 CHATHISTORY BEFORE #tas msgid=9 2")
    assert out == []  # no ACK now: the answer carries the label
    (cmd,) = cmds
    assert isinstance(cmd, c.FetchHistory) and cmd.tag
    out = d.render(HistoryReply("tas", True, (msg(7, "a"), msg(8, "b")), "request", cmd.tag))
    assert out[0].command == "BATCH" and out[0].tags == {"label": "h1"}
    assert all("label" not in m.tags for m in out[1:])
    # Without batch: one line carries the label, none gives an ACK.
    d = Driver()
    d.register("amy", "draft/chathistory labeled-response")
    cmds, _ = d.send("@label=h2 CHATHISTORY LATEST #tas * 1")
    tag = cmds[0].tag  # type: ignore[union-attr]
    m = one(d.render(HistoryReply("tas", True, (msg(8, "b"),), "request", tag)))
    assert m.tags == {"label": "h2"} and m.params == ["#tas", "b"]
    m = one(d.render(HistoryReply("tas", True, (), "request", tag)))
    assert m.command == "ACK" and m.tags == {"label": "h2"}


def test_a_refused_labeled_chathistory_is_labeled_at_once() -> None:
    d = Driver()
    d.register("amy", "draft/chathistory batch labeled-response")
    cmds, _ = d.send("@label=h3 CHATHISTORY LATEST #secret * 5")
    out = d.render(Failed(e.NotInRoom("secret"), cmds[0]))
    assert out  # rendered while no label is open: the server sends it as it is
    m = one(out)
    assert m.params[:4] == ["CHATHISTORY", "INVALID_TARGET", "LATEST", "#secret"]


@pytest.mark.parametrize(
    ("err", "cmd", "code", "target"),
    [
        (e.NoSuchRoom("nope"), c.FetchHistory("nope", True, 5), "INVALID_TARGET", "#nope"),
        (e.NotInRoom("sec"), c.FetchHistory("sec", True, 5, "before"), "INVALID_TARGET", "#sec"),
        (e.NotLoggedIn(), c.FetchHistory("bob", False, 5), "INVALID_TARGET", "bob"),
        (e.TryLater("x"), c.FetchHistory("tas", True, 5, "around"), "MESSAGE_ERROR", "#tas"),
        (e.TryLater("x"), c.FetchTargets(0.0, 1.0, 5), "MESSAGE_ERROR", "*"),
    ],
)
def test_chathistory_refusals(
    err: e.ChatError, cmd: c.FetchHistory | c.FetchTargets, code: str, target: str
) -> None:
    d = Driver()
    d.register("amy", "draft/chathistory")
    m = one(d.render(Failed(err, cmd)))
    sub = "TARGETS" if isinstance(cmd, c.FetchTargets) else cmd.mode.upper()
    assert m.command == "FAIL" and m.params[:4] == ["CHATHISTORY", code, sub, target]
    if isinstance(err, e.NotLoggedIn):
        assert "log in" in m.params[-1]


def test_targets_reply() -> None:
    d = Driver()
    d.register("amy", "draft/chathistory batch")
    cmds, _ = d.send(
        "CHATHISTORY TARGETS timestamp=2026-01-01T00:00:00.000Z timestamp=2026-02-01T00:00:00Z 9"
    )
    assert isinstance(cmds[0], c.FetchTargets)
    out = d.render(HistoryTargets((("tas", True, T0), ("bob", False, T0 + 60)), cmds[0].tag))
    assert out[0].params[1:] == ["draft/chathistory-targets"]
    assert [m.params for m in out[1:3]] == [
        ["TARGETS", "#tas", ISO0],
        ["TARGETS", "bob", "2026-01-02T03:05:05.678Z"],
    ]
    assert all(m.command == "CHATHISTORY" and m.source == SERVER for m in out[1:3])
    assert out[3].command == "BATCH"


def test_isupport_advertises_history() -> None:
    tokens = isupport(IrcInfo(history_max=250))
    assert "CHATHISTORY=250" in tokens
    assert "MSGREFTYPES=msgid,timestamp" in tokens


# -- history on JOIN ------------------------------------------------------------------------------


def join_events(d: Driver, messages: tuple[Message, ...]) -> list[Event]:
    me = d.ref()
    return [
        Joined("tas", me, 2),
        NameList("tas", (Member(me, ""), Member(BOB, "o"))),
        HistoryReply("tas", True, messages, "join"),
    ]


def test_join_playback_for_clients_without_chathistory() -> None:
    old = datetime(2025, 5, 6, 7, 8, tzinfo=UTC).timestamp()
    history = (msg(1, "long ago", old), msg(2, "now", T0 + 0.5))
    # Plain client: the time goes in front of the text.
    d = Driver()
    d.register("amy")
    out = d.render(HistoryReply("tas", True, history, "join"))
    assert out[0].params[1] == "[2025-05-06 07:08] long ago"
    assert out[1].params[1].endswith("] now") and out[1].params[1].startswith("[")
    # server-time: as they were, with their time.
    d = Driver()
    d.register("amy", "server-time")
    out = d.render(HistoryReply("tas", True, history, "join"))
    assert [m.params[1] for m in out] == ["long ago", "now"]
    assert out[0].tags["time"] == "2025-05-06T07:08:00.000Z"
    # batch: in a chathistory batch.
    d = Driver()
    d.register("amy", "batch server-time")
    out = d.render(HistoryReply("tas", True, history, "join"))
    assert out[0].command == "BATCH" and out[0].params[1:] == ["chathistory", "#tas"]
    assert len(out) == 4
    # draft/chathistory: nothing (the client asks for what it wants).
    d = Driver()
    d.register("amy", "draft/chathistory batch server-time")
    assert d.render(HistoryReply("tas", True, history, "join")) == []


def test_playback_today_shows_only_the_time() -> None:
    d = Driver()
    d.register("amy")
    now = datetime.now(UTC).replace(hour=12, minute=34, second=0, microsecond=0)
    out = d.render(HistoryReply("tas", True, (msg(1, "noon", now.timestamp()),), "join"))
    assert one(out).params[1] == "[12:34] noon"


def test_labeled_join_nests_the_playback_batch() -> None:
    d = Driver()
    d.register("amy", "batch labeled-response server-time")
    cmds, _ = d.send("@label=j1 JOIN #tas")
    assert cmds == [c.Join("tas", None, create=True)]
    # What the server does: begin label, the hub's events rendered, end label.
    items = d.door.receive_data(b"@label=j2 JOIN #tas\r\n")
    (deferred,) = items
    assert isinstance(deferred, Deferred)
    begin, _join, end = deferred.resolve()
    assert callable(begin) and callable(end)
    begin()
    for ev in join_events(d, (msg(1, "hi"), msg(2, "there"))):
        assert d.door.render(ev) == b""
    out = lines_of(end())
    assert [m.command for m in out] == [
        "BATCH",
        "JOIN",
        "353",
        "366",
        "BATCH",
        "PRIVMSG",
        "PRIVMSG",
        "BATCH",
        "BATCH",
    ]
    outer = out[0]
    assert outer.tags == {"label": "j2"} and outer.params[1] == "labeled-response"
    ref = outer.params[0][1:]
    assert all(m.tags["batch"] == ref for m in out[1:5])
    inner_start = out[4]
    assert inner_start.params[1:] == ["chathistory", "#tas"]
    inner = inner_start.params[0][1:]
    assert inner != ref
    assert [m.tags["batch"] for m in out[5:7]] == [inner, inner]
    assert out[7].params == ["-" + inner] and out[7].tags["batch"] == ref
    assert out[8].params == ["-" + ref] and "batch" not in out[8].tags

"""Accounts and stored history through the IRC door, end to end: a real ``salas serve``
with its SQLite store, raw sockets, and line-door users beside the IRC ones.

SPEC: IRCv3 ``sasl`` (PLAIN), ``account-tag``, ``draft/chathistory``; "a registered name
can't be taken by a guest"; "every room message is stored and shown on join (last N) and
on request, in every protocol".

The IRC client and line parser are the independent ones of ``test_irc``. Every wait is
bounded. Failed logins slow the next ones from the same address down (0.5 s, doubled
each time, forgotten after a success), so tests here fail a password rarely and follow
each failure with a success.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from e2e.test_irc import IrcClient, Msg
from support import LineClient, RunningServer, start_server, welcome

SERVER = "store.test"
CONFIG = f"""
[server]
name = "{SERVER}"

[limits]
flood_exempt = ["127.0.0.0/8"]
"""
HISTORY_CAPS = ("draft/chathistory", "batch", "server-time", "message-tags", "account-tag")


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    server = start_server(tmp_path_factory.mktemp("irc-store"), ("line", "irc"), config=CONFIG)
    yield server
    server.stop()


@pytest.fixture
def clients() -> Iterator[list[IrcClient | LineClient]]:
    made: list[IrcClient | LineClient] = []
    yield made
    for c in made:
        c.close()


@pytest.fixture
def irc(srv: RunningServer, clients: list[IrcClient | LineClient]) -> Callable[..., IrcClient]:
    """A fresh IRC connection; with a nick, registered (with ``caps``)."""

    def make(nick: str = "", caps: tuple[str, ...] = ()) -> IrcClient:
        c = IrcClient(srv.ports["irc"])
        clients.append(c)
        if nick:
            c.register(nick, caps)
        return c

    return make


@pytest.fixture
def line(srv: RunningServer, clients: list[IrcClient | LineClient]) -> Callable[..., LineClient]:
    """A line-door user under ``name``; with a password, its name registered as an account."""

    def make(name: str, password: str = "") -> LineClient:
        c = welcome(srv.ports["line"], name)
        clients.append(c)
        if password:
            c.send(f"/register {password}")
            c.expect(f"> The name {name} is now your account")
        return c

    return make


def plain(user: str, password: str, authzid: str = "") -> str:
    return base64.b64encode(f"{authzid}\x00{user}\x00{password}".encode()).decode()


def sasl(c: IrcClient, nick: str, account: str, password: str, caps: tuple[str, ...] = ()) -> Msg:
    """CAP, NICK, USER and a SASL PLAIN exchange; the 903 or 904 that ends it."""
    c.cap_ls()
    c.send(f"CAP REQ :{' '.join(('sasl', *caps))}")
    c.expect(lambda m: m.command == "CAP" and m.params[1] == "ACK")
    c.send(f"NICK {nick}")
    c.send(f"USER {nick} 0 * :{nick}")
    c.send("AUTHENTICATE PLAIN")
    assert c.expect(lambda m: m.command == "AUTHENTICATE").params == ["+"]
    c.send("AUTHENTICATE " + plain(account, password))
    return c.expect(lambda m: m.command in ("903", "904"), timeout=20)


def finish(c: IrcClient, nick: str) -> list[Msg]:
    """CAP END; the burst up to the end of the MOTD."""
    start = len(c.seen)
    c.send("CAP END")
    c.expect(lambda m: m.command in ("376", "422"))
    c.nick = nick
    return c.seen[start:]


def batch_of(c: IrcClient, command: str, timeout: float = 5.0) -> tuple[Msg, list[Msg]]:
    """Send ``command``; the BATCH start it gets and the lines in the batch."""
    c.send(command)
    start = c.expect(lambda m: m.command == "BATCH" and m.params[0].startswith("+"), timeout)
    ref = start.params[0][1:]
    body = c.until(lambda m: m.command == "BATCH" and m.params == ["-" + ref], timeout)
    inside = body[:-1]
    assert all(m.tags.get("batch") == ref for m in inside), [m.raw for m in inside]
    return start, inside


def whois_account(c: IrcClient, nick: str) -> str | None:
    c.send(f"WHOIS {nick}")
    got = c.until(lambda m: m.command == "318")
    found = [m for m in got if m.command == "330"]
    return found[0].params[2] if found else None


def say_many(liner: LineClient, texts: list[str]) -> None:
    """Said one by one, each in its own millisecond (timestamps on the wire have ms):
    each is taken before the next is sent."""
    for i, text in enumerate(texts):
        liner.send(text)
        liner.send(f"/echo said {i}")
        liner.expect(f"said {i}")
        time.sleep(0.003)


# -- SASL -----------------------------------------------------------------------------------


def test_sasl_plain_logs_in_before_registration(
    irc: Callable[..., IrcClient], line: Callable[..., LineClient]
) -> None:
    owner = line("saslamy", "pw-amy-1")
    owner.send("/quit")
    c = irc()
    m = sasl(c, "saslamy", "saslamy", "pw-amy-1")
    assert m.command == "903" and m.params == ["saslamy", "SASL authentication successful"]
    logged = c.seen[-2]
    assert logged.command == "900"
    assert logged.params == [
        "saslamy",
        "saslamy!~saslamy@127.0.0.1",
        "saslamy",
        "You are now logged in as saslamy",
    ]
    burst = finish(c, "saslamy")
    assert burst[0].command == "001" and burst[0].params[0] == "saslamy"
    assert whois_account(c, "saslamy") == "saslamy"
    c.send("AUTHENTICATE PLAIN")
    assert c.num("907").params[0] == "saslamy"


def test_sasl_failure_gives_no_hint(
    irc: Callable[..., IrcClient], line: Callable[..., LineClient]
) -> None:
    line("saslben", "pw-ben-1")
    wrong = irc()
    m1 = sasl(wrong, "benny", "saslben", "not-it")
    missing = irc()
    m2 = sasl(missing, "benny2", "nosuchaccount", "not-it")
    assert (m1.command, m1.params[1:]) == ("904", ["SASL authentication failed"])
    assert (m2.command, m2.params[1:]) == (m1.command, m1.params[1:])
    # The failed connection carries on as a guest: it may try again, or just register.
    wrong.send("AUTHENTICATE PLAIN")
    wrong.expect(lambda m: m.command == "AUTHENTICATE")
    wrong.send("AUTHENTICATE " + plain("saslben", "pw-ben-1"))
    assert wrong.expect(lambda m: m.command in ("903", "904"), timeout=20).command == "903"
    finish(wrong, "benny")
    assert whois_account(wrong, "benny") == "saslben"
    finish(missing, "benny2")
    assert whois_account(missing, "benny2") is None


def test_a_guest_cant_take_a_registered_nick_but_its_owner_can(
    irc: Callable[..., IrcClient], line: Callable[..., LineClient]
) -> None:
    owner = line("saslcat", "pw-cat-1")
    owner.send("/quit")
    guest = irc()
    guest.send("NICK saslcat")
    guest.send("USER g 0 * :g")
    refused = guest.num("433")
    assert refused.params[:2] == ["*", "saslcat"]
    assert "registered to an account" in refused.params[2]
    guest.send("NICK saslcat_guest")
    guest.num("001")
    guest.send("NICK SASLCAT")
    assert guest.num("433").params[1] == "SASLCAT"
    real = irc()
    assert sasl(real, "saslcat", "saslcat", "pw-cat-1").command == "903"
    assert finish(real, "saslcat")[0].params[0] == "saslcat"


def test_a_sasl_login_survives_a_refused_nick(
    irc: Callable[..., IrcClient], line: Callable[..., LineClient]
) -> None:
    line("sasldan", "pw-dan-1")  # online: the nick is in use
    c = irc()
    assert sasl(c, "sasldan", "sasldan", "pw-dan-1").command == "903"
    c.send("CAP END")
    assert c.num("433").params[1] == "sasldan"
    c.send("NICK sasldan_")
    c.expect(lambda m: m.command in ("376", "422"))
    c.nick = "sasldan_"
    assert whois_account(c, "sasldan_") == "sasldan"


# -- REGISTER and NickServ ---------------------------------------------------------------------


def test_register_command(irc: Callable[..., IrcClient]) -> None:
    c = irc("regeve", ("draft/account-registration",))
    c.send("REGISTER * * abc")
    weak = c.expect(lambda m: m.command == "FAIL")
    assert weak.params[:3] == ["REGISTER", "WEAK_PASSWORD", "regeve"]
    c.send("REGISTER someoneelse * pw-eve-1")
    assert c.expect(lambda m: m.command == "FAIL").params[1] == "ACCOUNT_NAME_MUST_BE_NICK"
    c.send("REGISTER * eve@example.org pw-eve-1")
    ok = c.expect(lambda m: m.command == "REGISTER", timeout=10)
    assert ok.params[:2] == ["SUCCESS", "regeve"] and ok.source == SERVER
    assert c.num("900").params[2] == "regeve"
    assert whois_account(c, "regeve") == "regeve"
    c.send("REGISTER * * pw-eve-2")
    assert c.expect(lambda m: m.command == "FAIL").params[1] == "ALREADY_AUTHENTICATED"
    other = irc()
    other.send("NICK regeve")
    other.send("USER x 0 * :x")
    assert other.num("433").params[1] == "regeve"


def ns_notice(c: IrcClient, timeout: float = 10.0) -> str:
    m = c.expect(lambda m: m.command == "NOTICE" and m.nick == "NickServ", timeout)
    assert m.source == f"NickServ!NickServ@{SERVER}"
    return m.last


def test_nickserv_register_identify_and_password(irc: Callable[..., IrcClient]) -> None:
    c = irc("nsfay")
    c.send("WHOIS NickServ")
    assert c.num("311").params[1:4] == ["NickServ", "NickServ", SERVER]
    c.send("PRIVMSG nickserv :help")
    helped = [m.last for m in c.sync() if m.command == "NOTICE" and m.nick == "NickServ"]
    assert any("REGISTER <password>" in t for t in helped), helped
    c.send("PRIVMSG NickServ :REGISTER pw-fay-1")
    assert c.num("900", timeout=10).params[2] == "nsfay"
    assert "nsfay is now your account" in ns_notice(c)
    c.send("PRIVMSG NickServ :SET PASSWORD pw-fay-1 pw-fay-2")
    assert ns_notice(c) == "Your password has been changed."
    c.send("QUIT")
    assert c.closed()

    again = irc("nsfay_")
    again.send("PRIVMSG NickServ :IDENTIFY nsfay pw-fay-1")  # the old one: refused
    assert ns_notice(again) == "Invalid account or password."
    again.send("PRIVMSG NickServ :IDENTIFY nsfay pw-fay-2")
    renamed = again.expect(lambda m: m.command == "NICK", timeout=10)
    assert renamed.nick == "nsfay_" and renamed.params == ["nsfay"]
    assert again.num("900").params[2] == "nsfay"
    assert ns_notice(again) == "You are now identified for nsfay."
    again.nick = "nsfay"
    assert whois_account(again, "nsfay") == "nsfay"
    # NickServ is nobody's nick.
    again.send("NICK NickServ")
    assert again.num("432").params[1] == "NickServ"


def test_identify_as_the_nick_one_has(
    irc: Callable[..., IrcClient], line: Callable[..., LineClient]
) -> None:
    owner = line("nsgus", "pw-gus-1")
    owner.send("/quit")
    c = irc()
    assert sasl(c, "nsgus", "nsgus", "pw-gus-1").command == "903"
    finish(c, "nsgus")
    c.send("PRIVMSG NickServ :IDENTIFY pw-gus-1")
    assert ns_notice(c) == "You are now identified for nsgus."


# -- account-notify and account-tag -----------------------------------------------------------


def test_account_notify_account_tag_and_extended_join(
    irc: Callable[..., IrcClient], line: Callable[..., LineClient]
) -> None:
    watcher = irc("acwatch", ("account-notify", "account-tag", "message-tags", "extended-join"))
    watcher.join("#acct")
    liner = line("acliner")
    liner.send("/join acct")
    liner.expect("> You joined acct")
    joined = watcher.expect(lambda m: m.command == "JOIN" and m.nick == "acliner")
    assert joined.params[1] == "*"
    liner.send("/register pw-acl-1")
    m = watcher.expect(lambda m: m.command == "ACCOUNT", timeout=10)
    assert m.source == "acliner!acliner@127.0.0.1" and m.params == ["acliner"]
    liner.send("now with an account")
    said = watcher.expect(lambda m: m.command == "PRIVMSG")
    assert said.tags.get("account") == "acliner" and said.last == "now with an account"

    ircer = irc("acircer")
    ircer.join("#acct")
    watcher.expect(lambda m: m.command == "JOIN" and m.nick == "acircer")
    ircer.send("PRIVMSG NickServ :REGISTER pw-aci-1")
    m = watcher.expect(lambda m: m.command == "ACCOUNT", timeout=10)
    assert m.nick == "acircer" and m.params == ["acircer"]
    ircer.send("PART #acct")
    ircer.join("#acct")
    again = watcher.expect(lambda m: m.command == "JOIN" and m.nick == "acircer")
    assert again.params[1] == "acircer"  # extended-join shows the account


# -- CHATHISTORY --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def room_history(srv: RunningServer) -> Iterator[tuple[str, list[str]]]:
    """Room ``hist``, made by a line user with an account, and ten messages said in it."""
    liner = welcome(srv.ports["line"], "histowner")
    liner.send("/register pw-hist-1")
    liner.expect("> The name histowner is now your account")
    liner.send("/create hist")
    liner.expect("> You joined hist")
    texts = [f"hist message {i}" for i in range(10)]
    say_many(liner, texts)
    yield "#hist", texts
    liner.close()


def history_texts(msgs: list[Msg]) -> list[str]:
    return [m.last for m in msgs]


def test_chathistory_every_form(
    irc: Callable[..., IrcClient], room_history: tuple[str, list[str]]
) -> None:
    chan, texts = room_history
    c = irc("chreader", HISTORY_CAPS)
    c.send(f"JOIN {chan}")
    c.until(lambda m: m.command == "366")
    # A client that asks for history itself gets none on JOIN.
    assert not [m for m in c.sync() if m.command in ("PRIVMSG", "BATCH")]

    start, got = batch_of(c, f"CHATHISTORY LATEST {chan} * 100")
    assert start.params[1:] == ["chathistory", chan] and start.source == SERVER
    assert history_texts(got) == texts
    first = got[0]
    assert first.source == "histowner!histowner@127.0.0.1" and first.params[0] == chan
    assert first.tags["account"] == "histowner"
    ids = [m.tags["msgid"] for m in got]
    times = [m.tags["time"] for m in got]
    assert len(set(ids)) == 10 and all(int(x) for x in ids)

    _, got = batch_of(c, f"CHATHISTORY LATEST {chan} * 3")
    assert history_texts(got) == texts[7:]
    _, got = batch_of(c, f"CHATHISTORY LATEST {chan} msgid={ids[7]} 50")
    assert history_texts(got) == texts[8:]
    _, got = batch_of(c, f"CHATHISTORY LATEST {chan} timestamp={times[8]} 50")
    assert history_texts(got) == texts[9:]
    _, got = batch_of(c, f"CHATHISTORY BEFORE {chan} msgid={ids[7]} 2")
    assert history_texts(got) == texts[5:7]
    _, got = batch_of(c, f"CHATHISTORY BEFORE {chan} timestamp={times[5]} 2")
    assert history_texts(got) == texts[3:5]
    _, got = batch_of(c, f"CHATHISTORY AFTER {chan} msgid={ids[2]} 2")
    assert history_texts(got) == texts[3:5]
    _, got = batch_of(c, f"CHATHISTORY AFTER {chan} timestamp={times[2]} 2")
    assert history_texts(got) == texts[3:5]
    _, got = batch_of(c, f"CHATHISTORY AROUND {chan} msgid={ids[5]} 4")
    assert history_texts(got) == texts[3:7]
    _, got = batch_of(c, f"CHATHISTORY BETWEEN {chan} msgid={ids[1]} msgid={ids[5]} 10")
    assert history_texts(got) == texts[2:5]
    _, got = batch_of(c, f"CHATHISTORY BETWEEN {chan} msgid={ids[5]} msgid={ids[1]} 2")
    assert history_texts(got) == texts[3:5]  # backwards: the two nearest the start
    _, got = batch_of(c, f"CHATHISTORY BETWEEN {chan} timestamp={times[1]} timestamp={times[5]} 10")
    assert history_texts(got) == texts[2:5]
    _, got = batch_of(c, f"CHATHISTORY AFTER {chan} msgid={ids[9]} 10")
    assert got == []  # nothing: an empty batch


def test_chathistory_errors_and_labels(
    irc: Callable[..., IrcClient], room_history: tuple[str, list[str]]
) -> None:
    chan, texts = room_history
    c = irc("cherrs", (*HISTORY_CAPS, "labeled-response"))
    for command, want in [
        ("CHATHISTORY LATEST #nosuchroom * 5", ["INVALID_TARGET", "LATEST", "#nosuchroom"]),
        ("CHATHISTORY LATEST someone * 5", ["INVALID_TARGET", "LATEST", "someone"]),
        ("CHATHISTORY SOMETIME #hist * 5", ["UNKNOWN_COMMAND", "SOMETIME"]),
        ("CHATHISTORY BEFORE #hist * 5", ["INVALID_PARAMS", "BEFORE", "*"]),
        ("CHATHISTORY LATEST #hist *", ["INVALID_PARAMS", "LATEST"]),
        ("CHATHISTORY AFTER #hist timestamp=soon 5", ["INVALID_PARAMS", "AFTER"]),
    ]:
        c.send(command)
        m = c.expect(lambda m: m.command == "FAIL")
        assert m.params[0] == "CHATHISTORY" and m.params[1 : 1 + len(want)] == want, m.raw
    # Private history is an account's: the text says so.
    c.send("CHATHISTORY LATEST someone * 5")
    assert "log in" in c.expect(lambda m: m.command == "FAIL").last

    c.send(f"@label=hist1 CHATHISTORY LATEST {chan} * 2")
    start = c.expect(lambda m: m.command == "BATCH")
    assert start.tags.get("label") == "hist1" and start.params[1:] == ["chathistory", chan]
    ref = start.params[0][1:]
    body = c.until(lambda m: m.command == "BATCH")
    assert history_texts(body[:-1]) == texts[8:] and body[-1].params == ["-" + ref]
    c.send("@label=hist2 CHATHISTORY LATEST #nosuchroom * 2")
    m = c.expect(lambda m: "label" in m.tags)
    assert m.command == "FAIL" and m.tags["label"] == "hist2"
    # No stray ACK for the labeled requests.
    assert not [m for m in c.sync() if m.command == "ACK"]


def test_private_history_and_targets(
    irc: Callable[..., IrcClient], line: Callable[..., LineClient]
) -> None:
    peer = line("pvpeer", "pw-pvp-1")
    c = irc("pvme", HISTORY_CAPS)
    c.send("PRIVMSG NickServ :REGISTER pw-pvme-1")
    c.num("900", timeout=10)
    before = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    c.send("PRIVMSG pvpeer :hello peer")
    peer.expect("hello peer")
    time.sleep(0.01)
    peer.send("/msg pvme hello back")
    c.expect(lambda m: m.command == "PRIVMSG" and m.last == "hello back")

    start, got = batch_of(c, "CHATHISTORY LATEST pvpeer * 10")
    assert start.params[1:] == ["chathistory", "pvpeer"]
    assert [(m.nick, m.params) for m in got] == [
        ("pvme", ["pvpeer", "hello peer"]),
        ("pvpeer", ["pvme", "hello back"]),
    ]
    c.join("#pvroom")
    c.send("PRIVMSG #pvroom :a room line")
    time.sleep(0.05)
    start, got = batch_of(
        c, f"CHATHISTORY TARGETS timestamp={before} timestamp=2099-01-01T00:00:00.000Z 10"
    )
    assert start.params[1:] == ["draft/chathistory-targets"]
    assert all(m.command == "CHATHISTORY" and m.params[0] == "TARGETS" for m in got)
    names = [m.params[1] for m in got]
    assert names == ["pvpeer", "#pvroom"], names
    for m in got:
        datetime.strptime(m.params[2], "%Y-%m-%dT%H:%M:%S.%fZ")  # a wire timestamp


# -- history on JOIN ----------------------------------------------------------------------------


def test_join_playback_for_clients_without_chathistory(
    irc: Callable[..., IrcClient], room_history: tuple[str, list[str]]
) -> None:
    chan, texts = room_history
    old = irc("pbplain")
    old.send(f"JOIN {chan}")
    old.until(lambda m: m.command == "366")
    shown = [m for m in old.sync() if m.command == "PRIVMSG"]
    assert len(shown) == len(texts)
    for m, text in zip(shown, texts, strict=True):
        assert m.nick == "histowner" and m.params[0] == chan
        stamp, _, rest = m.last.partition("] ")
        assert rest == text
        datetime.strptime(stamp, "[%H:%M")  # [HH:MM] in front, as it is from today

    modern = irc("pbmodern", ("batch", "server-time", "message-tags"))
    modern.send(f"JOIN {chan}")
    modern.until(lambda m: m.command == "366")
    got = modern.sync()
    start, *body, end = got
    assert start.command == "BATCH" and start.params[1:] == ["chathistory", chan]
    assert end.command == "BATCH" and end.params == ["-" + start.params[0][1:]]
    assert history_texts(body) == texts
    assert all("time" in m.tags and "msgid" in m.tags for m in body)


# -- history and accounts survive a restart ---------------------------------------------------


def test_history_and_accounts_survive_a_restart(tmp_path: Path) -> None:
    first = start_server(tmp_path, ("line", "irc"), config=CONFIG)
    try:
        keeper = welcome(first.ports["line"], "keeper")
        keeper.send("/register pw-keep-1")
        keeper.expect("> The name keeper is now your account")
        keeper.send("/create keep")
        keeper.expect("> You joined keep")
        texts = ["kept one", "kept two", "kept three"]
        say_many(keeper, texts)
        c = IrcClient(first.ports["irc"])
        c.register("keepirc", HISTORY_CAPS)
        _, got = batch_of(c, "CHATHISTORY LATEST #keep * 10")
        ids = [m.tags["msgid"] for m in got]
        keeper.close()
        c.close()
    finally:
        assert first.stop() == 0

    second = start_server(tmp_path, ("line", "irc"), config=CONFIG)
    try:
        c = IrcClient(second.ports["irc"])
        assert sasl(c, "keeper", "keeper", "pw-keep-1", HISTORY_CAPS).command == "903"
        finish(c, "keeper")
        _, got = batch_of(c, "CHATHISTORY LATEST #keep * 10")
        assert history_texts(got) == texts
        assert [m.tags["msgid"] for m in got] == ids
        c.close()
        guest = IrcClient(second.ports["irc"])
        guest.register("keepguest")
        guest.send("JOIN #keep")
        guest.until(lambda m: m.command == "366")
        shown = [m.last.partition("] ")[2] for m in guest.sync() if m.command == "PRIVMSG"]
        assert shown == texts
        guest.close()
    finally:
        second.stop()

"""The line door end to end: a real server, netcat-like sockets.

Each test quotes the SPEC line it checks.
"""

from __future__ import annotations

import re

from support import LineClient, RunningServer, welcome


def test_welcome_guest_name_and_lobby(server: RunningServer) -> None:
    """On connect: a welcome line, a guest name valid in every protocol, and the lobby."""
    c = LineClient(server.port)
    assert c.next_line().startswith("> Welcome to salas.local")
    line = c.next_line()
    m = re.match(r"> Connected to the chat server as (guest\d{5}) \(1 user online\)$", line)
    assert m, c.seen
    assert c.next_line() == "> You joined lobby (1 user online)"


def test_join_and_leave_notices_carry_counts(server: RunningServer) -> None:
    """Seed 004: notices with (N users online)."""
    a = welcome(server.port, "alice")
    b = LineClient(server.port)
    guest = a.expect("joined lobby (2 users online)").split()[1]
    b.expect("> In lobby with you: alice")
    b.close()
    left = a.expect(f"< {guest} left lobby")
    assert left == f"< {guest} left lobby (1 user online): Connection closed"


def test_create_with_limit_list_and_full_room(server: RunningServer) -> None:
    """Seed 001: /list shows `Teste - 2/2`; a full room is a one-line error that changes nothing."""
    a = welcome(server.port, "yan")
    b = welcome(server.port, "buendia")
    c = welcome(server.port, "third")
    a.send("/create Teste 2")
    a.expect("> You joined Teste (1 user online)")
    b.send("/join Teste")
    b.expect("> You joined Teste (2 users online)")
    c.send("/list")
    c.expect("> Rooms (2):")
    rows = c.drain()
    assert "  Teste - 2/2 users" in rows
    assert "  lobby - 1 user" in rows
    c.send("/join Teste")
    assert c.expect("!") == "! Room Teste is full (2/2)"
    # Nothing changed: c is still in the lobby and can talk there.
    c.send("/who")
    assert c.expect("> Users in") == "> Users in lobby (1):"


def test_join_missing_room_keeps_current_room(server: RunningServer) -> None:
    """A command that fails changes nothing (seed 002's rule, every door)."""
    a = welcome(server.port, "ann")
    b = welcome(server.port, "ben")
    a.send("/join nowhere")
    assert a.expect("!") == "! No room named nowhere. Create it with /create nowhere"
    a.send("still here")
    assert b.expect("[ann]") == "[ann] still here"


def test_messages_go_only_to_the_room(server: RunningServer) -> None:
    a = welcome(server.port, "amy")
    b = welcome(server.port, "bo")
    c = welcome(server.port, "cy")
    a.send("/create tas")
    a.expect("> You joined tas")
    b.send("/join #tas")  # IRC habits work too
    b.expect("> You joined tas (2 users online)")
    a.send("in tas only")
    assert b.expect("[amy]") == "[amy] in tas only"
    c.send("/echo sync")
    c.expect("sync")
    assert not any("in tas only" in line for line in c.drain())


def test_nick_msg_me_echo_topic_who(server: RunningServer) -> None:
    a = welcome(server.port, "alice")
    b = welcome(server.port, "bob")
    a.send("/nick Bob")
    assert a.expect("!") == "! The name Bob is taken"
    a.send("/nick 9lives")
    assert a.expect("!").startswith("! 9lives is not a valid name")
    a.send("/msg bob psst")
    assert b.expect("->") == "[alice -> you] psst"
    a.send("/msg nobody hi")
    assert a.expect("!") == "! Nobody here is called nobody"
    a.send("/me waves")
    assert b.expect("*") == "* alice waves"
    a.send("/echo  spaced  text ")
    assert a.expect("spaced") == " spaced  text"  # trailing blanks are trimmed
    a.send("/create den")
    a.expect("> You joined den")
    a.send("/topic Plans for Friday")
    assert a.expect("topic") == "> alice set the topic of den: Plans for Friday"
    b.send("/join den")
    assert b.expect("Topic") == "> Topic of den: Plans for Friday (set by alice)"
    b.send("/topic mine now")
    assert b.expect("!") == "! Only operators of den can do that"
    b.send("/who")
    b.expect("> Users in den (2):")
    rows = b.drain()
    assert any(re.match(r"  @alice \[127\.0\.0\.1:\d+\] line, idle \d+s$", r) for r in rows), rows
    assert any(re.match(r"  bob \[127\.0\.0\.1:\d+\] line", r) for r in rows), rows
    b.send("/nick robert")
    assert a.expect("known as") == "> bob is now known as robert"


def test_echo_after_history_comes_after_its_answer(server: RunningServer) -> None:
    a = welcome(server.port, "echoer")
    a.send("/create echoes")
    a.expect("> You joined echoes")
    for i in range(5):
        a.send(f"said {i}")
    # One write: the history answer comes from the store, the echo at once.
    a.send_raw(b"/history 30\n/echo BARRIER\n")
    a.expect("BARRIER")
    answer = a.seen[a.seen.index("BARRIER") - 7 :]
    assert answer[0].startswith("> History of echoes (5 messages"), "\n".join(a.seen)
    assert answer[-2] == "> End of history of echoes"


def test_leave_then_speak_is_an_error(server: RunningServer) -> None:
    a = welcome(server.port, "lea")
    a.send("/leave")
    assert a.expect("<") == "< You left lobby"
    a.send("anyone?")
    assert a.expect("!") == "! You are not in a room: /list shows them, /join ROOM enters one"


def test_help_lists_every_command(server: RunningServer) -> None:
    a = welcome(server.port)
    a.send("/help")
    a.expect("> Commands")
    text = "\n".join(a.drain())
    for cmd in ("nick", "join", "create", "leave", "list", "who", "msg", "me", "echo", "topic"):
        assert f"/{cmd}" in text
    a.send("/help create")
    assert a.expect("/create") == (
        "> /create ROOM [LIMIT]: make a room, with an optional size limit, and enter it"
    )


def test_quit_says_bye_and_closes(server: RunningServer) -> None:
    a = welcome(server.port, "quitter")
    b = welcome(server.port, "stayer")
    a.send("/quit gone fishing")
    assert a.expect("Bye") == "> Bye"
    assert a.closed()
    assert b.expect("quitter left") == "< quitter left lobby (1 user online): gone fishing"


def test_names_are_unique_case_insensitively(server: RunningServer) -> None:
    a = welcome(server.port, "Zed")
    b = welcome(server.port)
    b.send("/nick zED")
    assert b.expect("!") == "! The name zED is taken"
    a.send("/nick zed")  # changing only the case of one's own name is fine
    assert a.expect("known as") == "> You are now known as zed"


def test_private_room_and_invite(server: RunningServer) -> None:
    """Rooms: private (invite-only) with a clear error in each protocol."""
    a = welcome(server.port, "host")
    b = welcome(server.port, "guest")
    a.send("/create club")
    a.expect("> You joined club")
    a.send("/invite guest")
    a.expect("> You invited guest to club")
    b.expect("> host invites you to club: /join club")
    b.send("/join club")
    b.expect("> You joined club (2 users online)")
    a.send("/kick guest too loud")
    assert b.expect("kicked") == "< You were kicked from club by host: too loud"

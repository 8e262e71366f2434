from support import RunningServer, welcome


def test_two_line_users_talk(server: RunningServer) -> None:
    """SPEC line door: a guest lands in the lobby at once and is heard there."""
    a = welcome(server.port, "alice")
    b = welcome(server.port, "bob")
    a.expect("joined lobby (2 users online)")
    a.expect("is now known as bob")
    b.send("hello alice")
    assert a.expect("[bob]") == "[bob] hello alice"

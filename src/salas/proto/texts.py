"""Refusals in plain words, shared by the doors that show people text (the
line door adds its command hints on top; IRC and CS168 have their own)."""

from __future__ import annotations

import re

from salas.core import errors as e
from salas.core.hub import MAX_LIMIT
from salas.core.names import NAME_MAX

#: Control characters other than tab and what the hub refuses itself (line
#: breaks, NUL). IRC clients send some on purpose (CTCP's \x01, colours); the
#: doors whose people type plain text refuse them, so a leading \x01 can't
#: make a message a CTCP request that is never kept.
_OTHER_CONTROLS = re.compile(r"[\x01-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def controls_refused(text: str) -> e.TextInvalid | None:
    """The refusal for plain text that carries control characters, if it does."""
    return e.TextInvalid("control characters") if _OTHER_CONTROLS.search(text) else None


def error_text(err: e.ChatError) -> str:
    """The refusal in plain words, for people (no line-door commands in it)."""
    match err:
        case e.NameInvalid(name=n):
            return (
                f"{n} is not a valid name: up to {NAME_MAX} letters, digits"
                " or - _ [ ] { } ^ ` | \\, not starting with a digit or -"
            )
        case e.NameTaken(name=n):
            return f"The name {n} is taken"
        case e.RoomNameInvalid(room=r):
            return f"{r} is not a valid room name: letters, digits and - _ . + & ~, at most 49"
        case e.NoSuchRoom(room=r):
            return f"There is no room named {r}"
        case e.RoomExists(room=r):
            return f"Room {r} already exists"
        case e.RoomFull(room=r, limit=n):
            return f"Room {r} is full ({n}/{n})"
        case e.InviteOnly(room=r):
            return f"Room {r} is private: you need an invitation"
        case e.BadKey(room=r):
            return f"Room {r} needs its key"
        case e.Banned(room=r):
            return f"You are banned from {r}"
        case e.NotInRoom(room=""):
            return "You are not in a room"
        case e.NotInRoom(room=r):
            return f"You are not in {r}"
        case e.NoSuchUser(name=n):
            return f"Nobody here is called {n}"
        case e.UserNotInRoom(name=n, room=r):
            return f"{n} is not in {r}"
        case e.AlreadyInRoom(name=n, room=r):
            return f"{n} is already in {r}"
        case e.NotRoomOperator(room=r):
            return f"Only operators of {r} can do that"
        case e.NotServerOperator():
            return "Only server operators can do that"
        case e.CannotSend(room=r):
            return f"You can't send to {r}"
        case e.TextInvalid(reason=why):
            return f"Not sent: {why}"
        case e.LimitInvalid(value=v):
            return f"{v} is not a valid limit: a whole number from 1 to {MAX_LIMIT}"
        case e.TooManyRooms(limit=n):
            return f"There are too many rooms already ({n})"
        case e.UnknownMode(mode=m):
            return f"{m} is not a room mode"
        case e.ModeArgMissing(mode=m):
            return f"Mode {m} needs a value"
        case e.ModeArgInvalid(mode=m, reason=why):
            return f"The value of mode {m} was refused: {why}"
        case e.BanListFull(room=r):
            return f"The ban list of {r} is full"
        case e.RoomProtected(room=r):
            return f"{r} can't be changed that way"
        case e.NameReserved(name=n):
            return f"The name {n} belongs to an account: log in to use it"
        case e.LoginFailed():
            return "Login failed: wrong name or password"
        case e.AccountExists(name=n):
            return f"{n} is already registered"
        case e.PasswordInvalid(reason=why):
            return f"That password won't do: {why}"
        case e.DirectOff():
            return "Direct connections (calls and file transfers) are turned off on this server"
        case e.CannotCall(name=n, reason=why):
            return f"You can't call {n}: {why}"
        case e.NoSuchCall(call=n):
            return f"There is no call {n} for you to answer or signal"
        case e.NoSuchAccount(name=n):
            return f"There is no account named {n}"
        case e.NotLoggedIn():
            return "You are not logged in"
        case e.AlreadyLoggedIn(account=a):
            return f"You are already logged in as {a}"
        case e.TryLater(reason=why):
            return f"Not now ({why}): try again in a moment"
        case e.StoreUnavailable(what="messages"):
            return "Not sent: the server can't keep messages right now; try again soon"
        case e.StoreUnavailable(what=what):
            return f"Not done: the server can't keep {what} right now; try again soon"
    return "That did not work"

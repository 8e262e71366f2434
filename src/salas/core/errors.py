"""Typed reasons a command can fail. Each door says them in its own words.

The hub raises these before it changes anything, so a failed command leaves
the state exactly as it was.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(eq=True)
class ChatError(Exception):
    """Base class: the command was refused and nothing changed."""

    def __str__(self) -> str:
        return type(self).__name__


@dataclass(eq=True)
class NameInvalid(ChatError):
    name: str


@dataclass(eq=True)
class NameTaken(ChatError):
    name: str


@dataclass(eq=True)
class RoomNameInvalid(ChatError):
    room: str


@dataclass(eq=True)
class NoSuchRoom(ChatError):
    room: str


@dataclass(eq=True)
class RoomExists(ChatError):
    room: str


@dataclass(eq=True)
class RoomFull(ChatError):
    room: str
    limit: int


@dataclass(eq=True)
class InviteOnly(ChatError):
    room: str


@dataclass(eq=True)
class BadKey(ChatError):
    room: str


@dataclass(eq=True)
class Banned(ChatError):
    room: str


@dataclass(eq=True)
class NotInRoom(ChatError):
    """The sender is not in ``room`` (or in no room at all when it is empty)."""

    room: str = ""


@dataclass(eq=True)
class NoSuchUser(ChatError):
    name: str


@dataclass(eq=True)
class UserNotInRoom(ChatError):
    name: str
    room: str


@dataclass(eq=True)
class AlreadyInRoom(ChatError):
    name: str
    room: str


@dataclass(eq=True)
class NotRoomOperator(ChatError):
    room: str


@dataclass(eq=True)
class NotServerOperator(ChatError):
    pass


@dataclass(eq=True)
class CannotSend(ChatError):
    """Room rules (+n, +m, bans) stop this message."""

    room: str


@dataclass(eq=True)
class TextInvalid(ChatError):
    reason: str


@dataclass(eq=True)
class LimitInvalid(ChatError):
    value: str


@dataclass(eq=True)
class TooManyRooms(ChatError):
    limit: int


@dataclass(eq=True)
class UnknownMode(ChatError):
    mode: str


@dataclass(eq=True)
class ModeArgMissing(ChatError):
    mode: str


@dataclass(eq=True)
class ModeArgInvalid(ChatError):
    mode: str
    reason: str


@dataclass(eq=True)
class BanListFull(ChatError):
    room: str


@dataclass(eq=True)
class RoomProtected(ChatError):
    """The lobby and other permanent rooms can't be closed or renamed."""

    room: str


# -- accounts and the store ------------------------------------------------


@dataclass(eq=True)
class NameReserved(ChatError):
    """The name belongs to an account: only someone logged in to it may use it."""

    name: str


@dataclass(eq=True)
class LoginFailed(ChatError):
    """Wrong name or password: deliberately silent about which."""


@dataclass(eq=True)
class AccountExists(ChatError):
    name: str


@dataclass(eq=True)
class PasswordInvalid(ChatError):
    reason: str


@dataclass(eq=True)
class DirectOff(ChatError):
    """The server's operators turned direct connections off."""


@dataclass(eq=True)
class CannotCall(ChatError):
    name: str
    reason: str


@dataclass(eq=True)
class NoSuchCall(ChatError):
    call: int


@dataclass(eq=True)
class NoSuchAccount(ChatError):
    name: str


@dataclass(eq=True)
class NotLoggedIn(ChatError):
    pass


@dataclass(eq=True)
class AlreadyLoggedIn(ChatError):
    account: str


@dataclass(eq=True)
class TryLater(ChatError):
    """Too many attempts, or the server is busy: nothing was done."""

    reason: str


@dataclass(eq=True)
class StoreUnavailable(ChatError):
    """The history store can't write: messages are refused rather than lost."""

    #: What was refused: "messages", or "accounts" (register, password changes).
    what: str = "messages"

"""ChanServ: room commands for server operators, as ``/msg ChanServ ...``.

Like NickServ it is not a user: the IRC door answers for it (the name is
reserved on every door, see ``SERVICE_NAMES``). ``CLOSE #room [reason]``
closes a room for good: its members are told and removed. The hub refuses it
unless the sender is a server operator; the door words the refusal as a
NOTICE from ChanServ.
"""

from __future__ import annotations

from salas.core import commands as c

NAME = "ChanServ"
FOLDED = "chanserv"

HELP = (
    "ChanServ closes rooms. Its commands are for server operators (OPER first).",
    "  CLOSE <#room> [reason]   close a room: its members are told and removed,",
    "                           and it is forgotten (the lobby can't be closed)",
    "  HELP                     this text",
)
USAGE = "Usage: CLOSE <#room> [reason]"


def command(text: str) -> c.CloseRoom | tuple[str, ...]:
    """The room command a message to ChanServ asks for, or the lines to answer with."""
    verb, _, rest = text.strip().partition(" ")
    if not verb or verb.upper() == "HELP":
        return HELP
    if verb.upper() == "CLOSE":
        room, _, reason = rest.strip().partition(" ")
        if room.startswith("#"):
            room = room[1:]
        if not room:
            return (USAGE,)
        return c.CloseRoom(room, reason.strip())
    return (f"Unknown command {verb[:30]}. /msg {NAME} HELP lists the commands.",)

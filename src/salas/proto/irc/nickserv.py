"""NickServ: the account commands IRC users already know, as ``/msg NickServ ...``.

It is not a user: the IRC door answers for it, so nobody on any door can read
what is sent to it. Each command maps onto a core account command; the
answers come back as NOTICEs from NickServ.
"""

from __future__ import annotations

from salas.core import commands as c

NAME = "NickServ"
FOLDED = "nickserv"

HELP = (
    "NickServ keeps accounts: a registered nick is yours, and only you can use it.",
    "  REGISTER <password>            register your current nick as an account",
    "  IDENTIFY <password>            log in to the account named like your nick",
    "  IDENTIFY <account> <password>  log in to <account> and take its nick",
    "                                 (a ghost session holding it is disconnected)",
    "  SET PASSWORD <old> <new>       change your password (also: PASSWORD <old> <new>)",
    "  HELP                           this text",
    "With a client that supports SASL PLAIN, log in while connecting instead.",
)
_USAGE = {
    "REGISTER": "Usage: REGISTER <password>",
    "IDENTIFY": "Usage: IDENTIFY [<account>] <password>",
    "PASSWORD": "Usage: SET PASSWORD <old password> <new password>",
}


def command(text: str) -> c.Command | tuple[str, ...]:
    """The account command a message to NickServ asks for, or the lines to answer with."""
    words = text.split()
    if not words:
        return HELP
    verb = words[0].upper()
    args = words[1:]
    if verb == "SET" and args and args[0].upper() == "PASSWORD":
        verb, args = "PASSWORD", args[1:]
    if verb == "HELP":
        return HELP
    if verb == "REGISTER":
        # Atheme's form is REGISTER <password> <email>: an e-mail is taken and ignored.
        if not 1 <= len(args) <= 2:
            return (_USAGE["REGISTER"],)
        return c.RegisterAccount(args[0])
    if verb in ("IDENTIFY", "ID", "LOGIN"):
        if len(args) == 1:
            return c.LogIn(None, args[0], "login")
        if len(args) == 2:
            return c.LogIn(args[0], args[1], "login")
        return (_USAGE["IDENTIFY"],)
    if verb == "PASSWORD":
        if len(args) != 2:
            return (_USAGE["PASSWORD"],)
        return c.ChangePassword(args[0], args[1])
    return (f"Unknown command {words[0][:30]}. /msg {NAME} HELP lists the commands.",)

"""Names of people and rooms, valid on every door.

A name has to survive being an IRC nick, a CS168 frame prefix, a line-door
word and a web label, so the rules are IRC's (RFC 2812 nickname grammar,
longer length). Comparison is case-insensitive with ASCII case mapping,
which the IRC door advertises as ``CASEMAPPING=ascii``.
"""

from __future__ import annotations

import random
import re

#: NICKLEN. Long enough for real names, short enough for IRC prefixes.
NAME_MAX = 30
#: A room's name without the IRC ``#``; CHANNELLEN (with ``#``) is one more.
ROOM_MAX = 49
#: TOPICLEN, as common IRC servers advertise it.
TOPIC_MAX = 390
#: Longest room key, and ban mask (nick 30 + user 10 + host 64, and room to spare).
KEY_MAX = 32
MASK_MAX = 150

_NAME_RE = re.compile(r"[A-Za-z\[\]\\`_^{|}][A-Za-z0-9\[\]\\`_^{|}\-]*\Z")
# Letters and digits in any script, plus a few joiners. No spaces, commas,
# colons, wildcards or control characters: each breaks some door's grammar.
_ROOM_RE = re.compile(r"[^\W][\w\-.+&~]*\Z")
_FOLD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")

GUEST_PREFIX = "guest"
#: Names that speak for the network on IRC (the door answers for NickServ):
#: nobody may use them on any door, so nobody can pose as one.
SERVICE_NAMES = frozenset(
    {"nickserv", "chanserv", "operserv", "memoserv", "saslserv", "hostserv", "botserv", "global"}
)


def fold(name: str) -> str:
    """The key two names are compared by (ASCII case mapping).

    An already-folded name comes back as the same object: the hub keys every
    user by this, and a second copy of each name would cost memory per client.
    """
    folded = name.translate(_FOLD)
    return name if folded == name else folded


def valid_name(name: str) -> bool:
    return 0 < len(name) <= NAME_MAX and _NAME_RE.match(name) is not None


def valid_room(name: str) -> bool:
    return 0 < len(name) <= ROOM_MAX and _ROOM_RE.match(name) is not None


def guest_name(rng: random.Random) -> str:
    """``guest45606``: five digits as in seed 004's port-like names."""
    return f"{GUEST_PREFIX}{rng.randint(10000, 99999)}"


def sanitize_name(wanted: str) -> str:
    """Best valid name for a door that can't refuse one (CS168 has no error text for it)."""
    cleaned = re.sub(r"[^A-Za-z0-9\[\]\\`_^{|}\-]", "_", wanted.strip())[:NAME_MAX]
    if not cleaned:
        return ""
    if not re.match(r"[A-Za-z\[\]\\`_^{|}]", cleaned[0]):
        cleaned = ("_" + cleaned)[:NAME_MAX]
    return cleaned


def mask_regex(mask: str) -> re.Pattern[str]:
    """A ban mask (``nick!user@host``, ``*`` and ``?`` as wildcards) as a regex on folded text.

    A bare ``nick`` means ``nick!*@*``; ``nick!user`` means ``nick!user@*``.
    """
    if "!" not in mask:
        mask += "!*"
    if "@" not in mask:
        mask += "@*"
    # Each ``*`` as a plain ``.*`` backtracks exponentially on masks like
    # ``*a*a*a*a*a*a*a*a*b`` (seconds per check, on the loop, at every join and
    # message). Each piece between stars is taken at its first place instead,
    # and never tried again (an atomic group): that finds a match whenever one
    # exists, and costs at most length × length.
    first, *rest = (
        "".join("." if ch == "?" else re.escape(ch) for ch in piece)
        for piece in fold(mask).split("*")
    )
    if not rest:
        return re.compile(first + r"\Z", re.DOTALL)
    *middle, last = rest
    pattern = first + "".join(f"(?>.*?{piece})" for piece in middle if piece)
    return re.compile(pattern + f".*{last}\\Z", re.DOTALL)


def normal_mask(mask: str) -> str:
    """The form a ban mask is stored and shown in."""
    if "!" not in mask:
        mask += "!*"
    if "@" not in mask:
        mask += "@*"
    return mask

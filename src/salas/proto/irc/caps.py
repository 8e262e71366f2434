"""The IRCv3 capabilities salas offers: one table feeds ``CAP LS`` and the docs."""

from __future__ import annotations

#: name -> value advertised with ``CAP LS 302`` ("" for none).
CAPS: dict[str, str] = {
    "account-tag": "",
    "away-notify": "",
    "batch": "",
    "cap-notify": "",
    "echo-message": "",
    "extended-join": "",
    "invite-notify": "",
    "labeled-response": "",
    "message-tags": "",
    "multi-prefix": "",
    "server-time": "",
    "userhost-in-names": "",
}


def ls_tokens(version: int) -> list[str]:
    """``CAP LS`` tokens: values only for clients that speak CAP 302."""
    return [f"{k}={v}" if v and version >= 302 else k for k, v in sorted(CAPS.items())]

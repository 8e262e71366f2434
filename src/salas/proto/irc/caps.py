"""The IRCv3 capabilities salas offers: one table feeds ``CAP LS`` and the docs."""

from __future__ import annotations

#: name -> value advertised with ``CAP LS 302`` ("" for none).
CAPS: dict[str, str] = {
    "account-notify": "",
    "account-tag": "",
    "away-notify": "",
    "batch": "",
    "cap-notify": "",
    # IRCv3 account-registration (a draft): REGISTER names the account after the
    # current nick, so no "custom-account-name"; only after connecting, so no
    # "before-connect"; no e-mail, so no "email-required".
    "draft/account-registration": "",
    # IRCv3 chathistory is still a draft: the spec asks for the prefixed name only.
    "draft/chathistory": "",
    "echo-message": "",
    "extended-join": "",
    "invite-notify": "",
    "labeled-response": "",
    "message-tags": "",
    "multi-prefix": "",
    "sasl": "PLAIN",
    "server-time": "",
    "userhost-in-names": "",
}


def ls_tokens(version: int) -> list[str]:
    """``CAP LS`` tokens: values only for clients that speak CAP 302."""
    return [f"{k}={v}" if v and version >= 302 else k for k, v in sorted(CAPS.items())]

"""``salas admin COMMAND``: the command line over the admin socket, and the
plain-text shapes the interactive menu shares with it."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from salas.console.link import AdminLink, NoServer, Refused
from salas.proto.line import idle_text, safe

#: Seconds ``shutdown`` waits for the server to be gone.
SHUTDOWN_WAIT = 30.0


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """The ``admin`` subcommand and its topics, on ``salas``'s subparsers."""
    admin: argparse.ArgumentParser = sub.add_parser(
        "admin",
        help="see and steer a running server (with no command on a terminal: a menu)",
        description="Talks to the running server over the admin socket in its data dir."
        " With no command on a terminal, opens an interactive menu.",
    )
    admin.add_argument("--data-dir", metavar="DIR", help="the server's data dir")
    admin.add_argument("--config", metavar="FILE", help="the server's TOML settings file")
    json_flag = argparse.ArgumentParser(add_help=False)
    json_flag.add_argument("--json", action="store_true", help="JSON for scripts")
    topics = admin.add_subparsers(dest="area", metavar="COMMAND")

    rooms = topics.add_parser("rooms", help="list, create, change and close rooms")
    ra = rooms.add_subparsers(dest="action", metavar="ACTION", required=True)
    ra.add_parser("list", parents=[json_flag], help="every room, with members/limit")
    who = ra.add_parser("who", parents=[json_flag], help="who is in a room")
    who.add_argument("room", metavar="NAME")
    create = ra.add_parser("create", parents=[json_flag], help="make a room that lasts")
    create.add_argument("room", metavar="NAME")
    create.add_argument("--limit", type=int, metavar="N", help="most people in it at once")
    create.add_argument("--private", action="store_true", help="invitation only")
    create.add_argument("--key", metavar="K", help="a key needed to join")
    create.add_argument("--topic", metavar="T", help="its topic")
    change = ra.add_parser("set", parents=[json_flag], help="change a room")
    change.add_argument("room", metavar="NAME")
    limit = change.add_mutually_exclusive_group()
    limit.add_argument("--limit", type=int, metavar="N", help="a new limit")
    limit.add_argument("--no-limit", action="store_true", help="no limit")
    private = change.add_mutually_exclusive_group()
    private.add_argument("--private", action="store_true", default=None, help="invitation only")
    private.add_argument("--public", action="store_true", help="open to all")
    key = change.add_mutually_exclusive_group()
    key.add_argument("--key", metavar="K", help="a new key")
    key.add_argument("--no-key", action="store_true", help="no key")
    change.add_argument("--topic", metavar="T", help="a new topic ('' clears it)")
    close = ra.add_parser("close", parents=[json_flag], help="tell the members and remove them")
    close.add_argument("room", metavar="NAME")
    close.add_argument("--reason", default="", metavar="R", help="what members are told")

    users = topics.add_parser("users", help="list people online, remove one, make operators")
    ua = users.add_subparsers(dest="action", metavar="ACTION", required=True)
    ua.add_parser("list", parents=[json_flag], help="everyone online")
    kick = ua.add_parser("kick", parents=[json_flag], help="put someone off the server")
    kick.add_argument("name", metavar="NAME")
    kick.add_argument("--reason", default="", metavar="R", help="what they are told")
    for verb, what in (("oper", "make a session a server operator"), ("deoper", "undo oper")):
        p = ua.add_parser(verb, parents=[json_flag], help=what)
        p.add_argument("name", metavar="NAME")

    bc = topics.add_parser("broadcast", parents=[json_flag], help="a notice to everyone online")
    bc.add_argument("text", nargs="+", metavar="TEXT")

    logs = topics.add_parser("logs", parents=[json_flag], help="the server's event log")
    logs.add_argument("--lines", type=int, default=50, metavar="N", help="how many (default 50)")
    logs.add_argument("--follow", "-f", action="store_true", help="then keep showing new lines")

    accounts = topics.add_parser("accounts", help="registered names")
    aa = accounts.add_subparsers(dest="action", metavar="ACTION", required=True)
    aa.add_parser("list", parents=[json_flag], help="every account")
    acreate = aa.add_parser(
        "create",
        parents=[json_flag],
        help="register a name (the password is asked for, or read from stdin)",
    )
    acreate.add_argument("name", metavar="NAME")
    acreate.add_argument("--oper", action="store_true", help="with the operator flag")
    for verb, what in (
        ("delete", "forget an account"),
        ("oper", "give an account the operator flag"),
        ("deoper", "take the operator flag away"),
    ):
        p = aa.add_parser(verb, parents=[json_flag], help=what)
        p.add_argument("name", metavar="NAME")

    topics.add_parser(
        "nodes", parents=[json_flag], help="the nodes serving this chat, and who is on each"
    )

    stop = topics.add_parser("shutdown", parents=[json_flag], help="tell everyone, then stop")
    stop.add_argument("--reason", default="", metavar="R", help="what everyone is told")

    history = topics.add_parser("history", help="stored messages (works with the server off)")
    ha = history.add_subparsers(dest="action", metavar="ACTION", required=True)
    export = ha.add_parser("export", help="a room's stored messages as JSON lines, oldest first")
    export.add_argument("room", metavar="ROOM")
    return admin


# -- plain text shapes ---------------------------------------------------------------


def room_line(r: dict[str, Any]) -> str:
    """``Teste - 2/2`` as seed 001's server shows it, then flags and topic."""
    count = f"{r['count']}/{r['limit']}" if r.get("limit") is not None else str(r["count"])
    flags = [f for f, on in (("private", r.get("private")), ("key", r.get("keyed"))) if on]
    text = f"{safe(r['name'])} - {count}"
    if flags:
        text += f" ({', '.join(flags)})"
    if r.get("topic"):
        text += f"  {safe(r['topic'])}"  # anyone may set a topic: no terminal escapes
    return text


def table(rows: list[list[str]], head: list[str]) -> str:
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [head, *rows]
    ]
    return "\n".join(lines)


def nodes_table(nodes: list[dict[str, Any]]) -> str:
    rows = [
        [
            str(n["node"]) + (" *" if n.get("this") else ""),
            safe(n["name"]) or "-",
            "yes" if n["alive"] else "no",
            str(n["people"]),
        ]
        for n in nodes
    ]
    return table(rows, ["NODE", "NAME", "ALIVE", "PEOPLE"]) + "\n(* this node)"


def users_table(users: list[dict[str, Any]]) -> str:
    if not users:
        return "Nobody is online"
    rows = [
        [
            u["name"] + (" *" if u.get("oper") else ""),
            u["door"],
            safe(u["address"]),
            safe(",".join(u["rooms"])) or "-",
            idle_text(u["idle"]),
            safe(u.get("account") or "-"),
        ]
        for u in users
    ]
    return table(rows, ["NAME", "DOOR", "ADDRESS", "ROOMS", "IDLE", "ACCOUNT"]) + (
        "\n(* server operator)" if any(u.get("oper") for u in users) else ""
    )


def accounts_table(accounts: list[dict[str, Any]]) -> str:
    if not accounts:
        return "No accounts"
    from datetime import datetime

    rows = [
        [
            a["name"],
            "yes" if a["oper"] else "-",
            datetime.fromtimestamp(a["created_at"]).strftime("%Y-%m-%d %H:%M"),
            "online" if a["online"] else "-",
        ]
        for a in accounts
    ]
    return table(rows, ["NAME", "OPERATOR", "CREATED", "ONLINE"])


def rooms_text(rooms: list[dict[str, Any]]) -> str:
    return "\n".join(room_line(r) for r in rooms) if rooms else "No rooms"


def who_text(room: str, users: list[dict[str, Any]]) -> str:
    head = f'***** PARTICIPANTS OF ROOM "{room}" ({len(users)}) *****'
    return head + "\n" + (users_table(users) if users else "Nobody is in it")


# -- running one command ----------------------------------------------------------------


def read_password(name: str) -> str:
    """From the terminal (asked twice), else the first line of stdin."""
    if sys.stdin.isatty():
        first = getpass.getpass(f"Password for {name}: ")
        if getpass.getpass("Again: ") != first:
            raise Refused("the two passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def request_for(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """The admin socket request an argparse result stands for."""
    topic, action = args.area, getattr(args, "action", None)
    if topic == "rooms":
        if action == "list":
            return "rooms.list", {}
        if action == "who":
            return "rooms.who", {"room": args.room}
        if action == "create":
            req: dict[str, Any] = {"room": args.room, "private": args.private}
            for k in ("limit", "key", "topic"):
                if getattr(args, k) is not None:
                    req[k] = getattr(args, k)
            return "rooms.create", req
        if action == "set":
            req = {"room": args.room}
            if args.no_limit:
                req["limit"] = None
            elif args.limit is not None:
                req["limit"] = args.limit
            if args.public:
                req["private"] = False
            elif args.private:
                req["private"] = True
            if args.no_key:
                req["key"] = None
            elif args.key is not None:
                req["key"] = args.key
            if args.topic is not None:
                req["topic"] = args.topic
            return "rooms.set", req
        return "rooms.close", {"room": args.room, "reason": args.reason}
    if topic == "users":
        if action == "list":
            return "users.list", {}
        if action == "kick":
            return "users.kick", {"name": args.name, "reason": args.reason}
        return f"users.{action}", {"name": args.name}
    if topic == "broadcast":
        return "broadcast", {"text": " ".join(args.text)}
    if topic == "logs":
        return "logs", {"lines": args.lines}
    if topic == "accounts":
        if action == "list":
            return "accounts.list", {}
        if action == "create":
            return "accounts.create", {
                "name": args.name,
                "password": read_password(args.name),
                "oper": args.oper,
            }
        return f"accounts.{action}", {"name": args.name}
    if topic == "nodes":
        return "nodes", {}
    return "shutdown", {"reason": args.reason}


def describe(cmd: str, req: dict[str, Any], result: Any) -> str:
    """What a person reads after a command went through."""
    name = req.get("name") or req.get("room") or ""
    shapes: dict[str, Callable[[], str]] = {
        "rooms.list": lambda: rooms_text(result),
        "rooms.who": lambda: who_text(name, result),
        "rooms.create": lambda: "Created: " + room_line(result),
        "rooms.set": lambda: "Changed: " + room_line(result),
        "rooms.close": lambda: f"Room {name} closed",
        "users.list": lambda: users_table(result),
        "users.kick": lambda: f"{name} was put off the server",
        "users.oper": lambda: f"{name} is a server operator",
        "users.deoper": lambda: f"{name} is no longer a server operator",
        "broadcast": lambda: f"Sent to {result} user(s)",
        "logs": lambda: "\n".join(result),
        "accounts.list": lambda: accounts_table(result),
        "accounts.create": lambda: f"Account {name} created",
        "accounts.delete": lambda: f"Account {name} deleted",
        "accounts.oper": lambda: f"Account {name} has the operator flag",
        "accounts.deoper": lambda: f"Account {name} no longer has the operator flag",
        "shutdown": lambda: "The server is shutting down",
        "nodes": lambda: nodes_table(result),
    }
    return shapes[cmd]()


def run(args: argparse.Namespace, socket_path: Path) -> int:
    """One command against the running server; exit 0, or 1 with the reason on stderr."""
    try:
        cmd, req = request_for(args)
        with AdminLink(socket_path) as link:
            if cmd == "logs" and args.follow:
                try:
                    for line in link.follow(req["lines"]):
                        print(json.dumps(line) if args.json else line, flush=True)
                except KeyboardInterrupt:
                    return 0
                return 0
            result = link.request(cmd, **req)
            if args.json:
                print(json.dumps(result))  # ASCII: no raw control characters reach a terminal
            else:
                print(describe(cmd, req, result))
            if cmd == "shutdown":
                if not link.wait_closed(SHUTDOWN_WAIT):
                    print("salas admin: the server has not stopped yet", file=sys.stderr)
                    return 1
                if not args.json:
                    print("The server has stopped")
    except (NoServer, Refused) as err:
        print(f"salas admin: {err}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
    except (OSError, TimeoutError) as err:
        print(f"salas admin: the admin connection failed: {err}", file=sys.stderr)
        return 1
    return 0

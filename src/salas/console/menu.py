"""``salas admin`` on a terminal with no command: seed 001's server menu
(/CRIAR /LISTAR /PARTICIPANTES /ENCERRAR /LOGS /SAIR) in English, with the
seed's words kept as aliases, Tab completion of commands, rooms and people,
and questions for whatever a command was not given."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prompt_toolkit import PromptSession
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document

from salas.console.commands import describe
from salas.console.link import AdminLink, NoServer, Refused


@dataclass(frozen=True, slots=True)
class Action:
    name: str
    args: str
    help: str
    #: What the arguments complete to: "room", "user", "account" or "".
    completes: str = ""
    aliases: tuple[str, ...] = ()


ACTIONS: tuple[Action, ...] = (
    Action("create", "NAME [LIMIT]", "create a room", aliases=("criar",)),
    Action("list", "", "list rooms with members/limit", aliases=("listar",)),
    Action("who", "ROOM", "list a room's participants", "room", ("participantes",)),
    Action("close", "ROOM [REASON]", "close a room (members are told)", "room", ("encerrar",)),
    Action("topic", "ROOM TEXT", "set a room's topic", "room"),
    Action("users", "", "everyone online"),
    Action("kick", "NAME [REASON]", "put someone off the server", "user"),
    Action("oper", "NAME", "make someone a server operator", "user"),
    Action("deoper", "NAME", "take operator status away", "user"),
    Action("broadcast", "TEXT", "a notice to everyone online"),
    Action("accounts", "", "registered names"),
    Action("logs", "[N|-f]", "the event log (-f: follow until Ctrl-C)"),
    Action("shutdown", "[REASON]", "tell everyone, then stop the server"),
    Action("help", "", "this menu"),
    Action("quit", "", "leave the console (the server keeps running)", aliases=("sair",)),
)
BY_NAME: dict[str, Action] = {word: a for a in ACTIONS for word in (a.name, *a.aliases)}


def menu_text() -> str:
    rows = ["===== MENU ====="]
    for a in ACTIONS:
        head = f"/{a.name.upper()} {a.args}".rstrip()
        alias = f" (/{a.aliases[0].upper()})" if a.aliases else ""
        rows.append(f"{head}{alias} ----> {a.help}")
    return "\n".join(rows)


class Names:
    """Rooms, people and accounts as the server last told us (for Tab)."""

    def __init__(self) -> None:
        self.rooms: list[str] = []
        self.users: list[str] = []

    def refresh(self, link: AdminLink) -> None:
        self.rooms = [r["name"] for r in link.request("rooms.list")]
        self.users = [u["name"] for u in link.request("users.list")]


class MenuCompleter(Completer):
    def __init__(self, names: Names) -> None:
        self.names = names

    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterable[Completion]:
        text = document.text_before_cursor
        words = text.split(" ")
        if len(words) == 1:
            word = words[0].lstrip("/").lower()
            for name in BY_NAME:
                if name.startswith(word):
                    yield Completion("/" + name, start_position=-len(words[0]))
            return
        if len(words) != 2:
            return
        action = BY_NAME.get(words[0].lstrip("/").lower())
        if action is None:
            return
        pool = {"room": self.names.rooms, "user": self.names.users}.get(action.completes, [])
        partial = words[1].lower()
        for name in pool:
            if name.lower().startswith(partial):
                yield Completion(name, start_position=-len(words[1]))


class Menu:
    def __init__(
        self, link: AdminLink, ask: Callable[[str], str], show: Callable[[str], None]
    ) -> None:
        self.link = link
        self.ask = ask
        self.show = show

    def _need(self, words: list[str], i: int, question: str) -> str:
        """Argument ``i``, or the answer to ``question`` when it was not given."""
        if len(words) > i:
            return words[i]
        return self.ask(question).strip()

    def _rest(self, words: list[str], i: int, question: str = "") -> str:
        if len(words) > i:
            return " ".join(words[i:])
        return self.ask(question).strip() if question else ""

    def _do(self, cmd: str, **args: Any) -> None:
        self.show(describe(cmd, args, self.link.request(cmd, **args)))

    def run_line(self, line: str) -> bool:
        """Run one typed line; False when the console should end."""
        try:
            words = shlex.split(line)
        except ValueError:
            words = line.split()
        if not words:
            return True
        action = BY_NAME.get(words[0].lstrip("/").lower())
        if action is None:
            self.show(f"Unknown command {words[0]}: /help shows the menu")
            return True
        try:
            return self._run(action.name, words)
        except Refused as err:
            self.show(f"! {err}")
        return True

    def _run(self, name: str, words: list[str]) -> bool:
        match name:
            case "quit":
                return False
            case "help":
                self.show(menu_text())
            case "create":
                room = self._need(words, 1, "Room name: ")
                limit = self._need(words, 2, "Participant limit (Enter: none): ")
                args: dict[str, Any] = {"room": room}
                if limit:
                    if not limit.isdigit():
                        self.show(f"! {limit} is not a number")
                        return True
                    args["limit"] = int(limit)
                self._do("rooms.create", **args)
            case "list":
                self._do("rooms.list")
            case "who":
                self._do("rooms.who", room=self._need(words, 1, "Room: "))
            case "close":
                room = self._need(words, 1, "Room to close: ")
                self._do("rooms.close", room=room, reason=self._rest(words, 2))
            case "topic":
                room = self._need(words, 1, "Room: ")
                self._do("rooms.set", room=room, topic=self._rest(words, 2, "Topic: "))
            case "users":
                self._do("users.list")
            case "kick":
                who = self._need(words, 1, "Name: ")
                self._do("users.kick", name=who, reason=self._rest(words, 2))
            case "oper" | "deoper":
                self._do(f"users.{name}", name=self._need(words, 1, "Name: "))
            case "broadcast":
                self._do("broadcast", text=self._rest(words, 1, "Text: "))
            case "accounts":
                self._do("accounts.list")
            case "logs":
                self._logs(words[1:])
            case "shutdown":
                reason = self._rest(words, 1)
                if self.ask("Stop the server for everyone? [y/N] ").strip().lower() not in (
                    "y",
                    "yes",
                ):
                    self.show("Not stopped")
                    return True
                self._do("shutdown", reason=reason)
                if self.link.wait_closed(30.0):
                    self.show("The server has stopped")
                else:
                    self.show("! The server has not stopped yet")
                return False
        return True

    def _logs(self, words: list[str]) -> None:
        follow = "-f" in words or "--follow" in words
        numbers = [w for w in words if w.isdigit()]
        n = int(numbers[0]) if numbers else 50
        if not follow:
            self._do("logs", lines=n)
            return
        self.show("(Ctrl-C stops following)")
        with AdminLink(self.link.path) as live:
            try:
                for line in live.follow(n):
                    self.show(line)
            except KeyboardInterrupt:
                pass


def run_menu(path: Path) -> int:
    try:
        link = AdminLink(path)
    except NoServer as err:
        print(f"salas admin: {err}")
        return 1
    names = Names()
    session: PromptSession[str] = PromptSession(completer=MenuCompleter(names))

    def ask(question: str) -> str:
        return session.prompt(question)

    menu = Menu(link, ask, print)
    print(menu_text())
    with link:
        while True:
            try:
                names.refresh(link)
                line = session.prompt("admin> ")
                if not menu.run_line(line):
                    return 0
            except (EOFError, KeyboardInterrupt):
                return 0
            except NoServer as err:
                print(f"salas admin: {err}")
                return 1
            except OSError as err:
                print(f"salas admin: the admin connection failed: {err}")
                return 1

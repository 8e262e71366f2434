"""``salas chat`` on a terminal: incoming lines scroll above an input line that
they never garble (prompt_toolkit), with history, completion and a status bar.

Own lines stay in the scrollback marked ``[You]`` (seed 004; ``[Me]`` on the
CS168 door, as its seed does). ``/join`` switches rooms; Ctrl-D or ``/quit`` leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from prompt_toolkit import PromptSession
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.patch_stdout import patch_stdout
from prompt_toolkit.shortcuts import print_formatted_text
from prompt_toolkit.styles import Style

from salas.client.direct import Direct, DirectSettings
from salas.client.link import Link, Target, connect
from salas.proto import line as L
from salas.proto.cs168 import CLIENT_CANNOT_CONNECT, CLIENT_SERVER_DISCONNECTED

STYLE = Style.from_dict(
    {
        "error": "ansired bold",
        "notice": "ansibrightblack",
        "name": "bold",
        "private": "ansimagenta",
        "toolbar": "reverse",
    }
)
_SPEAKER = re.compile(r"^\[([^\]\s]+)\] ")
#: Lines that name people who haven't spoken: who is in a room on joining it,
#: who joins, who is renamed, and /who's rows.
_PRESENT = re.compile(r"^> In \S+ with you: (.+?)(?: and \d+ more)?$")
_ARRIVED = re.compile(r"^> (\S+) joined \S+ \(")
_RENAMED = re.compile(r"^> \S+ is now known as (\S+)$")
_WHO_ROW = re.compile(r"^  [@+*]*(\S+) \[")
#: The CS168 door's answers to a /join or /create that didn't happen.
_CS168_REFUSED = re.compile(
    r"^(No channel named |Room \S+ (already exists|is full|is private|needs a key)"
    r"|You are banned from |\S+ is not a valid channel name\.|There are too many channels)"
)
#: How long to wait for the server's goodbye after /quit.
QUIT_WAIT = 3.0


@dataclass
class State:
    """What the status bar shows; followed from the server's own lines."""

    server: str
    name: str = ""
    room: str = ""
    names: set[str] = field(default_factory=set)
    #: CS168 says nothing to someone who joins: the room asked for is taken
    #: as joined until a refusal comes back (then the one before it again).
    tried: str | None = None
    before: str = ""

    def try_room(self, room: str) -> None:
        self.before, self.room, self.tried = self.room, room, room

    def follow(self, text: str) -> None:
        if self.tried is not None and _CS168_REFUSED.match(text):
            self.room, self.tried = self.before, None
        elif m := L.WELCOME_RE.match(text):
            self.name = m.group(1)
        elif m := L.YOU_JOINED_RE.match(text):
            self.room = m.group(1)
        elif (m := L.YOU_LEFT_RE.match(text)) or (m := L.ROOM_CLOSED_RE.match(text)):
            if m.group(1) == self.room:
                self.room = ""
        elif m := L.YOU_RENAMED_RE.match(text):
            self.name = m.group(1)
        elif m := _SPEAKER.match(text):
            self.names.add(m.group(1))
        elif m := _PRESENT.match(text):
            self.names.update(m.group(1).split(", "))
        elif m := (_ARRIVED.match(text) or _RENAMED.match(text) or _WHO_ROW.match(text)):
            self.names.add(m.group(1))


class ChatCompleter(Completer):
    """Commands at the start of a line, names of people seen anywhere."""

    def __init__(self, state: State, commands: Iterable[str]) -> None:
        self.state = state
        self.commands = sorted("/" + c for c in commands)

    def get_completions(self, document: Document, event: CompleteEvent) -> Iterable[Completion]:
        word = document.get_word_before_cursor(WORD=True)
        if not word:
            return
        at_start = document.text_before_cursor.lstrip() == word
        if at_start and word.startswith("/"):
            pool: Iterable[str] = self.commands
        else:
            pool = sorted(self.state.names)
        low = word.lower()
        for item in pool:
            if item.lower().startswith(low):
                yield Completion(item, start_position=-len(word))


#: Commands that carry a password: never kept in the input history.
SECRET_COMMANDS = ("/login", "/register", "/password", "/oper")


def keeps_secret(line: str) -> bool:
    word = line.split(" ", 1)[0].lower()
    return word in SECRET_COMMANDS


class _NoSecrets(FileHistory):
    """The input history, without the lines that carry a password (in the
    file, or for the Up arrow to bring back to someone else at the keyboard)."""

    def append_string(self, string: str) -> None:
        if not keeps_secret(string):
            super().append_string(string)


def _history() -> History:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    path = Path(base) / "salas" / "chat-history"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600, exist_ok=True)
        return _NoSecrets(str(path))
    except OSError:
        return InMemoryHistory()


def styled(text: str) -> FormattedText:
    if text.startswith("! "):
        return FormattedText([("class:error", text)])
    if text.startswith(("> ", "< ", "  ")):
        return FormattedText([("class:notice", text)])
    if text.startswith("[") and " -> you] " in text:
        return FormattedText([("class:private", text)])
    if m := _SPEAKER.match(text):
        return FormattedText([("class:name", m.group(0)), ("", text[m.end() :])])
    return FormattedText([("", text)])


_LEAVING_KEYS = KeyBindings()


@_LEAVING_KEYS.add("c-c")
def _interrupt(event: KeyPressEvent) -> None:
    """Ctrl-C: leave without showing the half-typed line as if it had been said."""
    event.current_buffer.reset()
    event.app.exit(exception=KeyboardInterrupt())


#: Commands the client runs itself (direct connections), offered by Tab too.
CLIENT_COMMANDS = ("send", "accept", "decline", "dcc")


async def run_screen(
    target: Target,
    name: str | None,
    room: str | None,
    direct_settings: DirectSettings | None = None,
) -> int:
    cs168 = target.scheme == "cs168"
    try:
        link = await connect(target, name)
    except (OSError, TimeoutError):
        print(CLIENT_CANNOT_CONNECT.format(target.host, target.port))
        return 1
    state = State(server=str(target), name=name or "")
    commands = ("create", "join", "list") if cs168 else (*L.COMMANDS, *CLIENT_COMMANDS)
    session: PromptSession[str] = PromptSession(
        history=_history(),
        key_bindings=_LEAVING_KEYS,
        completer=ChatCompleter(state, commands),
        complete_while_typing=False,
        bottom_toolbar=lambda: _toolbar(state, cs168),
        style=STYLE,
    )
    if room:
        link.send(f"/join {room}")
    with patch_stdout(raw=True):
        direct = None if cs168 else Direct(link, _show, direct_settings)
        try:
            return await _loop(link, session, state, target, cs168, direct)
        finally:
            if direct is not None:
                await direct.close()


def _show(text: str) -> None:
    print_formatted_text(styled(text), style=STYLE)


def _toolbar(state: State, cs168: bool) -> str:
    where = f"in {state.room}" if state.room else "in no room"
    who = state.name or "?"
    keys = "Ctrl-D quits" if cs168 else "/help  Tab completes  Ctrl-D quits"
    return f" {who} {where} @ {state.server}   {keys} "


async def _loop(
    link: Link,
    session: PromptSession[str],
    state: State,
    target: Target,
    cs168: bool,
    direct: Direct | None = None,
) -> int:
    gone = asyncio.Event()
    leaving = False  # we asked to go: the server closing is no surprise

    async def receive() -> None:
        while (text := await link.recv()) is not None:
            for part in text.split("\n"):
                if direct is not None and direct.on_server_line(part):
                    continue
                state.follow(part)
                print_formatted_text(styled(part), style=STYLE)
        if not leaving:
            notice = CLIENT_SERVER_DISCONNECTED.format(target.host, target.port)
            print_formatted_text(FormattedText([("class:error", notice)]), style=STYLE)
        gone.set()
        app = session.app
        if app.is_running:
            app.current_buffer.reset()  # what was being typed was never sent
            app.exit(exception=EOFError())

    reader = asyncio.create_task(receive())
    prompt = "[Me] " if cs168 else "[You] "
    sent_quit = False
    try:
        while not gone.is_set():
            try:
                text = await session.prompt_async(prompt)
            except (EOFError, KeyboardInterrupt):
                break
            if gone.is_set():
                break
            # A paste of several lines: each is taken as if typed on its own
            # (the client's own commands included), not sent as one.
            for line in text.splitlines():
                if not line.strip():
                    continue
                if not cs168 and line.strip().lower().split(" ", 1)[0] == "/quit":
                    leaving = sent_quit = True
                    link.send(line)
                    break
                if direct is not None and direct.on_user_line(line):
                    continue
                if cs168:
                    words = line.split()
                    if len(words) > 1 and words[0] in ("/join", "/create"):
                        state.try_room(words[1])
                link.send(line)
            if sent_quit:
                break
        leaving = True
        if not gone.is_set() and not cs168:
            if not sent_quit:
                link.send("/quit")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(gone.wait(), QUIT_WAIT)
    finally:
        reader.cancel()
        with contextlib.suppress(BaseException):
            await reader
        with contextlib.suppress(Exception):
            await link.close()
    return 0

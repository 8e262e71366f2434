"""The ``salas`` command line: ``serve``, ``chat``, ``send``, ``admin``."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import signal
import sys
from collections.abc import Coroutine, Sequence
from typing import Any

from salas import __version__
from salas.config import Config, ConfigError, load


def _runner(coro: Coroutine[Any, Any, int], *, client: bool = False) -> int:
    """Run on uvloop when it is installed (the ``fast`` extra), else on asyncio's own loop.

    ``client``: SIGTERM and SIGHUP (a closed terminal window) stop it the way
    Ctrl-C does, so what it was doing is cleaned up (a partial download removed).
    """
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:
        factory = None
    stopped_by: list[int] = []

    async def stoppable() -> int:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGHUP):

            def stop(sig: int = sig) -> None:
                stopped_by.append(sig)
                task.cancel()

            loop.add_signal_handler(sig, stop)
        try:
            return await coro
        except asyncio.CancelledError:
            if not stopped_by:
                raise
            return 128 + stopped_by[0]

    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(stoppable() if client else coro)
    except KeyboardInterrupt:
        # Ctrl-C is a way to leave: what the client was doing has been cut
        # short and cleaned up (a partial download removed); no traceback.
        return 130
    except BrokenPipeError:
        # Output piped into something that stopped reading (``| head``). Later
        # writes, down to the interpreter's own flush at exit, go nowhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def build_parser() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """The ``salas`` parser, and its ``send`` subparser (parsed intermixed: see ``main``)."""
    parser = argparse.ArgumentParser(
        prog="salas", description="A chat-room server with many doors."
    )
    parser.add_argument("--version", action="version", version=f"salas {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the server")
    serve.add_argument(
        "--listen",
        action="append",
        metavar="PROTO:[HOST:]PORT",
        help="a door to open (repeatable); PROTO is line, irc, http or cs168."
        " Default: line:6900, irc:6667 and http:8080",
    )
    serve.add_argument("--data-dir", metavar="DIR", help="where history, accounts and logs live")
    serve.add_argument("--config", metavar="FILE", help="a TOML settings file")

    chat = sub.add_parser("chat", help="the terminal client")
    chat.add_argument(
        "url",
        nargs="?",
        default="line://localhost:6900",
        metavar="URL",
        help="line://HOST:PORT (default line://localhost:6900), cs168://HOST:PORT"
        " or ws://HOST:PORT/chat",
    )
    chat.add_argument("--name", help="your name (CS168: defaults to your login name)")
    chat.add_argument("--room", help="a room to join at once")
    chat.add_argument(
        "--downloads",
        metavar="DIR",
        help="where files received by /accept are saved (default: the working directory)",
    )
    chat.add_argument(
        "--dcc-ttl",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="how long a direct offer (/send, /dcc chat) waits for an answer (default 120)",
    )
    chat.add_argument(
        "--dcc-stall",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="a transfer with no data for this long is stopped (default 30)",
    )
    chat.add_argument(
        "--dcc-passive",
        action="store_true",
        help="offer passively: the receiver listens and this client connects"
        " (when others can't reach you)",
    )
    chat.add_argument(
        "--dcc-address",
        metavar="ADDR",
        help="the address to give in direct offers (default: the one your server"
        " connection uses), e.g. your public address behind a port forward",
    )

    send = sub.add_parser(
        "send",
        help="send one message to a room, then exit",
        usage="salas send [URL] --room ROOM [--name NAME] MESSAGE",
    )
    send.add_argument("--room", required=True, help="the room to speak in")
    send.add_argument("--name", help="the name to speak as")
    send.add_argument(
        "words",
        nargs="+",
        metavar="[URL] MESSAGE",
        help="the server (default line://localhost:6900) and what to say",
    )

    from salas.console.commands import add_parser

    admin = add_parser(sub)
    admin.set_defaults(admin_parser=admin)  # for its usage line when no COMMAND is given
    return parser, send


def main(argv: Sequence[str] | None = None) -> int:
    parser, send_parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["send"]:
        # SPEC writes `salas send [URL] --room ROOM MESSAGE`: options between the
        # two positionals, which only intermixed parsing accepts.
        args = send_parser.parse_intermixed_args(argv[1:])
        args.command = "send"
    else:
        args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "chat":
        return _chat(args)
    if args.command == "send":
        return _send(args)
    if args.command == "admin":
        return _admin(args, parser)
    parser.print_help()
    return 2


def _admin(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from salas.net.admin import socket_path

    try:
        config = load(args.config)
        if args.data_dir:
            config.server.data_dir = args.data_dir
    except ConfigError as err:
        print(f"salas admin: {err}", file=sys.stderr)
        return 2
    if args.area == "history":
        return _export(config, args.room)
    path = socket_path(config.data_path())
    if args.area is None:
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            args.admin_parser.print_usage(sys.stderr)
            print(
                "salas admin: a COMMAND is needed off a terminal (--help lists them)",
                file=sys.stderr,
            )
            return 2
        from salas.console.menu import run_menu

        return run_menu(path)
    from salas.console.commands import run

    return run(args, path)


def _export(config: Config, room: str) -> int:
    import json

    from salas.config import postgres_url, store_path
    from salas.store.base import StoreError
    from salas.store.sqlite import export_room

    url = postgres_url(config)
    try:
        if url is not None:
            return _export_postgres(url, room)
        path = store_path(config)
        if path is None:
            print("salas admin: the store is memory only: nothing is kept", file=sys.stderr)
            return 1
        if not path.exists():
            print(f"salas admin: no store at {path}", file=sys.stderr)
            return 1
        for row in export_room(path, room):
            sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
    except StoreError as err:
        print(f"salas admin: {err}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
    return 0


def _export_postgres(url: str, room: str) -> int:
    import asyncio
    import json

    try:
        from salas.store.postgres import export_room
    except ImportError as err:
        if err.name != "asyncpg":
            raise
        print(
            "salas admin: store.url is a PostgreSQL URL, which needs asyncpg:"
            " install salas[postgres]",
            file=sys.stderr,
        )
        return 1
    for row in asyncio.run(export_room(url, room)):
        sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from salas.net.serve import serve

    try:
        config = load(args.config)
        if args.listen:
            config.server.listen = list(args.listen)
            config.listens()
        if args.data_dir:
            config.server.data_dir = args.data_dir
    except ConfigError as err:
        print(f"salas serve: {err}", file=sys.stderr)
        return 2
    try:
        return _runner(serve(config))
    except OSError as err:
        print(f"salas serve: {err}", file=sys.stderr)
        return 1


def _chat(args: argparse.Namespace) -> int:
    from salas.client.link import UrlError, parse_url

    try:
        target = parse_url(args.url)
    except UrlError as err:
        print(f"salas chat: {err}", file=sys.stderr)
        return 2
    name = args.name
    if target.scheme == "cs168" and not name:
        name = getpass.getuser()
    from pathlib import Path

    from salas.client.direct import DirectSettings

    if args.dcc_ttl <= 0 or args.dcc_stall <= 0:
        print("salas chat: --dcc-ttl and --dcc-stall must be more than 0", file=sys.stderr)
        return 2
    direct = DirectSettings(
        downloads=Path(args.downloads or ".").expanduser(),
        ttl=args.dcc_ttl,
        stall=args.dcc_stall,
        passive=args.dcc_passive,
        address=args.dcc_address,
    )
    if args.dcc_address:
        from ipaddress import ip_address

        try:
            ip_address(args.dcc_address)
        except ValueError:
            print(f"salas chat: --dcc-address {args.dcc_address}: not an IP", file=sys.stderr)
            return 2
    if sys.stdin.isatty() and sys.stdout.isatty():
        from salas.client.screen import run_screen

        return _runner(run_screen(target, name, args.room, direct), client=True)
    from salas.client.pipe import run_pipe

    return _runner(run_pipe(target, name, args.room, direct_settings=direct), client=True)


def _send(args: argparse.Namespace) -> int:
    from salas.client.link import UrlError, parse_url
    from salas.client.send import send_one

    words = args.words
    if len(words) > 2:
        print("salas send: expected [URL] MESSAGE (quote a message with spaces)", file=sys.stderr)
        return 2
    url = words[0] if len(words) == 2 else "line://localhost:6900"
    try:
        target = parse_url(url)
    except UrlError as err:
        print(f"salas send: {err}", file=sys.stderr)
        return 2
    name = args.name
    if target.scheme == "cs168" and not name:
        name = getpass.getuser()
    return _runner(send_one(target, args.room, words[-1], name), client=True)

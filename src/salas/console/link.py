"""The console's end of the admin socket: one request, one answer (JSON lines)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from salas.proto import admin as wire

#: Seconds to wait for an answer (hashing a new account's password takes the longest).
TIMEOUT = 30.0


class NoServer(Exception):
    """Nothing answers on the admin socket."""


class Refused(Exception):
    """The server said no; the message is its reason."""


class AdminLink:
    def __init__(self, path: Path, timeout: float = TIMEOUT) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError) as err:
            self.sock.close()
            raise NoServer(
                f"no server is running with the data dir {path.parent} (nothing answers on {path})"
            ) from err
        except OSError as err:
            self.sock.close()
            raise NoServer(f"cannot reach the server at {path}: {err.strerror or err}") from err
        self._buf = b""

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> AdminLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _line(self) -> bytes | None:
        while b"\n" not in self._buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line

    def _reply(self) -> dict[str, Any]:
        line = self._line()
        if line is None:
            raise NoServer("the server closed the admin connection")
        try:
            return wire.decode_reply(line)
        except ValueError as err:
            raise Refused(f"the server's answer could not be read: {err}") from None

    def request(self, cmd: str, **args: Any) -> Any:
        """The command's result; Refused with the server's reason when it says no."""
        self.sock.sendall(wire.encode_request(cmd, **args))
        reply = self._reply()
        if not reply.get("ok"):
            raise Refused(str(reply.get("error", "refused")))
        return reply.get("result")

    def follow(self, lines: int) -> Iterator[str]:
        """The latest ``lines`` log lines, then each new one as it comes (until EOF)."""
        self.sock.sendall(wire.encode_request("logs", lines=lines, follow=True))
        reply = self._reply()
        if not reply.get("ok"):
            raise Refused(str(reply.get("error", "refused")))
        yield from reply.get("result") or []
        self.sock.settimeout(None)
        while (line := self._line()) is not None:
            try:
                obj = wire.decode_reply(line)
            except ValueError:
                continue
            text = obj.get("log")
            if isinstance(text, str):
                yield text

    def wait_closed(self, timeout: float) -> bool:
        """True once the server has closed the connection (it stopped)."""
        self.sock.settimeout(timeout)
        try:
            while self.sock.recv(65536):
                pass
        except TimeoutError:
            return False
        except OSError:
            return True
        return True

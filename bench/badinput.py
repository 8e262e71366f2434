"""f100 with two bad clients beside it, salas alone: do they cost the others anything?

During each ``bad`` run two misbehaving clients work the server for as long as
ircload's f100 does:

* a **slow reader** joins the benchmark's channel (``#lb0``) and never reads, so
  its share of the fan-out piles up until the server cuts it off at
  ``limits.sendq_bytes``; it then comes back and does it again;
* a **flooder** connects from 127.0.0.100, an address that is *not* flood-exempt,
  and sends garbage (random bytes, invalid UTF-8, overlong lines, commands
  with missing parameters) as fast as the socket takes it, until the server
  cuts it off (``Excess flood``); it then comes back and does it again.

Each ``plain`` run is the same f100 on a fresh server with the same settings and
no bad clients. Runs alternate (plain, bad, plain, bad, ...) so drift in the
machine hits both alike. The table gives the medians, the spread of the plain
runs (the run-to-run noise), and how often the server cut each bad client off.

    bench/badinput                 3 pairs (about 2 minutes)
    bench/badinput --reps 1 --quick
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import socket
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compare import (
    HERE,
    LOAD_CPU,
    PEERS,
    Server,
    build_ircload,
    disturbed,
    run_one,
    start,
    wait_quiet,
)

#: ircload's clients connect from 127.0.0.2-17 (its --src-ips 16): only they are
#: exempt from flood limits, and the flooder comes from outside that block.
CONFIG_EXTRA = 'flood_exempt = ["127.0.0.0/27"]'
FLOODER_SOURCE = "127.0.0.100"
CHANNEL = "#lb0"
#: Seconds a slow reader stays (not reading) before it reconnects, if not cut off sooner.
SLOW_CYCLE = 2.0


def bench_config(tmp: Path) -> Path:
    """peers/salas.toml with only ircload's addresses flood-exempt."""
    lines = []
    for line in (PEERS / "salas.toml").read_text().splitlines():
        lines.append(CONFIG_EXTRA if line.startswith("flood_exempt") else line)
    path = tmp / "salas-badinput.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def garbage(rng: random.Random) -> bytes:
    """One line of junk a broken or hostile client might send."""
    kind = rng.randrange(5)
    if kind == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))) + b"\r\n"
    if kind == 1:
        return b"PRIVMSG " + CHANNEL.encode() + b" :\xff\xfe\xc3(" + b"x" * 50 + b"\r\n"
    if kind == 2:
        return b"A" * 9000 + b"\r\n"  # far past the 512-byte line bound
    if kind == 3:
        return rng.choice([b"JOIN\r\n", b"MODE\r\n", b"KICK #x\r\n", b"\x00\x01\x02\r\n"])
    return b"PRIVMSG " + CHANNEL.encode() + b" :flood " + str(rng.random()).encode() + b"\r\n"


@dataclass
class BadClients:
    """Both bad clients, each a thread that reconnects until ``stop`` is set."""

    port: int
    stop: threading.Event
    slow_sessions: int = 0
    flood_sessions: int = 0
    flood_bytes: int = 0

    def run(self) -> list[threading.Thread]:
        threads = [
            threading.Thread(target=self._slow, daemon=True),
            threading.Thread(target=self._flood, daemon=True),
        ]
        for t in threads:
            t.start()
        return threads

    @staticmethod
    def _out_of_the_way() -> None:
        """This thread runs beside ircload, below it, never on the server's CPU."""
        tid = threading.get_native_id()
        with contextlib.suppress(OSError, AttributeError):
            os.sched_setaffinity(tid, {int(LOAD_CPU)})
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, tid, 19)

    def _register(self, sock: socket.socket, nick: str) -> None:
        sock.sendall(f"NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\n".encode())
        deadline = time.monotonic() + 5
        seen = b""
        while b" 001 " not in seen and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed while registering")
            seen = (seen + chunk)[-4096:]
            if b"PING " in chunk:
                token = chunk.split(b"PING ", 1)[1].split(b"\r\n", 1)[0]
                sock.sendall(b"PONG " + token + b"\r\n")

    def _slow(self) -> None:
        self._out_of_the_way()
        n = 0
        while not self.stop.is_set():
            n += 1
            with contextlib.suppress(OSError), socket.socket() as sock:
                sock.settimeout(5)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                sock.connect(("127.0.0.1", self.port))
                self._register(sock, f"slow{n}")
                sock.sendall(f"JOIN {CHANNEL}\r\n".encode())
                self.slow_sessions += 1
                # From here on it reads nothing at all.
                self.stop.wait(SLOW_CYCLE)

    def _flood(self) -> None:
        self._out_of_the_way()
        rng = random.Random(1)
        n = 0
        while not self.stop.is_set():
            n += 1
            with contextlib.suppress(OSError), socket.socket() as sock:
                sock.settimeout(5)
                sock.bind((FLOODER_SOURCE, 0))
                sock.connect(("127.0.0.1", self.port))
                self._register(sock, f"flood{n}")
                self.flood_sessions += 1
                sock.setblocking(False)
                while not self.stop.is_set():
                    with contextlib.suppress(BlockingIOError):
                        while sock.recv(65536):  # read what comes: this one is not slow
                            pass
                    try:
                        self.flood_bytes += sock.send(garbage(rng))
                    except BlockingIOError:
                        time.sleep(0.001)
            self.stop.wait(0.1)


def cut_offs(server: Server) -> dict[str, int]:
    """What the server's event log says it cut off, and why."""
    log = server.workdir / "data" / "logs" / "salas.log"
    text = log.read_text(errors="replace") if log.exists() else ""
    return {
        "sendq": text.count("cut off: SendQ exceeded"),
        "flood": text.count("cut off: Excess flood"),
    }


def one_run(
    ircload: Path, workdir: Path, config: Path, bad: bool, quick: bool
) -> dict[str, object]:
    wait_quiet()
    server = start("salas", workdir, config)
    clients: BadClients | None = None
    threads: list[threading.Thread] = []
    try:
        if bad:
            clients = BadClients(server.port, threading.Event())
            threads = clients.run()
            time.sleep(0.5)  # both are in place before the load starts
        result = run_one(ircload, server, "f100", quick)
    finally:
        if clients is not None:
            clients.stop.set()
            for t in threads:
                t.join(10)
        server.stop()
    result.update(kind="bad" if bad else "plain", disturbed=disturbed(result), **cut_offs(server))
    if clients is not None:
        result.update(
            slow_sessions=clients.slow_sessions,
            flood_sessions=clients.flood_sessions,
            flood_bytes=clients.flood_bytes,
        )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=3, help="pairs of runs (plain, bad)")
    parser.add_argument("--quick", action="store_true", help="short phases: a smoke run")
    parser.add_argument("--out", default=str(HERE / "results"))
    args = parser.parse_args(argv)
    if os.path.exists("/proc/sys/net/ipv4") and not _can_bind(FLOODER_SOURCE):
        print(f"badinput: can't bind {FLOODER_SOURCE} here", file=sys.stderr)
        return 1
    ircload = build_ircload()
    outdir = Path(args.out) / time.strftime("badinput-%Y%m%d-%H%M%S")
    outdir.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, object]] = []
    with (
        tempfile.TemporaryDirectory(prefix="salas-badinput-") as tmp,
        open(outdir / "raw.jsonl", "w") as raw,
    ):
        config = bench_config(Path(tmp))
        for rep in range(args.reps):
            for bad in (False, True):
                workdir = Path(tmp) / f"{rep}-{'bad' if bad else 'plain'}"
                result = one_run(ircload, workdir, config, bad, args.quick)
                result["rep"] = rep
                raw.write(json.dumps(result) + "\n")
                raw.flush()
                results.append(result)
                rate = float(result.get("deliveries_per_s", 0) or 0)  # type: ignore[arg-type]
                note = f" ({result['disturbed']})" if result["disturbed"] else ""
                print(
                    f"  {result['kind']:5} rep {rep}: {rate:,.0f} deliveries/s,"
                    f" lost {result.get('lost')}, cut off: sendq {result['sendq']},"
                    f" flood {result['flood']}{note}",
                    file=sys.stderr,
                )
    table = render(results)
    (outdir / "summary.md").write_text(
        f"# f100 with and without bad clients ({outdir.name})\n\n{table}\n"
    )
    print(table)
    print(f"raw results and summary: {outdir}")
    return 0 if all(not r["disturbed"] for r in results) else 1


def render(results: list[dict[str, object]]) -> str:
    def figures(kind: str) -> list[float]:
        return [float(r.get("deliveries_per_s", 0) or 0) for r in results if r["kind"] == kind]

    plain, bad = figures("plain"), figures("bad")
    rows = [
        "| f100 | deliveries/s (median) | runs (min–max) | lost"
        " | slow reader cut off | flooder cut off |",
        "|---|---|---|---|---|---|",
    ]
    for kind, values in (("plain", plain), ("with bad clients", bad)):
        key = "plain" if kind == "plain" else "bad"
        rs = [r for r in results if r["kind"] == key]
        lost = sum(int(r.get("lost", 0) or 0) for r in rs)  # type: ignore[call-overload]
        sendq = sum(int(r["sendq"]) for r in rs)  # type: ignore[call-overload]
        flood = sum(int(r["flood"]) for r in rs)  # type: ignore[call-overload]
        spread = f"{min(values):,.0f}–{max(values):,.0f}" if values else "-"
        med = f"{statistics.median(values):,.0f}" if values else "-"
        cut = (f"{sendq}", f"{flood}") if key == "bad" else ("-", "-")
        rows.append(f"| {kind} | {med} | {spread} | {lost} | {cut[0]} | {cut[1]} |")
    if plain and bad:
        ratio = statistics.median(bad) / statistics.median(plain)
        noise = (max(plain) - min(plain)) / statistics.median(plain)
        rows.append("")
        rows.append(
            f"With bad clients: {ratio:.2f}× the plain runs' median;"
            f" the plain runs spread over {noise:.0%} of their median."
        )
    return "\n".join(rows)


def _can_bind(addr: str) -> bool:
    try:
        with socket.socket() as s:
            s.bind((addr, 0))
        return True
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark salas beside ngIRCd and InspIRCd with ircload, in one run.

Builds ``ircload`` from ``../shared/bench/ircload.c``, installs Debian's
``ngircd`` and ``inspircd`` when missing (as root), then for each scenario and
server starts the server fresh on loopback (pinned to CPU 0), runs ircload
(pinned to CPU 1), stops the server by its PID, and keeps the median of the
repetitions. Prints one table and writes the raw JSON lines and a markdown
summary under ``bench/results/``.

    bench/compare                       everything (about 10 minutes)
    bench/compare --servers salas --scenarios f100 --reps 1 --quick
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHARED = ROOT.parent / "shared" / "bench"
BUILD = HERE / ".build"
PEERS = HERE / "peers"
SERVER_CPU = "0"
LOAD_CPU = "1"

#: The scenarios of shared/bench/README.md: (name, ircload arguments, figure reported).
SCENARIOS: dict[str, tuple[list[str], str]] = {
    "f100": (
        ["--mode", "fanout", "--clients", "100", "--senders", "10", "--window", "16", "--quickack"],
        "deliveries_per_s",
    ),
    "f1000": (
        ["--mode", "fanout", "--clients", "1000", "--senders", "5", "--window", "16", "--quickack"],
        "deliveries_per_s",
    ),
    "f500x50": (
        [
            "--mode",
            "fanout",
            "--clients",
            "500",
            "--channels",
            "50",
            "--senders",
            "50",
            "--window",
            "16",
            "--quickack",
        ],
        "deliveries_per_s",
    ),
    "r100": (
        ["--mode", "fanout", "--clients", "100", "--senders", "10", "--rate", "200"],
        "p99_us",
    ),
    "idle10k": (
        ["--mode", "idle", "--clients", "10000", "--src-ips", "10", "--max-pending", "2500"],
        "kb_per_conn",
    ),
}
#: How cost per delivery grows with work (salas alone): members in one room, then
#: rooms of ten. Senders scale so each room has traffic; window 16 as above.
SCALE: dict[str, list[str]] = {
    "1 room of 10": ["--clients", "10", "--senders", "2"],
    "1 room of 100": ["--clients", "100", "--senders", "5"],
    "1 room of 1000": ["--clients", "1000", "--senders", "5"],
    "1 room of 5000": [
        "--clients",
        "5000",
        "--senders",
        "5",
        "--max-pending",
        "2500",
        "--setup-timeout",
        "300",
    ],
    "10 rooms of 10": ["--clients", "100", "--channels", "10", "--senders", "10"],
    "100 rooms of 10": ["--clients", "1000", "--channels", "100", "--senders", "100"],
    "1000 rooms of 10": [
        "--clients",
        "10000",
        "--channels",
        "1000",
        "--senders",
        "1000",
        "--max-pending",
        "2500",
    ],
}

#: The goal for salas in each scenario: (peer, factor). Throughput must reach
#: factor × the peer's; for latency and memory, salas must stay at or under
#: factor × the peer's.
GOALS: dict[str, tuple[str, float]] = {
    "f100": ("inspircd", 1.5),
    "f1000": ("inspircd", 2.5),
    "f500x50": ("inspircd", 1.0),
    "r100": ("ngircd", 1.0),
    "idle10k": ("inspircd", 1.0),
}

#: For each figure, whether more is better.
HIGHER_IS_BETTER = {"deliveries_per_s": True, "p99_us": False, "kb_per_conn": False}


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    workdir: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {timeout}s")


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 20000) if hard != resource.RLIM_INFINITY else 20000
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))


def pinned(cmd: list[str], cpu: str) -> list[str]:
    return ["taskset", "-c", cpu, *cmd] if shutil.which("taskset") else cmd


def start(name: str, workdir: Path, config: Path | None = None) -> Server:
    """Start ``name`` fresh in ``workdir``; salas reads ``config`` (default: peers/salas.toml)."""
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    if name == "salas":
        salas = ROOT / ".venv" / "bin" / "salas"
        cmd = [
            str(salas),
            "serve",
            "--listen",
            f"irc:127.0.0.1:{port}",
            "--data-dir",
            str(workdir / "data"),
            "--config",
            str(config or PEERS / "salas.toml"),
        ]
    elif name == "ngircd":
        workdir.chmod(0o777)  # ngIRCd drops to nobody and writes its PID file here
        (workdir / "conf.d").mkdir(exist_ok=True)
        conf = workdir / "ngircd.conf"
        conf.write_text((PEERS / "ngircd.conf").read_text().format(port=port, dir=workdir))
        cmd = ["ngircd", "-n", "-f", str(conf)]
    elif name == "inspircd":
        conf = workdir / "inspircd.conf"
        conf.write_text((PEERS / "inspircd.conf").read_text().format(port=port, dir=workdir))
        cmd = ["inspircd", "--config", str(conf), "--nofork", "--runasroot"]
    else:
        raise ValueError(name)
    log = open(workdir / "server.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        pinned(cmd, SERVER_CPU),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=raise_fd_limit,
    )
    wait_port(port, proc)
    return Server(name, proc, port, workdir)


def cpu_busy(interval: float = 0.5) -> float:
    """Share of all CPUs busy over ``interval`` (from /proc/stat)."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        idle = fields[3] + fields[4]
        return sum(fields), idle

    t0, i0 = sample()
    time.sleep(interval)
    t1, i1 = sample()
    return 1.0 - (i1 - i0) / max(1, t1 - t0)


def wait_quiet(limit: float = 0.15, timeout: float = 20.0) -> None:
    """Wait until the machine is quiet (below ``limit`` busy), at most ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and cpu_busy() > limit:
        pass


def figure(result: dict[str, object], name: str) -> float:
    if name == "p99_us":
        lat = result.get("lat_us")
        return float(lat["p99"]) if isinstance(lat, dict) else float("nan")
    value = result.get(name)
    return float(value) if isinstance(value, int | float) else float("nan")


def disturbed(result: dict[str, object]) -> str:
    """Why a run can't be trusted, or ''."""
    if not result.get("ok", False):
        return f"not ok: {result.get('error') or result.get('abort')}"
    if result.get("lost"):
        return f"lost {result['lost']} deliveries"
    cpus = result.get("cpus")
    if isinstance(cpus, list):
        for c in cpus:
            if isinstance(c, dict) and float(c.get("steal", 0)) > 5:
                return f"cpu {c.get('cpu')} steal {c['steal']}%"
    return ""


def run_one(
    ircload: Path, server: Server, scenario: str, quick: bool, more: Sequence[str] = ()
) -> dict[str, object]:
    """Run one scenario against ``server``; ``more`` ircload options come last (last wins)."""
    args, _ = SCENARIOS[scenario]
    extra = ["--warmup", "0.5", "--duration", "2", "--drain", "2"] if quick else []
    if scenario == "idle10k" and quick:
        extra = ["--hold", "1"]
    cmd = pinned(
        [
            str(ircload),
            *args,
            "--port",
            str(server.port),
            "--pid",
            str(server.proc.pid),
            "--label",
            f"{server.name}/{scenario}",
            *extra,
            *more,
        ],
        LOAD_CPU,
    )
    done = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=240,
        preexec_fn=raise_fd_limit,
    )
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        return {"ok": False, "error": (done.stderr or done.stdout)[-500:]}
    result: dict[str, object] = json.loads(lines[-1])
    return result


def build_ircload() -> Path:
    src = SHARED / "ircload.c"
    out = BUILD / "ircload"
    if out.exists() and out.stat().st_mtime >= src.stat().st_mtime:
        return out
    BUILD.mkdir(exist_ok=True)
    subprocess.run(["gcc", "-O2", "-Wall", "-o", str(out), str(src)], check=True)
    return out


def ensure_peers(names: list[str]) -> list[str]:
    """Install missing peers from Debian when we can; return the servers we can run."""
    missing = [n for n in names if n != "salas" and not shutil.which(n)]
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], env=env, check=False)
        for name in missing:  # Debian starts services; the benchmark wants its own
            subprocess.run(["systemctl", "stop", name], capture_output=True, check=False)
    usable = [n for n in names if n == "salas" or shutil.which(n)]
    for n in names:
        if n not in usable:
            print(f"compare: {n} is not installed and could not be; skipping it", file=sys.stderr)
    return usable


@contextlib.contextmanager
def running(name: str, workdir: Path) -> Iterator[Server]:
    server = start(name, workdir)
    try:
        yield server
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--servers", default="salas,inspircd,ngircd")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument(
        "--quick", action="store_true", help="short phases: a smoke run, not a measurement"
    )
    parser.add_argument("--out", default=str(HERE / "results"))
    parser.add_argument(
        "--scale", action="store_true", help="salas alone: cost per delivery as rooms grow"
    )
    args = parser.parse_args(argv)
    if args.scale:
        return scale(args.quick)
    scenarios = [s for s in args.scenarios.split(",") if s]
    for s in scenarios:
        if s not in SCENARIOS:
            parser.error(f"unknown scenario {s}; known: {', '.join(SCENARIOS)}")
    servers = ensure_peers([s for s in args.servers.split(",") if s])
    ircload = build_ircload()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    outdir = Path(args.out) / stamp
    outdir.mkdir(parents=True, exist_ok=True)
    raw = open(outdir / "raw.jsonl", "w")  # noqa: SIM115
    medians: dict[tuple[str, str], float] = {}
    lost: dict[tuple[str, str], int] = {}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="salas-bench-") as tmp:
        for scenario in scenarios:
            _, fig = SCENARIOS[scenario]
            for name in servers:
                values: list[float] = []
                for rep in range(args.reps):
                    for attempt in range(2):
                        wait_quiet()
                        with running(name, Path(tmp) / f"{name}-{scenario}-{rep}-{attempt}") as srv:
                            result = run_one(ircload, srv, scenario, args.quick)
                        why = disturbed(result)
                        result.update(
                            server=name, scenario=scenario, rep=rep, attempt=attempt, disturbed=why
                        )
                        raw.write(json.dumps(result) + "\n")
                        raw.flush()
                        if not why:
                            break
                        print(
                            f"  {name} {scenario} rep {rep}: disturbed ({why}); running it again",
                            file=sys.stderr,
                        )
                    values.append(figure(result, fig))
                    lost[(name, scenario)] = lost.get((name, scenario), 0) + int(
                        result.get("lost", 0) or 0
                    )  # type: ignore[call-overload]
                    print(
                        f"  {name:9} {scenario:8} rep {rep}: {fig} = {values[-1]:,.1f}",
                        file=sys.stderr,
                    )
                medians[(name, scenario)] = statistics.median(values)
    raw.close()
    table = render_table(scenarios, servers, medians, lost)
    summary = (
        f"# salas beside its peers ({stamp})\n\n"
        f"Server on CPU {SERVER_CPU}, ircload on CPU {LOAD_CPU}; median of {args.reps} runs"
        f"{' (quick: smoke phases, not a measurement)' if args.quick else ''}; "
        f"{time.monotonic() - started:.0f} s in all.\n\n{table}\n"
    )
    (outdir / "summary.md").write_text(summary)
    print(table)
    print(f"raw results and summary: {outdir}")
    return 0


def scale(quick: bool) -> int:
    """Server CPU per delivery (µs) for growing rooms and more rooms: it should stay flat."""
    ircload = build_ircload()
    rows = [
        "| load | deliveries/s | server CPU % | µs of server CPU per delivery |",
        "|---|---|---|---|",
    ]
    extra = ["--warmup", "0.5", "--duration", "2", "--drain", "2"] if quick else []
    with tempfile.TemporaryDirectory(prefix="salas-scale-") as tmp:
        for label, args in SCALE.items():
            wait_quiet()
            with running("salas", Path(tmp) / label.replace(" ", "-")) as srv:
                cmd = pinned(
                    [
                        str(ircload),
                        "--mode",
                        "fanout",
                        "--window",
                        "16",
                        "--quickack",
                        *args,
                        "--port",
                        str(srv.port),
                        "--pid",
                        str(srv.proc.pid),
                        *extra,
                    ],
                    LOAD_CPU,
                )
                done = subprocess.run(
                    cmd,
                    capture_output=True,
                    text=True,
                    timeout=300,
                    preexec_fn=raise_fd_limit,
                )
            lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
            if not lines:
                rows.append(f"| {label} | failed: {(done.stderr or done.stdout)[-200:]!r} | | |")
                continue
            r = json.loads(lines[-1])
            rate = float(r.get("deliveries_per_s", 0) or 0)
            cpu = float(r.get("server_cpu_pct", 0) or 0)
            per = cpu / 100 / rate * 1e6 if rate else float("nan")
            lost = f" ({r['lost']} lost)" if r.get("lost") else ""
            rows.append(f"| {label} | {rate:,.0f}{lost} | {cpu:.0f} | {per:.3f} |")
            print(rows[-1], file=sys.stderr)
    print("\n".join(rows))
    return 0


def goal_text(scenario: str, medians: dict[tuple[str, str], float]) -> str:
    """The scenario's goal for salas, and whether this run met it or by how much it fell short."""
    peer, factor = GOALS[scenario]
    fig = SCENARIOS[scenario][1]
    salas, other = medians.get(("salas", scenario)), medians.get((peer, scenario))
    name = {"inspircd": "InspIRCd", "ngircd": "ngIRCd"}[peer]
    if HIGHER_IS_BETTER[fig]:
        want = f"≥ {factor:g}× {name}"
    else:
        want = f"≤ {name}" if factor == 1 else f"≤ {factor:g}× {name}"
    if not salas or not other:
        return f"{want}: n/a"
    ratio = salas / other
    met = ratio >= factor if HIGHER_IS_BETTER[fig] else ratio <= factor
    if met:
        return f"{want}: met"
    side = "below" if HIGHER_IS_BETTER[fig] else "above"
    return f"{want}: missed, {abs(ratio - factor) / factor:.0%} {side} it"


def render_table(
    scenarios: list[str],
    servers: list[str],
    medians: dict[tuple[str, str], float],
    lost: dict[tuple[str, str], int],
) -> str:
    head = ["scenario", "figure", *servers]
    if "salas" in servers and "inspircd" in servers:
        head.append("salas ÷ InspIRCd")
    if "salas" in servers and any(GOALS[s][0] in servers for s in scenarios):
        head.append("goal")
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for scenario in scenarios:
        fig = SCENARIOS[scenario][1]
        cells = [scenario, fig + ("" if HIGHER_IS_BETTER[fig] else " (lower is better)")]
        for name in servers:
            value = medians.get((name, scenario), float("nan"))
            note = f" ({lost[(name, scenario)]} lost)" if lost.get((name, scenario)) else ""
            cells.append(f"{value:,.1f}{note}")
        if "salas ÷ InspIRCd" in head:
            a, b = medians.get(("salas", scenario)), medians.get(("inspircd", scenario))
            cells.append(f"{a / b:.2f}×" if a and b else "n/a")
        if "goal" in head:
            cells.append(goal_text(scenario, medians))
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


if __name__ == "__main__":
    raise SystemExit(main())

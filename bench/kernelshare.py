"""Where the server's core goes: the kernel's share against the server's own code.

For each fan-out scenario and server, starts the server fresh (pinned to CPU 0,
as in ``bench/compare``), runs ircload on CPU 1, and samples CPU 0 with
``perf record`` for a few seconds in the middle of the run. ``perf report
--sort dso`` splits the samples by where the code lives: the kernel
(loopback TCP, the scheduler), the Python interpreter, SQLite, libc, the
server's own binary. With the run's deliveries per second, each share becomes
nanoseconds of CPU 0 per delivery, which compares servers directly.

    bench/kernelshare                                  f100 and f500x50, salas and InspIRCd
    bench/kernelshare --servers salas --scenarios f100 --seconds 1 --quick
    bench/kernelshare --servers salas --store memory   salas without its store
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import compare as cmp

import store

#: perf's names for where the samples fell, and ours.
GROUPS = (
    ("kernel", re.compile(r"^\[kernel")),
    ("Python", re.compile(r"^libpython|^python3")),  # shared, or linked into the binary
    ("SQLite", re.compile(r"^libsqlite|^_sqlite3")),
    ("libc", re.compile(r"^libc\.|^libstdc\+\+|^libm\.")),
    ("uvloop", re.compile(r"^loop\.cpython")),
)


def group(dso: str, comm: str, server: str) -> str:
    for name, pattern in GROUPS:
        if pattern.search(dso):
            return name
    # A peer's own binary; anything else (perf itself, the loader) is "other".
    return "server" if server != "salas" and comm == server else "other"


def shares(data: Path, server: str) -> dict[str, float]:
    """Percent of CPU 0's samples by group; idle (the swapper) counted apart."""
    report = subprocess.run(
        [
            "perf",
            "report",
            "-i",
            str(data),
            "--sort",
            "comm,dso",
            "--stdio",
            "--percent-limit",
            "0",
        ],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    out: dict[str, float] = {}
    for line in report.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+(\S+)", line)
        if not m:
            continue
        pct, comm, dso = float(m[1]), m[2], m[3]
        key = "idle" if comm == "swapper" else group(dso, comm, server)
        out[key] = out.get(key, 0.0) + pct
    return out


def run(ircload: Path, server: str, scenario: str, seconds: float, tmp: Path, setting: str) -> dict:
    args, _ = cmp.SCENARIOS[scenario]
    phases = ["--warmup", "1", "--duration", str(seconds + 2), "--drain", "2"]
    cmp.wait_quiet()
    workdir = tmp / f"{server}-{scenario}"
    workdir.mkdir(parents=True)
    config = store.config_for(setting, workdir) if server == "salas" else None
    srv = cmp.start(server, workdir, config)
    load: subprocess.Popen[str] | None = None
    try:
        load = subprocess.Popen(
            cmp.pinned(
                [str(ircload), *args, "--port", str(srv.port), "--pid", str(srv.proc.pid), *phases],
                cmp.LOAD_CPU,
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=cmp.raise_fd_limit,
        )
        # Setup (connect, register, join) then the warm-up: sample the measured phase.
        deadline = time.monotonic() + 120
        while load.poll() is None and time.monotonic() < deadline:
            if _measuring(srv.proc.pid):
                break
            time.sleep(0.2)
        time.sleep(1.5)
        data = tmp / f"{server}-{scenario}.perf"
        sample = ["perf", "record", "-q", "-C", cmp.SERVER_CPU, "-F", "999", "-o", str(data)]
        subprocess.run(
            [*sample, "--", "sleep", str(seconds)],
            capture_output=True,
            check=False,
        )
        out, err = load.communicate(timeout=240)
    finally:
        if load is not None and load.poll() is None:  # a timeout or ^C: never leave it
            load.kill()
            load.wait()
        srv.stop()
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    if not lines:
        return {"ok": False, "error": err[-300:]}
    result: dict = json.loads(lines[-1])
    result["shares"] = shares(data, server)
    return result


def _measuring(pid: int) -> bool:
    """The server is busy: ircload's setup is over and messages flow."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            before = sum(int(x) for x in f.read().rsplit(")", 1)[1].split()[11:13])
        time.sleep(0.3)
        with open(f"/proc/{pid}/stat") as f:
            after = sum(int(x) for x in f.read().rsplit(")", 1)[1].split()[11:13])
    except OSError:
        return False
    return after - before >= 15  # half a core or more over 0.3 s (100 ticks/s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--servers", default="salas,inspircd")
    parser.add_argument("--scenarios", default="f100,f500x50")
    parser.add_argument("--seconds", type=float, default=3.0, help="perf's sampling window")
    parser.add_argument("--quick", action="store_true", help="a smoke run, not a measurement")
    parser.add_argument(
        "--store", default="sqlite", choices=sorted(store.SETTINGS), help="salas's [store]"
    )
    parser.add_argument("--out", default=str(cmp.HERE / "results"))
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds = min(args.seconds, 1.0)
    if not shutil.which("perf"):
        print("kernelshare: needs perf (Debian: linux-perf)", file=sys.stderr)
        return 2
    scenarios = [s for s in args.scenarios.split(",") if s]
    for s in scenarios:
        if s not in cmp.SCENARIOS or cmp.SCENARIOS[s][1] != "deliveries_per_s":
            parser.error(f"{s}: fan-out scenarios only (f100, f1000, f500x50)")
    servers = cmp.ensure_peers([s for s in args.servers.split(",") if s])
    ircload = cmp.build_ircload()
    outdir = Path(args.out) / ("kernelshare-" + time.strftime("%Y%m%d-%H%M%S"))
    outdir.mkdir(parents=True, exist_ok=True)
    cols = ["kernel", "Python", "SQLite", "libc", "uvloop", "server", "other", "idle"]
    rows = [
        "| scenario | server | deliveries/s | "
        + " | ".join(f"{c} %" for c in cols)
        + " | kernel ns/delivery | the rest ns/delivery |",
        "|" + "---|" * (len(cols) + 5),
    ]
    with (
        tempfile.TemporaryDirectory(prefix="salas-kshare-") as tmp,
        open(outdir / "raw.jsonl", "w") as raw,
    ):
        for scenario in scenarios:
            for server in servers:
                r = run(ircload, server, scenario, args.seconds, Path(tmp), args.store)
                r.update(server=server, scenario=scenario, store=args.store)
                raw.write(json.dumps(r) + "\n")
                if not r.get("ok", False) or not r.get("shares"):
                    rows.append(f"| {scenario} | {server} | failed: {r.get('error', '')!r} |")
                    continue
                rate = float(r["deliveries_per_s"])
                sh: dict[str, float] = r["shares"]
                busy = 100.0 - sh.get("idle", 0.0)
                kernel = sh.get("kernel", 0.0)
                per = 1e9 / rate / 100 if rate else float("nan")  # ns of CPU 0 per % per delivery
                rows.append(
                    f"| {scenario} | {server} | {rate:,.0f} | "
                    + " | ".join(f"{sh.get(c, 0.0):.1f}" for c in cols)
                    + f" | {kernel * per:.0f} | {(busy - kernel) * per:.0f} |"
                )
                print(rows[-1], file=sys.stderr)
    table = "\n".join(rows)
    (outdir / "summary.md").write_text(
        f"# Where CPU 0 goes ({outdir.name})\n\n"
        f"perf record -C {cmp.SERVER_CPU} -F 999 for {args.seconds:g} s in the middle of each"
        f" run{' (quick: a smoke run)' if args.quick else ''}; shares of CPU 0's samples;"
        f" salas's store: {args.store}.\n\n"
        f"{table}\n"
    )
    print(table)
    print(f"raw results and summary: {outdir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

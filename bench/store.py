"""What the message store costs: salas alone, with and without it, in one run.

Three settings, each a fresh server in a fresh data dir for every run:

- ``memory``: ``[store] url = "memory:"``, history in memory only (no store);
- ``sqlite``: the default, SQLite in the data dir (WAL, ``synchronous=NORMAL``);
- ``fsync``: SQLite with ``fsync = true`` (``synchronous=FULL``: every commit
  waits for the disk).

Throughput comes from f100 and f500x50 (messages said per second, deliveries
per second), latency from r100 (p50 and p99; "added" is the difference from
the ``memory`` run). The rest is bench/compare's: ircload pinned to CPU 1,
the server to CPU 0, a wait for a quiet machine before each run, the median
of the repetitions. A disturbed run (aborted, lost deliveries, CPU steal, or
other work on the pinned CPUs: the machine may be shared) is run again, up
to ``--attempts`` times, and the least disturbed attempt is kept and flagged.

Every run starts sending at once (ircload ``--warmup 0``): ircload's ``sent``
counts only the messages sent in its measured window, so with no warm-up it is
every message the run sent. After ircload ends, the server is killed with
SIGKILL (what a crash leaves), and the rows of the ``messages`` table are
counted and compared with ``sent`` (in every attempt, kept or not): they must
be equal, since salas shows no message before the store has kept it and
ircload saw every message delivered; the run exits 1 when they are not.
Then the size of ``salas.db`` is taken, with the WAL folded in. "Off the
loop" is the share of the server's CPU spent in threads other than the event
loop's, which with SQLite is the store's writer thread.

    bench/store                          everything (3 minutes on a quiet machine)
    bench/store --reps 1 --quick         a smoke run
    bench/store --settings memory,sqlite --scenarios r100
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# compare.py is beside this file (bench/ is not a package).
from compare import (
    HERE,
    LOAD_CPU,
    PEERS,
    SCENARIOS,
    SERVER_CPU,
    build_ircload,
    disturbed,
    run_one,
    start,
    wait_quiet,
)

#: Setting name -> the ``[store]`` section it adds to bench/peers/salas.toml.
SETTINGS: dict[str, str] = {
    "memory": 'url = "memory:"',
    "sqlite": 'url = ""',
    "fsync": 'url = ""\nfsync = true',
}
#: What each setting is, for the table.
LABELS = {
    "memory": "memory: (no store)",
    "sqlite": "SQLite",
    "fsync": "SQLite, fsync = true",
}
DEFAULT_SCENARIOS = ("f100", "f500x50", "r100")
#: Most CPU (%) other work may take on a pinned CPU before a run counts as disturbed.
OTHERS_LIMIT = 10.0
#: Runs of one rep at most, when some are disturbed (the least disturbed is kept, flagged).
ATTEMPTS = 4
#: Seconds to wait at most for a quiet machine before each run.
QUIET_WAIT = 60.0
#: ircload options after the scenario's: send from the first moment, so ``sent`` is every message.
MORE = ("--warmup", "0")


@dataclass
class Run:
    """One run's figures (one row of raw.jsonl, in short)."""

    said: float
    deliveries: float
    p50: float
    p99: float
    cpu: float
    off_loop: float  # % of the server's CPU (whole run) spent off the event loop's thread
    sent: int  # -1: ircload printed no result
    rows: int | None  # None: nothing kept on disk (memory)
    db_bytes: int | None
    disturbed: str = ""


@dataclass
class Cell:
    #: The run kept for each rep (the least disturbed attempt).
    runs: list[Run] = field(default_factory=list)
    #: Every attempt: each one's messages table is held to what it sent.
    checked: list[Run] = field(default_factory=list)

    def median(self, name: str) -> float:
        values = [float(getattr(r, name)) for r in self.runs if getattr(r, name) is not None]
        return statistics.median(values) if values else float("nan")

    def mismatches(self) -> list[Run]:
        return [r for r in self.checked if r.rows is not None and r.sent >= 0 and r.rows != r.sent]


def config_for(setting: str, workdir: Path) -> Path:
    """bench/peers/salas.toml plus the setting's ``[store]`` section."""
    path = workdir / "salas.toml"
    base = (PEERS / "salas.toml").read_text()
    path.write_text(f"{base.rstrip()}\n\n[store]\n{SETTINGS[setting]}\n")
    return path


def count_and_size(db: Path) -> tuple[int | None, int | None, int]:
    """(rows in messages, size of salas.db with the WAL folded in, WAL bytes found)."""
    if not db.exists():
        return None, None, 0
    wal = db.with_name(db.name + "-wal")
    wal_bytes = wal.stat().st_size if wal.exists() else 0
    conn = sqlite3.connect(db)  # opening recovers the WAL a killed server left
    try:
        rows = int(conn.execute("SELECT count(*) FROM messages").fetchone()[0])
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return rows, db.stat().st_size, wal_bytes


def thread_cpu(pid: int) -> tuple[float, float]:
    """CPU seconds so far of (the event loop's thread, every other thread) of ``pid``.

    With the SQLite store the other threads are its writer; with ``memory:`` they idle.
    """
    tick = os.sysconf("SC_CLK_TCK")
    main = other = 0.0
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                used = (int(fields[11]) + int(fields[12])) / tick
                if task.name == str(pid):
                    main += used
                else:
                    other += used
    return main, other


def measure(
    ircload: Path, setting: str, scenario: str, quick: bool, workdir: Path
) -> dict[str, object]:
    """One run: a fresh server, ircload, SIGKILL, then the store's rows and size."""
    workdir.mkdir(parents=True)
    server = start("salas", workdir, config_for(setting, workdir))
    try:
        main0, other0 = thread_cpu(server.proc.pid)
        result = run_one(ircload, server, scenario, quick, MORE)
        main1, other1 = thread_cpu(server.proc.pid)
    finally:
        server.proc.kill()  # SIGKILL: the store must already hold every message shown
        server.proc.wait(10)
    rows, size, wal = count_and_size(workdir / "data" / "salas.db")
    loop_s, off_s = main1 - main0, other1 - other0
    result.update(
        messages_rows=rows,
        db_bytes=size,
        wal_bytes_at_kill=wal,
        loop_thread_cpu_s=round(loop_s, 2),
        other_threads_cpu_s=round(off_s, 2),
        off_loop_pct=round(100 * off_s / (loop_s + off_s), 1) if loop_s + off_s > 0 else None,
    )
    return result


def others(result: dict[str, object]) -> tuple[float, int]:
    """The most CPU (%) other work took on the server's or ircload's CPU, and which CPU.

    Busy time on a CPU that is neither its process's (server on CPU 0, ircload
    on CPU 1) nor softirq (loopback) belongs to someone else: a shared machine.
    """
    own = {
        int(SERVER_CPU): result.get("server_cpu_pct"),
        int(LOAD_CPU): result.get("gen_cpu_pct"),
    }
    worst, where = 0.0, -1
    cpus = result.get("cpus")
    for c in cpus if isinstance(cpus, list) else []:
        if not isinstance(c, dict) or c.get("cpu") not in own:
            continue
        mine = own[c["cpu"]]
        if not isinstance(mine, int | float):
            continue
        taken = float(c.get("busy", 0)) - float(mine) - float(c.get("softirq", 0))
        if taken > worst:
            worst, where = taken, int(c["cpu"])
    return worst, where


def crowded(result: dict[str, object], limit: float = OTHERS_LIMIT) -> str:
    """Why other work on the pinned CPUs makes this run doubtful, or ''."""
    taken, cpu = others(result)
    return f"{taken:.0f}% of CPU {cpu} busy with other work" if taken > limit else ""


def unrest(result: dict[str, object]) -> tuple[int, float, int]:
    """Which attempt to keep (least first): failed ones last, then by other work, then latest."""
    attempt = result.get("attempt")
    return (
        1 if disturbed(result) else 0,
        others(result)[0] if result.get("disturbed") else 0.0,
        -attempt if isinstance(attempt, int) else 0,
    )


def to_run(result: dict[str, object]) -> Run:
    lat = result.get("lat_us")
    lat = lat if isinstance(lat, dict) else {}

    def num(value: object) -> float:
        return float(value) if isinstance(value, int | float) else float("nan")

    rows, size, sent = result.get("messages_rows"), result.get("db_bytes"), result.get("sent")
    return Run(
        said=num(result.get("sent_per_s")),
        deliveries=num(result.get("deliveries_per_s")),
        p50=num(lat.get("p50")),
        p99=num(lat.get("p99")),
        cpu=num(result.get("server_cpu_pct")),
        off_loop=num(result.get("off_loop_pct")),
        sent=sent if isinstance(sent, int) else -1,
        rows=rows if isinstance(rows, int) else None,
        db_bytes=size if isinstance(size, int) else None,
        disturbed=str(result.get("disturbed") or ""),
    )


def fsync_probe(where: Path, count: int = 50) -> float:
    """Median µs to write 4 KiB and fsync it, in ``where``: what one durable commit costs."""
    path = where / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    times: list[float] = []
    try:
        block = os.urandom(4096)
        for i in range(count):
            os.pwrite(fd, block, i * 4096)
            t0 = time.perf_counter()
            os.fsync(fd)
            times.append((time.perf_counter() - t0) * 1e6)
    finally:
        os.close(fd)
        path.unlink()
    return statistics.median(times)


def source_note() -> str:
    """Which salas is measured: the commit, and whether src/ differs from it."""
    root = HERE.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "salas at an unknown commit"
    if not commit:
        return "salas at an unknown commit"
    return f"salas at {commit}" + (" with uncommitted changes in src/" if changed else "")


def machine_notes(where: Path) -> str:
    cpu = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    fs = "?"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["df", "--output=source,fstype", str(where)],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.split()
        fs = " ".join(out[-2:]) if len(out) >= 2 else fs
    return (
        f"{source_note()}; {os.cpu_count()} CPUs ({cpu}), "
        f"{platform.system()} {platform.release()}; "
        f"data dirs on {fs} ({where}); 4 KiB write + fsync there: "
        f"median {fsync_probe(where):,.0f} µs; SQLite {sqlite3.sqlite_version}"
    )


def fmt(value: float, digits: int = 0) -> str:
    return "n/a" if value != value else f"{value:,.{digits}f}"


def fmt_bytes(value: float) -> str:
    if value != value:
        return "—"
    return f"{value / 1e6:,.1f} MB" if value >= 1e6 else f"{value / 1e3:,.0f} kB"


def render_table(
    scenarios: list[str], settings: list[str], cells: dict[tuple[str, str], Cell]
) -> str:
    head = [
        "scenario",
        "store",
        "messages said/s",
        "deliveries/s",
        "÷ memory",
        "p50 µs",
        "p99 µs",
        "added p50 µs",
        "added p99 µs",
        "server CPU %",
        "of it off the loop",
        "salas.db",
        "rows = sent",
    ]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for scenario in scenarios:
        base = cells.get(("memory", scenario))
        for setting in settings:
            cell = cells.get((setting, scenario))
            if cell is None or not cell.runs:
                continue
            ratio = added50 = added99 = "—"
            if base is not None and base.runs and setting != "memory":
                ratio = f"{cell.median('deliveries') / base.median('deliveries'):.2f}×"
                added50 = f"{cell.median('p50') - base.median('p50'):+,.0f}"
                added99 = f"{cell.median('p99') - base.median('p99'):+,.0f}"
            elif setting == "memory":
                ratio = "1.00×"
            stored = [r for r in cell.checked if r.rows is not None]
            if not stored:
                check = "— (nothing on disk)"
            else:
                bad = cell.mismatches()
                total_rows, total_sent = (
                    sum(r.rows or 0 for r in stored),
                    sum(r.sent for r in stored),
                )
                check = (
                    f"{'yes' if not bad else f'**NO in {len(bad)}**'}: "
                    f"{total_rows:,} of {total_sent:,} in {len(stored)} runs"
                )
            rows.append(
                "| "
                + " | ".join(
                    [
                        scenario,
                        LABELS[setting],
                        fmt(cell.median("said")),
                        fmt(cell.median("deliveries")),
                        ratio,
                        fmt(cell.median("p50")),
                        fmt(cell.median("p99")),
                        added50,
                        added99,
                        fmt(cell.median("cpu")),
                        fmt(cell.median("off_loop")) + " %",
                        fmt_bytes(cell.median("db_bytes")),
                        check,
                    ]
                )
                + " |"
            )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--scenarios", default=",".join(DEFAULT_SCENARIOS))
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument(
        "--quick", action="store_true", help="short phases: a smoke run, not a measurement"
    )
    parser.add_argument("--out", default=str(HERE / "results"), help="where the results go")
    parser.add_argument(
        "--work",
        default=tempfile.gettempdir(),
        help="where the servers' data dirs go: the disk being measured (default: %(default)s)",
    )
    parser.add_argument(
        "--attempts",
        type=int,
        default=ATTEMPTS,
        help="runs of one rep at most while they are disturbed (default: %(default)s)",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=QUIET_WAIT,
        help="seconds to wait at most for a quiet machine before each run (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    settings = [s for s in args.settings.split(",") if s]
    scenarios = [s for s in args.scenarios.split(",") if s]
    for s in settings:
        if s not in SETTINGS:
            parser.error(f"unknown setting {s}; known: {', '.join(SETTINGS)}")
    for s in scenarios:
        if s not in SCENARIOS or "fanout" not in SCENARIOS[s][0]:
            parser.error(f"unknown scenario {s}; known: f100, f1000, f500x50, r100")
    if args.reps < 1 or args.attempts < 1:
        parser.error("--reps and --attempts: at least 1")
    ircload = build_ircload()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    outdir = Path(args.out) / f"store-{stamp}"
    outdir.mkdir(parents=True, exist_ok=True)
    cells: dict[tuple[str, str], Cell] = {}
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="salas-store-", dir=args.work) as tmp,
        open(outdir / "raw.jsonl", "w") as raw,
    ):
        notes = machine_notes(Path(tmp))
        print(f"store: {notes}", file=sys.stderr)
        for scenario in scenarios:
            for setting in settings:
                cell = cells[(setting, scenario)] = Cell()
                for rep in range(args.reps):
                    attempts: list[dict[str, object]] = []
                    for attempt in range(args.attempts):
                        if args.quiet_wait > 0:
                            wait_quiet(timeout=args.quiet_wait)
                        workdir = Path(tmp) / f"{setting}-{scenario}-{rep}-{attempt}"
                        result = measure(ircload, setting, scenario, args.quick, workdir)
                        rows, sent = result.get("messages_rows"), result.get("sent")
                        if (isinstance(rows, int) and rows != sent) or result.get("lost"):
                            # Evidence: the server's log and its data dir, for whoever looks.
                            kept_dir = outdir / workdir.name
                            shutil.move(workdir, kept_dir)
                            result["kept_dir"] = str(kept_dir)
                        shutil.rmtree(workdir, ignore_errors=True)
                        os.sync()  # the next run starts with no writeback of this one's pending
                        why = disturbed(result) or crowded(result)
                        result.update(
                            server="salas",
                            setting=setting,
                            scenario=scenario,
                            rep=rep,
                            attempt=attempt,
                            disturbed=why,
                            kept=False,
                        )
                        attempts.append(result)
                        cell.checked.append(to_run(result))  # every attempt's rows are checked
                        if not why:
                            break
                        print(
                            f"  {setting} {scenario} rep {rep}: disturbed ({why}); running it"
                            " again",
                            file=sys.stderr,
                        )
                    result = min(attempts, key=unrest)  # the last if none is disturbed
                    result["kept"] = True
                    for each in attempts:
                        raw.write(json.dumps(each) + "\n")
                    raw.flush()
                    run = to_run(result)
                    cell.runs.append(run)
                    kept = "" if run.rows is None else f", rows {run.rows:,} of {run.sent:,} sent"
                    kept += "" if run.db_bytes is None else f", salas.db {fmt_bytes(run.db_bytes)}"
                    print(
                        f"  {setting:6} {scenario:8} rep {rep}: said {fmt(run.said)}/s,"
                        f" deliveries {fmt(run.deliveries)}/s, p50 {fmt(run.p50)} µs,"
                        f" p99 {fmt(run.p99)} µs{kept}",
                        file=sys.stderr,
                    )
    table = render_table(scenarios, settings, cells)
    lost = [
        f"- {LABELS[setting]}, {scenario}: {r.rows:,} rows for {r.sent:,} messages sent"
        for (setting, scenario), cell in cells.items()
        for r in cell.mismatches()
    ]
    summary = (
        f"# The store's cost ({stamp})\n\n"
        f"salas alone, server on CPU {SERVER_CPU}, ircload on CPU {LOAD_CPU}, "
        f"ircload `{' '.join(MORE)}`; median of {args.reps} runs"
        f"{' (quick: smoke phases, not a measurement)' if args.quick else ''}; "
        f"{time.monotonic() - started:.0f} s in all.\n\n{notes}.\n\n{table}\n"
    )
    shaky = [
        f"- {LABELS[setting]}, {scenario}: {r.disturbed}"
        for (setting, scenario), cell in cells.items()
        for r in cell.runs
        if r.disturbed
    ]
    if shaky:
        summary += f"\nKept though disturbed after {args.attempts} attempt(s):\n\n"
        summary += "\n".join(shaky) + "\n"
    if lost:
        summary += "\nRuns whose messages table does not match what was sent:\n\n"
        summary += "\n".join(lost) + "\n"
    (outdir / "summary.md").write_text(summary)
    print(table)
    for line in lost:
        print(f"MISMATCH {line[2:]}", file=sys.stderr)
    print(f"raw results and summary: {outdir}")
    return 1 if lost else 0


if __name__ == "__main__":
    raise SystemExit(main())

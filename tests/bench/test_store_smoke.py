"""bench/store must never rot: a few seconds of salas alone, with and without the store.

The figures themselves live in the benchmark (bench/store) and docs/performance.md,
not here. What is held here: the run ends, prints its table, and the messages
table of a server killed after the run holds exactly the messages ircload sent.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchrun import needs_ircload, run_bench


@pytest.mark.slow
@needs_ircload
def test_store_bench_runs_memory_and_sqlite_on_r100(tmp_path: Path) -> None:
    done = run_bench(
        "store.py",
        "--settings",
        "memory,sqlite",
        "--scenarios",
        "r100",
        "--reps",
        "1",
        "--quick",
        "--attempts",
        "1",
        "--quiet-wait",
        "0",
        "--out",
        str(tmp_path / "out"),
        "--work",
        str(tmp_path),
        timeout=100,
    )
    assert "| r100 | memory: (no store) |" in done.stdout
    assert "| r100 | SQLite |" in done.stdout
    (run,) = list((tmp_path / "out").iterdir())
    results = [json.loads(line) for line in (run / "raw.jsonl").read_text().splitlines()]
    kept = {r["setting"]: r for r in results if r["kept"]}
    assert set(kept) == {"memory", "sqlite"}
    assert all(r["ok"] and r["lost"] == 0 and r["sent"] > 0 for r in kept.values()), results
    assert kept["memory"]["messages_rows"] is None
    assert kept["sqlite"]["messages_rows"] == kept["sqlite"]["sent"]
    assert kept["sqlite"]["db_bytes"] > 0
    assert (run / "summary.md").read_text().startswith("# The store's cost")

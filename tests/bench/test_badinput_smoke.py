"""bench/badinput must never rot: one quick pair of f100 runs, plain and with bad clients.

What it checks is behaviour, not speed: under load, the server cuts off the
client that stopped reading (send queue) and the one flooding garbage (flood
limit), and no delivery to anyone else is lost. The figures live in the
benchmark's own output.
"""

from __future__ import annotations

import json
from pathlib import Path

from benchrun import needs_ircload, run_bench


@needs_ircload
def test_bad_clients_are_cut_off_and_nobody_loses_a_message(tmp_path: Path) -> None:
    done = run_bench(
        "badinput.py",
        "--reps",
        "1",
        "--quick",
        "--out",
        str(tmp_path),
        timeout=150,
    )
    assert "| with bad clients |" in done.stdout
    (run,) = list(tmp_path.iterdir())
    results = [json.loads(line) for line in (run / "raw.jsonl").read_text().splitlines()]
    by_kind = {r["kind"]: r for r in results}
    assert set(by_kind) == {"plain", "bad"}
    for r in results:
        assert r["ok"] and r["lost"] == 0 and r["deliveries_per_s"] > 0, r
    bad = by_kind["bad"]
    assert bad["slow_sessions"] >= 1 and bad["flood_sessions"] >= 1, bad
    assert bad["sendq"] >= 1, bad  # the reader that stopped reading was cut off
    assert bad["flood"] >= 1, bad  # so was the flooder
    assert by_kind["plain"]["sendq"] == 0 and by_kind["plain"]["flood"] == 0

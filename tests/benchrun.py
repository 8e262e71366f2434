"""What the benchmarks' smoke tests share: ircload must be buildable, and each
runs one of the bench scripts with this interpreter and expects it to succeed."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support import TIME

ROOT = Path(__file__).resolve().parents[1]

needs_ircload = pytest.mark.skipif(
    not shutil.which("gcc") or not (ROOT.parent / "shared" / "bench" / "ircload.c").exists(),
    reason="needs gcc and ../shared/bench/ircload.c beside the project to build ircload",
)


def run_bench(script: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """``bench/<script> args`` to its end (``timeout`` seconds, scaled); it must exit 0."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout * TIME,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done

"""CHATHISTORY TARGETS with more conversations than the limit: which are kept."""

from __future__ import annotations

from salas.core.events import HistoryTargets, Message, TargetsWanted
from salas.core.model import UserRef
from salas.store.memory import MemoryStore


def targets(newest: bool) -> list[str]:
    store = MemoryStore()
    who = UserRef(1, "ann", "ann", "h")
    store.submit(
        1, [(room, Message(room, float(room), f"r{room}", who, "hi")) for room in (1, 2, 3)]
    )
    got: list[HistoryTargets] = []
    rooms = ((1, "r1"), (2, "r2"), (3, "r3"))
    store.query(TargetsWanted("ann", None, rooms, 0.0, 10.0, 2, "", newest), got.append)
    return [name for name, _, _ in got[0].targets]


def test_the_oldest_by_default_and_the_newest_when_counting_back() -> None:
    assert targets(False) == ["r1", "r2"]
    assert targets(True) == ["r2", "r3"]

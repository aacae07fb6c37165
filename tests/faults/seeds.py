"""Which seeds each fault scenario runs with, in CI and in a soak.

A seed fixes each person's actions and the fault's timing, so a failing run is repeated by
its seed (the timeline in the report names it). CI runs each scenario's defaults, chosen
to keep the suite inside CI's budget:

* the faults issue 10 names (kill -9, PostgreSQL stopped, Redis losing its data, pub/sub
  killed, the burst and the tutor on both processes) with seeds 1 and 2;
* the others with one seed; where a scenario has several kinds of fault (``cut``,
  ``hold``, ``slow``...), each kind with its own seed, so a CI run still spreads timings.

A soak runs more: ``HH_FAULT_SEEDS="3 4 5 6"`` (spaces or commas) runs every scenario, and
every kind of fault of each, with each of those seeds instead of the defaults.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

ENV = "HH_FAULT_SEEDS"


def soak_seeds() -> list[int] | None:
    """The seeds :data:`ENV` asks for, or None when it is unset or empty; a value that is not
    a list of integers fails the collection with its own message."""
    raw = os.environ.get(ENV, "").replace(",", " ").split()
    if not raw:
        return None
    try:
        return [int(seed) for seed in raw]
    except ValueError:
        raise ValueError(f"{ENV} must be integers separated by spaces or commas: {raw}") from None


def seeds(*default: int) -> list[int]:
    """The seeds of a scenario with one kind of fault: ``default`` in CI."""
    return soak_seeds() or list(default)


def kinds(default: Sequence[tuple[str, int]]) -> list[tuple[str, int]]:
    """``(kind, seed)`` pairs of a scenario with several kinds of fault: ``default`` in CI,
    and in a soak every kind named there with every soak seed."""
    soak = soak_seeds()
    if soak is None:
        return list(default)
    return [(kind, seed) for kind in dict.fromkeys(k for k, _ in default) for seed in soak]

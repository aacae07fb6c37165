"""Benchmark: chat relay throughput with moderation on vs off (issue 12's goal: with it on,
within 10% of the same run without it).

``python -m bench.moderation_relay [--quick] [--rounds N] [--no-write] [--results PATH]``

Runs ``bench.broker``'s chat scenario (100 sessions on the embedded stack, both sides sending
``chat:send`` as fast as acks return, real socket.io clients in a separate load process,
server and load pinned to different CPUs) against two servers that differ only in the
moderation decision: the real one (``homework-help serve``), and one whose decision is a
plain "deliver" without looking at the text (``bench._unmoderated_serve``: the application
itself has no switch to turn moderation off). The messages are homework-like chat lines
(a number, an equation, a page) after the load's send time written in letters (so the
server reads homework, not a 12-digit number), and every one goes through the checks. The
two alternate, best of ``N`` rounds each. The figures replace the
relay block of the "## Moderation" section of bench/RESULTS.md (``bench.moderation`` keeps
it when it rewrites the rest).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench._load import stamp
from bench.broker import FULL, QUICK, Bench, Stack, raise_nofile
from bench.moderation import RELAY_END, RELAY_START
from bench.results import RESULTS
from broker.moderation import Moderator, load_rules

GOAL_RATIO = 0.9
FILLER = "can you check step 2? I got 3x + 5 = 20 so x = 5, page 112 question 4"
OFF_CMD = f"{sys.executable} -m bench._unmoderated_serve"


@contextlib.contextmanager
def unmoderated() -> Iterator[None]:
    """Serve with the moderation decision patched out (``bench.broker`` reads the command
    from ``HH_BENCH_BROKER_CMD`` when it starts a broker)."""
    before = os.environ.get("HH_BENCH_BROKER_CMD")
    os.environ["HH_BENCH_BROKER_CMD"] = OFF_CMD
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("HH_BENCH_BROKER_CMD", None)
        else:
            os.environ["HH_BENCH_BROKER_CMD"] = before


def cpu_us(fig: dict[str, Any]) -> float | None:
    """Server CPU microseconds per relayed message in a round (None when not measured):
    unlike messages per second, hardly moved by other work on the machine."""
    if fig.get("server_cpu") is None or not fig["per_s"]:
        return None
    return float(fig["server_cpu"]) / 100 / float(fig["per_s"]) * 1e6


def least_cpu(figs: list[dict[str, Any]]) -> float | None:
    measured = [us for us in map(cpu_us, figs) if us is not None]
    return min(measured) if measured else None


def block(on: dict[str, Any], off: dict[str, Any], rounds: dict[str, list[int]],
          sessions: int, cpu: dict[str, float | None] | None = None) -> list[str]:
    ratio = on["per_s"] / off["per_s"] if off["per_s"] else 0.0
    met = "yes" if ratio >= GOAL_RATIO else "NO"
    cpu_on, cpu_off = (cpu or {}).get("on"), (cpu or {}).get("off")
    cpu_rows = []
    if cpu_on and cpu_off:
        cpu_met = "yes" if cpu_off / cpu_on >= GOAL_RATIO else "NO"
        cpu_rows = [
            f"| server CPU per relayed message (least of the rounds) | {cpu_on:.0f} us | "
            f"{cpu_off:.0f} us | off/on >= {GOAL_RATIO:.0%} | {cpu_met} "
            f"({cpu_off / cpu_on:.2f}x) |"
        ]
    day = datetime.now(UTC).date().isoformat()
    return [
        RELAY_START,
        f"Relay with moderation on vs off (`python -m bench.moderation_relay`, {day}, Python "
        f"{platform.python_version()}): `bench.broker`'s chat scenario, {sessions} sessions on "
        "the embedded stack, both sides sending as fast as acks return, messages like "
        f"\"<send time in letters> {FILLER}\"; \"off\" is the same server with the decision "
        "patched to deliver without reading the text (`bench._unmoderated_serve`). "
        f"Alternating, best of {len(rounds['on'])} rounds each (all rounds in brackets).",
        "",
        "| measure | moderation on | moderation off | goal | met |",
        "|---|---|---|---|---|",
        f"| messages relayed/s | {on['per_s']:,.0f} ({', '.join(map(str, rounds['on']))}) | "
        f"{off['per_s']:,.0f} ({', '.join(map(str, rounds['off']))}) | on >= "
        f"{GOAL_RATIO:.0%} of off | {met} ({ratio:.2f}x) |",
        f"| send -> receive p50 / p99 | {on['p50'] * 1e3:.1f} / {on['p99'] * 1e3:.1f} ms | "
        f"{off['p50'] * 1e3:.1f} / {off['p99'] * 1e3:.1f} ms | - | - |",
        *cpu_rows,
        "",
        f"The server is CPU-bound in this scenario, so the gap is moderation's CPU: "
        f"{1e6 / on['per_s'] - 1e6 / off['per_s']:.0f} us more per relayed message "
        f"(1/on - 1/off), against {check_us():.0f} us of CPU for `Moderator.check` of this "
        "line timed alone (best of 5 x 2,000 calls). The server's CPU per relayed message "
        "is its CPU time over the messages it relayed in the window. On a machine shared "
        "with other work both figures swing from round to round (hence best and least of "
        "several alternating rounds). At a real evening peak the server is far from "
        "CPU-bound (bench.peak: ~0.2 messages per session per second).",
        RELAY_END,
    ]


def check_us() -> float:
    """CPU microseconds of one ``Moderator.check`` of the benchmark's line (best of 5 runs;
    the thread's CPU time, so time the machine gives other work is not counted)."""
    moderator = Moderator(load_rules())
    line = f"{stamp(81234.567890)} {FILLER}"
    for _ in range(500):
        moderator.check(line, "student")
    best = float("inf")
    for _ in range(5):
        t0 = time.thread_time()
        for _ in range(2000):
            moderator.check(line, "student")
        best = min(best, (time.thread_time() - t0) / 2000 * 1e6)
    return best


def write_block(lines: list[str], path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    pattern = re.escape(RELAY_START) + r".*?" + re.escape(RELAY_END)
    if not re.search(pattern, text, re.S):
        raise SystemExit(f"{path}: no relay block in the Moderation section; run bench.moderation")
    path.write_text(re.sub(pattern, lambda _: "\n".join(lines), text, count=1, flags=re.S),
                    encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.moderation_relay", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a much smaller smoke run")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per side")
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    parser.add_argument("--results", type=Path, default=RESULTS, help="write to this file")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    rounds = args.rounds or (1 if args.quick else 5)
    raise_nofile()
    tmp = Path(tempfile.mkdtemp(prefix="hh-bench-modrelay-"))
    bench = Bench(sizes, tmp, pinned=(os.cpu_count() or 1) >= 2, profile=None)
    bench.chat_filler = FILLER
    stack = Stack("embedded", tmp)
    runs: dict[str, list[dict[str, Any]]] = {"on": [], "off": []}
    try:
        stack.prepare()
        for n in range(rounds):
            for side in ("off", "on") if n % 2 else ("on", "off"):
                context = unmoderated() if side == "off" else contextlib.nullcontext()
                with context:
                    fig = bench.chat(stack)
                us = cpu_us(fig)
                print(f"round {n + 1} moderation {side}: {fig['per_s']:,.0f}/s "
                      f"p99 {fig['p99'] * 1e3:.1f} ms server CPU "
                      f"{'-' if us is None else f'{us:.0f} us'}/message "
                      f"errors {fig.get('errors')}", flush=True)
                runs[side].append(fig)
    finally:
        stack.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    best = {side: max(figs, key=lambda f: f["per_s"]) for side, figs in runs.items()}
    lines = block(best["on"], best["off"],
                  {side: [round(f["per_s"]) for f in figs] for side, figs in runs.items()},
                  sizes.sessions, {side: least_cpu(figs) for side, figs in runs.items()})
    print("\n".join(lines))
    if not (args.no_write or args.quick):
        write_block(lines, args.results)
    return 0 if best["on"]["per_s"] >= GOAL_RATIO * best["off"]["per_s"] else 1


if __name__ == "__main__":
    sys.exit(main())

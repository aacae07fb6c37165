"""Benchmark: the chat moderation decision per message (goal: p99 under 0.2 ms).

``python -m bench.moderation [--rounds N] [--no-write] [--results PATH]``

Runs ``Moderator.check`` over both moderation corpora (tests/data/moderation: homework that
must be delivered, contact attempts and harm that must be caught) for N rounds after a
warm-up round, timing every call on its own, in one process pinned to one CPU. Reports
p50/p99/max per message, the throughput of one core, the slowest messages, and the
corpora's rates. Replaces only the "## Moderation" section of bench/RESULTS.md, keeping the
lines between the relay markers (the lead's moderation on/off relay figures) as they are.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.results import RESULTS, write_section
from bench.routing import pin_to_one_core
from broker.moderation import Moderator, load_rules
from tests.moderation.corpus import Case, caught, homework, rate

SECTION = "## Moderation"
GOAL_P99_MS = 0.2
LONG_CHARS = 2000
RELAY_START = "<!-- relay: moderation on vs off (bench.broker), kept by bench.moderation -->"
RELAY_END = "<!-- end relay -->"
RELAY_PLACEHOLDER = (
    "Relay throughput with moderation on vs off: not measured yet (the lead adds it here "
    "once the chat path calls the moderator)."
)


def measure(
    moderator: Moderator, cases: list[Case], rounds: int
) -> tuple[list[int], dict[int, int]]:
    """Nanoseconds of every timed call, and each case's median (by index)."""
    check = moderator.check
    clock = time.perf_counter_ns
    for case in cases:  # warm-up: fold tables, regex caches
        check(case.text, case.sender)
    samples: list[int] = []
    per_case: dict[int, list[int]] = {i: [] for i in range(len(cases))}
    for _ in range(rounds):
        for i, case in enumerate(cases):
            t0 = clock()
            check(case.text, case.sender)
            elapsed = clock() - t0
            samples.append(elapsed)
            per_case[i].append(elapsed)
    return samples, {i: int(statistics.median(v)) for i, v in per_case.items()}


def long_messages(hw: list[Case]) -> list[Case]:
    """Messages of HH_CHAT_MAX_CHARS' default length made of homework lines run together
    (the same ones on every run)."""
    rng = random.Random(12)
    out = []
    for i in range(20):
        text = ""
        while len(text) < LONG_CHARS:
            text += rng.choice(hw).text + "\n"
        out.append(Case("student" if i % 2 else "tutor", text[:LONG_CHARS]))
    return out


def percentile(sorted_ns: list[int], q: float) -> float:
    """The ``q`` quantile (nearest rank) of sorted nanoseconds, in milliseconds."""
    index = min(len(sorted_ns) - 1, max(0, round(q * len(sorted_ns)) - 1))
    return sorted_ns[index] / 1e6


def kept_relay_lines(path: Path) -> list[str]:
    """The relay block of the current section (markers included), or the placeholder."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    found = re.search(re.escape(RELAY_START) + r".*?" + re.escape(RELAY_END), text, re.S)
    if found:
        return found.group().splitlines()
    return [RELAY_START, RELAY_PLACEHOLDER, RELAY_END]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.moderation", description=__doc__)
    parser.add_argument("--rounds", type=int, default=50, help="timed rounds over the corpora")
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    parser.add_argument("--results", type=Path, default=RESULTS, help="results file")
    args = parser.parse_args(argv)

    pinned = pin_to_one_core()
    t0 = time.perf_counter()
    moderator = Moderator(load_rules())
    load_ms = (time.perf_counter() - t0) * 1e3
    hw, bad = homework(), caught()
    cases = hw + bad
    samples, medians = measure(moderator, cases, args.rounds)
    ordered = sorted(samples)
    p50, p99, worst = percentile(ordered, 0.5), percentile(ordered, 0.99), ordered[-1] / 1e6
    per_s = len(samples) / (sum(samples) / 1e9)
    hw_rate, hw_fail = rate(moderator, hw)
    bad_rate, bad_fail = rate(moderator, bad)
    slowest = sorted(medians.items(), key=lambda kv: -kv[1])[:3]
    long_cases = long_messages(hw)
    long_ns = sorted(measure(moderator, long_cases, max(1, args.rounds // 10))[0])

    day = datetime.now(UTC).date().isoformat()
    lines = [
        SECTION,
        "",
        f"`python -m bench.moderation` ({day}, Python {platform.python_version()}, "
        f"nproc {os.cpu_count()} shared with other work, {pinned}). `Moderator.check` over "
        f"both corpora ({len(hw)} homework + {len(bad)} caught messages, English and Spanish, "
        f"{sum(len(c.text) for c in cases) // len(cases)} characters on average), "
        f"{args.rounds} timed rounds after a warm-up, each call timed on its own "
        f"({len(samples):,} calls). Goal: p99 under {GOAL_P99_MS} ms per message.",
        "",
        "| measure | value | goal met |",
        "|---|---|---|",
        f"| p50 per message | {p50:.4f} ms | - |",
        f"| p99 per message | {p99:.4f} ms | {'yes' if p99 < GOAL_P99_MS else 'NO'} |",
        f"| max per message | {worst:.4f} ms | - |",
        f"| messages per second on one core | {per_s:,.0f} | - |",
        f"| {len(long_cases)} messages of {LONG_CHARS:,} characters (homework run together): "
        f"p50 / p99 | {percentile(long_ns, 0.5):.3f} / {percentile(long_ns, 0.99):.3f} ms | - |",
        f"| rules file load + compile | {load_ms:.1f} ms | - |",
        f"| homework delivered untouched | {hw_rate:.2%} ({len(hw) - len(hw_fail)}/{len(hw)})"
        f" | {'yes' if hw_rate == 1 else 'NO'} (100%) |",
        f"| contact attempts and harm caught | {bad_rate:.2%} "
        f"({len(bad) - len(bad_fail)}/{len(bad)}) | {'yes' if bad_rate >= 0.98 else 'NO'} "
        f"(98%) |",
        "",
        "Slowest messages (median of their calls): "
        + "; ".join(f"{ns / 1e6:.4f} ms for {len(cases[i].text)} characters" for i, ns in slowest)
        + ".",
        "",
        *kept_relay_lines(args.results),
        "",
    ]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        write_section(SECTION, body, args.results)
    return 0 if p99 < GOAL_P99_MS and hw_rate == 1 and bad_rate >= 0.98 else 1


if __name__ == "__main__":
    sys.exit(main())

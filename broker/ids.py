"""Identifiers of requests and sessions: time-ordered, 32 hex digits (a UUIDv7 layout).

The first 48 bits are the Unix time in milliseconds, then the version and variant bits
and 74 random bits (``os.urandom``). Rows keyed by them are inserted at the right-hand
edge of the primary-key index instead of at a random leaf, which keeps SQLite's and
PostgreSQL's index pages hot and cut the cost of recording a request measurably
(``bench.broker``). The ids are not secrets (every use checks who is asking), but with 74
random bits they cannot be guessed either. Two ids made in the same millisecond are in
random order relative to each other.
"""

from __future__ import annotations

import os
import time

_VERSION = 0x7 << 76
_VARIANT = 0b10 << 62
_RAND_A = (1 << 12) - 1
_RAND_B = (1 << 62) - 1


def new_id() -> str:
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms << 80) | _VERSION | ((rand >> 62) & _RAND_A) << 64 | _VARIANT | (rand & _RAND_B)
    return f"{value:032x}"

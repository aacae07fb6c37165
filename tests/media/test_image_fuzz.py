"""Mutated pictures: whatever bytes arrive, preparing them either succeeds or raises one of
the path's typed refusals (a :class:`~broker.errors.BrokerError`), never anything else, so
an upload is answered 4xx and never 500. Seeded (the seed is in the test's id): valid JPEG,
PNG and WebP files of several modes, cut short, bytes changed, dropped or inserted."""

from __future__ import annotations

import io
import random

import pytest
from PIL import Image

from broker.errors import BrokerError
from broker.media.images import prepare

MUTANTS = 5000  # per seed


def _seeds() -> list[bytes]:
    out = []
    for fmt, mode, options in [
        ("JPEG", "RGB", {}), ("JPEG", "RGB", {"progressive": True}), ("JPEG", "L", {}),
        ("JPEG", "CMYK", {}), ("PNG", "RGBA", {}), ("PNG", "P", {}), ("PNG", "L", {}),
        ("PNG", "I;16", {}), ("PNG", "1", {}), ("WEBP", "RGB", {}),
        ("WEBP", "RGBA", {"lossless": True}),
    ]:
        buffer = io.BytesIO()
        Image.new(mode, (64, 48), 1).save(buffer, fmt, **options)
        out.append(buffer.getvalue())
    return out


def mutant(rng: random.Random, seeds: list[bytes]) -> bytes:
    data = bytearray(rng.choice(seeds))
    for _ in range(rng.randrange(1, 12)):
        if not data:
            break
        at, roll = rng.randrange(len(data)), rng.random()
        if roll < 0.6:
            data[at] = rng.randrange(256)
        elif roll < 0.75:
            del data[at:at + rng.randrange(1, 20)]
        elif roll < 0.9:
            data[at:at] = rng.randbytes(rng.randrange(1, 20))
        else:
            del data[at:]  # cut short
    return bytes(data)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("seed", [1, 2])
def test_mutated_pictures_are_prepared_or_refused_with_a_typed_error(seed: int) -> None:
    rng = random.Random(seed)
    seeds = _seeds()
    outcomes = {"prepared": 0, "refused": 0}
    for _ in range(MUTANTS):
        data = mutant(rng, seeds)
        try:
            prepare(data)
        except BrokerError:
            outcomes["refused"] += 1
        except Exception as exc:  # what this test is looking for
            pytest.fail(f"{type(exc).__name__}: {exc} for {data[:40]!r} ({len(data)} bytes)")
        else:
            outcomes["prepared"] += 1
    # both paths were reached: mutants that still decode, and refusals
    assert outcomes["prepared"] > 20 and outcomes["refused"] > 20, outcomes

"""bench/routing.py: a small run measures sensibly, and RESULTS.md keeps others' sections."""

from __future__ import annotations

import random

from bench.results import replace_section
from bench.routing import district, measure, requests
from routing.catalog import Catalog

OTHERS = "# Benchmark results\n\n## Roster import\n\nfast\n\n## Routing\n\nold\n\n## Queue\n\nq\n"


def test_replace_section_keeps_other_sections() -> None:
    text = replace_section(OTHERS, "## Routing", "## Routing\n\nnew\n")
    assert "old" not in text and "## Routing\n\nnew\n" in text
    assert text.index("## Roster import") < text.index("## Routing") < text.index("## Queue")
    assert "fast" in text and "q\n" in text
    appended = replace_section("# Benchmark results\n", "## Routing", "## Routing\n\nnew\n")
    assert appended == "# Benchmark results\n\n## Routing\n\nnew\n"


def test_a_small_measure(catalog: Catalog) -> None:
    rng = random.Random(1)
    directory = district(rng, schools=40)
    reqs = requests(rng, directory, [s for s, _ in catalog.subjects], 2_000)
    fig = measure(catalog, directory, reqs, repeats=2)
    assert fig["routing_per_s"] > 0 and fig["uncached_per_s"] > 0
    assert 0.5 < fig["routed_share"] < 1.0  # some unmet (bad tags, 6-8 without school, ...)

"""The roster benchmark rewrites only its own section of bench/RESULTS.md."""

from __future__ import annotations

from pathlib import Path

from bench.roster_import import SECTION, update_results

FIGURES = {
    "students": 10,
    "bundle_mib": 0.1,
    "sqlite": {"parse_s": 1, "write_s": 2, "total_s": 3, "peak_rss_mib": 100},
    "postgres": None,
}


def test_only_the_roster_section_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    path.write_text(
        "# Results\n\n## Routing\n\nfast\n\n## Roster import\n\nold\n\n## Broker\n\nok\n"
    )
    update_results(FIGURES, path)
    text = path.read_text()
    assert "old" not in text and "## Routing\n\nfast\n" in text and "## Broker\n\nok\n" in text
    assert text.count(SECTION) == 1 and "| sqlite | 1 | 2 | 3 | 100 | yes |" in text
    update_results(FIGURES, path)
    assert path.read_text() == text


def test_section_is_appended_when_missing(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    update_results(FIGURES, path)
    assert path.read_text().startswith("# Benchmark results\n\n## Roster import\n")
    assert "| postgres | - | - | - | - | not reachable |" in path.read_text()


def test_every_benchmark_replaces_its_own_last_section() -> None:
    from bench.results import replace_section

    text = "# Benchmark results\n\n## Routing\n\nfast\n\n## Broker\n\nold\n\n\n"
    got = replace_section(text, "## Broker", "## Broker\n\nnew\n")
    assert got == "# Benchmark results\n\n## Routing\n\nfast\n\n## Broker\n\nnew\n"
    assert replace_section(got, "## Routing", "## Routing\n\nfaster\n") == (
        "# Benchmark results\n\n## Routing\n\nfaster\n\n## Broker\n\nnew\n"
    )


def test_hand_kept_notes_survive_a_rewrite() -> None:
    from bench.results import KEPT, replace_section

    text = (
        "# Benchmark results\n\n## Peak\n\nold table\n\n" + KEPT + "\n\nearlier runs: 21 ms\n\n"
        "## Bell\n\nb\n"
    )
    got = replace_section(text, "## Peak", "## Peak\n\nnew table\n")
    assert got == (
        "# Benchmark results\n\n## Peak\n\nnew table\n\n" + KEPT + "\n\nearlier runs: 21 ms\n\n"
        "## Bell\n\nb\n"
    )
    assert replace_section(got, "## Peak", "## Peak\n\nnewer\n").count("earlier runs") == 1
    # the last section keeps its notes too; a section without them gains none
    last = replace_section(got, "## Bell", "## Bell\n\nc\n")
    assert last.endswith("## Bell\n\nc\n") and "earlier runs" in last
    moved = "## Peak\n\nx\n\n" + KEPT + "\n\nrewritten notes\n"
    assert "earlier runs" not in replace_section(got, "## Peak", moved)

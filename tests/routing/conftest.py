"""Fixtures of the routing tests: the shipped catalog and a directory of every kind of school."""

from __future__ import annotations

from pathlib import Path

import pytest

import routing
from routing.catalog import Catalog
from routing.school_csv import parse_schools_csv
from routing.schools import SchoolDirectory

SHIPPED = Path(routing.__file__).parent / "data" / "catalog.toml"

# id, low, high, kind ("" = derived from the span), the vendor the district's rule names
# (None: no on-demand vendor serves such a school).
SCHOOLS = [
    ("e-k5", "K", "5", "", "paper"),
    ("e-k6", "K", "6", "", "paper"),
    ("e-tk5", "TK", "5", "elementary", "paper"),
    ("e-pk5", "PK", "5", "elementary", "paper"),
    ("e-35", "3", "5", "elementary", "paper"),
    ("s-k8", "K", "8", "", "paper"),
    ("e-k8", "K", "8", "elementary", "paper"),
    ("m-68", "6", "8", "", "tutorcom"),
    ("m-78", "7", "8", "middle", "tutorcom"),
    ("h-912", "9", "12", "", "tutorcom"),
    ("s-k12", "K", "12", "", "tutorcom"),
    ("s-612", "6", "12", "", "tutorcom"),
    ("s-812", "8", "12", "", "tutorcom"),
    ("o-912", "9", "12", "options", "tutorcom"),
    ("o-k8", "K", "8", "continuation", "tutorcom"),
    ("v-k12", "K", "12", "virtual_academy", "tutorcom"),
    ("v-k8", "K", "8", "virtual academy", "tutorcom"),
    ("s-58", "5", "8", "", None),
    ("s-712", "7", "12", "span", None),
]


def schools_csv() -> str:
    rows = ["id,name,region,low_grade,high_grade,kind"]
    rows += [f"{i},School {i},East,{lo},{hi},{k}" for i, lo, hi, k, _ in SCHOOLS]
    return "\n".join(rows) + "\n"


def shipped_text() -> str:
    return SHIPPED.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return Catalog.from_toml(shipped_text())


@pytest.fixture(scope="session")
def overflow_catalog(catalog: Catalog) -> Catalog:
    return catalog.with_overflow(True)


@pytest.fixture(scope="session")
def directory() -> SchoolDirectory:
    return parse_schools_csv(schools_csv(), "test-schools.csv")

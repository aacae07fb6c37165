#!/usr/bin/env python3
"""Generate the demo district shipped in ``broker/data/demo/`` (deterministic).

Writes:
- ``schools.csv`` (id,name,region,low_grade,high_grade,kind): 41 schools over the regions
  East, North, South and West with the district's mix of spans: mostly elementary K-5, some
  K-6, several K-8 span, middle 6-8, high 9-12, one each of K-12, 6-12 and 8-12 span, an
  options (continuation) school and the Virtual Academy.
- ``oneroster/{manifest,orgs,users,demographics}.csv``: the same district as a OneRoster
  v1.1 bulk bundle. ``orgs.csv`` has *no* span columns, so the importer derives each span
  from the students' grades: every school gets a student in its lowest and in its highest
  grade, so the derived spans equal ``schools.csv``. Regions are "local" orgs under the
  district. Student-group flags (extension columns ``swd``, ``el``, ``rfep`` in
  ``demographics.csv``) at about the district's rates: SWD 15%, EL 18%, RFEP 26%
  (EL and RFEP exclusive). A student's ``identifier`` (their SIS number, what the demo
  LMS sends as ``custom.student_id``) is ``SIS`` and five digits, unlike their
  ``sourcedId``, so the demo goes through the same lookup as a real district's roster.

All people are made up: sourcedIds start ``demo-``, e-mail addresses are ``@demo.invalid``.

Run: ``python scripts/make_demo_district.py [OUT_DIR]`` (default: broker/data/demo).
"""

from __future__ import annotations

import csv
import random
import sys
from collections.abc import Sequence
from pathlib import Path

from routing.grades import grade_code
from routing.oneroster import ORGS_HEADER, USERS_HEADER

SEED = 20240801
MODIFIED = "2024-08-01T00:00:00.000Z"
DISTRICT_ID = "demo-district"
REGIONS = ("East", "North", "South", "West")

# (name, low, high, kind): the district's mix of spans.
_ELEMENTARY_NAMES = [
    "Maple Grove",
    "Cedar Hills",
    "Willow Creek",
    "Sunnyside",
    "Harbor View",
    "Juniper",
    "Poppy Fields",
    "Lakeside",
    "Riverbend",
    "Oak Terrace",
    "Mission Park",
    "Canyon Vista",
    "Bayside",
    "Sycamore",
    "Golden Gate Heights",
    "Orchard Lane",
    "Meadowbrook",
    "Pine Ridge",
]
_K6_NAMES = ["Hillcrest", "Valley Oak", "Seabreeze"]
_K8_NAMES = ["Eastwood", "Northgate", "Southport", "Westlake"]
_MIDDLE_NAMES = ["Roosevelt Park", "Magnolia", "Redwood", "Sierra Vista", "Coastline", "Alder"]
_HIGH_NAMES = ["Central", "Pacific", "Foothill", "Harborview", "Sequoia"]

SCHOOLS: list[tuple[str, int, int, str]] = (
    [(f"{n} Elementary School", 0, 5, "elementary") for n in _ELEMENTARY_NAMES]
    + [(f"{n} Elementary School", 0, 6, "elementary") for n in _K6_NAMES]
    + [(f"{n} K-8 Academy", 0, 8, "span") for n in _K8_NAMES]
    + [(f"{n} Middle School", 6, 8, "middle") for n in _MIDDLE_NAMES]
    + [(f"{n} High School", 9, 12, "high") for n in _HIGH_NAMES]
    + [
        ("Rancho Verde K-12 Learning Center", 0, 12, "span"),
        ("Monterey Heights 6-12 Academy", 6, 12, "span"),
        ("Palisades 8-12 Early College", 8, 12, "span"),
        ("Crossroads Continuation High School", 9, 12, "options"),
        ("Demo Unified Virtual Academy", 0, 12, "virtual_academy"),
    ]
)

GIVEN = [
    "Ava",
    "Mateo",
    "Sofia",
    "Liam",
    "Camila",
    "Noah",
    "Mia",
    "Ethan",
    "Isabella",
    "Lucas",
    "Aaliyah",
    "Jayden",
    "Mei",
    "Daniel",
    "Valentina",
    "Hiro",
    "Zoe",
    "Diego",
    "Priya",
    "Samuel",
    "Fatima",
    "Leo",
    "Ximena",
    "Owen",
    "Amara",
    "Kai",
    "Luna",
    "Andre",
    "Nora",
    "Minh",
    "Elena",
    "Tariq",
    "Grace",
    "Santiago",
    "Hana",
    "Julian",
    "Imani",
    "Marco",
]
FAMILY = [
    "Alvarez",
    "Nguyen",
    "Johnson",
    "Garcia",
    "Kim",
    "Okafor",
    "Martinez",
    "Chen",
    "Lopez",
    "Patel",
    "Hernandez",
    "Williams",
    "Tran",
    "Rivera",
    "Brown",
    "Santos",
    "Park",
    "Flores",
    "Davis",
    "Ramirez",
    "Cohen",
    "Morales",
    "Ito",
    "Reyes",
    "Walker",
    "Castillo",
    "Singh",
]

DEMOGRAPHICS_HEADER = [
    "sourcedId",
    "status",
    "dateLastModified",
    "birthDate",
    "sex",
    "americanIndianOrAlaskaNative",
    "asian",
    "blackOrAfricanAmerican",
    "nativeHawaiianOrOtherPacificIslander",
    "white",
    "demographicRaceTwoOrMoreRaces",
    "hispanicOrLatinoEthnicity",
    "countryOfBirthCode",
    "stateOfBirthAbbreviation",
    "cityOfBirth",
    "publicSchoolResidenceStatus",
    "swd",
    "el",
    "rfep",
]



def grade_label(grade: int) -> str:
    return "K" if grade == 0 else str(grade)


def _write(path: Path, header: Sequence[str], rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def generate(out: Path) -> dict[str, int]:
    """Write the demo district under ``out``; return counts. Same output on every run."""
    rng = random.Random(SEED)
    schools = []
    for number, (name, low, high, kind) in enumerate(SCHOOLS):
        region = REGIONS[number % len(REGIONS)]
        schools.append((f"demo-sch-{1001 + number}", name, region, low, high, kind))

    _write(
        out / "schools.csv",
        ["id", "name", "region", "low_grade", "high_grade", "kind"],
        [[i, n, r, grade_label(lo), grade_label(hi), k] for i, n, r, lo, hi, k in schools],
    )

    orgs = [[DISTRICT_ID, "active", MODIFIED, "Demo Unified School District", "district", "DU", ""]]
    for region in REGIONS:
        orgs.append(
            [
                f"demo-region-{region.lower()}",
                "active",
                MODIFIED,
                f"Region {region}",
                "local",
                f"R-{region[0]}",
                DISTRICT_ID,
            ]
        )
    for sid, name, region, _low, _high, _kind in schools:
        orgs.append(
            [
                sid,
                "active",
                MODIFIED,
                name,
                "school",
                sid.rsplit("-", 1)[1],
                f"demo-region-{region.lower()}",
            ]
        )

    users: list[list[str]] = []
    demographics: list[list[str]] = []
    counts = {"schools": len(schools), "students": 0, "SWD": 0, "EL": 0, "RFEP": 0}
    number = 0
    for sid, _name, _region, low, high, _kind in schools:
        teacher = f"demo-tch-{sid.rsplit('-', 1)[1]}"
        users.append(
            [
                teacher,
                "active",
                MODIFIED,
                "true",
                sid,
                "teacher",
                f"{teacher}",
                "",
                rng.choice(GIVEN),
                rng.choice(FAMILY),
                "",
                teacher,
                f"{teacher}@demo.invalid",
                "",
                "",
                "",
                "",
                "",
            ]
        )
        size = rng.randint(8, 12)
        grades = [low, high] + [rng.randint(low, high) for _ in range(size - 2)]
        for grade in sorted(grades):
            number += 1
            stu = f"demo-stu-{number:05d}"
            org_ids = sid if number % 17 else f"{DISTRICT_ID},{sid}"  # some name the district too
            given, family = rng.choice(GIVEN), rng.choice(FAMILY)
            users.append(
                [
                    stu,
                    "active",
                    MODIFIED,
                    "true",
                    org_ids,
                    "student",
                    f"{stu}",
                    "",
                    given,
                    family,
                    "",
                    f"SIS{number:05d}",
                    f"{stu}@demo.invalid",
                    "",
                    "",
                    "",
                    grade_code(grade),
                    "",
                ]
            )
            swd = rng.random() < 0.15
            roll = rng.random()
            el, rfep = roll < 0.18, 0.18 <= roll < 0.44
            counts["students"] += 1
            counts["SWD"] += swd
            counts["EL"] += el
            counts["RFEP"] += rfep
            year = 2024 - 6 - grade
            demographics.append(
                [
                    stu,
                    "active",
                    MODIFIED,
                    f"{year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                    rng.choice(["male", "female"]),
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                    str(swd).lower(),
                    str(el).lower(),
                    str(rfep).lower(),
                ]
            )

    bundle = out / "oneroster"
    _write(
        bundle / "manifest.csv",
        ["propertyName", "value"],
        [
            ["manifest.version", "1.0"],
            ["oneroster.version", "1.1"],
            ["file.orgs", "bulk"],
            ["file.users", "bulk"],
            ["file.demographics", "bulk"],
            ["source.systemName", "demo"],
        ],
    )
    _write(bundle / "orgs.csv", ORGS_HEADER, orgs)
    _write(bundle / "users.csv", USERS_HEADER, users)
    _write(bundle / "demographics.csv", DEMOGRAPHICS_HEADER, demographics)
    return counts


def main(argv: list[str]) -> int:
    default = Path(__file__).resolve().parent.parent / "broker" / "data" / "demo"
    out = Path(argv[1]) if len(argv) > 1 else default
    counts = generate(out)
    print(f"wrote {out}: {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

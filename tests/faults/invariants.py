"""What must hold after any fault, checked through the protocol where possible.

The database is read only for what the issue defines as the truth (``help_requests`` with
``status = 'queued'``, ``tutoring_sessions`` with ``ended_at IS NULL``); everything else is
asked over the real sockets, so the checks survive a change of where the broker keeps its
state. :func:`check` returns a :class:`Report`: one row per invariant with how many of how
many failed and a few examples, plus notes (error codes per phase, sync answers,
tracebacks in the server logs).

Order of the checks: clients back online; then the passive checks (queue views, sessions,
chat delivery, tutor status), polled until they hold or the recovery allowance (one sweep
interval plus the grace period, plus scheduling slack) runs out; then the active ones,
which change state: every student can ask for help, and every tutor can take exactly their
vendor's capacity.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from broker.catalog_source import load_catalog
from broker.constants import PRIORITY_HEAD_START_S
from broker.settings import Settings
from tests.faults.cluster import Cluster
from tests.faults.people import DOCUMENTED_CODES, Call, Person, Student, Tutor
from tests.faults.workload import Churn, Fault, Population, Timeline, churn_through

SNAPSHOT_LIMIT = 50  # docs/protocol.md: the first 50 of each queue
RECOVERY_SLACK_S = 1.0  # process scheduling on a loaded 2-core machine
PRESENCE_MARGIN_S = 0.3
IN_FLIGHT_S = 1.0  # pushes sent this long before a connection broke may die with it
CATCH_UP_S = 1.0  # a client back online re-asks its state and syncs within this
MAX_EXAMPLES = 4


@dataclass
class Row:
    name: str
    failed: int
    total: int
    examples: list[str] = field(default_factory=list)


@dataclass
class Report:
    title: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(
        self, name: str, failures: Sequence[str], total: int, failed: int | None = None
    ) -> None:
        """One invariant: ``failures`` describe what failed (a few become the examples);
        ``failed`` counts it when the descriptions are not one per failure."""
        count = len(failures) if failed is None else failed
        self.rows.append(Row(name, count, total, list(failures[:MAX_EXAMPLES])))

    @property
    def failed(self) -> list[Row]:
        return [r for r in self.rows if r.failed]

    @property
    def ok(self) -> bool:
        return not self.failed

    def table(self) -> str:
        width = max((len(r.name) for r in self.rows), default=10)
        lines = [f"{self.title}: {len(self.failed)} of {len(self.rows)} invariants failed"]
        for r in self.rows:
            mark = "FAIL" if r.failed else "ok  "
            line = f"  {mark} {r.name:<{width}}  {r.failed:>4} of {r.total:<4}"
            if r.examples:
                line += "  e.g. " + "; ".join(r.examples)
            lines.append(line)
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


# -- the database's view ------------------------------------------------------------------
@dataclass
class Truth:
    queued: dict[str, list[dict[str, Any]]]  # queue -> requests in service order
    status: dict[str, str]  # request id -> status
    sessions: dict[str, dict[str, Any]]  # session id -> row
    # request id -> (first_accepted_at, session_count): the staff reports' read model
    rollup: dict[str, tuple[Any, int]] = field(default_factory=dict)

    @property
    def open_sessions(self) -> dict[str, dict[str, Any]]:
        return {k: s for k, s in self.sessions.items() if s["ended_at"] is None}


def _epoch(value: dt.datetime | None) -> float:
    if value is None:
        return 0.0
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.timestamp()


async def read_truth(dsn: str) -> Truth:
    conn = await asyncpg.connect(dsn)
    try:
        requests = await conn.fetch("select * from help_requests")  # rank: since 0006
        sessions = await conn.fetch(
            "select id, request_id, student, tutor_id, accepted_at, ended_at, end_reason,"
            " outcome from tutoring_sessions"
        )
    finally:
        await conn.close()
    queued: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in requests:
        if r["status"] == "queued":
            queued[r["queue"]].append(dict(r))
    for rows in queued.values():
        rows.sort(key=service_key)
    return Truth(
        queued=dict(queued),
        status={r["id"]: r["status"] for r in requests},
        sessions={s["id"]: dict(s) for s in sessions},
        rollup={r["id"]: (r["first_accepted_at"], r["session_count"]) for r in requests},
    )


def service_key(row: dict[str, Any]) -> tuple[float, str]:
    """The database's service order: ``rank`` where the schema has it, else what it is
    computed from, FIFO by enqueue time with the bounded priority head start."""
    rank = row.get("rank")
    if rank is None:
        rank = _epoch(row["queued_at"]) - PRIORITY_HEAD_START_S * (row["priority"] or 0)
    return (float(rank), row["id"])


# -- passive checks -----------------------------------------------------------------------
States = dict[Person, dict[str, Any] | None]  # each connection's answer to its state event


async def _states(people: Iterable[Person]) -> States:
    people = list(people)
    calls = await asyncio.gather(*(p.ask_state() for p in people))
    return {p: (c.result if c.ok else None) for p, c in zip(people, calls, strict=True)}


def check_queues(report: Report, truth: Truth, people: Population, states: States) -> None:
    order_key = {r["id"]: service_key(r) for rows in truth.queued.values() for r in rows}
    missing: dict[str, list[str]] = defaultdict(list)  # request -> tutors not shown it
    extra: set[str] = set()
    disorder, stale = [], []
    snapshots = consoles = 0
    for t in people.tutors:
        state = states.get(t)
        asked = {q["queue"]: q for q in (state or {}).get("queues") or []}
        for name in t.queue_names:
            expected = [r["id"] for r in truth.queued.get(name, [])][:SNAPSHOT_LIMIT]
            snapshots += 1
            shown = [r["id"] for r in asked.get(name, {}).get("requests", [])]
            for rid in expected:
                if rid not in shown:
                    missing[rid].append(t.name)
            extra |= {rid for rid in shown if rid not in order_key}
            keys = [order_key[rid] for rid in shown if rid in order_key]
            if keys != sorted(keys):
                disorder.append(f"{t.name} {name}: {shown[:6]}")
            consoles += 1
            pushed = [r["id"] for r in t.queues.get(name, {}).get("requests", [])]
            if pushed != expected:
                gone = len(set(pushed) - set(expected))
                stale.append(
                    f"{t.name} {name}: shows {len(pushed)} ({gone} not queued), "
                    f"database {len(expected)}"
                )
    queued = [r for rows in truth.queued.values() for r in rows]
    report.add(
        "queued in the database, shown to every tutor of its queue (tutor:state)",
        [f"{rid} not shown to {', '.join(who)}" for rid, who in missing.items()],
        len(queued),
    )
    report.add("shown to tutors, queued in the database", sorted(extra), len(extra) + len(queued))
    report.add("tutors' snapshots in the database's service order", disorder, snapshots)
    report.add("tutor consoles (pushed snapshots) agree with the database", stale, consoles)
    unseen = []
    for r in queued:
        for student in people.named(r["student"]):
            waiting = ((states.get(student) or {}).get("request") or {}).get("id")
            if waiting != r["id"]:
                unseen.append(f"{r['id']} of {r['student']}: session:state shows {waiting}")
    report.add("queued in the database, shown to its student (session:state)", unseen, len(queued))


def check_sessions(report: Report, truth: Truth, people: Population, states: States) -> None:
    open_db = truth.open_sessions
    shown: dict[str, list[str]] = defaultdict(list)  # session id -> who shows it open
    for s in people.students:
        session = (states.get(s) or {}).get("session")
        if session:
            shown[session["session_id"]].append(s.name)
    for t in people.tutors:
        for view in (states.get(t) or {}).get("sessions") or []:
            shown[view["session_id"]].append(t.name)
    not_shown = []
    for sid, row in open_db.items():
        for who in (row["student"], row["tutor_id"]):
            if who not in shown.get(sid, []):
                not_shown.append(f"{sid} not shown to {who}")
    ghosts = [f"{sid} shown to {'/'.join(w)}" for sid, w in shown.items() if sid not in open_db]
    report.add(
        "open in the database, shown to both participants (session:state/tutor:state)",
        not_shown,
        2 * len(open_db),
    )
    report.add("shown as open, open in the database", ghosts, len(shown))
    screens, seen = [], 0
    for sid, row in truth.sessions.items():
        is_open = row["ended_at"] is None
        for who in (row["student"], row["tutor_id"]):
            for p in people.named(who):
                log = p.sessions.get(sid)
                if log is None and not is_open:
                    continue
                seen += 1
                if log is None or log.open != is_open:
                    shows = "nothing" if log is None else "open" if log.open else "ended"
                    truth_is = "open" if is_open else f"ended ({row['end_reason']})"
                    screens.append(f"{p.name} shows {sid} {shows}, database {truth_is}")
    report.add("participants' screens show each session as the database has it", screens, seen)
    derived: dict[str, tuple[Any, int]] = {}
    for row in truth.sessions.values():
        if row["request_id"] is not None:
            first, n = derived.get(row["request_id"], (row["accepted_at"], 0))
            derived[row["request_id"]] = (min(first, row["accepted_at"]), n + 1)
    wrong = [
        f"{rid} has {kept}, its sessions say {derived.get(rid, (None, 0))}"
        for rid, kept in truth.rollup.items()
        if kept != derived.get(rid, (None, 0))
    ]
    report.add(
        "each request's first acceptance and session count are its sessions'",
        wrong, len(truth.rollup),
    )


def check_messages(report: Report, cluster: Cluster, truth: Truth, people: Population) -> None:
    undelivered, disorder = [], []
    acked = streams = to_the_gone = unreachable = 0
    for sender in people.everyone:
        by_session: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for _, m in sorted(sender.sent, key=lambda sent: sent[0]):
            by_session[m["session_id"]].append(m)
        for sid, sent in by_session.items():
            row = truth.sessions.get(sid)
            if row is None:
                continue
            other = row["tutor_id"] if sent[0]["from"] == "student" else row["student"]
            if other == blamed(row) and not absence_wrong(cluster, row, people):
                to_the_gone += len(sent)  # the session ended because they had left
                continue
            for receiver in people.named(other):
                log = receiver.sessions.get(sid)
                got = {m["id"]: m for m in log.delivered} if log else {}
                end = _epoch(row["ended_at"]) if row["ended_at"] else None
                away = offline_at(receiver, end, CATCH_UP_S) if end else None
                for m in sent:
                    mine = got.get(m["id"])
                    if mine is None and away and _iso(m["at"]) >= away[0] - IN_FLIGHT_S:
                        # Sent while the receiver was away (or on its way to them when
                        # their connection broke), and the session ended before they were
                        # back and caught up: its buffer went with it (retention off).
                        unreachable += 1
                        continue
                    acked += 1
                    if mine is None or mine["text"] != m["text"]:
                        stuck = (
                            " (behind a gap)"
                            if log and m["id"] in {x["id"] for x in log.pending.values()}
                            else ""
                        )
                        undelivered.append(f"{m['id']} {m['text']!r} to {other}{stuck}")
                streams += 1
                order = [m["text"] for m in (log.delivered if log else [])]
                mine_in_order = [t for t in order if t in {m["text"] for m in sent}]
                sent_order = [m["text"] for m in sent if m["text"] in set(mine_in_order)]
                if mine_in_order != sent_order:
                    disorder.append(f"{sid} to {other}: {mine_in_order[:8]}")
    reused = [
        f"{p.name} {log.id}: {a['id']} {a['text']!r} / {b['id']} {b['text']!r}"
        for p in people.everyone
        for log in p.sessions.values()
        for a, b in log.reused
    ]
    report.add("acknowledged messages delivered to the other participant", undelivered, acked)
    report.add("no message id or seq given to two messages", reused, acked)
    report.add("each sender's messages shown in the order sent (per session)", disorder, streams)
    logs = [log for p in people.everyone for log in p.sessions.values()]
    report.notes.append(
        f"chat: {acked} acknowledged; pushed twice {sum(g.pushed_twice for g in logs)}; "
        f"pushes behind a higher seq {sum(_inversions(g.arrivals) for g in logs)}; "
        f"recovered by session:sync {sum(g.recovered for g in logs)}; not counted: "
        f"{to_the_gone} sent to someone whose absence ended the session, {unreachable} sent "
        "to someone away until the session had ended or just before (its buffer ends with it)"
    )


def _inversions(seqs: list[int]) -> int:
    top, count = 0, 0
    for s in seqs:
        if s < top:
            count += 1
        top = max(top, s)
    return count


def check_status(report: Report, cluster: Cluster, tutors: list[Tutor], states: States) -> None:
    """A tutor who said available and was never gone long enough to count as gone is still
    available, whatever happened to the processes, Redis or PostgreSQL."""
    kept = [t for t in tutors if longest_absence(t) < cluster.grace_s - cluster.sweep_s]
    changed = [
        f"{t.name}: {(states.get(t) or {}).get('status')}"
        for t in kept
        if (states.get(t) or {}).get("status") != "available"
    ]
    report.add("tutors' status kept (they said available, never changed it)", changed, len(kept))


def longest_absence(person: Person) -> float:
    return max((b or time.time()) - a for a, b in person.offline) if person.offline else 0.0


def blamed(row: dict[str, Any]) -> str | None:
    """Whose absence the server gave as the reason a session ended, if any."""
    if row["end_reason"] == "tutor_lost":
        return str(row["tutor_id"])
    if row["end_reason"] == "timeout" and row.get("outcome") != "idle":
        return str(row["student"])
    return None


def absence_wrong(cluster: Cluster, row: dict[str, Any], people: Population) -> bool:
    """Whether the participant blamed for a session's end was online within the grace
    period before it (so was not gone)."""
    who = blamed(row)
    end = _epoch(row["ended_at"])
    since = end - cluster.grace_s + cluster.sweep_s + PRESENCE_MARGIN_S
    return who is not None and any(online_during(p, since, end) for p in people.named(who))


def check_presence(report: Report, cluster: Cluster, truth: Truth, people: Population) -> None:
    """No session ended as tutor_lost/timeout while the participant it blamed was online."""
    ended = [row for row in truth.sessions.values() if blamed(row)]
    wrongly = [
        f"{row['id']} {row['end_reason']}: {blamed(row)} was online"
        for row in ended
        if absence_wrong(cluster, row, people)
    ]
    report.add("sessions ended for absence only when the participant was gone", wrongly, len(ended))


def offline_at(person: Person, at: float, slack: float = 0.0) -> tuple[float, float] | None:
    """The interval in which ``person`` was offline at ``at`` (or had come back from less
    than ``slack`` seconds before), if any."""
    for a, b in person.offline:
        if a <= at <= (b or time.time()) + slack:
            return (a, b or time.time())
    return None


def _iso(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


def online_during(person: Person, since: float, until: float) -> bool:
    """Whether ``person`` had a connection at some moment of [since, until]."""
    if person.first_connect is None or person.first_connect > until:
        return False
    gaps = sorted((a, b or time.time()) for a, b in person.offline)
    cursor = max(since, person.first_connect)
    for a, b in gaps:
        if a > cursor:
            break
        cursor = max(cursor, b)
    return cursor < until


def cut_off(call: Call, person: Person | None) -> bool:
    """Whether the call's connection went down while it was in flight (a killed process
    cannot answer; the client asks again once reconnected)."""
    if person is None:
        return False
    return any(call.start <= a <= call.end for a, _ in person.offline)


def check_calls(
    report: Report, calls: list[Call], timeline: Timeline, people: list[Person] | None = None
) -> None:
    undocumented = [
        f"{c.who} {c.event}: {c.code}"
        for c in calls
        if c.code not in DOCUMENTED_CODES | {"ok", "no_ack", "offline"}
    ]
    report.add("errors carry a documented code", undocumented, len(calls))
    outside = [
        c
        for c in calls
        if c.event != "session:sync" and not timeline.overlaps(c.start, c.end, after=1.0)
    ]
    silent = [
        f"{c.who} {c.event} at {c.start - timeline.fault_from:+.1f}s"
        for c in outside
        if c.code == "no_ack"
    ]
    report.add("calls answered when no fault was on", silent, len(outside))
    if timeline.answers_during:
        during = [c for c in calls if timeline.phase(c.start) == "during"]
        report.add(
            "calls answered (an ack, not silence) while the fault was on",
            [f"{c.who} {c.event}: {c.code}" for c in during if c.code == "no_ack"],
            len(during),
        )
    by_name = {p.name: p for p in people or []}
    syncs = [
        c for c in calls
        if c.event == "session:sync" and c.code != "offline" and not cut_off(c, by_name.get(c.who))
    ]
    report.add(
        "session:sync answered",
        [
            f"{c.who}: {c.code}" for c in syncs
            # while the database is down (or is killed under it) a sync is answered
            # `internal` (nothing changed), and while it is frozen it is answered late,
            # after the client stopped waiting; either way the client asks again (and a
            # scenario with `answers_during` still requires an answer during the fault)
            if not c.ok
            and not (c.code in ("internal", "no_ack") and timeline.overlaps(c.start, c.end))
        ],
        len(syncs),
    )
    per_phase: dict[str, Counter[str]] = defaultdict(Counter)
    for c in calls:
        per_phase[timeline.phase(c.start)][c.code] += 1
    report.notes.append(
        "calls: "
        + " | ".join(
            f"{phase} " + ", ".join(f"{code} {n}" for code, n in per_phase[phase].most_common())
            for phase in ("before", "during", "after")
            if per_phase[phase]
        )
    )


def check_failed_cancels(
    report: Report, truth: Truth, churn: Churn, people: Population, states: States
) -> None:
    """A cancel answered with an error changed nothing: the request is still queued, in
    the student's session:state and in its tutors' snapshots (unless a tutor took it)."""
    # (a stale queue:position can make a client cancel a request it had already cancelled)
    cancelled_ok = {
        c.payload["request_id"]
        for s in people.students
        for c in s.calls
        if c.event == "help:cancel" and c.ok
    }
    typed = [
        (s, rid, c)
        for s, rid, c in churn.failed_cancels
        if c.code in DOCUMENTED_CODES and rid not in cancelled_ok
    ]
    lost = []
    for s, rid, c in typed:
        status = truth.status.get(rid)
        wrong = []
        if status == "cancelled":
            wrong.append("cancelled anyway")
        elif status == "queued":
            if ((states.get(s) or {}).get("request") or {}).get("id") != rid:
                wrong.append("not in session:state")
            unseen = [
                t.name
                for t in people.tutors
                if s.queue in t.queue_names
                and rid
                not in {
                    r["id"]
                    for q in (states.get(t) or {}).get("queues") or []
                    if q["queue"] == s.queue
                    for r in q["requests"]
                }
            ]
            if unseen:
                wrong.append(f"not in the snapshots of {', '.join(unseen)}")
        if wrong:
            lost.append(f"{s.name} {rid} (cancel: {c.code}; {status}): {', '.join(wrong)}")
    report.add("a cancel answered with an error left the request in its place", lost, len(typed))
    fates = Counter(truth.status.get(rid) for _, rid, _ in typed)
    report.notes.append(f"failed cancels: {len(typed)}, requests now {dict(fates)}")


async def passive(
    report: Report, cluster: Cluster, people: Population, churn: Churn | None
) -> Truth:
    truth = await read_truth(cluster.dsn)
    states = await _states(people.everyone)
    check_queues(report, truth, people, states)
    check_sessions(report, truth, people, states)
    check_messages(report, cluster, truth, people)
    check_status(report, cluster, people.tutors, states)
    if churn is not None:
        check_failed_cancels(report, truth, churn, people, states)
    return truth


# -- active checks ------------------------------------------------------------------------
async def check_not_blocked(report: Report, truth: Truth, students: list[Student]) -> None:
    async def one(s: Student) -> str | None:
        state = await s.ask_state()
        if not state.ok:
            return f"{s.name}: session:state answered {state.code}"
        if state.result.get("request") or state.result.get("session"):
            return None
        ask = await s.call(
            "help:request", {"subject": "math", "language": s.language}, record=False
        )
        if ask.ok:
            rid = ask.result["request"]["id"]
            cancel = await s.call("help:cancel", {"request_id": rid}, record=False)
            return None if cancel.ok else f"{s.name}: cancelling a new request: {cancel.code}"
        if ask.code == "conflict":
            rid = str(ask.detail.get("request_id"))
            return f"{s.name}: conflict with {rid} ({truth.status.get(rid)})"
        if ask.code == "rate_limited":
            return None  # a per-person throttle after the churn, not a stale lock
        return f"{s.name}: help:request answered {ask.code}"

    answers = await asyncio.gather(*(one(s) for s in students))
    report.add(
        "students not blocked (state shows their request, or they can ask)",
        [a for a in answers if a],
        len(students),
    )


async def clear_everything(people: Population) -> None:
    """End every session and cancel every request, through the protocol."""

    async def tutor(t: Tutor) -> None:
        state = await t.ask_state()
        for view in (state.result.get("sessions") or []) if state.ok else []:
            await t.call("session:end", {"session_id": view["session_id"]}, record=False)

    async def student(s: Student) -> None:
        state = await s.ask_state()
        if state.ok and state.result.get("session"):
            sid = state.result["session"]["session_id"]
            await s.call("session:end", {"session_id": sid}, record=False)
        if state.ok and state.result.get("request"):
            rid = state.result["request"]["id"]
            await s.call("help:cancel", {"request_id": rid}, record=False)

    await asyncio.gather(*(tutor(t) for t in people.tutors))
    await asyncio.gather(*(student(s) for s in people.students))


async def take_to_capacity(t: Tutor, students: list[Student], capacity: int) -> str | None:
    """``capacity + 1`` of ``students`` ask for help and ``t`` accepts each: the first
    ``capacity`` must be accepted and the next refused ``over_capacity``. Cleans up after."""
    rids: list[tuple[Student, str]] = []
    for s in students:
        if len(rids) > capacity:
            break
        ask = await s.call(
            "help:request", {"subject": "math", "language": s.language}, record=False
        )
        if ask.ok:
            rids.append((s, ask.result["request"]["id"]))
    codes = [(await t.call("help:accept", {"request_id": r}, record=False)).code for _, r in rids]
    state = await t.ask_state()
    for view in (state.result.get("sessions") or []) if state.ok else []:
        await t.call("session:end", {"session_id": view["session_id"]}, record=False)
    for s, rid in rids:
        await s.call("help:cancel", {"request_id": rid}, record=False)
    if len(rids) <= capacity:
        return f"{t.name}: not checked, only {len(rids)} of {len(students)} students could ask"
    if codes[:capacity] != ["ok"] * capacity or codes[capacity] != "over_capacity":
        return f"{t.name} (capacity {capacity}): accepts answered {codes}"
    return None


async def check_capacity(report: Report, cluster: Cluster, people: Population) -> None:
    """With every session ended, each tutor takes exactly their vendor's capacity (all
    tutors at once, each with students of their own)."""
    await clear_everything(people)
    truth = await read_truth(cluster.dsn)
    if truth.open_sessions or any(truth.queued.values()):
        report.notes.append(
            f"after ending everything: {len(truth.open_sessions)} sessions still open, "
            f"{sum(map(len, truth.queued.values()))} requests still queued in the database"
        )
    catalog = load_catalog(Settings())
    tutors = list({t.name: t for t in people.tutors}.values())  # one console per tutor
    shares: dict[str, list[Student]] = defaultdict(list)
    for s in people.students:
        mine = [t for t in tutors if s.queue in t.queue_names]
        if mine:
            shares[min(mine, key=lambda t: len(shares[t.name])).name].append(s)
    capacities = [catalog.vendor(t.identity.claims["vendor"]).capacity for t in tutors]  # type: ignore[union-attr]
    answers = await asyncio.gather(
        *(take_to_capacity(t, shares[t.name], c) for t, c in zip(tutors, capacities, strict=True))
    )
    report.add(
        "each tutor can take exactly their vendor's capacity",
        [a for a in answers if a],
        len(tutors),
    )


# -- the whole check ----------------------------------------------------------------------
async def wait_online(people: Population, timeout: float = 10) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        offline = [p.name for p in people.everyone if p.server is None]
        if not offline:
            return []
        await asyncio.sleep(0.1)
    return [p.name for p in people.everyone if p.server is None]


async def check(
    cluster: Cluster,
    people: Population,
    timeline: Timeline,
    churn: Churn | None = None,
    active: bool = True,
) -> Report:
    """Wait for recovery (at most one sweep plus the grace period, plus slack), then check."""
    title = f"{timeline.fault} (seed {timeline.seed})"
    offline = await wait_online(people)
    # Absences caused by the fault need one sweep plus the grace period to be resolved;
    # what the churn did after it needs only its pushes to arrive.
    settled = max(timeline.churn_until, timeline.fault_until)
    deadline = (
        max(
            timeline.fault_until + cluster.sweep_s + cluster.grace_s,
            settled + cluster.sweep_s,
        )
        + RECOVERY_SLACK_S
    )
    quiet = False
    while True:
        report = Report(title)
        report.add("clients connected again", offline, len(people.everyone))
        truth = await passive(report, cluster, people, churn)
        if report.ok or quiet:
            break
        if time.time() > deadline:
            # Last resort of the protocol: a page syncs an open session it has not heard
            # from for 30 s. Let that happen now, then judge.
            await asyncio.gather(*(p.quiet_sync() for p in people.everyone))
            quiet = True
        else:
            await asyncio.sleep(0.3)
    report.notes.insert(0, f"passive checks settled {time.time() - settled:.1f}s after the churn")
    logs = [log for p in people.everyone for log in p.sessions.values()]
    late = [f"{g.late} messages of {g.id}" for g in logs if g.late]
    late += [f"{p.name}: {p.late_ends} session ends" for p in people.everyone if p.late_ends]
    if timeline.prompt:
        acked = sum(len(p.sent) for p in people.everyone)
        report.add("nothing waited for the 30 s quiet-spell sync", late, acked)
    elif quiet:
        report.notes.append(f"only the 30 s quiet-spell sync recovered {'; '.join(late) or '-'}")
    check_presence(report, cluster, truth, people)
    check_calls(report, people.calls(), timeline, people.everyone)
    if active:
        started = time.time()
        await check_not_blocked(report, truth, people.students)
        await check_capacity(report, cluster, people)
        report.notes.append(f"active checks took {time.time() - started:.1f}s")
    tracebacks = cluster.tracebacks()
    kinds = ", ".join(f"{kind} {n}" for kind, n in cluster.exceptions().most_common(4))
    # An outage is logged as one line per kind (broker/outages.py); a traceback is a
    # failure nobody expected, and each process's log names it.
    report.add(
        "no traceback in any process's log (outages are one line each)",
        [f"{name}: {n} ({kinds}); see {cluster.log_of(name)}"
         for name, n in tracebacks.items() if n],
        len(tracebacks),
    )
    return report


async def churn_and_check(
    cluster: Cluster,
    people: Population,
    timeline: Timeline,
    fault: Fault,
    before_s: float,
    after_s: float = 0.5,
    limit_s: float = 60.0,
) -> Report:
    """A scenario: churn ``before_s``, run ``fault``, churn ``after_s`` more, then
    :func:`check` everything; all of it within ``limit_s`` (a hang fails the test)."""
    async with asyncio.timeout(limit_s):
        churn = await churn_through(people, timeline, fault, before_s=before_s, after_s=after_s)
        return await check(cluster, people, timeline, churn)


@dataclass
class Scenario:
    """What every churn scenario starts from: a cluster, its people connected, and the
    scenario's seeded timing (``tests/faults/conftest.py``, the ``scenario`` fixture)."""

    cluster: Cluster
    people: Population
    seed: int
    timing: random.Random

    async def churn(
        self, title: str, fault: Fault, *, answers_during: bool = False, prompt: bool = False
    ) -> Report:
        """Churn 0.8-1.2 s (drawn now, after the scenario's own draws), run ``fault``,
        churn 0.5 s more, then check every invariant (:func:`churn_and_check`)."""
        timeline = Timeline(title, self.seed, answers_during=answers_during, prompt=prompt)
        return await churn_and_check(
            self.cluster, self.people, timeline, fault, before_s=self.timing.uniform(0.8, 1.2)
        )


def check_exit(report: Report, took_s: float, limit_s: float = 10.0) -> None:
    """A process told SIGTERM (a deploy) was gone within ``limit_s`` (issue 10)."""
    report.add(
        f"the process exited within {limit_s:.0f} s of SIGTERM",
        [f"took {took_s:.1f} s"] if took_s > limit_s else [],
        1,
    )
    report.notes.append(f"exit took {took_s:.1f} s")

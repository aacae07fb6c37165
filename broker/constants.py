"""Defaults in one place (after arq's ``constants.py``): every tunable has its name here."""

from __future__ import annotations

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///homework-help.db"
DEFAULT_REDIS_PREFIX = "hh"
LISTEN_BACKLOG = 4096  # HH_LISTEN_BACKLOG: pending connections; capped at net.core.somaxconn

# Queue behaviour
GRACE_SECONDS = 120.0  # a dropped student keeps their place, a lost tutor keeps the session
PRIORITY_HEAD_START_S = 120.0  # one priority step counts as having waited this much longer
DEFAULT_TUTOR_CAPACITY = 2  # concurrent sessions per tutor unless the vendor says otherwise
QUEUE_MAX_WAIT_S = 2 * 3600.0  # a request still waiting after this expires
SESSION_IDLE_S = 20 * 60.0  # a session with no message for this long times out
ETA_WINDOW_S = 900.0  # accept rate is measured over this trailing window
ETA_FALLBACK_S = 120.0  # estimated handling time per request when there is no history

# Chat
CHAT_MAX_CHARS = 2000
CHAT_RATE_MESSAGES = 10  # messages per sender ...
CHAT_RATE_WINDOW_S = 10.0  # ... per this many seconds
TOPIC_MAX_CHARS = 200
TUTOR_NOTES_MAX_CHARS = 2000  # a tutor's private notes on a session (issue 14)
# With message retention off, an ended session's messages stay this long in its buffer, so
# that a participant who missed the last ones (a pub/sub outage) still gets them on sync;
# every process's sweep deletes them after that, at most this often.
BUFFER_AFTER_END_S = 120.0
BUFFER_SWEEP_EVERY_S = 30.0
# On shutdown, closing waits on the database at most this long: the writes already submitted
# settle within CLOSE_SETTLE_S, and each connection closes within CLOSE_CONNECTION_S. A
# database that does not answer (frozen, a black-holed network) is then left as it is:
# PostgreSQL rolls back what it had not committed when the connection drops, and no caller
# of those writes was answered.
CLOSE_SETTLE_S = 2.0
CLOSE_CONNECTION_S = 0.5
# A background task told to stop (cancelled) and still running after this long is
# cancelled again: SQLAlchemy closes a connection that a cancellation interrupted under
# asyncio.shield, waiting up to 2 s on a database that may not answer, until cancelled again
# (broker/db/closing.py, stop_task).
CANCEL_AGAIN_S = 0.1
# A write whose connection broke while its statement was on the way to the database, or its
# answer on the way back, may have committed: it is retried alone (its guards make a second
# run harmless), for up to this long while the database cannot be reached, so that its
# caller hears what happened rather than an `internal` that would claim nothing did. Above
# a short cut or a failover's restart; below a page's patience (10 s) and the fault suite's
# clients' (4 s). Once per outage: later writes fail before anything is sent.
IN_DOUBT_WAIT_S = 3.0
IN_DOUBT_PAUSE_S = 0.1  # the first pause between its tries, doubling up to
IN_DOUBT_PAUSE_MAX_S = 0.5
# How long an event waits on Redis for what it can do without (a throttle's count, a
# presence touch) before going on without it, as when Redis refuses: a Redis that answers
# nothing (frozen, a black-holed network) must not hold every help request and chat message.
# Far above a round trip under load (a few ms).
REDIS_WAIT_S = 1.0
# A serving process whose heartbeats have not reached Redis for this long, while another
# process's do, hands its clients over to the others (broker/presence_judge.py,
# web/hand_over.py). Far above a blip, and above the few seconds in which every process
# finds out when Redis is down for all (a sweep and REDIS_WAIT_S), when nobody moves.
HAND_OVER_AFTER_S = 10.0
OPEN_STATUSES = ("queued", "accepted")  # a request in either still holds its student
QUEUE_PUSH_COALESCE_S = 0.5  # a queue is pushed at most once per this window (Broker.push_queue)
STAFF_PUSH_INTERVAL_S = 1.0
# Wait estimates count available tutors from a snapshot at most this old (one read of
# every tutor's presence per second, not one per request).
TUTOR_COUNT_MAX_AGE_S = 1.0

# Retention
MESSAGE_RETENTION_DAYS = 0  # 0 = message bodies are relayed, never stored
METADATA_RETENTION_DAYS = 3 * 365  # three school years

# Payloads
MAX_EVENT_BYTES = 1024 * 1024  # transport limit; fields have their own, much smaller, limits

# Sign-in (failed attempts refused past these, per username and per client address)
LOGIN_USER_FAILURES = 5
LOGIN_IP_FAILURES = 20  # schools and offices share addresses behind NAT
LOGIN_WINDOW_S = 15 * 60.0
SESSION_COOKIE_TTL_S = 8 * 3600  # a tutor's or staff member's signed-in cookie
SOCKET_TOKEN_TTL_S = 300  # socket.io tokens handed to signed-in pages

# Help requests and cancels per student (across every process), against a script or a
# stuck key making thousands of rows; a student asking, cancelling and asking again is far
# below it.
REQUEST_RATE_LIMIT = 30
REQUEST_RATE_WINDOW_S = 60.0
# A Redis throttle lends a process a key's next events ahead (broker/throttle.py): a key
# used again within THROTTLE_LEASE_S of its last round trip gets twice as many events
# as then, spendable without Redis for THROTTLE_LEASE_S, up to THROTTLE_LEASE_MAX and
# to a THROTTLE_LEASE_SHARE-th of the limit (so a limit under 2 * THROTTLE_LEASE_SHARE
# is asked event by event, exactly as without leases).
THROTTLE_LEASE_S = 1.0
THROTTLE_LEASE_MAX = 64
THROTTLE_LEASE_SHARE = 8

# Background jobs (broker/jobs.py) and the outbox (broker/outbox.py)
JOB_LEASE_TTL_S = 60.0  # a job's lease lasts this long unless renewed ...
JOB_LEASE_RENEW_S = 20.0  # ... and is renewed this often while the job runs
JOB_POLL_S = 15.0  # a worker looks at a job's state at least this often
# On SIGTERM, running jobs get this long to finish; with closing the pool (0.5 s at most)
# the worker exits within 10 s, as `serve` does, inside a platform's usual stop timeout.
JOB_STOP_GRACE_S = 8.0
JOB_RETRY_BASE_S = 10.0  # a failed job is retried after this, doubling, capped at its interval
RETENTION_EVERY_S = 3600.0  # the retention purge (``homework-help worker --interval``)
OUTBOX_EVERY_S = 30.0  # the outbox sender looks for due messages this often
# With autovacuum off, the worker renews planner statistics this often (autovacuum_naptime)
PLANNER_STATS_EVERY_S = 60.0
OUTBOX_BATCH = 100  # messages claimed per round trip
OUTBOX_CLAIM_S = 300.0  # a claimed message not marked by then is tried again (sender died)
OUTBOX_RETRY_BASE_S = 60.0  # a failed send is retried after this, doubling ...
OUTBOX_RETRY_MAX_S = 6 * 3600.0  # ... up to this
OUTBOX_MAX_ATTEMPTS = 8  # then the message is given up (kept, with its last error)
DEFAULT_MAIL_FROM = "homework-help@localhost"

# -- chat safety (issue 12; docs/moderation.md, docs/operations.md) ----------------------
# A tutor who accepts and writes nothing for this long loses the session (``tutor_silent``)
# and the student goes back to the head of the queue.
TUTOR_SILENT_S = 60.0
# After the tutor's first message, a student who writes nothing for this long may be ended
# by the tutor as ``student_silent``.
STUDENT_SILENT_S = 180.0
# A queue with students waiting and no available tutor for this long raises a staff alert.
NO_TUTOR_ALERT_S = 120.0
# How long a flagged session's messages (and a held message's words) are kept for review,
# whatever the message retention.
SAFETY_REVIEW_DAYS = 30
# A question left for the next tutor while nobody is on shift keeps its place this long.
LEFT_QUESTION_S = 12 * 3600.0
# A report's free-text note, at most.
REPORT_NOTE_MAX_CHARS = 500

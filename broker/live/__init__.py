"""Live, shared state of open chat sessions, presence and tutor status.

The database holds the record; this holds what changes on every message and heartbeat,
so the hot path touches the database once per state change, not once per message.
"""

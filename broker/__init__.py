"""The live broker: queues, claims, chat relay, persistence.

Uses :mod:`routing`, never the reverse.
"""

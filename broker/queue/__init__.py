"""Request queues: one per vendor and language, with an in-process and a Redis backend."""

"""Pure routing: which vendor's queue a help request belongs in, or why none can serve it.

Nothing in this package performs I/O or uses asyncio: callers read files and pass text in.
"""

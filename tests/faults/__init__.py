"""The fault suite (issue 10): a private PostgreSQL cluster and redis-server, two real
``homework-help serve`` processes and a worker, real socket.io clients, faults injected
during traffic, and invariants asserted afterwards. Select it with ``pytest -m faults``.
"""

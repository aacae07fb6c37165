"""The media suites use the broker suites' two stacks (embedded and scaled), their real
servers and socket.io clients (tests/broker/conftest.py)."""

from tests.broker.conftest import (  # noqa: F401  (fixtures, by name)
    clients,
    server,
    stack,
    stack_settings,
    start_server,
)

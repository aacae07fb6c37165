"""bench.broker's account of the load's core: the load and the services pinned beside it."""

from __future__ import annotations

import pytest

from bench.broker import load_core, per_load_core
from bench.services import OwnServices, ServiceUnavailable
from tests.services import REQUIRE


def test_load_core_names_each_share_and_their_sum() -> None:
    req = {"load_cpu": 45.4, "services_cpu": {"PostgreSQL": 35.8, "Redis": 9.2}}
    assert load_core(req) == "load 45% + PostgreSQL 36% + Redis 9% = 90%"
    assert load_core({"load_cpu": 75.2, "services_cpu": {}}) == "load 75%"


def test_per_load_core_divides_by_everything_on_that_core() -> None:
    scaled = {"per_s": 1800.0, "load_cpu": 45.0, "services_cpu": {"PostgreSQL": 45.0}}
    assert per_load_core(scaled) == pytest.approx(2000.0)
    echo = {"per_s": 5000.0, "load_cpu": 100.0}  # the baseline has no services
    assert per_load_core(echo) == pytest.approx(5000.0)


def test_own_services_roots_are_their_running_processes() -> None:
    """The roots bench.broker measures are the cluster's postmaster (whose backends are its
    children) and the redis-server; pids() is them with every child."""
    services = OwnServices(cpu=None)
    try:
        try:
            services.start()
        except ServiceUnavailable as exc:  # no initdb or redis-server on this machine
            if REQUIRE:
                pytest.fail(f"HH_REQUIRE_SERVICES=1 but {exc}")
            pytest.skip(str(exc))
        roots = services.roots()
        assert set(roots) == {"PostgreSQL", "Redis"}
        assert roots["Redis"] == services.redis.proc.pid  # type: ignore[union-attr]
        pids = services.pids()
        assert set(roots.values()) <= set(pids)
        assert len(pids) > 2  # the postmaster's own children: checkpointer, WAL writer...
    finally:
        services.destroy()

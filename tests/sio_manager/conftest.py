"""Fixtures for the fan-out tests: a private redis-server, and a cluster that closes every
node and client it started."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.services import unique
from tests.sio_manager.harness import (
    ROOM,
    Member,
    Node,
    Proxy,
    RedisServer,
    start_node,
    subscribed,
)


@pytest.fixture
async def private_redis(tmp_path: Path) -> AsyncIterator[RedisServer]:
    server = RedisServer(tmp_path)
    await server.start()
    yield server
    await server.kill()


class Cluster:
    def __init__(self) -> None:
        self.prefix = unique("hhfan")
        self.nodes: list[Node] = []
        self.members: list[Member] = []
        self.proxies: list[Proxy] = []

    async def node(self, redis_url: str, **manager_options: Any) -> Node:
        node = await start_node(redis_url, self.prefix, **manager_options)
        self.nodes.append(node)
        return node

    async def member(self, node: Node, room: str = ROOM) -> Member:
        member = Member()
        self.members.append(member)
        await member.join(node, room)
        return member

    async def pair(
        self, url_a: str, url_b: str | None = None, a_room: str = ROOM, **a_options: Any
    ) -> tuple[Node, Node, Member, Member]:
        """Nodes ``a`` (with ``a_options``) and ``b``, a member on each (``a``'s in
        ``a_room``), both listeners subscribed: ``(a, b, member on a, member on b)``."""
        a = await self.node(url_a, **a_options)
        b = await self.node(url_b or url_a)
        local = await self.member(a, a_room)
        remote = await self.member(b)
        await subscribed(a, b)
        return a, b, local, remote

    async def cut_off_pair(
        self, redis: RedisServer, **a_options: Any
    ) -> tuple[Proxy, Node, Node, Member, Member]:
        """:meth:`pair` where ``a`` reaches Redis through a proxy the test can cut (a network
        failure between ``a`` and Redis) and ``b`` reaches it directly."""
        proxy = await self.proxy(redis.port)
        return (proxy, *await self.pair(proxy.url, redis.url, **a_options))

    async def single(self, url: str) -> tuple[Node, Member]:
        """One node with one member, its listener subscribed."""
        node = await self.node(url)
        member = await self.member(node)
        await subscribed(node)
        return node, member

    async def proxy(self, target_port: int, stall: bool = False) -> Proxy:
        proxy = Proxy(target_port, stall=stall)
        await proxy.start()
        self.proxies.append(proxy)
        return proxy

    async def close(self) -> None:
        for member in self.members:
            await member.close()
        for node in self.nodes:
            await node.close()
        for proxy in self.proxies:
            await proxy.cut()


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    c = Cluster()
    yield c
    await c.close()

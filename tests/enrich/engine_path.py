"""A route as the engine builds it, on a real store, routed by the engine's router: the
messages' path from the inbox to the outboxes, without listener or delivery."""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path

from engine.config.settings import load_config
from engine.hl7.header import header_field
from engine.routing.plans import build_plan
from engine.routing.router import Router
from engine.steps.kind import Resources
from engine.steps.registry import registry
from engine.store.backends import open_store
from engine.store.base import Incoming
from engine.store.roles import Store

FEED = """
[insi]
simulator = true
[[routes]]
name = "feed"
listen = "127.0.0.1:0"
"""
"""The route's opening, on the INSi simulator; a test adds its steps and destinations."""
_OUTPUTS = """SELECT o.destination, coalesce(o.payload, m.raw) FROM outbox o
              JOIN messages m ON m.id = o.message_id WHERE o.message_id = ?"""


class EnginePath:
    """`await EnginePath.open(folder, store_url, config_text)`; `run(raw)` per message."""

    def __init__(
        self, store: Store, router: Router, resources: Resources, first_number: int = 0
    ) -> None:
        self.store = store
        self._router = router
        self._resources = resources
        self._numbers = itertools.count(first_number)

    @classmethod
    async def open(
        cls, folder: Path, store_url: str, config: str, first_number: int = 0
    ) -> EnginePath:
        """The configuration's first route (its text has no `[engine]` store: `store_url`);
        the messages' control ids count from `first_number` (a store already used: on)."""
        (folder / "engine.toml").write_text(f'[engine]\nstore = "{store_url}"\n{config}')
        loaded = load_config(folder / "engine.toml")
        store = await open_store(loaded.engine.store, None, registry().store_extensions())
        resources = Resources()
        route = loaded.routes[0]
        plan = await build_plan(route, loaded, store, resources)
        return cls(store, Router(store, {route.name: plan}), resources, first_number)

    async def run(self, raw: bytes) -> tuple[int, dict[str, bytes]]:
        """Store one message as the intake does, route it; its id and what each destination
        got."""
        number = next(self._numbers)
        incoming = Incoming(
            *("feed", "127.0.0.1:1", 1_700_000_000.0 + number, "PAS", "HOSP", f"K{number}"),
            *(header_field(raw, 9).decode("latin-1"), hashlib.sha256(raw).digest(), raw, b""),
        )
        message_id = (await self.store.accept(incoming)).message_id
        await self._router.route_pending()
        outputs = _OUTPUTS if self.store.dialect == "sqlite" else _OUTPUTS.replace("?", "%s")
        rows = await self.store.fetch(outputs, (message_id,))
        return message_id, {destination: bytes(payload) for destination, payload in rows}

    async def aclose(self) -> None:
        await self._resources.aclose()
        await self.store.close()

"""What every command and job needs, built once at start-up and passed down."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from adapters.base import Platform
from bot.db import Database
from bot.models import utcnow
from bot.settings import Settings

Clock = Callable[[], datetime]


@dataclass
class Deps:
    settings: Settings
    db: Database
    platform: Platform
    clock: Clock = field(default=utcnow)

    @property
    def target(self) -> str:
        """One deployment guards one target, named after its platform."""
        return self.platform.name

    @property
    def is_sandbox(self) -> bool:
        return self.platform.name == "sandbox"

    async def aclose(self) -> None:
        await self.platform.aclose()
        await self.db.dispose()


async def build_deps(settings: Settings, *, transport: object | None = None, migrate: bool = True) -> Deps:
    """Connect, bring the schema up to date (migrations run on every start), build the adapter."""
    from bot.db import connect, upgrade
    from bot.platforms import build_platform

    db = connect(settings.database_url)
    if migrate:
        await upgrade(settings.database_url)
    platform = build_platform(settings, db, transport)  # type: ignore[arg-type]
    return Deps(settings=settings, db=db, platform=platform)

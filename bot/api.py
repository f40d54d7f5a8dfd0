"""The progress API (/api/v1). Filled in by the progress work."""

from __future__ import annotations

from starlette.routing import BaseRoute

from bot.deps import Deps


def routes(deps: Deps, slack: object | None) -> list[BaseRoute]:
    return []

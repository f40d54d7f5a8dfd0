"""HTTP plumbing shared by every HTTP adapter: one client per target, a client-side rate limiter,
bounded concurrency, 429 waits from the platform's own headers, and jittered retries.

Retries: a 429 is always retried (the platform did not act on it); 5xx answers and timeouts are
retried only for idempotent calls (GET, PUT, DELETE; our PUTs carry the full desired state).
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from adapters.base import PlatformError

IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
Sleep = Callable[[float], Awaitable[None]]


class RateLimited(Exception):
    def __init__(self, wait: float):
        super().__init__(f"rate limited; retry after {wait:.2f}s")
        self.wait = wait


class Transient(Exception):
    """A 5xx or a timeout on an idempotent call: worth another try."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


@dataclass
class HttpStats:
    requests: int = 0
    rate_limited: int = 0
    retried: int = 0
    failed: int = 0


class Pacer:
    """Evenly spaced calls at `rate` per second, with no burst.

    Platforms count over sliding windows (Zendesk: a minute), so any burst on top of the full rate
    overruns the window during a long apply. Slots are kept on absolute times, so a timer that wakes
    a little late never makes the next call later too (token buckets that re-arm from "now" lose
    a few percent of the rate that way).
    """

    def __init__(self, rate_per_second: float):
        self.interval = 1.0 / rate_per_second
        self.next_slot = 0.0

    async def wait(self) -> None:
        now = time.monotonic()
        slot = max(now, self.next_slot)
        self.next_slot = slot + self.interval  # claimed before awaiting: one event loop, no race
        if slot > now:
            await asyncio.sleep(slot - now)


@dataclass
class HttpTarget:
    """Wraps the target's `httpx.AsyncClient` with the limits its platform documents.

    `rate_per_second` is the documented request rate: calls are paced evenly at that rate (see Pacer).
    `sleep` is what retries wait with (tests inject a clock); pacing keeps real time.
    `reset_headers` are checked, in order, after `Retry-After` when a 429 arrives.
    """

    client: httpx.AsyncClient
    rate_per_second: float
    concurrency: int = 8
    reset_headers: tuple[str, ...] = ()
    max_attempts: int = 8
    max_wait: float = 60.0
    sleep: Sleep = asyncio.sleep
    stats: HttpStats = field(default_factory=HttpStats)

    def __post_init__(self) -> None:
        self._pacer = Pacer(self.rate_per_second)
        self._slots = asyncio.Semaphore(self.concurrency)

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
    ) -> httpx.Response:
        """Send one call, waiting and retrying as the platform asks; raise PlatformError when a
        call finally fails. 4xx answers other than 429 are returned to the adapter to interpret."""
        retryable: tuple[type[Exception], ...] = (RateLimited,)
        if method.upper() in IDEMPOTENT:
            retryable = (RateLimited, Transient)
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(retryable),
            stop=stop_after_attempt(self.max_attempts),
            wait=self._wait,
            sleep=self.sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._send(method, path, json=json, params=params)
        except RateLimited as error:
            self.stats.failed += 1
            raise PlatformError(f"{method} {path}: still rate limited", status=429) from error
        except Transient as error:
            self.stats.failed += 1
            raise PlatformError(f"{method} {path}: {error}", status=error.status) from error
        raise AssertionError("unreachable")

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async with self._slots:
            await self._pacer.wait()
            self.stats.requests += 1
            try:
                response = await self.client.request(method, path, **kwargs)
            except httpx.TimeoutException as error:
                raise Transient(f"timed out ({type(error).__name__})") from error
            except httpx.TransportError as error:
                raise Transient(f"connection failed ({type(error).__name__})") from error
        if response.status_code == 429:
            self.stats.rate_limited += 1
            raise RateLimited(self._retry_after(response))
        if response.status_code >= 500:
            raise Transient(f"HTTP {response.status_code}", status=response.status_code)
        return response

    def _wait(self, state: RetryCallState) -> float:
        self.stats.retried += 1
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RateLimited):
            return min(error.wait, self.max_wait)
        return wait_random_exponential(multiplier=0.25, max=10)(state)

    def _retry_after(self, response: httpx.Response) -> float:
        for name in ("Retry-After", *self.reset_headers):
            value = response.headers.get(name)
            if value:
                return parse_wait(value)
        return 1.0


def parse_wait(value: str, now: float | None = None) -> float:
    """A wait from a rate-limit header: seconds, a Unix timestamp (Intercom's X-RateLimit-Reset),
    or an HTTP date (Retry-After's other form)."""
    now = time.time() if now is None else now
    try:
        number = float(value)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - now) if parsed else 1.0
    if number > 1_000_000_000:  # an epoch timestamp, not a number of seconds
        return max(0.0, number - now)
    return max(0.0, number)


def error_message(response: httpx.Response) -> str:
    """The platform's own words for a refused call, without echoing request bodies or secrets."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    if isinstance(body, dict):
        for key in ("description", "message", "error", "errors", "details"):
            if body.get(key):
                detail = body[key]
                return f"HTTP {response.status_code}: {str(detail)[:300]}"
    return f"HTTP {response.status_code}"


def build_client(
    base_url: str,
    *,
    auth: httpx.Auth | tuple[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 20.0,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """One client per target. `transport` lets tests serve a fake in-process (ASGITransport)."""
    return httpx.AsyncClient(
        base_url=base_url,
        auth=auth,
        headers={"Accept": "application/json", "User-Agent": "migration-guard", **(headers or {})},
        timeout=httpx.Timeout(timeout, connect=10.0),
        transport=transport,
        limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
    )

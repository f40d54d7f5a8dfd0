"""A small client of the progress API for import scripts (synchronous, httpx)::

    from bot.client import guarded_import

    with guarded_import("zendesk history 2019", total_records=120_000) as run:
        for number, chunk in enumerate(chunks):
            ok, failed, errors = push(chunk)
            run.batch(number, ok=ok, failed=failed, errors=errors, record_ids=ids_of(chunk))

`guarded_import` refuses to start (UnsafeToImport) unless the guard is `paused`; `ImportRun` does the
same only with `require_paused=True`. Either finishes the run as `completed`, or `failed` when the
block raises. Batch reports are retried on network errors, 5xx and 429: the API replaces a batch
reported twice, so a retry never double counts.

Without arguments the client reads GUARD_API_URL (default http://127.0.0.1:$PORT, PORT default 3000)
and GUARD_API_TOKEN from the environment.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any

import httpx

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class GuardClientError(Exception):
    """The client cannot do what was asked (not configured, server unreachable)."""


class ApiError(GuardClientError):
    """The API answered with an error: `status`, `code`, `detail`, `field` as it sent them."""

    def __init__(self, status: int, code: str, detail: str, field: str | None = None):
        self.status, self.code, self.detail, self.field = status, code, detail, field
        where = f" (field {field})" if field else ""
        super().__init__(f"{status} {code}: {detail}{where}")


class UnsafeToImport(GuardClientError):
    """The preflight says the guard is not paused: automations would fire on imported records."""

    def __init__(self, preflight: Mapping[str, Any]):
        self.preflight = preflight
        reasons = "; ".join(
            f"{t.get('target')}: {t.get('state')} ({t.get('reason')})"
            for t in preflight.get("targets", [])
            if not t.get("safe_to_import")
        )
        super().__init__(f"not safe to import: {reasons or 'no guarded target'}")


def environment_defaults(environ: Mapping[str, str] | None = None) -> tuple[str, str | None]:
    """(GUARD_API_URL or http://127.0.0.1:$PORT, GUARD_API_TOKEN) from the environment."""
    env = os.environ if environ is None else environ
    url = env.get("GUARD_API_URL") or f"http://127.0.0.1:{env.get('PORT') or '3000'}"
    return url, env.get("GUARD_API_TOKEN") or None


class GuardClient:
    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 10.0,
        retries: int = 3,
        transport: httpx.BaseTransport | None = None,
        environ: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        default_url, default_token = environment_defaults(environ)
        token = token or default_token
        if not token:
            raise GuardClientError("GUARD_API_TOKEN is not set: the progress API needs its bearer token")
        self.base_url = (base_url or default_url).rstrip("/")
        self.retries = retries
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            transport=transport,
        )

    # ---------------------------------------------------------------- the API

    def preflight(self) -> dict[str, Any]:
        return self._call("GET", "/api/v1/guard", retry=True)

    def require_paused(self) -> dict[str, Any]:
        """The preflight, or UnsafeToImport when the guard is not `paused`."""
        answer = self.preflight()
        if not answer.get("safe_to_import"):
            raise UnsafeToImport(answer)
        return answer

    def start_run(
        self,
        name: str,
        *,
        total_records: int | None = None,
        total_batches: int | None = None,
        source: str | None = None,
    ) -> dict[str, Any]:
        body = {
            "name": name,
            "total_records": total_records,
            "total_batches": total_batches,
            "source": source,
        }
        # Not retried once sent: a second start would open a second run.
        return self._call("POST", "/api/v1/runs", json=_present(body), retry=False)

    def report_batch(
        self,
        run_id: str,
        batch: int,
        *,
        ok: int,
        failed: int = 0,
        errors: Iterable[str] = (),
        record_ids: Iterable[str] = (),
    ) -> dict[str, Any]:
        body = {
            "batch": batch,
            "ok": ok,
            "failed": failed,
            "errors": list(errors),
            "record_ids": list(record_ids),
        }
        return self._call("POST", f"/api/v1/runs/{run_id}/batches", json=body, retry=True)

    def finish_run(self, run_id: str, status: str = "completed") -> dict[str, Any]:
        try:
            return self._call("POST", f"/api/v1/runs/{run_id}/finish", json={"status": status}, retry=True)
        except ApiError as error:
            # A retried finish may find its own first attempt done: that is success.
            run = self.get_run(run_id) if error.status == 409 else None
            if run is not None and run.get("status") == status:
                return run
            raise

    def get_run(self, run_id: str) -> dict[str, Any]:
        return self._call("GET", f"/api/v1/runs/{run_id}", retry=True)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> GuardClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- plumbing

    def _call(self, method: str, path: str, *, json: Any = None, retry: bool) -> dict[str, Any]:
        attempt = 0
        while True:
            try:
                response = self._http.request(method, path, json=json)
            except httpx.TransportError as error:
                sent = not isinstance(error, httpx.ConnectError)
                if attempt >= self.retries or (sent and not retry):
                    raise GuardClientError(
                        f"cannot reach the progress API at {self.base_url}: {error}"
                    ) from None
                wait = None
            else:
                if response.status_code < 400:
                    return response.json()
                if not retry or response.status_code not in RETRY_STATUSES or attempt >= self.retries:
                    raise _error(response)
                wait = _retry_after(response)
            attempt += 1
            self._sleep(wait if wait is not None else min(0.5 * 2**attempt, 10.0))


def _present(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if value is not None}


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        return None


def _error(response: httpx.Response) -> ApiError:
    try:
        data = response.json()
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    return ApiError(
        response.status_code,
        str(data.get("error") or "http_error"),
        str(data.get("detail") or response.text[:200] or response.reason_phrase),
        data.get("field"),
    )


class ImportRun:
    """A run as a context manager: started on entry, each `batch()` reported, finished on exit
    (`failed` when the block raised). With `require_paused=True` it refuses to start unless the
    guard is `paused`. Without a `client` it makes (and closes) its own from `base_url`/`token` or
    the environment."""

    def __init__(
        self,
        name: str,
        *,
        client: GuardClient | None = None,
        base_url: str | None = None,
        token: str | None = None,
        total_records: int | None = None,
        total_batches: int | None = None,
        source: str | None = None,
        require_paused: bool = False,
    ):
        self.name = name
        self.total_records, self.total_batches, self.source = total_records, total_batches, source
        self.require_paused = require_paused
        self._own_client = client is None
        self.client = client or GuardClient(base_url, token)
        self.id: str | None = None
        self.result: dict[str, Any] | None = None
        self.warning: str | None = None
        self._next_batch = 0

    def __enter__(self) -> ImportRun:
        try:
            if self.require_paused:
                self.client.require_paused()
            run = self.client.start_run(
                self.name,
                total_records=self.total_records,
                total_batches=self.total_batches,
                source=self.source,
            )
        except BaseException:
            self._close()
            raise
        self.id = run["id"]
        return self

    def batch(
        self,
        number: int | None = None,
        *,
        ok: int,
        failed: int = 0,
        errors: Iterable[str] = (),
        record_ids: Iterable[str] = (),
    ) -> dict[str, Any]:
        """Report a batch; without a number, the one after the highest reported so far."""
        if self.id is None:
            raise GuardClientError("the run is not started: use ImportRun as a context manager")
        number = self._next_batch if number is None else number
        self._next_batch = max(self._next_batch, number + 1)
        answer = self.client.report_batch(
            self.id, number, ok=ok, failed=failed, errors=errors, record_ids=record_ids
        )
        if answer.get("warning") and self.warning is None:
            self.warning = answer["warning"]
            log.warning("import run %s: %s", self.id, self.warning)
        return answer

    def finish(self, status: str = "completed") -> dict[str, Any]:
        if self.id is None:
            raise GuardClientError("the run is not started")
        if self.result is None:
            self.result = self.client.finish_run(self.id, status)
        return self.result

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        try:
            if self.result is None and self.id is not None:
                self._finish_on_exit(failed=kind is not None)
        finally:
            self._close()

    def _finish_on_exit(self, *, failed: bool) -> None:
        if not failed:
            self.finish("completed")
            return
        try:  # never hide the import's own exception behind a reporting error
            self.finish("failed")
        except Exception:
            log.exception("could not mark import run %s failed", self.id)

    def _close(self) -> None:
        if self._own_client:
            self.client.close()


def guarded_import(name: str, **options: Any) -> ImportRun:
    """An ImportRun that first checks the preflight and refuses unless the guard is `paused`."""
    options.setdefault("require_paused", True)
    return ImportRun(name, **options)

"""Import runs reported by import scripts: ingest, exact totals, the failure-rate window, the guard
preflight, and the per-run coalescer that shows progress through a `Publisher` (the Slack layer gives
one; this module imports nothing from Slack).

Write path. Batch reports queue to one writer task, which stores every queued report in a single
transaction (group commit) and answers each request after that commit. A report is one
`INSERT ... SELECT ... WHERE <run is running> ON CONFLICT (run_id, batch) DO UPDATE`: a batch number
reported twice replaces its earlier figures, and totals are `SUM`s over the stored batches, so they can
never double count. On PostgreSQL the running-check takes `FOR SHARE` on the run row, so a batch and a
concurrent finish are ordered: no batch is stored after its run finished.

Publishing. Ingest never waits for the publisher: it marks the run dirty and a per-run coalescer task
(started on demand, ended when there is nothing to show) re-reads the totals and publishes at most once
per `min_interval`, one call at a time, always the latest state; thread notices (unguarded-import
warning, failure-rate alert, final summary) go out in order after the message exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from bot import store
from bot.deps import Deps
from bot.errors import ConflictError, NotFound
from bot.models import Guard, GuardStatus, ImportBatch, ImportRun

log = logging.getLogger(__name__)

RUNNING = "running"
FinishStatus = Literal["completed", "failed"]
SAFE_STATES = frozenset({GuardStatus.PAUSED})
FAILURE_WINDOW = 20  # the recent batches whose failure rate is watched
RECOVERY_FACTOR = 0.5  # an alert re-arms once the rate is back under half the threshold
MIN_INTERVAL = 1.0  # seconds between two renders of one run's message (chat.update is Tier 3)
GROUP_LIMIT = 500  # batch reports stored per transaction at most
WRITER_LINGER = 0.1  # seconds the writer keeps its connection waiting for the next report
MAX_PUBLISH_FAILURES = 8  # consecutive failures before a coalescer gives up (until the next report)
MAX_BACKOFF = 60.0

Spawn = Callable[..., "asyncio.Task[Any]"]


# --------------------------------------------------------------------------------------------------
# values


@dataclass(frozen=True)
class GuardView:
    target: str
    platform: str
    state: str
    since: datetime | None = None
    changed_by: str | None = None

    @property
    def safe_to_import(self) -> bool:
        """Only `paused` is safe: while `pausing` or `restoring` some automations are still on."""
        return self.state in SAFE_STATES

    @property
    def reason(self) -> str:
        if self.safe_to_import:
            return "automations are paused"
        if self.state == GuardStatus.LIVE:
            return "automations are live: imported records would trigger them"
        return f"the guard is {self.state}: some automations may still be on"


@dataclass(frozen=True)
class Preflight:
    targets: tuple[GuardView, ...]

    @property
    def safe_to_import(self) -> bool:
        return bool(self.targets) and all(t.safe_to_import for t in self.targets)


@dataclass(frozen=True)
class BatchReport:
    batch: int
    ok: int
    failed: int
    errors: Sequence[str] = ()
    record_ids: Sequence[str] = ()


@dataclass(frozen=True)
class BatchAck:
    """What ingest answers: stored, and whether the import is guarded right now."""

    run_id: str
    batch: int
    guard: GuardView

    @property
    def warning(self) -> str | None:
        return None if self.guard.safe_to_import else f"unguarded import: {self.guard.reason}"


@dataclass(frozen=True)
class BatchStored:
    """Handed to every batch listener after the report is committed (e.g. a leak watcher that looks
    at the imported `record_ids`)."""

    run_id: str
    target: str
    batch: int
    ok: int
    failed: int
    errors: tuple[str, ...]
    record_ids: tuple[str, ...]
    reported_at: datetime
    guard_state: str


BatchListener = Callable[[BatchStored], Awaitable[None]]


@dataclass(frozen=True)
class RunView:
    """A run with its exact totals, as of one moment."""

    id: str
    target: str
    name: str
    source: str | None
    status: str
    ok: int
    failed: int
    batches: int
    total_records: int | None
    total_batches: int | None
    created_at: datetime
    finished_at: datetime | None
    last_batch_at: datetime | None
    as_of: datetime
    guard: GuardView
    warned_live: bool = False
    slack_channel: str | None = None
    slack_ts: str | None = None

    @property
    def finished(self) -> bool:
        return self.status != RUNNING

    @property
    def processed(self) -> int:
        return self.ok + self.failed

    @property
    def failure_rate(self) -> float:
        return self.failed / self.processed if self.processed else 0.0

    @property
    def progress(self) -> tuple[int, int] | None:
        """(done, total): by records when their total is known, else by batches."""
        if self.total_records:
            return self.processed, self.total_records
        if self.total_batches:
            return self.batches, self.total_batches
        return None

    @property
    def fraction(self) -> float | None:
        return None if self.progress is None else self.progress[0] / self.progress[1]

    @property
    def elapsed(self) -> timedelta:
        end = self.finished_at or self.as_of
        return max(end - self.created_at, timedelta(0))

    @property
    def rate(self) -> float | None:
        """Records per second since the run started."""
        seconds = self.elapsed.total_seconds()
        return self.processed / seconds if seconds > 0 and self.processed else None

    @property
    def eta(self) -> timedelta | None:
        if self.finished:
            return None
        seconds = self.elapsed.total_seconds()
        if self.total_records and self.rate:
            remaining = max(self.total_records - self.processed, 0)
            return timedelta(seconds=remaining / self.rate)
        if self.total_batches and self.batches and seconds > 0:
            remaining = max(self.total_batches - self.batches, 0)
            return timedelta(seconds=remaining * seconds / self.batches)
        return None


NoticeKind = Literal["unguarded", "failure_alert", "failure_recovered", "summary"]


@dataclass(frozen=True)
class Notice:
    """A message for the run's thread. `rate`/`window` describe the recent batches for alerts."""

    kind: NoticeKind
    guard_state: str | None = None
    rate: float | None = None
    window: int = 0
    threshold: float = 0.0
    errors: tuple[str, ...] = ()


class Publisher(Protocol):
    """Shows a run somewhere (Slack). Raise PublishDeferred to say when to try again."""

    async def post_run(self, view: RunView) -> tuple[str, str]:
        """Create the run's message; return (channel, ts)."""
        ...

    async def update_run(self, channel: str, ts: str, view: RunView) -> None: ...

    async def post_notice(self, channel: str, ts: str, notice: Notice, view: RunView) -> None:
        """Post into the thread of the run's message."""
        ...


class PublishDeferred(Exception):
    """The publisher was told to wait (HTTP 429): try again after `retry_after` seconds."""

    def __init__(self, retry_after: float, message: str = "rate limited"):
        super().__init__(message)
        self.retry_after = retry_after


# --------------------------------------------------------------------------------------------------
# the failure-rate window


class FailureWindow:
    """The last FAILURE_WINDOW batches by arrival; a batch reported again replaces its figures."""

    def __init__(self, size: int = FAILURE_WINDOW):
        self.size = size
        self._batches: OrderedDict[int, tuple[int, int]] = OrderedDict()

    def record(self, batch: int, ok: int, failed: int) -> None:
        if batch in self._batches:
            self._batches[batch] = (ok, failed)
            return
        self._batches[batch] = (ok, failed)
        while len(self._batches) > self.size:
            self._batches.popitem(last=False)

    def __len__(self) -> int:
        return len(self._batches)

    @property
    def rate(self) -> float:
        ok = sum(o for o, _ in self._batches.values())
        failed = sum(f for _, f in self._batches.values())
        return failed / (ok + failed) if ok + failed else 0.0


def alert_transition(alerted: bool, rate: float, threshold: float) -> bool | None:
    """The new alert state when the rate crosses the threshold (up), or falls well below it (down);
    None when nothing changes. The gap between the two stops an alert from flapping."""
    if not alerted and rate > threshold:
        return True
    if alerted and rate <= threshold * RECOVERY_FACTOR:
        return False
    return None


# --------------------------------------------------------------------------------------------------
# statements (Core, compiled once per dialect by SQLAlchemy's cache)

_runs = ImportRun.__table__  # type: ignore[attr-defined]
_batches = ImportBatch.__table__  # type: ignore[attr-defined]
_guards = Guard.__table__  # type: ignore[attr-defined]
_BATCH_FIELDS = ("run_id", "batch", "ok", "failed", "errors", "record_ids", "reported_at")


def upsert_batch_statement(dialect: str) -> sa.Insert:
    """Store one report if (and only if) its run is running; a repeated batch number replaces."""
    running = sa.select(sa.literal(1)).where(
        _runs.c.id == sa.bindparam("run_id", type_=_batches.c.run_id.type), _runs.c.status == RUNNING
    )
    if dialect == "postgresql":
        running = running.with_for_update(read=True)  # FOR SHARE: a concurrent finish waits for us
    values = sa.select(*(sa.bindparam(name, type_=_batches.c[name].type) for name in _BATCH_FIELDS)).where(
        running.exists()
    )
    insert_fn = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert_fn(_batches).from_select(list(_BATCH_FIELDS), values)
    return statement.on_conflict_do_update(
        index_elements=["run_id", "batch"],
        set_={
            name: statement.excluded[name] for name in ("ok", "failed", "errors", "record_ids", "reported_at")
        },
    )


_STATEMENTS: dict[str, sa.Insert] = {}


def _upsert(dialect: str) -> sa.Insert:
    if dialect not in _STATEMENTS:
        _STATEMENTS[dialect] = upsert_batch_statement(dialect)
    return _STATEMENTS[dialect]


async def _guard_view(conn: AsyncConnection, deps: Deps) -> GuardView:
    row = (
        await conn.execute(
            sa.select(_guards.c.state, _guards.c.since, _guards.c.changed_by).where(
                _guards.c.target == deps.target
            )
        )
    ).first()
    if row is None:  # no guard row yet: nothing was ever paused
        return GuardView(deps.target, deps.platform.name, GuardStatus.LIVE.value)
    return GuardView(deps.target, deps.platform.name, str(row.state), row.since, row.changed_by)


async def _flip(conn: AsyncConnection, run_id: str, column: str, old: bool, new: bool) -> bool:
    """Compare-and-set a boolean flag on the run: True when this call made the change."""
    result = await conn.execute(
        sa.update(_runs).where(_runs.c.id == run_id, _runs.c[column] == old).values({column: new})
    )
    return bool(result.rowcount)


# --------------------------------------------------------------------------------------------------
# the service


@dataclass
class _Pending:
    run_id: str
    report: BatchReport
    future: asyncio.Future[BatchAck]
    error: Exception | None = None


@dataclass
class _RunState:
    """What ingest remembers about a run in this process (the database stays the truth)."""

    target: str
    warned_live: bool
    alerted: bool
    window: FailureWindow


class ProgressService:
    """Runs and batches for one deployment's target. Build one per process (bot.api.routes does)."""

    def __init__(
        self,
        deps: Deps,
        publisher: Publisher | None = None,
        *,
        batch_listeners: Sequence[BatchListener] = (),
        min_interval: float = MIN_INTERVAL,
        spawn: Spawn | None = None,
    ):
        self.deps = deps
        self.publisher = publisher
        # The hook for per-batch work (a leak watcher reading `record_ids`): each listener gets a
        # BatchStored after the commit, in a background task, never delaying the import's request.
        self.batch_listeners: list[BatchListener] = list(batch_listeners)
        self.min_interval = min_interval
        self._spawn_fn = spawn
        self._tasks: set[asyncio.Task[Any]] = set()
        self._queue: deque[_Pending] = deque()
        self._arrived = asyncio.Event()
        self._closing = False
        self._writer: asyncio.Task[Any] | None = None
        self._runs: dict[str, _RunState] = {}
        self._coalescers: dict[str, _Coalescer] = {}

    # ---------------------------------------------------------------- runs

    async def start_run(
        self,
        *,
        name: str,
        total_records: int | None = None,
        total_batches: int | None = None,
        source: str | None = None,
    ) -> RunView:
        run = ImportRun(
            id=store.new_id("run"),
            target=self.deps.target,
            name=name,
            source=source,
            total_records=total_records,
            total_batches=total_batches,
            created_at=self.deps.clock(),
        )
        async with self.deps.db.session() as session:
            session.add(run)
            await session.commit()
        self._show(run.id)
        return await self.run_view(run.id)

    async def report_batch(self, run_id: str, report: BatchReport) -> BatchAck:
        """Store a batch report (after its commit this returns); NotFound or ConflictError otherwise."""
        future: asyncio.Future[BatchAck] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(run_id, report, future))
        self._arrived.set()
        if self._writer is None or self._writer.done():
            self._writer = self._spawn(self._write_queued(), name="progress:writer")
        return await future

    async def finish_run(self, run_id: str, *, status: FinishStatus = "completed") -> RunView:
        now = self.deps.clock()
        async with self.deps.db.engine.begin() as conn:
            last = sa.select(sa.func.max(_batches.c.reported_at)).where(_batches.c.run_id == run_id)
            result = await conn.execute(
                sa.update(_runs)
                .where(_runs.c.id == run_id, _runs.c.status == RUNNING)
                .values(status=status, finished_at=now, last_batch_at=last.scalar_subquery())
            )
            if not result.rowcount:
                raise _refusal(run_id, (await _statuses(conn, {run_id})).get(run_id)) or ConflictError(run_id)
        self._runs.pop(run_id, None)  # ingest's memory of the run is done with
        self._show(run_id, Notice("summary"))
        return await self.run_view(run_id)

    async def run_view(self, run_id: str) -> RunView:
        async with self.deps.db.engine.connect() as conn:
            totals = (
                await conn.execute(
                    sa.select(
                        sa.func.coalesce(sa.func.sum(_batches.c.ok), 0),
                        sa.func.coalesce(sa.func.sum(_batches.c.failed), 0),
                        sa.func.count(),
                        sa.func.max(_batches.c.reported_at),
                    ).where(_batches.c.run_id == run_id)
                )
            ).one()
            run = (await conn.execute(sa.select(_runs).where(_runs.c.id == run_id))).first()
            if run is None:
                raise NotFound(f"no import run {run_id}")
            guard = await _guard_view(conn, self.deps)
        ok, failed, batches, last = totals
        return RunView(
            id=run.id,
            target=run.target,
            name=run.name,
            source=run.source,
            status=run.status,
            ok=int(ok),
            failed=int(failed),
            batches=int(batches),
            total_records=run.total_records,
            total_batches=run.total_batches,
            created_at=run.created_at,
            finished_at=run.finished_at,
            last_batch_at=last,
            as_of=self.deps.clock(),
            guard=guard,
            warned_live=run.warned_live,
            slack_channel=run.slack_channel,
            slack_ts=run.slack_ts,
        )

    async def preflight(self) -> Preflight:
        """Is it safe to import now? Only while the target's guard is `paused`."""
        async with self.deps.db.engine.connect() as conn:
            return Preflight((await _guard_view(conn, self.deps),))

    # ---------------------------------------------------------------- the writer (group commit)

    async def _write_queued(self) -> None:
        """Store queued reports group by group on one connection, kept while reports keep coming
        (a checkout per group would cost more than the group's own statements)."""
        while self._queue:
            group: list[_Pending] = []
            try:
                async with self.deps.db.engine.connect() as conn:
                    while await self._more_reports():
                        group = self._take()
                        await self._write_group(conn, group)
                        group = []
            except Exception as error:
                await self._write_singly(group or self._take(), error)

    async def _more_reports(self) -> bool:
        if not self._queue and not self._closing:
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), WRITER_LINGER)
        return bool(self._queue)

    def _take(self) -> list[_Pending]:
        return [self._queue.popleft() for _ in range(min(len(self._queue), GROUP_LIMIT))]

    async def _write_singly(self, group: list[_Pending], error: Exception) -> None:
        """A group failed (and was rolled back): store its reports one by one, so one bad report or a
        dropped connection fails only what it must."""
        for item in group:  # reload what this process remembers of these runs
            self._runs.pop(item.run_id, None)
        if len(group) == 1:
            _settle(group[0], error=error)
            return
        log.warning(
            "storing %d batch reports together failed (%s); storing them one by one", len(group), error
        )
        for item in group:
            try:
                async with self.deps.db.engine.connect() as conn:
                    await self._write_group(conn, [item])
            except Exception as single:
                _settle(item, error=single)

    async def _write_group(self, conn: AsyncConnection, group: list[_Pending]) -> None:
        """One transaction for the whole group: one executemany of the conditional upsert, then the
        runs' statuses tell which reports were stored. A run's reports in a group are all stored or
        none: its running-check holds until the commit (SQLite's write lock; FOR SHARE on PostgreSQL)."""
        now = self.deps.clock()
        notices: list[tuple[str, Notice]] = []
        async with conn.begin():
            result = await conn.execute(_upsert(conn.dialect.name), [_params(item, now) for item in group])
            if result.rowcount == len(group):  # all stored (drivers that count executemany rows)
                statuses = {item.run_id: RUNNING for item in group}
            else:
                statuses = await _statuses(conn, {item.run_id for item in group})
            guard = await _guard_view(conn, self.deps)
            for item in group:
                item.error = _refusal(item.run_id, statuses.get(item.run_id))
                if item.error is None:
                    notices += await self._watch(conn, item, guard)
        for item in group:
            _settle(item, ack=BatchAck(item.run_id, item.report.batch, guard))
            if item.error is None:
                self._after_batch_stored(item, guard, now)
        for run_id, notice in notices:
            self._show(run_id, notice)
        for run_id in {item.run_id for item in group if item.error is None}:
            self._show(run_id)

    async def _watch(
        self, conn: AsyncConnection, item: _Pending, guard: GuardView
    ) -> list[tuple[str, Notice]]:
        """The failure-rate window and the unguarded-import warning for one stored report."""
        state = await self._state(conn, item.run_id)
        report = item.report
        state.window.record(report.batch, report.ok, report.failed)
        notices: list[tuple[str, Notice]] = []
        if not guard.safe_to_import and not state.warned_live:
            state.warned_live = True
            if await _flip(conn, item.run_id, "warned_live", False, True):
                notices.append((item.run_id, Notice("unguarded", guard_state=guard.state)))
        threshold = self.deps.settings.guard_failure_alert
        new = alert_transition(state.alerted, state.window.rate, threshold)
        if new is not None:
            state.alerted = new
            if await _flip(conn, item.run_id, "alerted", not new, new):
                kind: NoticeKind = "failure_alert" if new else "failure_recovered"
                notices.append(
                    (
                        item.run_id,
                        Notice(
                            kind,
                            rate=state.window.rate,
                            window=len(state.window),
                            threshold=threshold,
                            errors=tuple(report.errors[:5]),
                        ),
                    )
                )
        return notices

    async def _state(self, conn: AsyncConnection, run_id: str) -> _RunState:
        """This process's memory of a run, loaded on first sight (also after a restart)."""
        state = self._runs.get(run_id)
        if state is not None:
            return state
        run = (
            await conn.execute(
                sa.select(_runs.c.target, _runs.c.warned_live, _runs.c.alerted).where(_runs.c.id == run_id)
            )
        ).one()
        window = FailureWindow()
        recent = await conn.execute(
            sa.select(_batches.c.batch, _batches.c.ok, _batches.c.failed)
            .where(_batches.c.run_id == run_id)
            .order_by(_batches.c.reported_at.desc(), _batches.c.id.desc())
            .limit(window.size)
        )
        for batch, ok, failed in reversed(recent.all()):
            window.record(batch, ok, failed)
        state = _RunState(run.target, bool(run.warned_live), bool(run.alerted), window)
        self._runs[run_id] = state
        return state

    def _after_batch_stored(self, item: _Pending, guard: GuardView, at: datetime) -> None:
        """The per-batch hook: hand the stored report to every batch listener."""
        if not self.batch_listeners:
            return
        report = item.report
        event = BatchStored(
            run_id=item.run_id,
            target=self.deps.target,
            batch=report.batch,
            ok=report.ok,
            failed=report.failed,
            errors=tuple(report.errors),
            record_ids=tuple(report.record_ids),
            reported_at=at,
            guard_state=guard.state,
        )
        for listener in self.batch_listeners:
            self._spawn(_listen(listener, event), name=f"progress:listener:{item.run_id}")

    # ---------------------------------------------------------------- publishing

    def _show(self, run_id: str, notice: Notice | None = None) -> None:
        if self.publisher is None:
            return
        coalescer = self._coalescers.get(run_id)
        if coalescer is None:
            coalescer = self._coalescers[run_id] = _Coalescer(self, run_id)
        coalescer.poke(notice)

    def _forget(self, run_id: str) -> None:
        """A finished run whose final state is shown needs no coalescer any more."""
        self._coalescers.pop(run_id, None)

    async def _save_ref(self, run_id: str, channel: str, ts: str) -> None:
        async with self.deps.db.engine.begin() as conn:
            await conn.execute(
                sa.update(_runs)
                .where(_runs.c.id == run_id, _runs.c.slack_ts.is_(None))
                .values(slack_channel=channel, slack_ts=ts)
            )

    # ---------------------------------------------------------------- tasks

    def _spawn(self, work: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        task = self._spawn_fn(work, name=name) if self._spawn_fn else asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait until every stored report is shown (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while self._tasks and time.monotonic() < deadline:
            await asyncio.wait(set(self._tasks), timeout=max(0.0, deadline - time.monotonic()))

    async def aclose(self, timeout: float = 30.0) -> None:
        """Stop the writer lingering for more reports (it hands its connection back), then drain."""
        self._closing = True
        self._arrived.set()
        await self.drain(timeout)


def _params(item: _Pending, now: datetime) -> dict[str, Any]:
    report = item.report
    return {
        "run_id": item.run_id,
        "batch": report.batch,
        "ok": report.ok,
        "failed": report.failed,
        "errors": list(report.errors),
        "record_ids": list(report.record_ids),
        "reported_at": now,
    }


def _settle(item: _Pending, *, ack: BatchAck | None = None, error: BaseException | None = None) -> None:
    error = error or item.error
    if item.future.done():
        return
    if error is not None:
        item.future.set_exception(error)
    else:
        item.future.set_result(ack)  # type: ignore[arg-type]


async def _statuses(conn: AsyncConnection, run_ids: set[str]) -> dict[str, str]:
    rows = await conn.execute(sa.select(_runs.c.id, _runs.c.status).where(_runs.c.id.in_(run_ids)))
    return {run_id: status for run_id, status in rows}


def _refusal(run_id: str, status: str | None) -> NotFound | ConflictError | None:
    """Why a report or finish for a run with this status is refused, if it is."""
    if status is None:
        return NotFound(f"no import run {run_id}")
    if status != RUNNING:
        return ConflictError(f"import run {run_id} is already {status}")
    return None


async def _listen(listener: BatchListener, event: BatchStored) -> None:
    try:
        await listener(event)
    except Exception:
        log.exception("batch listener %r failed on run %s batch %s", listener, event.run_id, event.batch)


# --------------------------------------------------------------------------------------------------
# the coalescer


@dataclass
class _Coalescer:
    """Shows one run: at most one publisher call in flight, renders at least `min_interval` apart,
    each render from a fresh read of the totals (the latest state wins, nothing piles up)."""

    service: ProgressService
    run_id: str
    dirty: bool = False
    notices: deque[Notice] = field(default_factory=deque)
    task: asyncio.Task[Any] | None = None
    next_at: float = 0.0
    failures: int = 0
    ref: tuple[str, str] | None = None

    def poke(self, notice: Notice | None = None) -> None:
        self.dirty = True
        if notice is not None:
            self.notices.append(notice)
        if self.task is None or self.task.done():
            self.task = self.service._spawn(self._run(), name=f"progress:show:{self.run_id}")

    async def _run(self) -> None:
        finished = False
        while self.dirty or self.notices:
            delay = self.next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                finished = await self._publish_once()
                self.failures = 0
            except NotFound:
                log.warning("run %s vanished; nothing to show", self.run_id)
                break
            except PublishDeferred as error:
                self._failed(error.retry_after, error)
            except Exception as error:
                self._failed(min(2.0**self.failures, MAX_BACKOFF), error)
            if self.failures >= MAX_PUBLISH_FAILURES:
                log.error("giving up showing run %s after %d failures", self.run_id, self.failures)
                self.dirty, self.failures = False, 0
                self.notices.clear()
        if finished and not self.dirty and not self.notices:
            self.service._forget(self.run_id)

    def _failed(self, wait: float, error: Exception) -> None:
        self.failures += 1
        self.dirty = True
        wait = max(wait, self.service.min_interval)
        self.next_at = time.monotonic() + wait
        log.warning("showing run %s failed (%s); next try in %.1fs", self.run_id, error, wait)

    async def _publish_once(self) -> bool:
        publisher = self.service.publisher
        assert publisher is not None
        self.dirty = False
        self.next_at = time.monotonic() + self.service.min_interval
        due = len(self.notices)  # queued after their state was committed, so this view includes it
        view = await self.service.run_view(self.run_id)
        if self.ref is None and view.slack_channel and view.slack_ts:
            self.ref = (view.slack_channel, view.slack_ts)  # shown before (another task, a restart)
        try:
            if self.ref is None:
                self.ref = await publisher.post_run(view)
                await self.service._save_ref(self.run_id, *self.ref)
            else:
                await publisher.update_run(*self.ref, view)
            for _ in range(due):  # later notices wait for a view that includes their state
                await publisher.post_notice(*self.ref, self.notices[0], view)
                self.notices.popleft()
        except BaseException:
            self.dirty = True
            raise
        return view.finished

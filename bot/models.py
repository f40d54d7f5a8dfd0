"""SQLModel tables. The schema is owned by the Alembic migrations in bot/migrations.

Status vocabularies are plain strings (see the Enums below) so that the database stays readable.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite keeps no zone, so we store naive UTC)."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use aware UTC datetimes")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _json(factory: type = dict) -> Any:
    return Field(default_factory=factory, sa_type=sa.JSON, nullable=False)


def _when(nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=nullable, index=index)


class GuardStatus(StrEnum):
    LIVE = "live"
    PAUSING = "pausing"
    PAUSED = "paused"
    RESTORING = "restoring"


class RequestStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    STALE = "stale"
    APPLYING = "applying"
    APPLIED = "applied"
    PARTIALLY_APPLIED = "partially_applied"
    FAILED = "failed"


OPEN_REQUEST_STATUSES = (RequestStatus.PENDING, RequestStatus.APPROVED, RequestStatus.APPLYING)


class ChangeStatus(StrEnum):
    PLANNED = "planned"
    IN_FLIGHT = "in_flight"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"
    CONFLICT = "conflict"


class Guard(SQLModel, table=True):
    """The guard state of one target. One row per target, created on first use."""

    __tablename__ = "guards"

    target: str = Field(primary_key=True, max_length=100)
    platform: str = Field(max_length=50)
    state: str = Field(default=GuardStatus.LIVE, max_length=20)
    since: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    changed_by: str | None = Field(default=None, max_length=100)
    pause_request_id: str | None = Field(default=None, max_length=40)
    unanswered_reminders: int = 0


class Snapshot(SQLModel, table=True):
    """An immutable capture of every automation of a target at one moment."""

    __tablename__ = "snapshots"

    id: str = Field(primary_key=True, max_length=40)
    target: str = Field(index=True, max_length=100)
    platform: str = Field(max_length=50)
    taken_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    taken_by: str = Field(max_length=100)
    item_count: int = 0


class SnapshotItem(SQLModel, table=True):
    __tablename__ = "snapshot_items"
    __table_args__ = (sa.UniqueConstraint("snapshot_id", "kind", "automation_id"),)

    id: int | None = Field(default=None, primary_key=True)
    snapshot_id: str = Field(foreign_key="snapshots.id", index=True, max_length=40)
    kind: str = Field(max_length=50)
    automation_id: str = Field(max_length=100)
    name: str
    enabled: bool | None = None
    definition: dict[str, Any] = _json()
    updated_at: str | None = Field(default=None, max_length=64)
    url: str | None = None


class ChangeRequest(SQLModel, table=True):
    """A plan to pause or restore, and what became of it."""

    __tablename__ = "change_requests"

    id: str = Field(primary_key=True, max_length=40)
    target: str = Field(index=True, max_length=100)
    kind: str = Field(max_length=20)  # pause | restore
    status: str = Field(default=RequestStatus.PENDING, index=True, max_length=30)
    mode: str | None = Field(default=None, max_length=20)  # disable | exempt (pause only)
    options: dict[str, Any] = _json()
    snapshot_id: str = Field(foreign_key="snapshots.id", max_length=40)
    pause_request_id: str | None = Field(default=None, max_length=40)  # restore: which pause
    requester: str = Field(max_length=100)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime | None = _when()
    decided_by: str | None = Field(default=None, max_length=100)
    decided_at: datetime | None = _when()
    finished_at: datetime | None = _when()
    reason: str | None = None  # why rejected / stale / failed
    planned_end_at: datetime | None = _when()  # pause --for
    slack_channel: str | None = Field(default=None, max_length=40)
    slack_ts: str | None = Field(default=None, max_length=40)


class Change(SQLModel, table=True):
    """One automation's edit inside a request: the journal entry of the apply."""

    __tablename__ = "changes"
    __table_args__ = (sa.UniqueConstraint("request_id", "kind", "automation_id"),)

    id: int | None = Field(default=None, primary_key=True)
    request_id: str = Field(foreign_key="change_requests.id", index=True, max_length=40)
    position: int
    kind: str = Field(max_length=50)
    automation_id: str = Field(max_length=100)
    name: str
    action: str = Field(max_length=20)
    before: dict[str, Any] = _json()  # full definition before the edit
    after: dict[str, Any] = _json()  # full definition the edit produces
    status: str = Field(default=ChangeStatus.PLANNED, max_length=20)
    note: str | None = None  # error, conflict description, skip reason
    attempts: int = 0
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    url: str | None = None  # deep link for manual steps
    confirmed_by: str | None = Field(default=None, max_length=100)  # manual: who ticked it
    confirmed_at: datetime | None = _when()
    verification: str | None = Field(default=None, max_length=20)  # verified|mismatch|unverifiable


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_events"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    actor: str = Field(max_length=100)
    action: str = Field(max_length=50)
    target: str = Field(index=True, max_length=100)
    request_id: str | None = Field(default=None, max_length=40)
    detail: dict[str, Any] = _json()


class Reminder(SQLModel, table=True):
    """A due message. The row is the truth; the scheduler only provides the clock."""

    __tablename__ = "reminders"

    id: int | None = Field(default=None, primary_key=True)
    target: str = Field(index=True, max_length=100)
    kind: str = Field(max_length=30)  # restore | approval_nudge | approval_expiry | planned_end | checklist
    request_id: str | None = Field(default=None, max_length=40)
    due_at: datetime = Field(sa_type=UTCDateTime, index=True)
    status: str = Field(default="scheduled", max_length=20, index=True)
    lease_until: datetime | None = _when()
    claimed_by: str | None = Field(default=None, max_length=100)
    attempts: int = 0
    slack_channel: str | None = Field(default=None, max_length=40)
    slack_ts: str | None = Field(default=None, max_length=40)
    delivered_at: datetime | None = _when()
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    payload: dict[str, Any] = _json()


class ImportRun(SQLModel, table=True):
    __tablename__ = "import_runs"

    id: str = Field(primary_key=True, max_length=40)
    target: str = Field(index=True, max_length=100)
    name: str = Field(max_length=200)
    source: str | None = Field(default=None, max_length=200)
    total_records: int | None = None
    total_batches: int | None = None
    status: str = Field(default="running", max_length=20)  # running | completed | failed
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    finished_at: datetime | None = _when()
    last_batch_at: datetime | None = _when()
    slack_channel: str | None = Field(default=None, max_length=40)
    slack_ts: str | None = Field(default=None, max_length=40)
    warned_live: bool = False
    alerted: bool = False


class ImportBatch(SQLModel, table=True):
    __tablename__ = "import_batches"
    __table_args__ = (sa.UniqueConstraint("run_id", "batch"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="import_runs.id", index=True, max_length=40)
    batch: int
    ok: int
    failed: int
    errors: list[str] = _json(list)
    record_ids: list[str] = _json(list)
    reported_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class TrackedWorkflow(SQLModel, table=True):
    """Intercom workflows the bot guards; people add them, since Intercom cannot list them."""

    __tablename__ = "tracked_workflows"
    __table_args__ = (sa.UniqueConstraint("target", "workflow_id"),)

    id: int | None = Field(default=None, primary_key=True)
    target: str = Field(index=True, max_length=100)
    workflow_id: str = Field(max_length=100)
    title: str | None = None
    added_by: str = Field(max_length=100)
    added_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class LeakAlert(SQLModel, table=True):
    """A workflow seen acting on an imported record; unique so each is alerted once."""

    __tablename__ = "leak_alerts"
    __table_args__ = (sa.UniqueConstraint("run_id", "record_id", "part_id"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="import_runs.id", index=True, max_length=40)
    record_id: str = Field(max_length=100)
    part_id: str = Field(max_length=100)
    workflow: str | None = None
    part_type: str = Field(max_length=80)
    seen_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


# The sandbox keeps its table beside its adapter; importing it registers the table on the metadata.
import adapters.sandbox  # noqa: E402, F401

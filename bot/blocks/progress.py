"""An import run's message in the migration channel and the notices in its thread (pure builders).

Kept short on purpose: the message is rewritten about once a second while the import runs."""

from __future__ import annotations

from collections.abc import Sequence

from bot.blocks.answers import STATE_ICONS
from bot.blocks.approval import progress_bar
from bot.blocks.common import (
    SANDBOX_NOTE,
    Block,
    clip,
    context,
    escape,
    fields,
    header,
    mention,
    section,
    slack_date,
)
from bot.blocks.reminders import human_duration
from bot.progress import Notice, RunView

UNKNOWN = "n/a"
STATUS_TITLES = {
    "running": ":inbox_tray: Importing",
    "completed": ":white_check_mark: Import completed",
    "failed": ":x: Import failed",
}


def _bar(view: RunView) -> str:
    """The share done as a bar (full, not longer, when a script sends more than it announced)."""
    if view.progress is None:
        return ""
    done, total = view.progress
    return progress_bar(min(done, total), total)


def percent(fraction: float | None) -> str:
    return UNKNOWN if fraction is None else f"{fraction * 100:.1f}%".replace(".0%", "%")


def _count(value: int) -> str:
    return f"{value:,}"


def _rate(view: RunView) -> str:
    return UNKNOWN if view.rate is None else f"{view.rate:,.1f} records/s"


def _failed(view: RunView) -> str:
    share = f" ({view.failure_rate * 100:.1f}%)" if view.failed else ""
    return f"{_count(view.failed)}{share}"


def _of(done: int, total: int | None) -> str:
    return _count(done) if total is None else f"{_count(done)} of {_count(total)}"


def _guard(view: RunView) -> str:
    return f"{STATE_ICONS.get(view.guard.state, '')} {view.guard.state}".strip()


def run_message(view: RunView, *, sandbox: bool = False) -> tuple[str, list[Block]]:
    """The run's one message: bar, figures, rate, ETA (or duration once finished), guard state."""
    title = STATUS_TITLES.get(view.status, view.status)
    bar = _bar(view)
    summary = f"*{percent(view.fraction)}*  ·  {_of(view.processed, view.total_records)} records"
    timing = ("Duration", human_duration(view.elapsed)) if view.finished else ("ETA", _eta(view))
    blocks: list[Block] = [
        header(f"{title}: {view.name}"),
        section(f"`{bar}`  {summary}" if bar else summary),
        fields(
            [
                ("Records ok", _count(view.ok)),
                ("Records failed", _failed(view)),
                ("Batches", _of(view.batches, view.total_batches)),
                ("Rate", _rate(view)),
                timing,
                ("Guard", _guard(view)),
            ]
        ),
    ]
    if not view.finished and not view.guard.safe_to_import:
        blocks.append(section(f":rotating_light: *Unguarded import*: {view.guard.reason}."))
    blocks.append(context(_footer(view)))
    if sandbox:
        blocks.append(context(SANDBOX_NOTE))
    text = (
        f"{title}: {escape(view.name)}: {percent(view.fraction)}, "
        f"{_count(view.ok)} ok, {_count(view.failed)} failed, guard {view.guard.state}"
    )
    return text, blocks


def _eta(view: RunView) -> str:
    return UNKNOWN if view.eta is None else f"~{human_duration(view.eta)}"


def _footer(view: RunView) -> str:
    parts = [f"Run `{view.id}`"]
    if view.source:
        parts.append(f"source `{clip(escape(view.source), 200)}`")
    parts.append(f"started {slack_date(view.created_at)}")
    if view.last_batch_at is not None:
        parts.append(f"last report {slack_date(view.last_batch_at)}")
    return "  ·  ".join(parts)


def notice_message(
    notice: Notice, view: RunView, *, oncall: Sequence[str] = (), platform: str = ""
) -> tuple[str, list[Block]]:
    """A message for the run's thread: the unguarded warning, a failure alert, the final summary."""
    builders = {
        "unguarded": _unguarded,
        "failure_alert": _failure_alert,
        "failure_recovered": _recovered,
        "summary": _summary,
    }
    text = builders[notice.kind](notice, view, oncall, platform)
    return text, [section(text)]


def _unguarded(notice: Notice, view: RunView, oncall: Sequence[str], platform: str) -> str:
    who = " ".join(mention(person) for person in oncall)
    state = notice.guard_state or view.guard.state
    where = platform or "the helpdesk"
    return (
        f":rotating_light: *Unguarded import*: `{escape(view.name)}` is reporting batches while the "
        f"guard is *{state}*. {where} automations can fire on imported records (auto-replies, "
        "surveys, SLA timers). Pause them with `/migration pause`; import scripts can refuse to start "
        "with `migration-guard report start --require-paused` or `GET /api/v1/guard`."
        + (f"\n{who}" if who else "")
    )


def _failure_alert(notice: Notice, view: RunView, oncall: Sequence[str], platform: str) -> str:
    lines = [
        f":warning: *Failure rate {notice.rate or 0:.1%}* over the last {notice.window} batch(es) "
        f"(alert at {notice.threshold:.1%}). {_count(view.failed)} of {_count(view.processed)} "
        "records failed so far."
    ]
    lines += [f"• `{clip(escape(error), 300)}`" for error in notice.errors]
    return "\n".join(lines)


def _recovered(notice: Notice, view: RunView, oncall: Sequence[str], platform: str) -> str:
    return (
        f":white_check_mark: Failure rate back to {notice.rate or 0:.1%} over the last "
        f"{notice.window} batch(es)."
    )


def _summary(notice: Notice, view: RunView, oncall: Sequence[str], platform: str) -> str:
    title = STATUS_TITLES.get(view.status, view.status)
    rate = f", {_rate(view)} on average" if view.rate is not None else ""
    return (
        f"{title}: `{escape(view.name)}`: {_count(view.ok)} records ok, {_failed(view)} failed, "
        f"{_of(view.batches, view.total_batches)} batches in {human_duration(view.elapsed)}{rate}."
    )

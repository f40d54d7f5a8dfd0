"""Intercom: workflows can be read one at a time and never changed through the API.

Intercom's REST API has no endpoint to list, pause, resume or edit workflows. The only one is
`GET /export/workflows/{id}` (API version 2.15 and newer), which returns the workflow's definition
and `state` (live, draft or paused), or 403 `api_plan_restricted` where the workspace's plan
refuses exports. So:

- the inventory of workflow ids comes from people (they paste workflow links into Slack; the bot
  keeps the list), passed in as `inventory`;
- the only capability is MANUAL: the bot keeps a checklist with deep links, a person flips each
  workflow in Intercom's UI, and the bot verifies by exporting it again where the plan allows;
- leaks are detected afterwards from conversation parts a workflow left on imported conversations
  (`workflow_events`).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from adapters.base import (
    Action,
    Automation,
    AutomationGone,
    Capability,
    EditNotPossible,
    KindInfo,
    PlatformError,
)
from adapters.http import HttpTarget, Sleep, build_client, error_message

API_VERSION = "2.16"
EXPORT_SINCE = (2, 15)  # first numbered API version with GET /export/workflows/{id}
RATE_PER_SECOND = 10_000 / 60  # a private app's documented 10,000 calls per minute
KIND = "workflow"
LIVE, PAUSED, DRAFT = "live", "paused", "draft"
PLAN_RESTRICTED = "api_plan_restricted"
NOTHING_TRACKED = "nothing_tracked"
WORKFLOW_PART_TYPES = frozenset({"operator_workflow_event", "conversation_attribute_updated_by_workflow"})
# Fields of an export that move without anyone changing the workflow (or that `updated_at` carries).
VOLATILE = frozenset({"updated_at", "exported_at", "export_version"})
APP_HOSTS = {
    "api.intercom.io": "app.intercom.com",
    "api.eu.intercom.io": "app.eu.intercom.com",
    "api.au.intercom.io": "app.au.intercom.com",
}
ANY_APP = "_"  # Intercom's placeholder: app.intercom.com/a/apps/_/... opens the admin's current workspace
_WORKFLOW_ID = re.compile(r"\d{1,20}")
_WORKFLOW_PATH = re.compile(r"/workflows/(\d{1,20})(?:/|$)")


def intercom_headers(token: str, version: str = API_VERSION) -> dict[str, str]:
    """Headers every Intercom call carries: the bearer token and the API version."""
    return {"Authorization": f"Bearer {token}", "Intercom-Version": version, "Accept": "application/json"}


def intercom_target(
    base_url: str,
    token: str,
    *,
    version: str = API_VERSION,
    rate_per_second: float = RATE_PER_SECOND,
    concurrency: int = 8,
    transport: httpx.AsyncBaseTransport | None = None,
    sleep: Sleep = asyncio.sleep,
) -> HttpTarget:
    """An HttpTarget for one Intercom workspace, waiting for `X-RateLimit-Reset` on 429."""
    client = build_client(base_url, headers=intercom_headers(token, version), transport=transport)
    return HttpTarget(
        client,
        rate_per_second=rate_per_second,
        concurrency=concurrency,
        reset_headers=("X-RateLimit-Reset",),
        sleep=sleep,
    )


def app_host(api_base_url: str | httpx.URL) -> str:
    """Intercom's web app host for an API host (US, EU and AU regions); US for anything else."""
    return APP_HOSTS.get(httpx.URL(str(api_base_url)).host, "app.intercom.com")


def workflow_url(app_id: str | None, workflow_id: str, *, host: str = "app.intercom.com") -> str:
    """Deep link to one workflow in Intercom's Workflows UI. Without the workspace's app id, the
    link uses Intercom's `_` placeholder, which opens the admin's current workspace."""
    app, workflow = quote(app_id or ANY_APP, safe=""), quote(workflow_id, safe="")
    return f"https://{host}/a/apps/{app}/automation/workflows/{workflow}"


def conversation_url(app_id: str | None, conversation_id: str, *, host: str = "app.intercom.com") -> str:
    """Deep link to one conversation in Intercom's Inbox."""
    app, conversation = quote(app_id or ANY_APP, safe=""), quote(conversation_id, safe="")
    return f"https://{host}/a/inbox/{app}/inbox/conversation/{conversation}"


def parse_workflow_ref(text: str) -> str:
    """The workflow id in what a person pastes: a bare id (`12345`) or a link to the workflow
    (`https://app.intercom.com/a/apps/abc123/automation/workflows/12345`, any region, any trailing
    path or query, also Slack's `<url>` / `<url|label>` wrapping). Raises ValueError otherwise."""
    candidate = text.strip()
    if candidate.startswith("<") and candidate.endswith(">"):
        candidate = candidate[1:-1].split("|", 1)[0].strip()
    if _WORKFLOW_ID.fullmatch(candidate):
        return candidate
    shown = candidate if len(candidate) <= 80 else candidate[:77] + "..."
    problem = (
        f"{shown!r} is not an Intercom workflow: paste the workflow's link from Intercom's Workflows page "
        "(https://app.intercom.com/a/apps/…/automation/workflows/12345) or its numeric id"
    )
    parts = urlsplit(candidate if "://" in candidate else f"https://{candidate}")
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not (
        host == "intercom.com" or host.endswith(".intercom.com")
    ):
        raise ValueError(problem)
    match = _WORKFLOW_PATH.search(parts.path)
    if match is None:
        raise ValueError(problem)
    return match.group(1)


def _version_tuple(version: str) -> tuple[int, ...] | None:
    if re.fullmatch(r"\d+(\.\d+)*", version.strip()):
        return tuple(int(part) for part in version.strip().split("."))
    return None  # "Preview" and anything else newer than the numbered versions


@dataclass(frozen=True)
class WorkflowEvent:
    """Evidence that a workflow acted on a conversation (a part it left there)."""

    conversation_id: str
    part_id: str
    part_type: str  # operator_workflow_event | conversation_attribute_updated_by_workflow
    workflow_name: str | None
    created_at: datetime | None
    url: str  # the conversation in Intercom's Inbox


class IntercomPlatform:
    """Intercom workspace: read-only workflows, guarded by a manual checklist.

    `inventory` returns the ids of the workflows the bot tracks (Intercom cannot list them);
    `app_id` is the workspace's id code used in web links (looked up once with `GET /me` when
    not given). The client must send `Intercom-Version` 2.15 or newer; one without the header gets
    2.16, since an older version would answer 404 for every export and look like deletions.
    """

    name = "intercom"
    display_name = "Intercom"
    kinds: Mapping[str, KindInfo] = {
        KIND: KindInfo(name=KIND, label="Workflow", capabilities=frozenset({Capability.MANUAL})),
    }

    def __init__(
        self,
        http: HttpTarget,
        *,
        inventory: Callable[[], Awaitable[list[str]]],
        app_id: str | None = None,
    ):
        version = http.client.headers.get("Intercom-Version")
        if version is None:
            http.client.headers["Intercom-Version"] = API_VERSION
        else:
            numbers = _version_tuple(version)
            if numbers is not None and numbers < EXPORT_SINCE:
                raise ValueError(
                    f"Intercom-Version {version} has no workflow export; "
                    f"use {API_VERSION} (or 2.15 and newer)"
                )
        self._http = http
        self._inventory = inventory
        self._app_id = app_id
        self._app_lock = asyncio.Lock()
        self._host = app_host(http.client.base_url)
        self.missing: list[str] = []  # tracked ids the last list_automations found deleted

    # ------------------------------------------------------------------ reading

    async def list_automations(self) -> list[Automation]:
        """Export every tracked workflow (HttpTarget bounds the concurrency). Tracked workflows
        that no longer exist are left out and their ids kept in `missing`. An empty inventory is
        an error, not an empty workspace: a pause of nothing would report the guard paused."""
        ids = list(dict.fromkeys(str(workflow_id) for workflow_id in await self._inventory()))
        if not ids:
            raise PlatformError(
                "no workflows are tracked yet. Intercom's API cannot list workflows, so the guard knows "
                "only the ones people add: track each by its link from Intercom's Workflows page",
                code=NOTHING_TRACKED,
            )
        results = await asyncio.gather(*(self._export_or_gone(workflow_id) for workflow_id in ids))
        self.missing = [workflow_id for workflow_id, found in zip(ids, results, strict=True) if found is None]
        return [found for found in results if found is not None]

    async def get_automation(self, kind: str, automation_id: str) -> Automation:
        if kind != KIND:
            raise PlatformError(f"Intercom has no automations of kind {kind!r}; only workflows")
        return await self._export(str(automation_id))

    async def _export_or_gone(self, workflow_id: str) -> Automation | None:
        try:
            return await self._export(workflow_id)
        except AutomationGone:
            return None

    async def _export(self, workflow_id: str) -> Automation:
        if not workflow_id.strip():
            raise PlatformError("an empty Intercom workflow id")
        response = await self._http.request("GET", f"/export/workflows/{quote(workflow_id, safe='')}")
        url = workflow_url(await self._app_code(), workflow_id, host=self._host)
        if response.status_code == 200:
            return self._automation(workflow_id, _json(response), url)
        code = _error_code(response)
        if response.status_code == 403 and code == PLAN_RESTRICTED:
            # The plan refuses exports: the workflow is still guarded by hand, state unknown.
            return Automation(
                kind=KIND,
                id=workflow_id,
                name=workflow_id,
                enabled=None,
                definition={"state": None, "export": PLAN_RESTRICTED},
                url=url,
            )
        if response.status_code == 404:
            raise AutomationGone(f"Intercom workflow {workflow_id} not found", status=404, code=code)
        raise PlatformError(
            f"exporting Intercom workflow {workflow_id}: {error_message(response)}",
            status=response.status_code,
            code=code,
        )

    def _automation(self, workflow_id: str, body: Any, url: str) -> Automation:
        workflow = body.get("workflow") if isinstance(body, dict) else None
        if not isinstance(workflow, dict):
            raise PlatformError(f"Intercom's export of workflow {workflow_id} has no workflow", status=200)
        state = workflow.get("state")
        definition = {key: value for key, value in workflow.items() if key not in VOLATILE}
        definition["state"] = state
        return Automation(
            kind=KIND,
            id=str(workflow.get("id") or workflow_id),
            name=str(workflow.get("title") or workflow_id),
            enabled=_enabled(state),
            definition=definition,
            updated_at=workflow.get("updated_at"),
            url=url,
        )

    async def _app_code(self) -> str:
        """The workspace id code used in web links: given, or asked once from `GET /me`; Intercom's
        `_` placeholder when that fails."""
        if self._app_id is not None:
            return self._app_id
        async with self._app_lock:
            if self._app_id is None:
                code = ANY_APP
                try:
                    response = await self._http.request("GET", "/me")
                    if response.status_code == 200:
                        app = _json(response).get("app") or {}
                        code = str(app.get("id_code") or ANY_APP)
                except (PlatformError, ValueError, AttributeError):
                    code = ANY_APP
                self._app_id = code
            return self._app_id

    # ------------------------------------------------------------------ planning and writing

    def edit(self, automation: Automation, action: Action, tag: str) -> Automation:
        """Pure: the workflow as it will be once a person has done `action` in Intercom's UI.

        Only Action.MANUAL exists here, and it flips the state: a live workflow becomes paused
        (the pause plan) and a paused one becomes live (the restore plan; INVERSE[MANUAL] is
        MANUAL, so the engine expresses "set it live again" as `edit(paused_workflow, MANUAL)`).
        The engine must therefore only plan MANUAL on pause for workflows that are live
        (`enabled is True`) or unreadable (`enabled is None`).

        A workflow whose state the bot cannot read (plan-restricted export) is returned unchanged:
        the person's tick in the checklist is the only evidence, and nothing can be verified.
        A draft never runs, so there is nothing to pause: EditNotPossible. Every other action is
        EditNotPossible, since the API can neither toggle nor edit workflows.
        """
        if action is not Action.MANUAL:
            raise EditNotPossible(
                f"Intercom workflows cannot be changed through the API ({action.value}); "
                "a person pauses them in Intercom (manual)",
                code="manual_only",
            )
        if automation.kind != KIND:
            raise EditNotPossible(f"Intercom has no automations of kind {automation.kind!r}")
        state = automation.definition.get("state")
        if state is None:
            return automation
        target = {LIVE: PAUSED, PAUSED: LIVE}.get(state)
        if target is None:
            raise EditNotPossible(
                f"Intercom workflow {automation.name!r} is {state}: it does not run, nothing to change",
                code=f"state_{state}",
            )
        definition = {**automation.definition, "state": target}
        return Automation(
            kind=automation.kind,
            id=automation.id,
            name=automation.name,
            enabled=_enabled(target),
            definition=definition,
            updated_at=automation.updated_at,
            url=automation.url,
        )

    async def write(self, desired: Automation) -> Automation:
        """Always raises EditNotPossible: Intercom has no API that changes a workflow."""
        state = desired.definition.get("state")
        what = f"set it {state}" if state else "change it"
        where = desired.url or workflow_url(self._app_id, desired.id, host=self._host)
        raise EditNotPossible(
            f"Intercom has no API to change workflow {desired.name!r}; "
            f"a person must {what} in Intercom: {where}",
            code="manual_only",
        )

    # ------------------------------------------------------------------ links for people

    async def workflow_link(self, workflow_id: str) -> str:
        """Deep link to one workflow in this workspace's Workflows UI (its region's host)."""
        return workflow_url(await self._app_code(), str(workflow_id), host=self._host)

    async def conversation_link(self, conversation_id: str) -> str:
        """Deep link to one conversation in this workspace's Inbox (its region's host)."""
        return conversation_url(await self._app_code(), str(conversation_id), host=self._host)

    # ------------------------------------------------------------------ detection

    async def workflow_events(self, conversation_id: str) -> list[WorkflowEvent]:
        """Parts a workflow left on a conversation (`operator_workflow_event`,
        `conversation_attribute_updated_by_workflow`), oldest first; [] for an unknown conversation.
        Intercom returns at most the 500 most recent parts."""
        conversation_id = str(conversation_id)
        response = await self._http.request("GET", f"/conversations/{quote(conversation_id, safe='')}")
        if response.status_code == 404:
            return []
        if response.status_code != 200:
            raise PlatformError(
                f"reading Intercom conversation {conversation_id}: {error_message(response)}",
                status=response.status_code,
                code=_error_code(response),
            )
        body = _json(response)
        parts = ((body.get("conversation_parts") or {}) if isinstance(body, dict) else {}).get(
            "conversation_parts"
        ) or []
        url = conversation_url(await self._app_code(), conversation_id, host=self._host)
        events = []
        for part in parts:
            if not isinstance(part, dict) or part.get("part_type") not in WORKFLOW_PART_TYPES:
                continue
            details = part.get("event_details") or {}
            workflow = details.get("workflow") if isinstance(details, dict) else None
            name = workflow.get("name") if isinstance(workflow, dict) else None
            created = part.get("created_at")
            events.append(
                WorkflowEvent(
                    conversation_id=conversation_id,
                    part_id=str(part.get("id")),
                    part_type=str(part["part_type"]),
                    workflow_name=str(name) if name is not None else None,
                    created_at=datetime.fromtimestamp(created, UTC) if isinstance(created, int) else None,
                    url=url,
                )
            )
        return events

    async def aclose(self) -> None:
        await self._http.client.aclose()


def _enabled(state: Any) -> bool | None:
    if state == LIVE:
        return True
    if state in (PAUSED, DRAFT):
        return False
    return None


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError as error:
        raise PlatformError(
            f"Intercom answered HTTP {response.status_code} without JSON", status=response.status_code
        ) from error


def _error_code(response: httpx.Response) -> str | None:
    """The first `code` of Intercom's error list (`{"type": "error.list", "errors": [...]}`)."""
    try:
        body = response.json()
    except ValueError:
        return None
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        code = errors[0].get("code")
        return str(code) if code is not None else None
    return None

"""Platform adapters, registered here explicitly: platform name -> adapter class."""

from __future__ import annotations

from adapters.intercom import IntercomPlatform
from adapters.sandbox import SandboxPlatform
from adapters.zendesk import ZendeskPlatform

PLATFORMS: dict[str, type] = {
    "sandbox": SandboxPlatform,
    "zendesk": ZendeskPlatform,
    "intercom": IntercomPlatform,
}

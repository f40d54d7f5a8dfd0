"""Slack action ids (a contract: tests and deployments depend on these names) and block ids."""

APPROVE_REQUEST = "approve_request"
REJECT_REQUEST = "reject_request"
RETRY_REQUEST = "retry_request"
REPLAN_REQUEST = "replan_request"
RESTORE_NOW = "restore_now"
SNOOZE_REMINDER = "snooze_reminder"
ACK_REMINDER = "ack_reminder"
CONFIRM_MANUAL_STEP = "confirm_manual_step"

SLASH_COMMAND = "/migration"

BLOCK_DECISION = "decision"

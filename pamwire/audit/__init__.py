"""The audit trail: durable, searchable statement and session events."""

"""The directory is the source of record for people and departments: it publishes
``directory.changes`` and consumes no topic, so it has no event handlers."""

HANDLERS: dict = {}  # type: ignore[type-arg]

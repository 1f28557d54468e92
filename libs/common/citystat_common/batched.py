"""Opt-in batches for a consumer (``ConsumerRunner(batched=Batched(...))``): which event types go
in batches, their handler and the bound; how a fetch's records split into runs that keep each
partition's order. The runner (citystat_common.consumer) applies a run as one unit of work."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import ConsumerRecord

from citystat_common.events import Envelope
from citystat_common.logging import correlation_id_var
from citystat_common.uow import UnitOfWork

# A batch handler gets the batch's new events in delivery order (at most one per event id).
BatchHandler = Callable[[UnitOfWork, Sequence[tuple[Envelope, Any]]], Awaitable[None]]


@dataclass(frozen=True)
class Batched:
    """The event types a consumer applies in batches, the handler that applies them and the bound."""

    types: frozenset[str]
    handler: BatchHandler
    max_events: int = 500


def in_order(handlers: Mapping[str, Callable[[UnitOfWork, Envelope, Any], Awaitable[None]]]) -> BatchHandler:
    """A batch handler that applies each event with its own handler, in delivery order, in the
    batch's one unit of work. For a consumer whose events need no aggregation, what a batch saves
    is a transaction per event (inbox read, inbox write, commit), and an event no longer waits for
    the commit of the one before it: escalation gets an indicator's ``status_changed`` and
    ``breached`` together, and the ticket opened after a whole transaction for the first. What each
    handler emits carries its own event's correlation id, as when applied alone."""

    async def apply(uow: UnitOfWork, items: Sequence[tuple[Envelope, Any]]) -> None:
        for envelope, payload in items:
            token = correlation_id_var.set(envelope.correlation_id)
            try:
                await handlers[envelope.type](uow, envelope, payload)
            finally:
                correlation_id_var.reset(token)

    return apply


def single(handler: BatchHandler) -> Callable[[UnitOfWork, Envelope, Any], Awaitable[None]]:
    """The batch handler for one event alone (the fallback, or a direct ``process``): a batch of one."""

    async def one(uow: UnitOfWork, envelope: Envelope, payload: Any) -> None:
        await handler(uow, [(envelope, payload)])

    return one


def batchable(record: ConsumerRecord, batched: Batched) -> bool:
    """A record of a batch type, by a look at its type only (the batch parses it in full; an
    unparseable one goes with the batch and is dead-lettered there)."""
    try:
        doc = orjson.loads(record.value or b"")
    except orjson.JSONDecodeError:
        return True
    return not isinstance(doc, dict) or not isinstance(doc.get("type"), str) or doc["type"] in batched.types


def split_runs(records: list[ConsumerRecord], batched: Batched | None) -> list[list[ConsumerRecord]]:
    """A partition's records in order, in runs: consecutive batch-type records together (up to the
    bound), every other record alone; the order of a key's events is kept."""
    if batched is None:
        return [[r] for r in records]
    runs: list[list[ConsumerRecord]] = []
    current: list[ConsumerRecord] = []
    for record in records:
        if batchable(record, batched):
            current.append(record)
            if len(current) >= batched.max_events:
                runs.append(current)
                current = []
            continue
        if current:
            runs.append(current)
            current = []
        runs.append([record])
    if current:
        runs.append(current)
    return runs

"""Group commit: the writes of concurrent requests share one transaction.

A 311 burst is many small, independent inserts; committing each on its own spends most of the
time in round trips and commits. ``GroupCommit`` gathers the items that arrive while the
previous batch is being written and hands them to one ``write(uow, items)`` call inside one unit
of work, which then commits (rows and outbox events together, as everywhere else). Every caller
still waits for *its* item's commit before answering, so nothing is acknowledged that is not
stored. If a batch fails, each of its items is retried alone, so one bad item fails by itself.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from citystat_common import metrics
from citystat_common.errors import is_database_down
from citystat_common.logging import get_logger
from citystat_common.uow import UnitOfWork

log = get_logger(__name__)

T = TypeVar("T")
R = TypeVar("R")

WriteBatch = Callable[[UnitOfWork, Sequence[T]], Awaitable[Sequence[R]]]


class GroupCommit(Generic[T, R]):
    def __init__(self, *, uow_factory: Callable[[], UnitOfWork], write: WriteBatch[T, R], max_batch: int = 100,
                 concurrency: int = 2, name: str = "group_commit"):
        self._uow_factory = uow_factory
        self._write = write
        self.max_batch = max_batch
        # Two transactions in flight: one is being built while the other waits for its commit.
        self.concurrency = concurrency
        self.name = name
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._flushers: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.batches = 0  # how many transactions were written (for tests and metrics)
        self.items = 0

    async def submit(self, item: T) -> R:
        """Write ``item`` in the next batch; returns once that batch has committed."""
        loop = self._loop
        if loop is None or loop.is_closed():  # get_running_loop() makes a getpid system call (3.11)
            loop = self._loop = asyncio.get_running_loop()
        fut: asyncio.Future[R] = loop.create_future()
        fut.add_done_callback(_retrieve)  # a caller that left must not leave an unread exception behind
        self._pending.append((item, fut))
        if len(self._flushers) < self.concurrency:
            # What arrives while the flushers write becomes their next batch. A fresh context: the
            # flusher serves many requests, so it must not carry the first one's correlation id.
            task = loop.create_task(self._drain(), name=self.name, context=contextvars.Context())
            self._flushers.add(task)
        # A caller that goes away (client disconnect) does not stop the write of its item.
        return await asyncio.shield(fut)

    async def _drain(self) -> None:
        try:
            await asyncio.sleep(0)  # let the requests already parsed in this loop turn join the batch
            while self._pending:
                batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
                await self._write_batch(batch)
        finally:
            # In the same step as the last look at _pending (no await between): a submit() that
            # comes after sees this flusher gone and starts another, so nothing is left waiting.
            task = asyncio.current_task()
            if task is not None:
                self._flushers.discard(task)  # type: ignore[arg-type]

    async def _write_batch(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        started = time.perf_counter()
        try:
            async with self._uow_factory() as uow:
                results = list(await self._write(uow, [item for item, _ in batch]))
                if len(results) != len(batch):
                    raise RuntimeError(f"{self.name}: {len(results)} results for {len(batch)} items")
                await uow.commit()
        except Exception as exc:  # noqa: BLE001 - delivered to the callers below
            if len(batch) == 1 or is_database_down(exc):
                # A lost connection may have lost the reply, not the write: writing the items
                # again could store them twice. Their callers get the error (503) and may retry.
                for _, fut in batch:
                    _settle(fut, exc=exc)
                return
            log.warning("group_commit_batch_failed", batch=len(batch), error=repr(exc), name=self.name)
            done = 0
            try:
                for one in batch:  # isolate the bad item: the others still commit
                    await self._write_batch([one])
                    done += 1
            except BaseException:
                for _, fut in batch[done:]:
                    _settle(fut, exc=asyncio.CancelledError())
                raise
            return
        except BaseException as exc:  # cancelled while writing (shutdown): nobody was answered
            for _, fut in batch:
                _settle(fut, exc=asyncio.CancelledError() if isinstance(exc, asyncio.CancelledError) else exc)
            raise
        self.batches += 1
        self.items += len(batch)
        metrics.GROUP_COMMIT_SIZE.labels(self.name).observe(len(batch))
        metrics.GROUP_COMMIT_SECONDS.labels(self.name).observe(time.perf_counter() - started)
        for (_, fut), result in zip(batch, results, strict=True):
            _settle(fut, result=result)

    async def close(self) -> None:
        """Finish what was submitted (the web lifespan calls this before disposing of the engine)."""
        while self._flushers or self._pending:
            if not self._flushers:
                self._flushers.add(asyncio.create_task(self._drain(), name=self.name, context=contextvars.Context()))
            await asyncio.shield(asyncio.gather(*self._flushers, return_exceptions=True))


def _retrieve(fut: asyncio.Future[R]) -> None:
    if not fut.cancelled():
        fut.exception()


def _settle(fut: asyncio.Future[R], *, result: R | None = None, exc: BaseException | None = None) -> None:
    if fut.done():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(result)  # type: ignore[arg-type]

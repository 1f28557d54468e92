"""GroupCommit without I/O: a fake unit of work records what was committed."""

from __future__ import annotations

import asyncio

import pytest

from citystat_common.batching import GroupCommit


class FakeUoW:
    committed: list[list[int]] = []

    def __init__(self) -> None:
        self.items: list[int] = []

    async def __aenter__(self) -> FakeUoW:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.items = []  # rolled back unless committed

    async def commit(self) -> None:
        FakeUoW.committed.append(list(self.items))


@pytest.fixture(autouse=True)
def _reset() -> None:
    FakeUoW.committed = []


async def write(uow: FakeUoW, items: list[int]) -> list[int]:
    await asyncio.sleep(0.01)  # a round trip: later submissions pile up meanwhile
    if any(i < 0 for i in items):
        raise ValueError(f"bad item in {items}")
    uow.items.extend(items)
    return [i * 10 for i in items]


def committer(**kw: object) -> GroupCommit:
    return GroupCommit(uow_factory=FakeUoW, write=write, **kw)  # type: ignore[arg-type]


async def test_concurrent_submissions_share_transactions_and_get_their_own_results():
    gc = committer(max_batch=50, concurrency=1)
    results = await asyncio.gather(*(gc.submit(i) for i in range(40)))
    assert results == [i * 10 for i in range(40)]
    assert sorted(i for batch in FakeUoW.committed for i in batch) == list(range(40))
    assert len(FakeUoW.committed) < 40 and gc.batches == len(FakeUoW.committed)


async def test_batches_respect_the_maximum_size():
    gc = committer(max_batch=7, concurrency=1)
    await asyncio.gather(*(gc.submit(i) for i in range(30)))
    assert max(len(b) for b in FakeUoW.committed) <= 7
    assert sum(len(b) for b in FakeUoW.committed) == 30


async def test_a_bad_item_fails_alone_and_the_others_commit():
    gc = committer(max_batch=50, concurrency=1)
    outcomes = await asyncio.gather(*(gc.submit(i) for i in [1, 2, -3, 4, 5]), return_exceptions=True)
    assert outcomes[:2] == [10, 20] and outcomes[3:] == [40, 50]
    assert isinstance(outcomes[2], ValueError)
    assert sorted(i for b in FakeUoW.committed for i in b) == [1, 2, 4, 5]


async def test_concurrency_caps_transactions_in_flight():
    in_flight = 0
    peak = 0

    async def slow(uow: FakeUoW, items: list[int]) -> list[int]:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.02)
        in_flight -= 1
        uow.items.extend(items)
        return items

    gc = GroupCommit(uow_factory=FakeUoW, write=slow, max_batch=3, concurrency=2)  # type: ignore[arg-type]
    for wave in range(5):  # submissions keep arriving while batches are written
        await asyncio.gather(*(gc.submit(wave * 10 + i) for i in range(6)), asyncio.sleep(0.005))
    assert peak == 2
    assert sum(len(b) for b in FakeUoW.committed) == 30


async def test_a_caller_that_leaves_does_not_cancel_the_write():
    gc = committer(max_batch=50, concurrency=1)
    task = asyncio.create_task(gc.submit(7))
    await asyncio.sleep(0)  # queued
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await gc.close()
    assert FakeUoW.committed == [[7]]  # stored even though nobody waits for the answer


async def test_an_item_submitted_as_the_last_flusher_finishes_is_still_written():
    # A handler already queued in the loop turn in which the flusher finds the queue empty and
    # ends: it must not count that flusher as still running (its item would wait forever).
    gc = committer(max_batch=50, concurrency=1)
    first = asyncio.create_task(gc.submit(1))

    async def late() -> int:
        # polls every loop turn (not an Event), so it lands in the very turn the flusher ends
        while gc.items < 1:  # noqa: ASYNC110
            await asyncio.sleep(0)
        return await gc.submit(2)

    assert await asyncio.wait_for(asyncio.gather(first, late()), 2) == [10, 20]


async def test_a_lost_connection_fails_the_batch_without_writing_items_again():
    from sqlalchemy.exc import OperationalError

    calls: list[list[int]] = []

    async def flaky(uow: FakeUoW, items: list[int]) -> list[int]:
        calls.append(list(items))
        await asyncio.sleep(0.01)
        raise OperationalError("INSERT ...", {}, ConnectionResetError("connection reset"))

    gc = GroupCommit(uow_factory=FakeUoW, write=flaky, max_batch=50, concurrency=1)  # type: ignore[arg-type]
    outcomes = await asyncio.gather(*(gc.submit(i) for i in range(3)), return_exceptions=True)
    assert all(isinstance(o, OperationalError) for o in outcomes)
    assert len(calls) == 1  # the reply may be what was lost: the items are not written one by one


async def test_close_writes_what_is_still_queued():
    gc = committer(max_batch=50, concurrency=1)
    tasks = [asyncio.create_task(gc.submit(i)) for i in range(3)]
    await asyncio.sleep(0)
    await gc.close()
    assert [await t for t in tasks] == [0, 10, 20]


def test_one_committer_serves_successive_event_loops():
    """The committer keeps its loop (asking for the running loop costs a system call per request on
    Python 3.11); an app started again on a new loop must not get futures of the closed one."""
    gc = committer(max_batch=50, concurrency=1)

    async def burst(first: int) -> list[int]:
        return await asyncio.gather(*(gc.submit(i) for i in range(first, first + 5)))

    assert asyncio.run(burst(0)) == [0, 10, 20, 30, 40]
    assert asyncio.run(burst(5)) == [50, 60, 70, 80, 90]


async def test_each_batch_is_counted_with_its_size_and_write_time():
    from prometheus_client import REGISTRY

    def sample(metric: str) -> float:
        return REGISTRY.get_sample_value(metric, {"name": "metered"}) or 0.0

    before = sample("citystat_group_commit_batch_size_sum"), sample("citystat_group_commit_write_seconds_count")
    gc = GroupCommit(uow_factory=FakeUoW, write=write, max_batch=50, concurrency=1, name="metered")  # type: ignore[arg-type]
    await asyncio.gather(*(gc.submit(i) for i in range(12)))
    assert sample("citystat_group_commit_batch_size_sum") - before[0] == 12
    assert sample("citystat_group_commit_write_seconds_count") - before[1] == gc.batches
    assert sample("citystat_group_commit_write_seconds_sum") >= 0.01 * gc.batches  # each write sleeps 10 ms

"""stop_tasks: shutdown survives a lost cancellation and never waits past its bound."""

from __future__ import annotations

import asyncio
import logging

import pytest

from latentedit.aiotasks import stop_tasks


async def _swallows_first_cancel(ticks: list[int]) -> None:
    """A loop whose first cancellation is lost, as when it races a finishing inner await."""
    lost = False
    while True:
        try:
            await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            if lost:
                raise
            lost = True
            asyncio.current_task().uncancel()  # type: ignore[union-attr]
        ticks.append(1)


async def test_a_lost_cancellation_is_repeated_until_the_task_ends() -> None:
    ticks: list[int] = []
    task = asyncio.create_task(_swallows_first_cancel(ticks))
    await asyncio.sleep(0.05)
    # A single cancel() + await would hang here for good.
    await asyncio.wait_for(stop_tasks([task, None], timeout_s=5.0), 10.0)
    assert task.cancelled()


async def test_a_task_that_refuses_to_stop_is_left_after_the_bound(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                asyncio.current_task().uncancel()  # type: ignore[union-attr]

    task = asyncio.create_task(stubborn(), name="stubborn")
    await asyncio.sleep(0.03)  # inside its loop (a task cancelled before it starts just ends)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with caplog.at_level(logging.WARNING, logger="latentedit.aiotasks"):
        await stop_tasks([task], timeout_s=0.3)
    assert 0.3 <= loop.time() - started < 3.0
    assert not task.done()
    assert "stubborn did not stop" in caplog.text
    release.set()
    await task


async def test_failures_are_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    async def boom() -> None:
        raise ValueError("lane broke")

    task = asyncio.create_task(boom(), name="boom")
    await asyncio.sleep(0)
    with caplog.at_level(logging.WARNING, logger="latentedit.aiotasks"):
        await stop_tasks([task])
    assert "lane broke" in caplog.text

"""The server's log handler: one write per event-loop iteration for the access log,
at once for warnings, errors and lines from other threads, nothing lost at flush."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import threading

from server.__main__ import JsonFormatter, LoopBatchedHandler


class Recording(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


def make_logger() -> tuple[logging.Logger, LoopBatchedHandler, Recording]:
    stream = Recording()
    handler = LoopBatchedHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(f"test.batched.{id(stream)}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return logger, handler, stream


def messages(stream: Recording) -> list[str]:
    return [json.loads(line)["message"] for line in stream.getvalue().splitlines()]


async def test_lines_of_one_iteration_are_written_together() -> None:
    logger, _, stream = make_logger()
    logger.info("one")
    logger.info("two")
    assert stream.writes == []  # not before the loop's next turn
    await asyncio.sleep(0)
    assert len(stream.writes) == 1 and messages(stream) == ["one", "two"]
    logger.info("three")
    await asyncio.sleep(0)
    assert len(stream.writes) == 2 and messages(stream)[-1] == "three"


async def test_warnings_and_other_threads_are_written_at_once_in_order() -> None:
    logger, _, stream = make_logger()
    logger.info("waiting")
    logger.warning("urgent")
    assert len(stream.writes) == 1 and messages(stream) == ["waiting", "urgent"]
    thread = threading.Thread(target=logger.info, args=("from a thread",))
    thread.start()
    thread.join()
    assert messages(stream)[-1] == "from a thread"


async def test_flush_writes_what_waits() -> None:
    logger, handler, stream = make_logger()
    logger.info("last words")
    handler.flush()
    assert messages(stream) == ["last words"]
    await asyncio.sleep(0)  # the scheduled write finds nothing left
    assert len(stream.writes) == 1


def test_outside_a_loop_lines_are_written_at_once() -> None:
    logger, _, stream = make_logger()
    logger.info("plain")
    assert messages(stream) == ["plain"]

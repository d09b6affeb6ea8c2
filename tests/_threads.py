"""Real threads for concurrency tests: released together, every exception reported."""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from typing import Any

JOIN_TIMEOUT = 120.0


def run_threads(
    count: int, work: Callable[[int], Any], *, timeout: float = JOIN_TIMEOUT
) -> list[Any]:
    """Run ``work(i)`` for i in 0..count-1 on ``count`` threads released together by a
    barrier; return the results in thread order. Fails the test with every exception raised
    in any thread, or when a thread is still running ``timeout`` seconds after the join."""
    barrier = threading.Barrier(count, timeout=30)
    results: list[Any] = [None] * count
    errors: list[str] = []

    def body(index: int) -> None:
        try:
            barrier.wait()
            results[index] = work(index)
        except BaseException:
            errors.append(f"thread {index}:\n{traceback.format_exc()}")

    threads = [threading.Thread(target=body, args=(i,), name=f"t{i}") for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not [t.name for t in threads if t.is_alive()], "threads still running"
    assert errors == [], "\n".join(errors)
    return results

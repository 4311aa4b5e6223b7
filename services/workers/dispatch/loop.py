"""One asyncio event loop per dispatcher, in a daemon thread, for the asyncio client libraries.

Worker threads are synchronous; aiokafka and nats-py are not. A dispatcher built on them owns
a `LoopThread`, keeps its clients on that loop, and has each worker thread submit one coroutine
per attempt and block until it finishes, the attempt's wait limit passes, or the attempt is
cancelled from another thread (`Delivery.cancelled`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from typing import Any, TypeVar

from shared.errors import RetryableDispatchError

T = TypeVar("T")

# How often a waiting worker thread looks at its attempt's cancel flag.
CANCEL_POLL = timedelta(milliseconds=100)
CLOSE_WAIT = timedelta(seconds=5)


class LoopThread:
    def __init__(self, name: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(
        self, coro: Coroutine[Any, Any, T], timeout: timedelta, cancelled: threading.Event
    ) -> T:
        """Run `coro` on the loop; its own exceptions, and TimeoutError once `timeout` has
        passed, are raised here in the calling thread."""
        future = asyncio.run_coroutine_threadsafe(
            asyncio.wait_for(coro, timeout.total_seconds()), self._loop
        )
        while True:
            done, _ = concurrent.futures.wait([future], CANCEL_POLL.total_seconds())
            if done:
                return future.result()
            if cancelled.is_set():
                future.cancel()
                raise RetryableDispatchError("attempt aborted before the server answered")

    def shutdown(self, cleanup: Callable[[], Awaitable[None]]) -> None:
        """Await `cleanup` on the loop (closing clients), then stop the loop and its thread."""
        if not self._thread.is_alive():
            return

        async def finish() -> None:
            try:
                await cleanup()
            finally:
                self._loop.stop()

        asyncio.run_coroutine_threadsafe(finish(), self._loop)
        self._thread.join(CLOSE_WAIT.total_seconds())
        if not self._thread.is_alive():
            self._loop.close()

"""One deadline for the whole run (`--timeout`), and the threads that keep to it.

A per-request read timeout is not enough: a server that trickles one byte every few seconds resets it
at every byte. So the run happens in a worker thread while the caller waits for the deadline; when it
passes, every socket the run opened is shut down (a blocked read returns at once), every later call
fails at its start, and the caller gets one line naming the oldest request still waiting:

    VaultConnectionError: Timeout: no answer from Vault at http://127.0.0.1:8200 within 120 s
    (reading secret/staging/redis/password)

Threads are daemons, so a call stuck in a library whose sockets are not tracked (botocore) can never
keep the process alive after the answer.
"""

import contextlib
import itertools
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from components.verify.report import CannotCheck

T = TypeVar("T")
R = TypeVar("R")

CONNECT_TIMEOUT = 10.0
"""Seconds to open one connection (never more than what is left of the deadline)."""


class Expired(Exception):
    """Raised inside the run once the deadline has passed (the caller reports the timeout)."""


class Deadline:
    def __init__(self, seconds: float, error: str, server: str, address: str) -> None:
        """`error`: the runbook's error name (`VaultConnectionError`); `server`: `Vault` or `AWS`."""
        self.seconds = seconds
        self.error, self.server, self.address = error, server, address
        self.ends = time.monotonic() + seconds
        self.expired = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._in_flight: dict[int, tuple[float, str]] = {}
        self._ids = itertools.count()
        self._last = "starting"
        self._first_timeout: str | None = None

    def remaining(self) -> float:
        return max(0.0, self.ends - time.monotonic())

    def timeouts(self) -> tuple[float, float]:
        """(connect, read) timeouts for one request: what is left of the deadline, at most."""
        left = max(self.remaining(), 0.001)
        return min(CONNECT_TIMEOUT, left), left

    @contextmanager
    def doing(self, what: str) -> Iterator[None]:
        """Mark a request in flight (`reading secret/staging/...`), so a timeout can name it."""
        if self.expired or self.remaining() == 0:
            raise Expired(what)
        token = next(self._ids)
        with self._lock:
            self._in_flight[token] = (time.monotonic(), what)
            self._last = what
        try:
            yield
        finally:
            with self._lock:
                del self._in_flight[token]

    def register(self, sock: socket.socket) -> None:
        """A socket this run opened: shut down when the deadline passes."""
        with self._lock:
            self._sockets.append(sock)
        if self.expired:
            self._shut(sock)

    def expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            self._shut(sock)

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):  # already closed
            sock.shutdown(socket.SHUT_RDWR)

    def waiting_for(self) -> str:
        """The first request that timed out, else the oldest still in flight, else the last one started."""
        with self._lock:
            if self._first_timeout:
                return self._first_timeout
            if self._in_flight:
                return min(self._in_flight.values())[1]
            return self._last

    def message(self, what: str | None = None) -> str:
        return (
            f"{self.error}: Timeout: no answer from {self.server} at {self.address} within {self.seconds:g} s "
            f"({what or self.waiting_for()})"
        )

    def timed_out(self, what: str | None = None) -> CannotCheck:
        """The error for a request that got no answer in time (a request's own read timeout and the
        deadline fire together: whichever comes first, the line names the request that timed out)."""
        if what:
            with self._lock:
                self._first_timeout = self._first_timeout or what
        return CannotCheck(self.message(what))


def within(deadline: Deadline, work: Callable[[], T]) -> T:
    """`work()` on a daemon thread; its result or exception, or CannotCheck once the deadline passes."""
    outcome: list[Any] = []
    done = threading.Event()

    def run() -> None:
        try:
            outcome.append((True, work()))
        except BaseException as e:  # handed to the caller's thread
            outcome.append((False, e))
        finally:
            done.set()

    threading.Thread(target=run, name="verify", daemon=True).start()
    if not done.wait(deadline.remaining()):
        deadline.expire()
        raise deadline.timed_out()
    finished, value = outcome[0]
    if finished:
        return value  # type: ignore[no-any-return]
    if isinstance(value, Expired) or (deadline.expired and not isinstance(value, CannotCheck)):
        raise deadline.timed_out()
    raise value


def call(task: Callable[[], R]) -> R:
    """`parallel(call, tasks, n)` runs a list of different tasks."""
    return task()


def parallel(work: Callable[[T], R], items: Sequence[T], workers: int) -> list[R]:
    """`[work(i) for i in items]` on up to `workers` daemon threads, in order. The first exception stops
    the remaining items and is raised."""
    results: list[R | None] = [None] * len(items)
    errors: list[BaseException] = []
    indexes = iter(range(len(items)))
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                if errors:
                    return
                index = next(indexes, None)
            if index is None:
                return
            try:
                results[index] = work(items[index])
            except BaseException as e:
                with lock:
                    errors.append(e)
                return

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(min(workers, len(items)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results  # type: ignore[return-value]

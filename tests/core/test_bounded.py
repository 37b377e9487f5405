"""Bounded calls of plugin code: threads are kept for the next call, never after a call
was abandoned, and a call sees nothing the previous one left behind."""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable

import pytest

from upkeeper.bounded import Outcome, ThreadPool, run_bounded

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="unset")


def wait_for(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_consecutive_calls_reuse_one_thread() -> None:
    names = []

    def call() -> str:
        names.append(threading.current_thread().name)
        return "ok"

    first = run_bounded(call, 5, name="upkeeper-check-a")
    second = run_bounded(call, 5, name="upkeeper-check-b")
    assert (first.finished, first.value, second.finished, second.value) == (True, "ok",
                                                                            True, "ok")
    assert first.thread is second.thread and first.thread is not threading.current_thread()
    assert names == ["upkeeper-check-a", "upkeeper-check-b"]  # named after each call


def test_an_abandoned_thread_is_never_reused_and_ends_with_its_call() -> None:
    pool = ThreadPool()
    release = threading.Event()
    hung = pool.run(release.wait, 0.05, name="upkeeper-check-stuck")
    assert not hung.finished and hung.thread is not None and hung.thread.is_alive()
    assert hung.thread.name == "upkeeper-check-stuck"
    after = pool.run(lambda: 42, 5, name="upkeeper-check-next")
    assert after.finished and after.value == 42 and after.thread is not hung.thread
    release.set()
    wait_for(lambda: not hung.thread.is_alive())  # type: ignore[union-attr]
    assert pool.idle() == 1  # only the thread of the finished call waits for more


def test_a_stopped_call_is_abandoned() -> None:
    pool = ThreadPool()
    stop, release = threading.Event(), threading.Event()
    stop.set()
    out = pool.run(release.wait, None, name="upkeeper-check-stopped", stop=stop)
    assert (out.finished, out.stopped) == (False, True)
    release.set()
    wait_for(lambda: out.thread is not None and not out.thread.is_alive())
    assert pool.idle() == 0


def test_each_call_starts_with_fresh_context_variables() -> None:
    pool = ThreadPool()

    def set_var() -> str:
        VAR.set("left over")
        return VAR.get()

    assert pool.run(set_var, 5, name="a").value == "left over"
    second = pool.run(VAR.get, 5, name="b")
    assert second.value == "unset"


@pytest.mark.parametrize("exc", [SystemExit(3), KeyboardInterrupt(), ValueError("x")])
def test_any_exception_is_handed_back_and_the_thread_goes_on(exc: BaseException) -> None:
    pool = ThreadPool()

    def boom() -> None:
        raise exc

    out = pool.run(boom, 5, name="boom")
    assert out.finished and out.error is exc
    again = pool.run(lambda: "fine", 5, name="after")
    assert again.value == "fine" and again.thread is out.thread


def test_idle_threads_end_after_a_while() -> None:
    pool = ThreadPool(idle_seconds=0.05)
    out = pool.run(lambda: 1, 5, name="short")
    assert out.thread is not None
    wait_for(lambda: not out.thread.is_alive())  # type: ignore[union-attr]
    assert pool.idle() == 0
    assert pool.run(lambda: 2, 5, name="later").value == 2  # a new thread, started again


def test_many_callers_at_once() -> None:
    pool = ThreadPool()
    start = threading.Barrier(12)
    results: dict[int, list[Outcome]] = {}

    def caller(n: int) -> None:
        start.wait()
        results[n] = [pool.run(lambda n=n, i=i: (n, i), 5, name=f"c{n}") for i in range(25)]

    callers = [threading.Thread(target=caller, args=(n,)) for n in range(12)]
    for t in callers:
        t.start()
    for t in callers:
        t.join()
    for n, outs in results.items():
        assert [o.value for o in outs] == [(n, i) for i in range(25)]
    assert len({o.thread for outs in results.values() for o in outs}) <= 12

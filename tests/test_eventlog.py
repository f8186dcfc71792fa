import threading
import time

from srx.eventlog import EventLog, merged


def test_keeps_the_first_and_the_newest_and_counts_the_rest() -> None:
    log = EventLog(first=3, last=4)
    for n in range(20):
        log.add("attempt", n=n)
    assert [e["n"] for e in log.items] == [0, 1, 2, 16, 17, 18, 19]
    assert log.left_out == 20 - 3 - 4 and len(log) == 7


def test_below_the_bound_nothing_is_left_out() -> None:
    log = EventLog(first=3, last=4)
    for n in range(6):
        log.add("loop", n=n)
    assert [e["n"] for e in log.items] == list(range(6)) and log.left_out == 0


def test_many_threads_lose_no_count() -> None:
    log = EventLog(first=10, last=10)

    def add() -> None:
        for _ in range(2000):
            log.add("x")

    threads = [threading.Thread(target=add) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(log) + log.left_out == 8000


def test_merged_is_in_time_order_and_sums_what_was_left_out() -> None:
    a, b = EventLog(first=1, last=1), EventLog()
    for log, kind in ((a, "lost"), (b, "server-lost"), (a, "attempt"), (a, "back"), (b, "server-back")):
        log.add(kind)
        time.sleep(0.002)  # apart in time: the order is by time
    events, left_out = merged(a, b)
    assert [e["event"] for e in events] == ["lost", "server-lost", "back", "server-back"]
    assert left_out == 1

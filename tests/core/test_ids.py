"""Row ids: time-ordered, strictly increasing per process, distinct across forked processes."""

from __future__ import annotations

import itertools
import multiprocessing
import time

from scrm.kit.ids import id_time_ms, new_id
from tests.helpers import run_concurrently


def test_ids_increase_and_carry_their_time() -> None:
    before = int(time.time() * 1000)
    ids = [new_id() for _ in range(20_000)]
    after = int(time.time() * 1000)
    assert all(a < b for a, b in itertools.pairwise(ids))
    assert before <= id_time_ms(ids[0]) <= id_time_ms(ids[-1]) <= after
    assert ids[-1] < 2**63  # fits a signed BIGINT


def test_threads_never_share_an_id() -> None:
    got: list[list[int]] = [[] for _ in range(4)]

    def work(i: int) -> None:
        got[i].extend(new_id() for _ in range(5_000))

    run_concurrently(work, 4)
    flat = [x for part in got for x in part]
    assert len(set(flat)) == len(flat)


def _first_low_bits(queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    queue.put(new_id() & ((1 << 20) - 1))


def test_forked_processes_draw_different_random_bits() -> None:
    new_id()  # the parent has drawn: children must not repeat its sequence
    time.sleep(0.005)  # ... in a later millisecond than the parent's last id
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    children = [ctx.Process(target=_first_low_bits, args=(queue,)) for _ in range(4)]
    for child in children:
        child.start()
    lows = [queue.get(timeout=30) for _ in children]
    for child in children:
        child.join(30)
    assert len(set(lows)) == 4  # 4 draws of 20 random bits: a repeat has odds of about 1 in 170,000

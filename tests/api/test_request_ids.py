"""Request ids are UUIDv7: time-ordered, random in their tail, never repeated."""

from __future__ import annotations

import os
import time
import uuid

from service import request_ids
from service.request_ids import new_request_id


def test_ids_are_rfc_9562_version_7_with_the_current_millisecond() -> None:
    before = time.time_ns() // 1_000_000
    ids = [new_request_id() for _ in range(1000)]
    after = time.time_ns() // 1_000_000
    for each in ids:
        assert len(each) == 32
        assert each == each.lower()
        parsed = uuid.UUID(hex=each)
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122
        assert before <= int(each[:12], 16) <= after


def test_later_ids_sort_after_earlier_ones() -> None:
    first = new_request_id()
    time.sleep(0.002)
    second = new_request_id()
    assert first < second


def test_random_tails_do_not_repeat_across_many_block_refills() -> None:
    # 20,000 ids take about 100 refills of the random block.
    ids = [new_request_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    assert len({each[13:] for each in ids}) == len(ids)


def test_a_forked_child_does_not_reuse_its_parents_random_digits() -> None:
    new_request_id()  # leaves unused digits in this process's block
    assert request_ids._unused
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next id and leave at once
        os.close(read)
        os.write(write, new_request_id().encode())
        os._exit(0)
    os.close(write)
    child_id = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    parent_next = new_request_id()
    assert child_id[13:] != parent_next[13:]

"""The outage journal: ordered, checksummed, bounded, one owner."""

from __future__ import annotations

import pytest

from service.store.journal import Journal, JournalBusy
from service.store.rows import to_row
from tests.store.records import make_record


def _rows(n, prefix="r"):
    return [to_row(make_record(f"{prefix}{i}")) for i in range(n)]


def _drain(journal):
    seen = []
    while (path := journal.oldest()) is not None:
        rows, bad = journal.read(path)
        assert bad == 0
        seen.extend(r[0] for r in rows)
        journal.remove(path)
    return seen


def test_rows_come_back_in_order_across_segments(tmp_path):
    """Rows appended over several segments are read back oldest first, then gone."""
    journal = Journal(tmp_path, max_bytes=16 * 1024 * 1024)
    journal.open()
    journal.segment_bytes = 4096  # force many segments
    for start in range(0, 60, 7):
        journal.append(_rows(7, prefix=f"b{start:02d}-"))

    seen = _drain(journal)
    journal.close()
    assert seen == [f"b{s:02d}-{i}" for s in range(0, 60, 7) for i in range(7)]
    assert not journal.pending and journal.size_bytes == 0


def test_a_restart_finds_what_was_left(tmp_path):
    """A journal reopened after close holds the same rows, sealed and ready."""
    first = Journal(tmp_path, max_bytes=1024 * 1024)
    first.open()
    first.append(_rows(5))
    first.close()

    second = Journal(tmp_path, max_bytes=1024 * 1024)
    second.open()
    assert second.pending
    assert _drain(second) == [f"r{i}" for i in range(5)]
    second.close()


def test_a_torn_write_is_detected_not_replayed(tmp_path):
    """A segment cut mid-record yields the whole records before it and counts the rest."""
    journal = Journal(tmp_path, max_bytes=1024 * 1024)
    journal.open()
    journal.append(_rows(3))
    journal.close()
    (segment,) = tmp_path.glob("segment-*.jnl")
    data = segment.read_bytes()
    segment.write_bytes(data[:-10])

    reopened = Journal(tmp_path, max_bytes=1024 * 1024)
    reopened.open()
    rows, bad = reopened.read(reopened.oldest())
    reopened.close()
    assert [r[0] for r in rows] == ["r0", "r1"]
    assert bad > 0


def test_a_flipped_byte_fails_its_checksum(tmp_path):
    """A corrupted record is not replayed: its checksum no longer matches."""
    journal = Journal(tmp_path, max_bytes=1024 * 1024)
    journal.open()
    journal.append(_rows(2))
    journal.close()
    (segment,) = tmp_path.glob("segment-*.jnl")
    data = bytearray(segment.read_bytes())
    data[-5] ^= 0x01
    segment.write_bytes(bytes(data))

    reopened = Journal(tmp_path, max_bytes=1024 * 1024)
    reopened.open()
    rows, bad = reopened.read(reopened.oldest())
    reopened.close()
    assert [r[0] for r in rows] == ["r0"]
    assert bad > 0


def test_append_stops_at_the_size_bound(tmp_path):
    """A full journal takes only what fits and says how many rows it took."""
    journal = Journal(tmp_path, max_bytes=64 * 1024)
    journal.open()
    taken = journal.append(_rows(500))
    size = journal.size_bytes
    journal.close()

    assert 0 < taken < 500
    assert size <= 64 * 1024
    assert sum(p.stat().st_size for p in tmp_path.glob("segment-*")) == size


def test_one_process_owns_a_journal_directory(tmp_path):
    """A second owner of the same directory is refused while the first holds it."""
    first = Journal(tmp_path, max_bytes=1024 * 1024)
    first.open()
    with pytest.raises(JournalBusy):
        Journal(tmp_path, max_bytes=1024 * 1024).open()
    first.close()

    again = Journal(tmp_path, max_bytes=1024 * 1024)
    again.open()
    again.close()

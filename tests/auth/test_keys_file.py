"""Keys file, key helper CLI and the rate buckets (in memory and shared)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from service.auth.keys import hash_key, key_id, load_keys
from service.auth.rate_limit import RateLimiter
from service.auth.shared_buckets import SharedBuckets
from service.cli import main
from service.errors import RateLimitedError, SettingsError


def test_keys_new_prints_a_key_and_an_entry_holding_only_its_hash(
    capsys, tmp_path: Path
):
    assert (
        main(
            [
                "keys",
                "new",
                "--team",
                "red",
                "--tenant",
                "acme",
                "--scopes",
                "check,admin",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out.splitlines()
    key = out[0].removeprefix("key: ")
    entry = json.loads(out[-1])
    assert key.startswith("gr_") and len(key) > 40
    assert key not in out[-1]
    assert entry["hash"] == hash_key(key)
    assert entry["scopes"] == ["admin", "check"]
    path = tmp_path / "keys.yaml"
    path.write_text("keys:\n  - " + json.dumps(entry) + "\n")
    found = load_keys(path).find(key)
    assert found is not None and found.principal.team == "red"
    assert found.principal.key_id == key_id(entry["hash"]) == entry["name"]


def test_keys_hash_reads_the_key_from_stdin(capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("gr_existing-key-of-the-team\n"))
    assert main(["keys", "hash", "--scopes", "admin", "--name", "ops"]) == 0
    entry = json.loads(capsys.readouterr().out)
    assert entry == {"name": "ops", "hash": hash_key("gr_existing-key-of-the-team"), "team": "",
                     "tenant": "", "scopes": ["admin"]}  # fmt: skip


@pytest.mark.parametrize(
    "document",
    [
        [{"hash": "abc", "scopes": ["check"]}],  # not a SHA-256
        [{"hash": "0" * 64, "scopes": ["root"]}],  # unknown scope
        [{"hash": "0" * 64, "scopes": []}],  # no scope
        [
            {"hash": "0" * 64, "scopes": ["check"]},
            {"hash": "0" * 64, "scopes": ["admin"]},
        ],
        {"not_keys": []},
    ],
)
def test_bad_keys_file_stops_start_up(tmp_path: Path, document):
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(document))
    with pytest.raises(SettingsError):
        load_keys(path)


def test_unknown_and_empty_keys_are_not_found(tmp_path: Path):
    path = tmp_path / "keys.json"
    path.write_text(json.dumps([{"hash": hash_key("gr_a"), "scopes": ["check"]}]))
    store = load_keys(path)
    assert store.find("gr_a") is not None
    assert store.find("gr_b") is None
    assert store.find("") is None


def test_rate_and_burst_per_key_in_memory():
    """4/s with no burst set: the bucket holds one second's worth, per key."""
    limiter = RateLimiter(4.0, 0.0)
    for _ in range(4):
        limiter.take("k")
    with pytest.raises(RateLimitedError) as caught:
        limiter.take("k")
    assert caught.value.subject == "api_key:k"
    assert 0 < caught.value.retry_after_s <= 0.25
    limiter.take("other")  # buckets are per key
    RateLimiter(0.0, 0.0).take("k")  # 0: no limit


def test_workers_mapping_one_file_share_each_key_bucket(tmp_path):
    """Two mappings of the file (two workers) draw from one bucket per key."""
    path = tmp_path / "rate-limit.bin"
    first = RateLimiter(3.0, 0.0, shared=SharedBuckets(path))
    second = RateLimiter(3.0, 0.0, shared=SharedBuckets(path))
    first.take("k")
    second.take("k")
    first.take("k")
    with pytest.raises(RateLimitedError) as caught:
        second.take("k")
    assert 0 < caught.value.retry_after_s <= 1 / 3
    second.take("other")


def test_a_shared_bucket_refills_at_the_rate(tmp_path):
    buckets = SharedBuckets(tmp_path / "rate-limit.bin")
    assert buckets.take("k", rate=2.0, capacity=1.0, now=100.0) == 0.0
    assert buckets.take("k", rate=2.0, capacity=1.0, now=100.0) == pytest.approx(0.5)
    assert buckets.take("k", rate=2.0, capacity=1.0, now=100.6) == 0.0
    # A long pause refills up to the capacity only.
    assert buckets.take("k", rate=2.0, capacity=1.0, now=500.0) == 0.0
    assert buckets.take("k", rate=2.0, capacity=1.0, now=500.0) > 0


def test_keys_past_the_probe_window_reuse_a_slot_leniently(tmp_path):
    """More keys than slots: every take still answers; none is refused unfairly."""
    buckets = SharedBuckets(tmp_path / "rate-limit.bin", slots=4)
    waits = [buckets.take(f"key-{i}", 1.0, 1.0, now=1.0) for i in range(50)]
    assert waits == [0.0] * 50


def test_keys_hash_refuses_a_key_too_short_to_be_secret(capsys, monkeypatch):
    """A short key is guessable: hashing it for the keys file is refused."""
    monkeypatch.setattr("sys.stdin", io.StringIO("abc\n"))

    assert main(["keys", "hash"]) == 2
    assert "at least" in capsys.readouterr().err

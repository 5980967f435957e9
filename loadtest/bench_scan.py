"""Scan cost per prompt with every built-in guardrail, no RPC around it.

    python loadtest/bench_scan.py [--repeat 2000] [--json] [--packs DIR] [--only SHAPE]

Prompts are real benign and attack texts from ../shared/datasets, cut or
padded to 1 KB, plus a mixed non-ASCII shape (accented Latin, Cyrillic, CJK,
emoji, full-width letters, look-alikes and zero-width characters: every text
needs folding and an offset map), plus adversarial shapes (base64, digit
runs, random printable, near-miss provider tokens that fail their checks) at
1 KB, 256 KB and 4 MiB (the largest message). Prints the median and p99 µs
per scan and MB/s per shape (MB/s counts characters).

Each shape is first scanned once, text by text, and timed: the *cold* pass
(``cold_p50_us``, ``cold_mb_per_s``), where RE2 still builds the DFA states
these texts need (earlier shapes have warmed the states they share). Then
``--warm`` more untimed passes (one for single-text shapes), then the timed
*warm* figures (``p50_us``, ``p99_us``, ``mb_per_s``): the steady state of a
long-running service.
"""

from __future__ import annotations

import argparse
import base64
import json
import platform
import random
import statistics
import string
import time
from pathlib import Path

from service.checking import build_default_checker
from service.engine import Scanner, compile_guardrail, load_pack_file
from service.types import Segment

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def _prose_1kb() -> list[str]:
    texts: list[str] = []
    for name in ("benign_selfinstruct.jsonl", "benign_awesome_chatgpt_prompts.jsonl"):
        path = DATASETS / name
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                texts.append(json.loads(line)["text"])
    if not texts:
        texts = ["Please summarise the following meeting notes for the team. " * 20]
    joined = " ".join(texts)
    return [joined[i : i + 1024] for i in range(0, min(len(joined), 200 * 1024), 1024)]


# Ordinary multilingual prose; every text also holds full-width letters and a
# ligature, so it needs folding, but no rule fires on it.
_NON_ASCII_PIECES = (
    "Grüße aus München, wir treffen uns um drei Uhr im Büro. ",
    "Привет, как дела? Напиши мне завтра утром. ",
    "日本語のテキストと中文的句子があります。",
    "Le café est très bon à Montréal, n'est-ce pas? ",
    "emoji 😀 ❤\ufe0f and 👍 for the team ",
    "Ελληνικά γράμματα στο κείμενο. ",
)
_FOLDING_PIECES = ("ｆｕｌｌｗｉｄｔｈ ｔｅｘｔ ", "the ﬁnal ﬁle ")


def _non_ascii_1kb(rng: random.Random) -> list[str]:
    texts = []
    for _ in range(64):
        pieces = [rng.choice(_NON_ASCII_PIECES) for _ in range(30)]
        pieces[rng.randrange(30)] = _FOLDING_PIECES[0]
        pieces[rng.randrange(30)] = _FOLDING_PIECES[1]
        texts.append("".join(pieces)[:1024])
    return texts


_ALNUM = string.ascii_letters + string.digits
# Provider token shapes (prefix, body alphabet, body length) with random
# bodies: each matches its rule's pattern but fails its checksum, entropy or
# placeholder check, so the scan pays for every verification and reports
# nothing (or next to nothing).
_NEAR_MISS = (
    ("ghp_", _ALNUM, 36),
    ("github_pat_", _ALNUM + "_", 82),
    ("glpat-", _ALNUM + "-_", 20),
    ("xoxb-", string.digits + "-", 40),
    ("sk-", _ALNUM, 48),
    ("sk-ant-api03-", _ALNUM + "-_", 95),
    ("AKIA", string.ascii_uppercase + string.digits, 16),
    ("AIza", _ALNUM + "-_", 35),
    ("npm_", _ALNUM, 36),
    ("eyJ", _ALNUM + "-_.", 60),
    ("token=", _ALNUM, 32),
    ("4111 ", string.digits + " ", 14),
)


def _near_miss(size: int, rng: random.Random) -> str:
    words = []
    while sum(len(word) + 1 for word in words) < size:
        prefix, alphabet, length = rng.choice(_NEAR_MISS)
        words.append(prefix + "".join(rng.choice(alphabet) for _ in range(length)))
    return " ".join(words)[:size]


def _adversarial(size: int, rng: random.Random) -> dict[str, str]:
    raw = rng.randbytes(size)
    return {
        "base64": base64.b64encode(raw).decode()[:size],
        "digits": "-".join(str(rng.randrange(10**4)) for _ in range(size // 5))[:size],
        "printable": "".join(rng.choices(string.printable, k=size)),
        "near_miss": _near_miss(size, rng),
    }


def _prose(size: int) -> str:
    texts = _prose_1kb()
    joined = " ".join(texts)
    return (joined * (size // len(joined) + 1))[:size]


def _time(scanner, names, texts: list[str], repeat: int) -> list[float]:
    samples = []
    for i in range(repeat):
        segments = [Segment("text", texts[i % len(texts)])]
        started = time.thread_time_ns()
        scanner.scan(segments, names)
        samples.append((time.thread_time_ns() - started) / 1000)
    return samples


def _figures(samples: list[float], size: float, prefix: str = "") -> dict[str, float]:
    samples = sorted(samples)
    median = statistics.median(samples)
    return {
        f"{prefix}p50_us": round(median, 1),
        f"{prefix}p99_us": round(samples[max(0, int(len(samples) * 0.99) - 1)], 1),
        f"{prefix}mb_per_s": round(size / median, 1),
    }


def _scanner(packs: Path | None) -> tuple[Scanner, list[str]]:
    if packs is None:
        snapshot = build_default_checker().registry.snapshot
        return snapshot.scanner, list(snapshot.defaults[next(iter(snapshot.defaults))])
    paths = sorted(packs.glob("*.yaml"))
    guardrails = [compile_guardrail(load_pack_file(path)) for path in paths]
    return Scanner(guardrails), [g.name for g in guardrails]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2000)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--packs", type=Path, help="scan with the *.yaml packs of DIR (default: built-ins)"
    )
    parser.add_argument("--only", help="run only the shapes whose name contains this")
    parser.add_argument(
        "--no-4mib", action="store_true", help="leave out the 4 MiB shapes (slow)"
    )
    parser.add_argument(
        "--warm",
        type=int,
        default=3,
        help="untimed passes over a shape's texts after the cold pass (default 3)",
    )
    args = parser.parse_args()

    scanner, names = _scanner(args.packs)
    rng = random.Random(1)
    shapes = {"prose_1kb": _prose_1kb(), "non_ascii_1kb": _non_ascii_1kb(rng)}
    shapes.update({f"{k}_1kb": [v] for k, v in _adversarial(1024, rng).items()})
    shapes.update({f"{k}_256kb": [v] for k, v in _adversarial(256 * 1024, rng).items()})
    shapes["prose_256kb"] = [_prose(256 * 1024)]
    if not args.no_4mib:
        big = _adversarial(4 << 20, rng)
        shapes.update({f"{k}_4mib": [v] for k, v in big.items()})
        shapes["prose_4mib"] = [_prose(4 << 20)]
    if args.only:
        shapes = {k: v for k, v in shapes.items() if args.only in k}
    report = {"machine": f"{platform.processor() or platform.machine()}, {platform.python_version()}"}
    for shape, texts in shapes.items():
        if "1kb" in shape:
            repeat = args.repeat
        elif "256kb" in shape:
            repeat = max(5, args.repeat // 200)
        else:
            repeat = 3
        size = statistics.mean(len(t) for t in texts)
        cold = _figures(_time(scanner, names, texts, len(texts)), size, "cold_")
        # One text (the large shapes): the cold pass already warmed it.
        passes = args.warm if len(texts) > 1 else 1
        _time(scanner, names, texts, passes * len(texts))
        warm = _figures(_time(scanner, names, texts, repeat), size)
        report[shape] = warm | {k: v for k, v in cold.items() if "p99" not in k}
    if args.json:
        print(json.dumps(report))
        return
    for shape, figures in report.items():
        print(f"{shape:16} {figures}")


if __name__ == "__main__":
    main()

"""Scan cost per prompt with every built-in guardrail, no RPC around it.

    python loadtest/bench_scan.py [--repeat 2000] [--json] [--packs DIR]

Prompts are real benign and attack texts from ../shared/datasets, cut or
padded to 1 KB, plus a mixed non-ASCII shape (accented Latin, Cyrillic, CJK,
emoji, full-width letters, look-alikes and zero-width characters: every text
needs folding and an offset map), plus adversarial shapes (base64, digit
runs, random printable). Prints the median and p99 µs per scan and MB/s per
shape (MB/s counts characters).
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


def _adversarial(size: int, rng: random.Random) -> dict[str, str]:
    raw = bytes(rng.getrandbits(8) for _ in range(size))
    return {
        "base64": base64.b64encode(raw).decode()[:size],
        "digits": "-".join(str(rng.randrange(10**4)) for _ in range(size // 5))[:size],
        "printable": "".join(rng.choice(string.printable) for _ in range(size)),
    }


def _time(scanner, names, texts: list[str], repeat: int) -> list[float]:
    samples = []
    for i in range(repeat):
        segments = [Segment("text", texts[i % len(texts)])]
        started = time.perf_counter_ns()
        scanner.scan(segments, names)
        samples.append((time.perf_counter_ns() - started) / 1000)
    return samples


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
    args = parser.parse_args()

    scanner, names = _scanner(args.packs)
    rng = random.Random(1)
    shapes = {"prose_1kb": _prose_1kb(), "non_ascii_1kb": _non_ascii_1kb(rng)}
    shapes.update({f"{k}_1kb": [v] for k, v in _adversarial(1024, rng).items()})
    shapes.update({f"{k}_256kb": [v] for k, v in _adversarial(256 * 1024, rng).items()})
    report = {"machine": f"{platform.processor() or platform.machine()}, {platform.python_version()}"}
    for shape, texts in shapes.items():
        repeat = args.repeat if "1kb" in shape else max(5, args.repeat // 200)
        samples = sorted(_time(scanner, names, texts, repeat))
        size = statistics.mean(len(t) for t in texts)
        median = statistics.median(samples)
        report[shape] = {
            "p50_us": round(median, 1),
            "p99_us": round(samples[int(len(samples) * 0.99) - 1], 1),
            "mb_per_s": round(size / median, 1),
        }
    if args.json:
        print(json.dumps(report))
        return
    for shape, figures in report.items():
        print(f"{shape:16} {figures}")


if __name__ == "__main__":
    main()

"""Regenerate docs/evaluation.md from the development datasets, in-process.

    python scripts/write_evaluation.py [--datasets DIR] [--output docs/evaluation.md]

Same as ``guardrail eval DIR/*.jsonl --markdown docs/evaluation.md``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from service.checking import build_default_checker
from service.evaluation import run_eval
from service.evaluation_report import format_markdown

ROOT = Path(__file__).resolve().parent.parent
DATASETS = ROOT.parent / "shared" / "datasets"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=Path, default=DATASETS)
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "evaluation.md")
    args = parser.parse_args()

    paths = sorted(args.datasets.glob("*.jsonl"))
    report = run_eval(paths, build_default_checker())
    command = "python scripts/write_evaluation.py"
    if args.datasets != DATASETS:
        command += f" --datasets {args.datasets}"
    args.output.write_text(format_markdown(report, command=command), encoding="utf-8")
    print(f"wrote {args.output}: {report['records']} records, {report['errors']} errors")


if __name__ == "__main__":
    main()

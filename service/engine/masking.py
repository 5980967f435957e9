"""Replace matched spans of a text with labels."""

from __future__ import annotations

from collections.abc import Sequence

from service.types import Finding

__all__ = ["label_for", "mask_text"]


def label_for(finding: Finding) -> str:
    """The finding's own label, else ``[CATEGORY]``."""
    return finding.mask_label or f"[{finding.category.upper()}]"


def _merged_spans(findings: Sequence[Finding]) -> list[tuple[int, int, str]]:
    spans: list[tuple[int, int, str]] = []
    ordered = sorted(findings, key=lambda f: (f.start, -f.end))
    for finding in ordered:
        if finding.end <= finding.start:
            continue
        if spans and finding.start <= spans[-1][1]:
            start, end, label = spans[-1]
            spans[-1] = (start, max(end, finding.end), label)
            continue
        spans.append((finding.start, finding.end, label_for(finding)))

    return spans


def mask_text(text: str, findings: Sequence[Finding]) -> str:
    """Mask every finding of ONE segment; overlapping or touching spans merge.

    Offsets are code points into ``text``, so this works on the original text
    in one pass, whatever normalisation the scan applied.
    """
    if not findings:
        return text
    pieces: list[str] = []
    position = 0
    for start, end, label in _merged_spans(findings):
        pieces.append(text[position:start])
        pieces.append(label)
        position = end
    pieces.append(text[position:])

    return "".join(pieces)

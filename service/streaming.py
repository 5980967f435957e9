"""Scan a streamed answer chunk by chunk without letting a match slip through.

Text is released only when it lies more than ``holdback`` characters before
the end of what has arrived: with every rule's match at most that long, a
match that starts in released text has been seen whole, so its mask is
applied before release. A match that straddles the release point moves the
point to the match's end. Each scan covers only the unreleased text plus a
few characters of released context (for word boundaries), so the work per
chunk is bounded by the hold-back, not by the stream's length so far.

Known shortcoming: rules whose matches can be longer than ``holdback``
(private-key blocks, for one) may be cut at the release point. Threshold
guardrails score each window on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from service.engine import Scanner, mask_text
from service.types import Action, Finding, Segment

__all__ = ["ChoiceStream", "Release"]

_CONTEXT_CHARS = 8


@dataclass(slots=True)
class Release:
    """Text that may be emitted, with the findings that end inside it."""

    choice_index: int
    text: str
    findings: list[Finding]
    #: Offset of ``text`` in the choice's whole text.
    offset: int


@dataclass(slots=True)
class ChoiceStream:
    """The hold-back state of one choice of a streamed answer."""

    choice_index: int
    scanner: Scanner
    names: Sequence[str]
    holdback: int
    pending: str = ""
    released_chars: int = 0
    context: str = ""
    findings: list[Finding] = field(default_factory=list)
    blocked: bool = False

    def feed(self, text: str) -> Release | None:
        self.pending += text
        if len(self.pending) <= self.holdback:
            return None
        return self._release(len(self.pending) - self.holdback)

    def finish(self) -> Release | None:
        if not self.pending:
            return None
        return self._release(len(self.pending))

    def _scan_pending(self) -> list[Finding]:
        path = f"choices[{self.choice_index}]"
        window = self.context + self.pending
        result = self.scanner.scan([Segment(path, window)], self.names)
        shift = len(self.context)
        return [
            _shifted(f, -shift) for f in result.findings if f.end > shift
        ]

    def _release(self, cut: int) -> Release | None:
        found = self._scan_pending()
        if any(f.action is Action.BLOCK for f in found):
            self.blocked = True
            self.findings.extend(_shifted(f, self.released_chars) for f in found)
            return None
        cut = _settle_cut(cut, found)
        settled = [f for f in found if f.start < cut]
        to_mask = [f for f in settled if f.action is Action.MASK]
        text = mask_text(self.pending[:cut], to_mask)
        absolute = [_shifted(f, self.released_chars) for f in settled]
        release = Release(self.choice_index, text, absolute, self.released_chars)
        self.findings.extend(absolute)
        self.context = self.pending[max(0, cut - _CONTEXT_CHARS) : cut]
        self.pending = self.pending[cut:]
        self.released_chars += cut
        return release


def _settle_cut(cut: int, findings: Sequence[Finding]) -> int:
    """Move the cut past every match that starts before it."""
    moved = True
    while moved:
        moved = False
        for finding in findings:
            if finding.start < cut < finding.end:
                cut, moved = finding.end, True
    return cut


def _shifted(finding: Finding, delta: int) -> Finding:
    # A match that began in already released context is clipped to what is
    # still held: the released part cannot be masked any more.
    start = max(0, finding.start + delta)
    return replace(finding, start=start, end=finding.end + delta)

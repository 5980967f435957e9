"""The longest text a rule can match, read from its RE2 pattern.

``CheckStream`` releases text only once no rule can still complete a match
that includes it, so it needs each rule's maximum match length. This is a
small, single-pass reader of RE2 syntax (literals, escapes, classes, groups,
alternation, ``? * + {m} {m,} {m,n}``, assertions) that sums widths along a
branch, takes the widest branch, and multiplies by repetition counts; any
unbounded repetition of something non-empty makes the pattern unbounded
(``None``). Widths are code points of the text the pattern runs on.

It never matches anything itself: no regex engine is used, and a pattern it
misreads can only widen its answer or make it unbounded, because every
construct it does not know is counted as one character.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from service.types import GuardrailSpec, RuleSpec

__all__ = [
    "GuardrailWidth",
    "encoded_width",
    "guardrail_width",
    "keywords_width",
    "pattern_width",
    "rule_width",
]

#: None stands for "unbounded".
Width = int | None

# Escapes that match no character: word boundaries, text anchors.
_ZERO_WIDTH_ESCAPES = frozenset("bBAzZ")
_FLAG_CHARS = frozenset("imsU-")


def _add(a: Width, b: Width) -> Width:
    return None if a is None or b is None else a + b


def _widest(a: Width, b: Width) -> Width:
    return None if a is None or b is None else max(a, b)


def _times(width: Width, count: Width) -> Width:
    if width == 0:
        return 0
    return None if width is None or count is None else width * count


class _Frame:
    """One group being read: the widest finished branch and the current one."""

    __slots__ = ("branch", "last", "widest")

    def __init__(self) -> None:
        self.widest: Width = 0
        self.branch: Width = 0
        self.last: Width = 0  # width of the last atom, for a quantifier

    def atom(self, width: Width) -> None:
        self.branch = _add(self.branch, width)
        self.last = width

    def quantify(self, count: Width) -> None:
        # The atom was added once; replace it by ``count`` copies. A branch
        # that is already unbounded stays so (its last atom is then known).
        if self.branch is not None and self.last is not None:
            self.branch = _add(self.branch - self.last, _times(self.last, count))
        self.last = 0

    def alternate(self) -> None:
        self.widest = _widest(self.widest, self.branch)
        self.branch, self.last = 0, 0

    def close(self) -> Width:
        return _widest(self.widest, self.branch)


def _skip_class(pattern: str, i: int) -> int:
    """Index just past the ``]`` closing the class that opens at ``i``."""
    i += 1
    if i < len(pattern) and pattern[i] == "^":
        i += 1
    if i < len(pattern) and pattern[i] == "]":  # a leading ] is a literal
        i += 1
    while i < len(pattern) and pattern[i] != "]":
        if pattern.startswith("[:", i):
            end = pattern.find(":]", i + 2)
            i = end + 2 if end != -1 else i + 1
        elif pattern[i] == "\\":
            i = _skip_escape(pattern, i)
        else:
            i += 1
    return i + 1


def _skip_braced(pattern: str, i: int) -> int:
    end = pattern.find("}", i)
    return len(pattern) if end == -1 else end + 1


def _skip_escape(pattern: str, i: int) -> int:
    """Index just past the escape that starts with the backslash at ``i``."""
    if i + 1 >= len(pattern):
        return i + 1
    kind = pattern[i + 1]
    if kind in "pP":
        return _skip_braced(pattern, i) if pattern[i + 2 : i + 3] == "{" else i + 3
    if kind == "x":
        if pattern[i + 2 : i + 3] == "{":
            return _skip_braced(pattern, i)
        return i + 4
    if kind in "01234567":
        end = i + 1
        while end < len(pattern) and end < i + 4 and pattern[end] in "01234567":
            end += 1
        return end
    return i + 2


def _repeat_count(pattern: str, i: int) -> tuple[Width, int] | None:
    """``{m}``, ``{m,}`` or ``{m,n}`` at ``i``: (largest count, index past it)."""
    end = pattern.find("}", i)
    if end == -1:
        return None
    low, comma, high = pattern[i + 1 : end].partition(",")
    if not low.isdigit() or (high and not high.isdigit()):
        return None  # RE2 reads a malformed brace as a literal "{"
    if not comma:
        return int(low), end + 1
    return (int(high) if high else None), end + 1


def _group_opening(pattern: str, i: int) -> tuple[int, bool]:
    """After ``(`` at ``i``: (index of the group body, whether it is a group).

    ``(?i)`` alone only sets flags and is not a group.
    """
    if not pattern.startswith("(?", i):
        return i + 1, True
    if pattern.startswith("(?P<", i) or pattern.startswith("(?<", i):
        return pattern.index(">", i) + 1, True
    j = i + 2
    while j < len(pattern) and pattern[j] in _FLAG_CHARS:
        j += 1
    if j < len(pattern) and pattern[j] == ")":
        return j + 1, False
    return j + 1, True  # "(?:" or "(?flags:"


def _literal_run(pattern: str, i: int) -> tuple[str, int]:
    """``\\Q...\\E`` at ``i``: the quoted text and the index past it."""
    end = pattern.find("\\E", i + 2)
    if end == -1:
        return pattern[i + 2 :], len(pattern)
    return pattern[i + 2 : end], end + 2


def pattern_width(pattern: str) -> Width:  # noqa: C901 - one linear reader
    """Longest match of an RE2 pattern in code points; None when unbounded."""
    stack = [_Frame()]
    i = 0
    while i < len(pattern):
        char = pattern[i]
        frame = stack[-1]
        if char == "\\":
            if pattern.startswith("\\Q", i):
                body, i = _literal_run(pattern, i)
                frame.atom(len(body))
                continue
            kind = pattern[i + 1 : i + 2]
            frame.atom(0 if kind in _ZERO_WIDTH_ESCAPES else 1)
            i = _skip_escape(pattern, i)
        elif char == "[":
            frame.atom(1)
            i = _skip_class(pattern, i)
        elif char == "(":
            i, is_group = _group_opening(pattern, i)
            if is_group:
                stack.append(_Frame())
        elif char == ")":
            width = stack.pop().close() if len(stack) > 1 else 0
            stack[-1].atom(width)
            i += 1
        elif char == "|":
            frame.alternate()
            i += 1
        elif char in "^$":
            frame.atom(0)
            i += 1
        elif char in "*+?":
            frame.quantify(1 if char == "?" else None)
            i += 2 if pattern[i + 1 : i + 2] == "?" else 1  # lazy forms
        elif char == "{" and (repeat := _repeat_count(pattern, i)) is not None:
            count, i = repeat
            frame.quantify(count)
            i += 1 if pattern[i : i + 1] == "?" else 0
        else:
            frame.atom(1)
            i += 1
    while len(stack) > 1:  # unbalanced: RE2 would have refused it
        width = stack.pop().close()
        stack[-1].atom(width)

    return stack[0].close()


def keywords_width(keywords: Sequence[str]) -> Width:
    """Longest keyword; a phrase's gaps match any run of whitespace: unbounded."""
    widths: list[Width] = []
    for keyword in keywords:
        words = keyword.split()
        widths.append(sum(len(word) for word in words) if len(words) <= 1 else None)
    result: Width = 0
    for width in widths:
        result = _widest(result, width)
    return result


def rule_width(rule: RuleSpec) -> Width:
    """Longest match of one rule, pattern or keyword list."""
    if rule.pattern:
        return pattern_width(rule.pattern)
    return keywords_width(rule.keywords)


def encoded_width(width: int) -> int:
    """Characters of encoded text that can hold a ``width``-byte decoded match.

    The scanner also scans decoded content (``engine.decode``); the widest of
    its encodings spends four characters per byte (``\\x41`` escapes; percent
    encoding takes three, hex two, base64 four per three), plus a partial
    quantum at each end.
    """
    return 4 * width + 4


@dataclass(frozen=True, slots=True)
class GuardrailWidth:
    """Each rule's longest match in one guardrail (None: unbounded)."""

    name: str
    rules: tuple[tuple[str, Width], ...]

    @property
    def width(self) -> int:
        """The widest bounded rule (0 when none is bounded)."""
        return max((w for _, w in self.rules if w is not None), default=0)

    @property
    def unbounded_rules(self) -> tuple[str, ...]:
        return tuple(rule for rule, width in self.rules if width is None)

    @property
    def bounded(self) -> bool:
        return not self.unbounded_rules


def guardrail_width(spec: GuardrailSpec) -> GuardrailWidth:
    """The longest match of every rule of a guardrail."""
    return GuardrailWidth(spec.name, tuple((r.id, rule_width(r)) for r in spec.rules))

"""report.py rewrites only its own block of loadtest/README.md."""

from __future__ import annotations

from pathlib import Path

from loadtest.report import END, START, write_section


def test_write_section_replaces_only_the_marked_block(tmp_path: Path):
    """Text before and after the markers (other engineers' sections) is kept byte for byte."""
    readme = tmp_path / "README.md"
    readme.write_text(
        f"# Load tests\nmine\n{START}\nold figures\n{END}\n\n## SpendLogs\ntheirs\n"
    )

    write_section(f"{START}\nnew figures\n{END}", readme)

    text = readme.read_text()
    assert "old figures" not in text and "new figures" in text
    assert text.startswith("# Load tests\nmine\n")
    assert text.endswith(f"{END}\n\n## SpendLogs\ntheirs\n")


def test_write_section_appends_when_there_are_no_markers(tmp_path: Path):
    """A README without the markers gets the block appended, its text untouched."""
    readme = tmp_path / "README.md"
    readme.write_text("## Streaming\ntheirs\n")

    write_section(f"{START}\nfigures\n{END}", readme)

    assert readme.read_text() == f"## Streaming\ntheirs\n\n{START}\nfigures\n{END}\n"

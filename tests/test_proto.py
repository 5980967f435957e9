"""The proto contract: stubs up to date, buf lint clean."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_generated_stubs_are_current():
    """Regenerating the stubs from proto/ changes nothing that is committed."""
    result = subprocess.run(
        [sys.executable, "scripts/generate_stubs.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )

    assert result.returncode == 0, result.stderr


def test_buf_lint_standard_passes():
    """buf lint with the STANDARD rules reports nothing."""
    buf = shutil.which("buf") or str(Path(sys.executable).with_name("buf"))

    result = subprocess.run([buf, "lint"], cwd=ROOT, capture_output=True, text=True)

    assert result.returncode == 0, result.stdout + result.stderr

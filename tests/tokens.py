"""Test credentials built from documented token formats, never real ones.

They are assembled at run time so that the repository itself holds nothing
a secret scanner would (rightly) report.
"""

from __future__ import annotations

import random
import string

_BASE32 = string.ascii_uppercase + "234567"


def aws_access_key_id(seed: int = 7) -> str:
    """AWS access key id: "AKIA" + 16 base-32 characters."""
    rng = random.Random(seed)
    return "AKIA" + "".join(rng.choice(_BASE32) for _ in range(16))


def email(seed: int = 7) -> str:
    rng = random.Random(seed)
    user = "".join(rng.choice(string.ascii_lowercase) for _ in range(8))
    return f"{user}.tester@example-mail.org"

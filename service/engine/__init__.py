"""The scanning engine: guardrail definitions in, findings out.

Definitions are parsed (``pack``), compiled and self-tested (``compiler``),
then scanned together in one RE2 pass per text (``scanner``).
"""

from __future__ import annotations

from service.engine.compiler import CompiledGuardrail, compile_guardrail
from service.engine.masking import mask_text
from service.engine.pack import builtin_specs, load_pack_file, spec_from_mapping
from service.engine.scanner import Scanner, ScanResult
from service.engine.validators import SUPPORTED_VALIDATORS

__all__ = [
    "SUPPORTED_VALIDATORS",
    "CompiledGuardrail",
    "ScanResult",
    "Scanner",
    "builtin_specs",
    "compile_guardrail",
    "load_pack_file",
    "mask_text",
    "spec_from_mapping",
]

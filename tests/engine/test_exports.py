"""The engine package exports exactly its public API."""

from __future__ import annotations

import service.engine as engine


def test_all_names_resolve():
    """Every name in __all__ is importable from service.engine."""
    assert all(hasattr(engine, name) for name in engine.__all__)


def test_public_api_is_complete():
    """The names other modules code against are all exported."""
    assert set(engine.__all__) == {
        "CompiledGuardrail", "Scanner", "ScanResult", "compile_guardrail",
        "spec_from_mapping", "load_pack_file", "builtin_specs", "mask_text",
        "SUPPORTED_VALIDATORS",
    }

"""The client's public surface: every module declares ``__all__`` and the
package re-exports exactly their union."""

from __future__ import annotations

import importlib

import pytest

import guardrail_client

MODULES = ["_client", "_errors", "_models", "_payloads", "_resilience"]


@pytest.mark.parametrize("name", MODULES)
def test_every_module_declares_all(name):
    """Each private module lists its public names, and each name exists."""
    module = importlib.import_module(f"guardrail_client.{name}")
    assert module.__all__
    for exported in module.__all__:
        assert hasattr(module, exported), exported


def test_package_all_is_the_union_of_module_alls():
    """``guardrail_client.__all__`` equals the union of the modules' ``__all__``."""
    union = set()
    for name in MODULES:
        union |= set(importlib.import_module(f"guardrail_client.{name}").__all__)
    assert set(guardrail_client.__all__) == union
    assert len(guardrail_client.__all__) == len(set(guardrail_client.__all__))


def test_package_exports_are_the_module_objects():
    """Each re-exported name is the very object its module defines."""
    for name in MODULES:
        module = importlib.import_module(f"guardrail_client.{name}")
        for exported in module.__all__:
            assert getattr(guardrail_client, exported) is getattr(module, exported)


def test_cli_module_declares_all():
    """``service.cli`` lists its public names and each one exists."""
    cli = importlib.import_module("service.cli")
    for exported in cli.__all__:
        assert hasattr(cli, exported), exported

"""The plugin authors' API: the package root and the few public submodules, each exactly
what its ``__all__`` says (as httpx tests its exported members)."""

from __future__ import annotations

import importlib
import inspect

import pytest

import upkeeper

EXPECTED = {
    "API_VERSION", "Action", "CappedOutput", "Check", "CheckContext", "CheckRef",
    "CommandError", "CommandResult", "DocCategory",
    "EnvName", "Host", "InventoryError", "InventorySource", "Notification", "Notifier",
    "Params", "ReportSection", "Result", "RunRecord", "Status", "Transport", "TransportError",
    "WindowState", "check_env", "command_text", "env_block", "hookimpl", "lazy_transport",
    "load_hosts", "read_env_sh", "window_state",
    "Fix", "FixContext", "FixRefused", "Plan", "Signature", "signature",
}


def test_all_is_explicit_and_importable():
    assert set(upkeeper.__all__) == EXPECTED
    assert len(upkeeper.__all__) == len(EXPECTED)
    for name in upkeeper.__all__:
        assert getattr(upkeeper, name) is not None


def test_design_names_are_exported():
    for name in ("hookimpl", "Check", "Action", "Result", "Status", "Host", "Transport",
                 "CommandResult", "Notifier", "TransportError"):
        assert name in upkeeper.__all__


@pytest.mark.parametrize("module_name", upkeeper.PUBLIC_MODULES)
def test_public_submodules_export_exactly_their_all(module_name):
    module = importlib.import_module(module_name)
    exported = module.__all__
    assert len(exported) == len(set(exported)), "duplicates in __all__"
    for name in exported:
        assert hasattr(module, name), f"{module_name}.{name} is in __all__ but missing"
    # Every public function/class defined in the module is either exported or private.
    defined = {n for n, obj in vars(module).items()
               if (inspect.isfunction(obj) or inspect.isclass(obj))
               and getattr(obj, "__module__", "") == module_name and not n.startswith("_")}
    assert defined <= set(exported), f"public but not in __all__: {defined - set(exported)}"


def test_public_modules_are_documented_for_plugin_authors():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "plugins.md").read_text()
    for module_name in upkeeper.PUBLIC_MODULES:
        assert f"`{module_name}`" in text, module_name

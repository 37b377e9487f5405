"""The package root is the plugin authors' API: exactly what __all__ says."""

from __future__ import annotations

import upkeeper

EXPECTED = {
    "API_VERSION", "Action", "Check", "CheckContext", "CommandResult", "EnvName", "Host",
    "Notification", "Notifier", "Params", "Result", "Status", "Transport", "TransportError",
    "hookimpl",
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

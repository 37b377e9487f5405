"""Test kit for plugin authors (public): fakes, a playbook runner, and pytest fixtures.

``FakeTransport`` (strict: an unmatched command fails the test), ``FakeClock``,
``FakeNotifier``, ``make_host``, ``run_check`` (one check, as the runner runs it) and
``run_playbook`` (a whole playbook through the real runner with the plugins you give).
The pytest fixtures (``upkeeper_fake_transport``, ``upkeeper_history``, ``upkeeper_clock``,
``upkeeper_notifier``) come from :mod:`upkeeper.testing.plugin`, which pytest loads
automatically where upkeeper is installed.
"""

from __future__ import annotations

from upkeeper.testing.fakes import (
    FakeCall,
    FakeClock,
    FakeNotifier,
    FakeTransport,
    UnexpectedCommand,
    make_host,
    normalize_results,
    run_check,
)
from upkeeper.testing.playbooks import run_playbook

__all__ = [
    "FakeCall",
    "FakeClock",
    "FakeNotifier",
    "FakeTransport",
    "UnexpectedCommand",
    "make_host",
    "normalize_results",
    "run_check",
    "run_playbook",
]

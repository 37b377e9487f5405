"""The ``upkeeper`` command (console script and ``python -m upkeeper``).

Kept apart from :mod:`upkeeper.cli.main` so that the process's start-up policy is in place
before any of the command line's imports run: the cycle collector runs rarely until the
first run starts (:mod:`upkeeper.gcpolicy`).
"""

from __future__ import annotations

from typing import Any

from upkeeper import gcpolicy


def main(*args: Any, **kwargs: Any) -> Any:
    gcpolicy.startup()
    from upkeeper.cli.main import main as group

    return group(*args, **kwargs)

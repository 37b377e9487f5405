"""One fix pass after a real check, as the runner hands it over: the check runs for real
on the transport's host, its result goes to a fix pass of one fix, and the fix's verify
runs the same real check again."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from upkeeper.checks import Check
from upkeeper.engine.hostrun import FinishedHost
from upkeeper.engine.secrets import Redactor
from upkeeper.models import Result
from upkeeper.remediation.engine import FixPass
from upkeeper.remediation.fix import Fix
from upkeeper.remediation.spec import Binding, FixSpec
from upkeeper.store.history import History
from upkeeper.testing import run_check
from upkeeper.transport.base import Transport


def fix_after_real_check(
    db: Path, spec: dict[str, Any], fix: type[Fix[Any]], fix_params: BaseModel,
    check: type[Check[Any]], check_params: Any, transport: Transport, *,
    check_mode: bool = False, result_name: str | None = None,
    fix_sees_check_params: bool = True,
) -> tuple[FixPass, History, Result]:
    """Run ``check`` on ``transport``'s host, then a fix pass of ``fix`` on its one result.

    :returns: the fix pass (its ``outcomes``), the history it wrote to (``db``) and the
        check's result that it was given (the caller asserts it failed as expected).
    """
    history = History(db)
    fix_pass = FixPass(history, [Binding(0, FixSpec.model_validate(spec), fix, fix_params)],
                       actor="test")
    host = transport.host

    def rerun(index: int) -> list[Result]:
        out = run_check(check, check_params, host=host, transport=transport)
        for r in out:
            r.host, r.check, r.name = host.name, check.name, result_name or check.name
        return out

    [failing] = rerun(0)
    fix_pass(FinishedHost(host, [(0, None, [failing])],  # type: ignore[list-item]
                          lambda: transport, rerun, check_mode, "run-1", Redactor(),
                          threading.Event(), None,
                          lambda i: check_params if fix_sees_check_params else None))
    return fix_pass, history, failing


"""Built-in plugin: patching (``patching.status`` and the ``patching.apply`` action).

The checks are registered by reference: their modules are imported only when a playbook
uses them.
"""

from __future__ import annotations

from upkeeper import CheckRef, ReportSection, hookimpl

UPKEEPER_API = "1.1"


@hookimpl
def upkeeper_register_checks() -> list[CheckRef]:
    return [CheckRef("patching.status", "upkeeper_patching.checks:PatchStatus"),
            CheckRef("patching.apply", "upkeeper_patching.apply:PatchApply")]


@hookimpl
def upkeeper_register_report_sections() -> list[ReportSection]:
    from upkeeper_patching.report import SECTION

    return [SECTION]

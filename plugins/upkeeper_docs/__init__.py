"""upkeeper built-in plugin: as-built facts of each host for client documentation
(``docs.collect``); ``upkeeper docs`` builds the documents from them.

The check is registered by reference: its module is imported only when a playbook uses it.
"""

from __future__ import annotations

from upkeeper import CheckRef, hookimpl

UPKEEPER_API = "1.1"


@hookimpl
def upkeeper_register_checks() -> list[CheckRef]:
    return [CheckRef("docs.collect", "upkeeper_docs.collect:DocsCollect")]

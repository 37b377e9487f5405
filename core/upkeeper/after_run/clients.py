"""Which client each host belongs to, remembered in history after every run so that
``upkeeper report`` can group results by client without an inventory.

Kept apart from the report module: every run remembers clients, few write reports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from upkeeper.models import RunRecord

if TYPE_CHECKING:
    from upkeeper.store.history import History

#: History state under which the client of each host is remembered for later reports.
CLIENT_STATE = ("_upkeeper", "client")


def remember_clients(run: RunRecord, history: History) -> None:
    """Store each host's client so ``upkeeper report`` can group without an inventory."""
    for name, host in run.hosts.items():
        client = host.vars.get("client")
        if client and history.get_state(name, *CLIENT_STATE) != str(client):
            history.set_state(name, CLIENT_STATE[0], CLIENT_STATE[1], str(client))

"""A verified fix is seen at once by everything that reads the history: the current
state (``upkeeper state``, the dashboard) and the monthly report's incidents, not only
by the run's alerts. The verify re-run is a real result of the check on that host."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from tests.remediation.conftest import local
from tests.remediation.standins import StandInSystemd
from upkeeper.models import Status
from upkeeper.monthly.period import Period
from upkeeper.monthly.report import build_client_report
from upkeeper.monthly.state import current_state

PB = """
name: keep nginx up
hosts: all
checks:
  - check: system.service
    params: {service: nginx}
    fix: {fix: system.service.restart, safe_anytime: true}
"""


def test_fixed_service_is_ok_in_state_and_its_incident_is_resolved(
        cycle_for, systemd: StandInSystemd):
    systemd.set("nginx", "failed")
    cycle = cycle_for(PB)
    before = datetime.now(timezone.utc) - timedelta(minutes=1)
    run = cycle.run()
    assert [o["outcome"] for o in run.meta["remediation"]] == ["fixed"]
    assert [r.status for r in run.results] == [Status.CRIT]  # the run's own result is kept

    stored = cycle.history.results(run_id=run.run_id)
    assert sorted(r.status.value for r in stored) == ["CRIT", "OK"]

    state = current_state(cycle.history)
    check = state.host("web1").checks[0]
    assert check.status is Status.OK
    assert check.summary == "re-checked after a fix: nginx is active (running)"
    assert state.exit_code == 0

    after = datetime.now(timezone.utc) + timedelta(minutes=1)
    report = build_client_report(cycle.history, "acme", Period(before, after, "UTC", "test"),
                                  host_vars={"web1": {"client": "acme"}})
    assert [i.open for i in report.incidents] == [False]
    assert not report.current or not report.current.hosts[0].problems


def test_monthly_summary_counts_only_fixes_that_worked(cycle_for, systemd: StandInSystemd):
    """A fix that "succeeded" but left the check failing is not "fixed" in the client's
    report: the summary counts verified fixes and names the failed attempts apart."""
    from upkeeper.monthly.fixes import audit_fixes
    from upkeeper.monthly.render import summary_lines

    systemd.set("svc-web1", "failed")
    systemd.set("svc-web2", "failed")
    systemd.mark("svc-web2", "lies")  # says it restarted, stays failed
    book = PB.replace("service: nginx", 'service: "svc-{{ inventory_hostname }}"')
    cycle = cycle_for(book, hosts=[local("web1"), local("web2")])
    cycle.clock.now = datetime.now(timezone.utc)  # the audit's time beside the results'
    before = datetime.now(timezone.utc) - timedelta(minutes=1)
    run = cycle.run()
    assert sorted(o["outcome"] for o in run.meta["remediation"]) == ["failed", "fixed"]
    after = datetime.now(timezone.utc) + timedelta(minutes=1)
    source = audit_fixes(cycle.history)
    assert source is not None
    report = build_client_report(cycle.history, "acme", Period(before, after, "UTC", "test"),
                                 host_vars={"web1": {"client": "acme"},
                                            "web2": {"client": "acme"}}, fixes=source)
    assert [f.fixed for f in report.fixes or []] == [True, False]
    lines = summary_lines(report)
    assert "1 problem fixed and verified; 1 fix attempt did not work." in lines

"""system.service.restart end to end: a real run through the local transport against a
stand-in systemctl; plan -> apply -> verify by the same check; audit of each step."""

from __future__ import annotations

import pytest

from tests.remediation.standins import StandInSystemd
from upkeeper.models import Status
from upkeeper.remediation.audit import AuditLog

PB = """
name: keep nginx up
hosts: all
checks:
  - check: system.service
    params: {service: nginx}
    fix:
      fix: system.service.restart
      safe_anytime: true
      settle: 1m
"""


def outcomes(run):
    return [o["outcome"] for o in run.meta.get("remediation", [])]


def test_stopped_service_is_restarted_and_verified(cycle_for, systemd: StandInSystemd):
    systemd.set("nginx", "failed")
    cycle = cycle_for(PB)
    run = cycle.run()
    assert run.results[0].status is Status.CRIT  # the check's own result is kept
    assert outcomes(run) == ["fixed"]
    assert systemd.state("nginx") == "active" and systemd.restarts() == 1
    kinds = [r.kind for r in AuditLog(cycle.history).records()]
    assert kinds == ["plan", "apply-begin", "apply", "verify"]
    verify = AuditLog(cycle.history).records(kinds=["verify"])[0].data
    assert verify["verified"] and verify["before"]["status"] == "CRIT"
    assert verify["after"][0]["status"] == "OK"
    apply = AuditLog(cycle.history).records(kinds=["apply"])[0].data
    assert apply["commands"][0]["exit_code"] == 0
    assert "restart" in apply["commands"][0]["command"]


def test_running_service_triggers_nothing(cycle_for, systemd: StandInSystemd):
    systemd.set("nginx", "active")
    cycle = cycle_for(PB)
    assert outcomes(cycle.run()) == []
    assert AuditLog(cycle.history).records() == []


def test_check_mode_plans_only(cycle_for, systemd: StandInSystemd):
    systemd.set("nginx", "failed")
    cycle = cycle_for(PB)
    run = cycle.run(check_mode=True)
    assert outcomes(run) == ["planned"]
    assert systemd.state("nginx") == "failed" and systemd.restarts() == 0
    records = AuditLog(cycle.history).records()
    assert [r.kind for r in records] == ["check-plan"]
    assert records[0].data["plan"]["commands"] == [["systemctl", "restart", "--", "nginx"]]


def test_success_that_leaves_the_check_failing_is_a_failure(cycle_for,
                                                            systemd: StandInSystemd):
    systemd.set("nginx", "failed")
    systemd.mark("nginx", "lies")  # restart exits 0 but the unit stays down
    cycle = cycle_for(PB)
    run = cycle.run()
    assert outcomes(run) == ["failed"]
    assert systemd.restarts() == 1
    verify = AuditLog(cycle.history).records(kinds=["verify"])[0].data
    assert verify["verified"] is False and "still says CRIT" in verify["reason"]


def test_failing_restart_is_recorded_with_its_exit_code(cycle_for, systemd):
    systemd.set("nginx", "failed")
    systemd.mark("nginx", "broken")
    cycle = cycle_for(PB)
    assert outcomes(cycle.run()) == ["failed"]
    apply = AuditLog(cycle.history).records(kinds=["apply"])[0].data
    assert apply["commands"][0]["exit_code"] == 1 and "failed" in apply["commands"][0][
        "stderr"]
    assert "CommandError" in apply["error"]


def test_outside_the_maintenance_window_is_refused(cycle_for, systemd, clock):
    from tests.remediation.conftest import local

    systemd.set("nginx", "failed")
    body = PB.replace("      safe_anytime: true\n", "")
    cycle = cycle_for(body, [local(maintenance_windows=["Sun 01:00-02:00"])])
    run = cycle.run()  # the clock says Monday 10:00
    assert outcomes(run) == ["refused"]
    assert "outside maintenance window" in run.meta["remediation"][0]["summary"]
    assert systemd.restarts() == 0
    no_windows = cycle_for(body)
    assert "no maintenance_windows" in no_windows.run().meta["remediation"][0]["summary"]
    inside = cycle_for(body, [local(maintenance_windows=["Mon 09:00-11:00"])])
    assert outcomes(inside.run()) == ["fixed"]


@pytest.mark.slow
def test_a_timed_out_or_unreachable_check_triggers_nothing(cycle_for, systemd, tmp_path):
    from tests.remediation.conftest import local

    systemd.set("nginx", "failed")
    slow = systemd.bin / "systemctl"
    slow.write_text("#!/bin/sh\nsleep 30\n")
    cycle = cycle_for(PB.replace("    params: {service: nginx}\n",
                                 "    params: {service: nginx}\n    timeout: 0.5\n"))
    run = cycle.run()
    assert run.results[0].status is Status.UNKNOWN and "timed out" in run.results[0].summary
    assert outcomes(run) == []
    gone = cycle_for(PB, [local(ansible_connection="ssh", ansible_host="127.0.0.1",
                                ansible_port=1, ansible_ssh_common_args="")])
    run = gone.run()
    assert run.results[0].status is Status.UNKNOWN and run.unreachable
    assert outcomes(run) == [] and AuditLog(gone.history).records() == []

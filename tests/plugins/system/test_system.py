"""system.command and system.uptime, from captured outputs and on this machine."""

from __future__ import annotations

import pytest

from upkeeper.models import CommandResult, Status
from upkeeper.testing import FakeTransport, make_host, run_check
from upkeeper.transport.local import LocalTransport
from upkeeper_system.command import CommandCheck, CommandParams, judge
from upkeeper_system.perfdata import parse_perfdata, split_plugin_output
from upkeeper_system.uptime import UptimeCheck

NAGIOS_DISK = ("DISK WARNING - free space: / 3326 MB (8% inode=86%);| "
               "/=36837MB;32066;36075;0;40084 'my disk'=12.5%;80;90\n")


def test_perfdata():
    summary, perf = split_plugin_output(NAGIOS_DISK)
    assert summary == "DISK WARNING - free space: / 3326 MB (8% inode=86%);"
    assert parse_perfdata(perf) == {"/": 36837.0, "my disk": 12.5}
    assert parse_perfdata("") == {}


@pytest.mark.parametrize(("code", "status"), [(0, Status.OK), (1, Status.WARN),
                                              (2, Status.CRIT), (3, Status.UNKNOWN),
                                              (127, Status.UNKNOWN)])
def test_exit_code_convention(code, status):
    r = judge(CommandResult("x", code, "text\n"), CommandParams(command="x"))
    assert r.status is status


def test_nagios_plugin_output_gives_summary_and_metrics():
    r = judge(CommandResult("check_disk", 1, NAGIOS_DISK), CommandParams(command="check_disk"))
    assert r.status is Status.WARN
    assert r.summary.startswith("DISK WARNING")
    assert r.metrics["/"] == 36837.0


def test_regexes_and_thresholds():
    p = CommandParams(command="x", crit_regex="ERROR", ignore_exit_code=True)
    assert judge(CommandResult("x", 1, "all fine"), p).status is Status.OK
    assert judge(CommandResult("x", 0, "an ERROR"), p).status is Status.CRIT
    p = CommandParams(command="x", ok_regex=r"^active$")
    assert judge(CommandResult("x", 0, "inactive"), p).status is Status.CRIT
    p = CommandParams(command="x", warn=80, crit=90, metric="pct")
    assert judge(CommandResult("x", 0, "85"), p).status is Status.WARN
    assert judge(CommandResult("x", 0, "95"), p).metrics == {"pct": 95.0}
    assert judge(CommandResult("x", 0, "none"), p).status is Status.UNKNOWN
    p = CommandParams(command="x", warn=10, crit=5, below=True, value_regex=r"free=(\d+)")
    assert judge(CommandResult("x", 0, "a=1 free=7"), p).status is Status.WARN
    assert judge(CommandResult("x", 0, "", timed_out=True), p).status is Status.UNKNOWN


def test_a_number_at_a_threshold_has_its_status():
    # The one rule of upkeeper.measures.grade (was: strictly past the threshold).
    p = CommandParams(command="x", warn=80, crit=90)
    assert [judge(CommandResult("x", 0, v), p).status for v in ("79.9", "80", "90")] == [
        Status.OK, Status.WARN, Status.CRIT]
    p = CommandParams(command="x", warn=10, crit=5, below=True)
    assert [judge(CommandResult("x", 0, v), p).status for v in ("10.1", "10", "5")] == [
        Status.OK, Status.WARN, Status.CRIT]


def test_invalid_regex_is_a_param_error():
    with pytest.raises(ValueError, match="invalid regex"):
        CommandParams(command="x", ok_regex="(")


def test_windows_hosts_use_powershell():
    t = FakeTransport(make_host("win", facts={"os_family": "windows"}),
                      {"Get-Service": (0, "Running\n")})
    (r,) = run_check(CommandCheck, {"command": "Get-Service spooler"}, transport=t)
    assert r.status is Status.OK and t.calls[0].kind == "powershell"


def test_command_on_this_machine_is_not_injectable(tmp_path):
    sentinel = tmp_path / "sentinel"
    sentinel.write_text("keep")
    host = make_host("localhost", vars={"ansible_connection": "local"})
    (r,) = run_check(CommandCheck, {"command": "echo hello; exit 1"},
                     transport=LocalTransport(host))
    assert r.status is Status.WARN and r.summary == "hello"


def test_uptime_thresholds():
    t = FakeTransport(responses={"cat /proc/uptime": "864000.50 100.0\n"})
    (r,) = run_check(UptimeCheck, {"warn_days": 5}, transport=t)
    assert r.status is Status.WARN and r.metrics == {"uptime_days": 10.0}
    (r,) = run_check(UptimeCheck, {"warn_days": 5, "crit_days": 8}, transport=t)
    assert r.status is Status.CRIT
    t = FakeTransport(responses={"cat /proc/uptime": "garbage"})
    (r,) = run_check(UptimeCheck, {}, transport=t)
    assert r.status is Status.UNKNOWN


def test_uptime_windows_from_powershell_json():
    t = FakeTransport(make_host("win", facts={"os_family": "windows"}),
                      {"LastBootUpTime": "172800"})
    (r,) = run_check(UptimeCheck, {"warn_days": 1}, transport=t)
    assert r.status is Status.WARN and r.metrics["uptime_days"] == 2.0


def test_uptime_on_this_machine():
    host = make_host("localhost", vars={"ansible_connection": "local"})
    (r,) = run_check(UptimeCheck, {"warn_days": 100000}, transport=LocalTransport(host))
    assert r.status is Status.OK and r.metrics["uptime_days"] > 0


def test_uptime_old_param_name_is_accepted_with_a_warning():
    from upkeeper.measures import UpkeeperDeprecationWarning

    t = FakeTransport(responses={"cat /proc/uptime": "864000.00 100.0\n"})
    with pytest.warns(UpkeeperDeprecationWarning, match="'max_days' is deprecated"):
        (r,) = run_check(UptimeCheck, {"max_days": 5}, transport=t)
    assert r.status is Status.WARN


def test_uptime_at_the_threshold_is_past_it():
    """One comparison rule for every built-in: at or past a threshold is that level."""
    t = FakeTransport(responses={"cat /proc/uptime": f"{5 * 86400}.00 100.0\n"})
    (r,) = run_check(UptimeCheck, {"warn_days": 5}, transport=t)
    assert r.status is Status.WARN

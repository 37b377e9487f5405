"""Alert policy: notify: parsing and validation with file:line, and the decision table."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from upkeeper.after_run.alerts import decide, group_alerts, in_maintenance, mark_told
from upkeeper.after_run.notify_config import parse_notify, parse_renotify
from upkeeper.after_run.validate import validate_notify
from upkeeper.engine.playbook import load_playbook
from upkeeper.measures import UpkeeperDeprecationWarning
from upkeeper.models import Host, Result, Status
from upkeeper.plugins import get_plugin_manager
from upkeeper.store.history import History

T0 = datetime(2026, 11, 20, 2, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(("text", "seconds"), [
    ("24h", 86400), ("1d12h", 129600), ("90m", 5400), ("30s", 30), ("2w", 1209600),
    ("1.5h", 5400), ("1h 30m", 5400), ("2 hours", 7200)])
def test_parse_renotify(text: Any, seconds: float) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert parse_renotify(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", [0, "0", "0.0", "never", "off", None, "", False, "0s"])
def test_parse_renotify_off(text: Any) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert parse_renotify(text) is None


@pytest.mark.parametrize(("text", "seconds"), [(3600, 3600), ("45", 45), (1.5, 1.5)])
def test_bare_renotify_is_still_seconds_with_a_warning(text: Any, seconds: float) -> None:
    # Before API 1.1 a bare number was seconds here (and hours in the backup params): it
    # keeps its old meaning for one minor version, and says so.
    with pytest.warns(UpkeeperDeprecationWarning,
                      match=rf"notify: renotify: duration {text} without a unit is read as "
                            rf"{text}s; write '{text}s'"):
        assert parse_renotify(text) == timedelta(seconds=seconds)
    with pytest.warns(UpkeeperDeprecationWarning):
        assert parse_notify({"renotify": text, "channels": [
            {"webhook": {"url": "http://x"}}]}).renotify == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["soon", "5x", "h", "10 parsecs", "1h fish", -5, "-5m",
                                  "1e9", True, "99999999999w"])
def test_parse_renotify_rejects(text: Any) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_renotify(text)


def test_notify_shapes() -> None:
    full = parse_notify({"min_status": "crit", "renotify": "12h", "digest": True,
                         "channels": [{"email": {"to": "a@b", "host": "mx", "from": "u@b",
                                                 "name": "noc"}},
                                      {"notifier": "webhook", "url": "http://x",
                                       "recovery": False, "retries": 0}]})
    assert full is not None
    assert full.min_status is Status.CRIT and full.renotify == timedelta(hours=12)
    email, hook = full.channels
    assert (email.notifier, email.name, email.params) == ("email", "noc",
                                                          {"to": "a@b", "host": "mx",
                                                           "from": "u@b"})
    assert email.channel_id == "noc"
    assert full.effective(hook) == (Status.CRIT, False, True)
    listed = parse_notify([{"notifier": "webhook", "url": "http://x"}])
    single = parse_notify({"webhook": {"url": "http://x"}})
    assert listed is not None and single is not None
    assert listed.channels[0].channel_id == single.channels[0].channel_id
    assert listed.renotify == timedelta(hours=24) and listed.min_status is Status.WARN
    with pytest.raises(ValidationError):
        parse_notify({"min_status": "OK", "channels": [{"webhook": {"url": "u"}}]})


def write_pb(tmp_path: Path, notify: Any) -> Path:
    path = tmp_path / "pb.yml"
    path.write_text(yaml.safe_dump({"name": "n", "hosts": "all", "checks": ["system.uptime"],
                                    "notify": notify}, sort_keys=False))
    return path


def problems(tmp_path: Path, notify: Any) -> list[str]:
    registry = get_plugin_manager().registry
    return validate_notify(load_playbook(write_pb(tmp_path, notify), registry), registry)


def test_validate_ok(tmp_path: Path) -> None:
    assert problems(tmp_path, {"channels": [
        {"email": {"host": "mx", "from": "a@b", "to": ["c@d"],
                   "password": "{{ env.SMTP_PW }}"}},
        {"webhook": {"url": "{{ env.SLACK_URL }}", "format": "slack"}}]}) == []


def line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_validate_reports_file_and_line(tmp_path: Path) -> None:
    found = problems(tmp_path, {"renotify": "soon", "channels": [
        {"webhook": {"url": "http://x", "format": "discord"}},
        {"pager": {"number": 1}},
        {"email": {"host": "mx", "from": "a@b", "to": "c@d", "colour": "red"}}]})
    path = tmp_path / "pb.yml"
    assert found == [f"{path}:{line_of(path, 'renotify')}: notify: renotify: not a duration: "
                     "'soon' (e.g. 30s, 90m, 26h, 2d, 1d12h, 1w)"]
    found = problems(tmp_path, {"channels": [
        {"webhook": {"url": "http://x", "format": "discord"}},
        {"pager": {"number": 1}},
        {"email": {"host": "mx", "from": "a@b", "to": "c@d", "colour": "red"}}]})
    assert found[0].startswith(f"{path}:{line_of(path, 'format: discord')}: notify: webhook:"
                               " format:")
    assert found[1].startswith(f"{path}:{line_of(path, 'pager')}: notify: unknown notifier "
                               "'pager'")
    assert "known notifiers: email, webhook" in found[1]
    assert found[2] == f"{path}:{line_of(path, 'colour')}: notify: email: unknown key 'colour'"


def test_validate_bad_shapes(tmp_path: Path) -> None:
    path = tmp_path / "pb.yml"
    assert problems(tmp_path, "email me") == [
        f"{path}:{line_of(path, 'notify')}: notify: notify: expected a mapping or a list of "
        "channels, not str"]
    assert problems(tmp_path, {"channels": []})[0].endswith(
        "notify: channels: List should have at least 1 item after validation, not 0")


def res(status: Status, host: str = "web1", check: str = "disk.usage") -> Result:
    return Result(status, f"{status.value} on {host}", host=host, check=check)


def run_decide(history: History, statuses: Iterable[Status], **kw: Any) -> list[str]:
    """Feed one status per 'run' an hour apart; mark alerts told; return kinds sent."""
    sent = []
    for i, status in enumerate(statuses):
        now = T0 + timedelta(hours=i)
        alerts = decide([res(status)], history, "ch", now=now, **kw)
        mark_told(history, "ch", alerts, now)
        sent += [a.kind for a in alerts if not a.quiet]
    return sent


@pytest.fixture
def mem_history() -> History:
    return History(":memory:")


def test_same_crit_twice_alerts_once_and_recovers(mem_history: History) -> None:
    assert run_decide(mem_history, [Status.OK, Status.CRIT, Status.CRIT, Status.OK]) == \
        ["new", "recovery"]


def test_changes_between_problem_statuses(mem_history: History) -> None:
    assert run_decide(mem_history, [Status.WARN, Status.CRIT, Status.UNKNOWN, Status.UNKNOWN,
                                    Status.WARN, Status.SKIPPED, Status.OK, Status.OK]) == \
        ["new", "changed", "changed", "changed", "recovery"]


def test_reminders(mem_history: History) -> None:
    kinds = run_decide(mem_history, [Status.CRIT] * 7, renotify=timedelta(hours=3))
    assert kinds == ["new", "reminder", "reminder"]


def test_below_min_status(mem_history: History) -> None:
    assert run_decide(mem_history, [Status.WARN, Status.CRIT, Status.WARN, Status.OK],
                      min_status=Status.CRIT) == ["new", "recovery"]
    quiet = run_decide(History(":memory:"), [Status.CRIT, Status.OK, Status.CRIT],
                       recovery=False)
    assert quiet == ["new", "new"]


def test_muted_hosts_change_nothing(mem_history: History) -> None:
    kinds = run_decide(mem_history, [Status.CRIT, Status.OK], muted=lambda h: True)
    assert kinds == []
    assert mem_history.query("SELECT COUNT(*) FROM state")[0][0] == 0


def test_untold_alert_is_offered_again(mem_history: History) -> None:
    first = decide([res(Status.CRIT)], mem_history, "ch", now=T0)
    again = decide([res(Status.CRIT)], mem_history, "ch", now=T0 + timedelta(hours=1))
    assert [a.kind for a in first] == [a.kind for a in again] == ["new"]


def test_channels_and_result_names_are_separate(mem_history: History) -> None:
    a = res(Status.CRIT)
    b = Result(Status.CRIT, "x", host="web1", check="disk.usage", name="disk /srv")
    mark_told(mem_history, "one", decide([a, b], mem_history, "one", now=T0), T0)
    assert decide([a, b], mem_history, "one", now=T0) == []
    assert len(decide([a, b], mem_history, "two", now=T0)) == 2


def test_state_survives_reopening(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite3"
    h = History(db)
    mark_told(h, "ch", decide([res(Status.CRIT)], h, "ch", now=T0), T0)
    h.close()
    assert decide([res(Status.CRIT)], History(db), "ch", now=T0) == []


def test_digest_groups_by_client(mem_history: History) -> None:
    results = [res(Status.CRIT, "web1"), res(Status.WARN, "db1"), res(Status.CRIT, "fs1")]
    clients = {"web1": "Acme", "db1": "Acme", "fs1": "Beta"}
    alerts = decide(results, mem_history, "ch", now=T0, clients=clients)
    assert [[a.result.host for a in g] for g in group_alerts(alerts, True)] == \
        [["web1", "db1"], ["fs1"]]
    assert len(group_alerts(alerts, False)) == 3


def test_in_maintenance() -> None:
    inside = T0  # 02:00 UTC
    vars_ = {"maintenance_windows": ["daily 01:00-05:00"], "timezone": "UTC"}
    host = Host("web1", dict(vars_))
    assert in_maintenance(host, inside, True)
    assert not in_maintenance(host, inside + timedelta(hours=4), True)
    assert not in_maintenance(host, inside, False)
    assert not in_maintenance(host, inside, None)  # defers to the host var, unset here
    assert in_maintenance(Host("web1", {**vars_, "mute_in_window": True}), inside, None)
    assert not in_maintenance(Host("web2", {}), inside, True)
    assert not in_maintenance(Host("bad", {"maintenance_windows": ["whenever"]}), inside, True)


def test_failing_channels_from_the_delivery_record(mem_history: History) -> None:
    from upkeeper.after_run.delivery import Delivery
    from upkeeper.after_run.ledger import failing_channels, record

    def deliver(run: str, *items: tuple[str, bool], hours: int) -> None:
        record(mem_history, run, [Delivery("mail", "email", "s", ok, 1,
                                           "" if ok else "refused", ["h/c"], target)
                                  for target, ok in items], T0 + timedelta(hours=hours))

    assert failing_channels(mem_history) == []
    deliver("r1", ("it@acme", True), ("helpdesk@globex", False), hours=0)
    deliver("r2", ("helpdesk@globex", False), hours=1)
    (failing,) = failing_channels(mem_history)
    assert (failing["target"], failing["failures"], failing["error"]) == \
        ("helpdesk@globex", 2, "refused")
    assert failing["failing_since"] == T0.isoformat()
    deliver("r3", ("helpdesk@globex", True), hours=2)
    assert failing_channels(mem_history) == []
    deliver("r4", ("(host g1)", False), ("it@acme", True), hours=3)  # same run: still failing
    assert [f["target"] for f in failing_channels(mem_history)] == ["(host g1)"]
    deliver("r5", ("it@acme", True), hours=4)  # a later run needed no g1 message
    assert failing_channels(mem_history) == []


def test_alert_bodies_leave_out_huge_details_and_name_their_keys() -> None:
    """A fact document (tens of KB) in a WARN result must not be posted to a webhook."""
    from upkeeper.after_run.alerts import MAX_ALERT_DETAILS, Alert
    from upkeeper.models import Result, Status

    big = {"facts": {"software": ["x" * 100] * 1000}, "category": "software"}
    small = {"mount": "/", "used_pct": 93.0}
    out_big = Alert(Result(Status.WARN, "1 category failed", details=big, host="web1",
                           check="docs.collect"), "new", "acme").to_dict()
    out_small = Alert(Result(Status.WARN, "93% used", details=small, host="web1",
                             check="disk.usage"), "new", "acme").to_dict()
    assert out_small["details"] == small
    assert len(str(out_big["details"])) < MAX_ALERT_DETAILS
    assert out_big["details"]["keys"] == ["category", "facts"]
    assert "history" in out_big["details"]["omitted"]

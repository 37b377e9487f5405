"""After a run with fixes: notifications say FIXED instead of alerting, exactly one
"remediation exhausted" alert per quarantine, and the client report's "fixed for you"."""

from __future__ import annotations

from typing import Any

from upkeeper.after_run.context import RunContext
from upkeeper.after_run.pipeline import after_run
from upkeeper.engine.playbook import load_playbook
from upkeeper.plugins import get_plugin_manager

PB = """
name: keep nginx up
hosts: all
checks:
  - check: system.service
    params: {{service: nginx}}
    fix:
      fix: system.service.restart
      safe_anytime: true
      settle: 1m
      budget: {{attempts: 10, per: 1h, backoff: 1m, quarantine_after: 2}}
notify: [{{notifier: fake}}]
report: {{template: client, format: md, path: '{out}/{{client}}.md'}}
"""


def _after(cycle, run) -> None:
    pb = load_playbook(cycle.pb_path, cycle.plugins.registry)
    after_run(run, RunContext.for_run(run, pb, cycle.history, cycle.plugins))


def test_fixed_not_alerted_then_exhausted_once(tmp_path, cycle_for, systemd, clock,
                                                upkeeper_notifier: Any):
    plugins = get_plugin_manager(extra_plugins=[("fake", upkeeper_notifier.plugin())])
    cycle = cycle_for(PB.format(out=tmp_path / "r"), plugins=plugins)
    systemd.set("nginx", "failed")
    run = cycle.run()
    _after(cycle, run)
    (sent,) = upkeeper_notifier.sent
    assert sent.subject.startswith("FIXED: acme/web1 system.service: restart nginx (failed")
    assert sent.status.value == "OK" and "fixed for you" in sent.text
    report = (tmp_path / "r" / "acme.md").read_text()
    assert "## Fixed for you" in report and "restart nginx (failed, dead)" in report
    assert "CRIT: nginx is failed (dead)" in report and "OK: nginx is active" in report
    subjects = []
    for _ in range(12):  # dies every cycle: the fix does not hold, quarantine after 2
        upkeeper_notifier.reset()
        clock.advance(minutes=5)
        systemd.set("nginx", "failed")
        run = cycle.run()
        _after(cycle, run)
        subjects += [n.subject for n in upkeeper_notifier.sent]
    exhausted = [s for s in subjects if "remediation exhausted" in s]
    assert len(exhausted) == 1, subjects
    assert exhausted[0].startswith("CRIT: acme/web1 fix system.service.restart")

"""The collector policy of the ``upkeeper`` process (upkeeper.gcpolicy): rare collections
while starting, then everything alive frozen and the thresholds put back. Each case runs
in its own interpreter: freezing is for the life of a process."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap


def _python(code: str) -> dict[str, object]:
    res = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                         text=True, timeout=60, check=True)
    return dict(json.loads(res.stdout.strip().splitlines()[-1]))


def test_startup_then_settle():
    got = _python("""
        import gc, json
        from upkeeper import gcpolicy
        default = gc.get_threshold()
        gcpolicy.startup()
        starting = gc.get_threshold()
        junk = [[i] for i in range(1000)]
        gcpolicy.settle()
        settled, frozen = gc.get_threshold(), gc.get_freeze_count()
        gcpolicy.settle(); gcpolicy.startup()  # once per process
        print(json.dumps({"default": default, "starting": starting, "settled": settled,
                          "frozen": frozen, "again": gc.get_threshold(),
                          "frozen_again": gc.get_freeze_count(), "enabled": gc.isenabled()}))
    """)
    assert got["starting"][0] == 50_000 and got["starting"][1:] == got["default"][1:]
    assert got["settled"] == got["default"] == got["again"]
    assert got["frozen"] > 1000 and got["frozen_again"] == got["frozen"]
    assert got["enabled"] is True


def test_a_process_that_never_started_is_not_touched():
    got = _python("""
        import gc, json
        from upkeeper import gcpolicy
        before = gc.get_threshold()
        gcpolicy.settle()
        print(json.dumps({"same": gc.get_threshold() == before,
                          "frozen": gc.get_freeze_count()}))
    """)
    assert got == {"same": True, "frozen": 0}


def test_the_command_starts_rarely_and_a_run_settles(tmp_path):
    """The real command: thresholds raised before the command line is imported, put back
    and start-up frozen once the run starts its hosts."""
    book = tmp_path / "pb.yml"
    book.write_text("name: p\nhosts: all\nchecks:\n  - system.command: {command: 'true'}\n")
    got = _python(f"""
        import gc, json, runpy, sys
        seen = {{"default": gc.get_threshold()}}
        import upkeeper.engine.runner as runner
        original = runner.Runner.execute
        def execute(self, *a, **kw):
            result = original(self, *a, **kw)
            seen["after"] = gc.get_threshold()
            seen["frozen"] = gc.get_freeze_count()
            return result
        runner.Runner.execute = execute
        import upkeeper.cli.entry as entry
        sys.argv = ["upkeeper", "--state-dir", {str(tmp_path / "state")!r}, "run",
                    {str(book)!r}]
        real_main = entry.main
        def main(*a, **kw):
            seen["before_cli"] = "upkeeper.cli.main" in sys.modules
            try:
                return real_main(*a, **kw)
            except SystemExit:
                pass
        gcpolicy_start = entry.gcpolicy.startup
        def startup():
            gcpolicy_start()
            seen["starting"] = gc.get_threshold()
        entry.gcpolicy.startup = startup
        main(prog_name="upkeeper")
        print(json.dumps(seen))
    """)
    assert got["before_cli"] is False
    assert got["starting"][0] == 50_000
    assert got["after"] == got["default"]
    assert got["frozen"] > 10_000


def test_everything_alive_at_exit_is_frozen_after_the_other_exit_handlers():
    """The interpreter's collections at exit then skip it (a sixth of a short command)."""
    got = _python("""
        import atexit, gc, json
        seen = {}
        atexit.register(lambda: print(json.dumps(seen | {"at_exit": gc.get_freeze_count()})))
        from upkeeper import gcpolicy
        gcpolicy.startup()
        atexit.register(lambda: seen.update(before_freeze=gc.get_freeze_count()))
        keep = [[i] for i in range(5000)]
    """)
    assert got["before_freeze"] == 0 and got["at_exit"] > 5000

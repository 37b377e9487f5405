"""Shared fixtures: every test gets its own state dir so history never leaks."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.corpus import CORPUS, CORPUS_DESELECTED, needs_corpus

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _isolated_state(tmp_path_factory: pytest.TempPathFactory,
                    monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    state = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("UPKEEPER_STATE_DIR", str(state))
    yield state


@pytest.fixture
def state_dir(_isolated_state: Path) -> Path:
    """The UPKEEPER_STATE_DIR of this test (history lives here)."""
    return _isolated_state


#: Modules whose tests drive real processes and servers (sshd, restic/borg repositories,
#: the CLI in a subprocess, serve): each test is quick, together they are most of the
#: suite's time, so they are `slow` (kept in CI, left out of `pytest -m "not slow"`).
SLOW_MODULES = frozenset({
    "tests/core/test_after_run.py", "tests/core/test_cli_output.py",
    "tests/core/test_input_limits.py", "tests/core/test_secret_masking.py",
    "tests/core/test_serve_robust.py", "tests/core/test_template_sandbox.py",
    "tests/core/test_validate.py", "tests/plugins/backup/test_backup_borg.py",
    "tests/plugins/backup/test_backup_restic.py",
    "tests/plugins/backup/test_backup_restore_record.py",
    "tests/plugins/backup/test_backup_shared_repo.py",
    "tests/plugins/notify/test_after_run.py", "tests/plugins/winrm/test_transport_http.py",
    "tests/plugins/ssh/test_import_cost.py", "tests/plugins/ssh/test_unreachable.py",
    "tests/remediation/test_budgets.py", "tests/remediation/test_after_run.py",
    "tests/remediation/test_budget_unit.py", "tests/remediation/test_concurrency.py",
    "tests/core/test_secret_values.py", "tests/core/test_startup_imports.py",
})
#: Directories whose tests drive real servers end to end (a nats-server per test).
SLOW_DIRS = ("tests/sites/",)


@pytest.hookimpl(tryfirst=True)  # before pytest's own -m deselection
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        module = Path(str(item.fspath)).resolve().relative_to(ROOT).as_posix()
        if module in SLOW_MODULES or module.startswith(SLOW_DIRS) \
                or item.get_closest_marker("sshd"):
            item.add_marker(pytest.mark.slow)
    # Without the corpus its tests are not run, and tests/test_shared_corpus.py says so on
    # one SKIPPED line with their number, instead of each skipping (or, parametrized from
    # the corpus, vanishing) on its own.
    if CORPUS.is_dir():
        return
    gone = [item for item in items if needs_corpus(item)]
    if gone:
        config.hook.pytest_deselected(items=gone)
        items[:] = [item for item in items if not needs_corpus(item)]
    config.stash[CORPUS_DESELECTED] = len(gone)


#: A test not marked ``slow`` should take about this long at most (setup, call and teardown
#: together): ``pytest -m "not slow"`` is the quick run, under 30 s on two cores.
FAST_LIMIT = 1.0
#: nodeid -> seconds of the tests not marked slow, in this session.
_TOOK: dict[str, float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "slow" not in report.keywords:
        _TOOK[report.nodeid] = _TOOK.get(report.nodeid, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    # Named, not failed: how long a test takes depends on the machine.
    over = sorted(((t, n) for n, t in _TOOK.items() if t > FAST_LIMIT), reverse=True)
    if over:
        terminalreporter.section(f"not marked slow, over {FAST_LIMIT:g} s")
        for took, nodeid in over:
            terminalreporter.write_line(f"{took:6.2f}s {nodeid}")


@pytest.fixture
def corpus() -> Path:
    """The shared real-world corpus beside the repo (../shared/corpus).

    A file a test names that the corpus lacks is a failure (reading it raises), not a skip.
    """
    return CORPUS


@pytest.fixture
def upkeeper_cmd() -> list[str]:
    """argv prefix that runs the installed CLI with this interpreter."""
    return [sys.executable, "-m", "upkeeper"]


# The upkeeper pytest plugin's fixtures are prefixed (upkeeper_*); our own suite keeps the
# short names it has always used.
@pytest.fixture
def fake_transport(upkeeper_fake_transport):
    return upkeeper_fake_transport


@pytest.fixture
def history(upkeeper_history):
    return upkeeper_history

"""What README.md and docs/ promise about the examples holds: every example playbook
validates against the MSP example inventory and matches hosts there (and on this machine,
all but those for hosts it is not), the
README lists them (those that change hosts first), its check table names the real checks,
and every playbook written out in the docs validates."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from upkeeper import Action
from upkeeper.cli.main import main
from upkeeper.engine.playbook import load_playbook
from upkeeper.plugins import get_plugin_manager

ROOT = Path(__file__).resolve().parent.parent
PLAYBOOKS = sorted((ROOT / "playbooks").glob("*.yml"))
MSP = ROOT / "inventories" / "msp-example" / "hosts.ini"
INVENTORIES = [ROOT / "inventories" / "local.yml", MSP]


@pytest.fixture
def inventory_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Placeholder values for the ``{{ env.NAME }}`` secrets the example inventories use,
    as the upkeeper service's environment would hold them."""
    texts = [p.read_text() for p in (ROOT / "inventories").rglob("*") if p.is_file()]
    names = set(re.findall(r"env\.([A-Za-z_][A-Za-z0-9_]*)", "\n".join(texts)))
    assert names, "the MSP example keeps its secrets in the environment"
    for name in names:
        monkeypatch.setenv(name, "placeholder")


def validate(playbook: Path, inventory: Path) -> tuple[int, str]:
    res = CliRunner().invoke(main, ["validate", str(playbook), "-i", str(inventory)])
    return res.exit_code, res.output


#: Example playbooks for hosts this machine is not (the local inventory has no such group).
NOT_LOCAL = {"backup-verify.yml"}


@pytest.mark.parametrize("playbook", PLAYBOOKS, ids=lambda p: p.name)
def test_example_playbook_validates_and_matches_hosts(playbook: Path, inventory_env: None):
    for inventory in INVENTORIES:
        code, out = validate(playbook, inventory)
        if inventory.name == "local.yml" and playbook.name in NOT_LOCAL:
            assert code == 3 and "no hosts match" in out, out
            continue
        assert code == 0, f"{playbook.name} -i {inventory.name}: {out}"
        m = re.search(r": OK \((\d+) checks, (\d+) hosts\)", out)
        assert m and int(m.group(2)) >= 1, f"{playbook.name} matches no host: {out}"


def test_daily_health_runs_here_with_the_linux_commands(tmp_path: Path):
    res = CliRunner().invoke(main, ["--state-dir", str(tmp_path), "run",
                                    str(ROOT / "playbooks" / "daily-health.yml"),
                                    "--format", "json"])
    doc = json.loads(res.output)
    by_name = {r["name"]: r["status"] for r in doc["results"]}
    assert "UNKNOWN" not in by_name.values(), doc
    assert by_name["memory available"] in ("OK", "WARN", "CRIT")
    assert by_name["load per CPU"] in ("OK", "WARN", "CRIT")
    assert by_name["memory available (Windows)"] == "SKIPPED"
    assert by_name["CPU load (Windows)"] == "SKIPPED"


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n#", start + len(heading))
    return text[start:end if end >= 0 else None]


def test_readme_lists_every_example_playbook_and_those_that_change_hosts_first():
    registry = get_plugin_manager().registry
    section = _section((ROOT / "README.md").read_text(), "### Example playbooks")
    changing, _, read_only = section.partition("Read-only")
    assert "**Changes hosts**" in changing
    for path in PLAYBOOKS:
        book = load_playbook(path, registry)
        changes = any(issubclass(registry.check(c.check), Action) for c in book.checks)
        listed_in = changing if changes else read_only
        assert f"`{path.name}`" in listed_in, (
            f"{path.name} should be listed under {'Changes hosts' if changes else 'Read-only'}")


def test_readme_check_table_is_one_table_of_the_real_checks():
    section = _section((ROOT / "README.md").read_text(), "### Built-in checks")
    lines = section.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("|"))
    table = []
    for line in lines[first:]:
        if not line.startswith("|"):
            break
        table.append(line)
    named = set(re.findall(r"`([a-z_]+\.[a-z_]+)`", "\n".join(table)))
    builtin = {name for name, plugin in get_plugin_manager().registry.origin.items()
               if name[0] == "check"}
    assert named == {name for _, name in builtin}


def _doc_playbooks() -> list[tuple[str, str]]:
    found = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for block in re.findall(r"```yaml\n(.*?)```", doc.read_text(), re.S):
            try:
                data = yaml.safe_load(block)
            except yaml.YAMLError:
                continue
            if isinstance(data, dict) and "name" in data and "checks" in data and (
                    "..." not in block):
                found.append((f"{doc.name}: {data['name']}", block))
    return found


@pytest.mark.parametrize(("where", "block"), _doc_playbooks(), ids=lambda v: v[:60])
def test_playbooks_written_out_in_the_docs_validate(where: str, block: str, tmp_path: Path):
    path = tmp_path / "example.yml"
    path.write_text(block)
    load_playbook(path, get_plugin_manager().registry)

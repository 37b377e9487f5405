"""``upkeeper docs``: build, baseline approve and schema through the real command line,
with one clear error for a missing history, no snapshots or an unknown client."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from tests.asbuilt.factsgen import DAY, NOW, doc, store
from upkeeper.cli.main import main
from upkeeper.store.history import History


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_build_baseline_and_errors(state_dir: Path, tmp_path: Path) -> None:
    code, out = invoke("docs", "build", "-o", str(tmp_path / "out"))
    assert code != 0 and "no history database" in out
    hist = History(state_dir / "history.sqlite3")
    code, out = invoke("docs", "build", "-o", str(tmp_path / "out"))
    assert code != 0 and "no fact snapshots in history yet" in out
    store(hist, doc("web1", "m-web1", NOW - DAY))
    store(hist, doc("db1", "m-db1", NOW - DAY), client="globex")
    hist.close()
    code, out = invoke("docs", "build", "--client", "nope", "-o", str(tmp_path / "out"))
    assert code != 0 and "'nope'" in out and "acme, globex" in out
    code, out = invoke("docs", "baseline", "approve", "--client", "acme")
    assert code == 0, out
    code, out = invoke("docs", "build", "--client", "acme", "-o", str(tmp_path / "out"))
    assert code == 0, out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["acme"]
    index = json.loads((tmp_path / "out" / "acme" / "docs.json").read_text())
    assert index["baseline"]["differences"] == []
    code, out = invoke("docs", "build", "-o", str(tmp_path / "out"))
    assert code == 0 and "2 client(s), 2 host(s)" in out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "acme", "globex", "index.html", "index.md"]
    code, out = invoke("docs", "schema")
    assert code == 0 and json.loads(out)["title"].startswith("upkeeper as-built")


def test_bad_dates_are_one_clear_error(state_dir: Path, tmp_path: Path) -> None:
    hist = History(state_dir / "history.sqlite3")
    store(hist, doc("web1", "m-web1", NOW - DAY))
    hist.close()
    code, out = invoke("docs", "build", "--since", "last tuesday", "-o", str(tmp_path))
    assert code != 0 and "--since: 'last tuesday' is not a date" in out

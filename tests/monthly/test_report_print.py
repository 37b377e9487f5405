"""The monthly report in a real headless Chromium: it prints to a multi-page PDF, and
with the print styles applied no table is wider than an A4 page (nothing clipped), even
with a summary that is one long unbreakable word."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.monthly.helpers import at, record
from tests.monthly.test_report import AFTER, NOV, november
from upkeeper.models import Status
from upkeeper.monthly.render import render_client_report
from upkeeper.monthly.report import build_client_report
from upkeeper.store.history import History

#: A4 at 96 dpi less the report's 12 mm side margins: (210 - 24) / 25.4 * 96.
A4_PRINTABLE_PX = 703
PROBE = """<script>
addEventListener('load', () => {
  const width = document.documentElement.clientWidth;
  const wide = [...document.querySelectorAll('table')].filter(
    t => t.getBoundingClientRect().right > width + 1 || t.scrollWidth > t.clientWidth + 1);
  document.title = 'TABLES=' + document.querySelectorAll('table').length + ' WIDE=' + wide.length;
});
</script>"""


def _chromium() -> str | None:
    for name in ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(_chromium()), "--headless", "--no-sandbox", "--disable-gpu",
                           *args], capture_output=True, text=True, timeout=120, cwd=cwd)


@pytest.mark.slow
@pytest.mark.skipif(_chromium() is None, reason="no Chromium installed")
def test_monthly_report_prints_to_pdf_without_clipped_tables(history: History,
                                                             tmp_path: Path) -> None:
    november(history)
    record(history, at("2026-11-15 02:00"), [("web1", "disk.usage", Status.WARN)],
           summary="x" * 400)
    html = render_client_report(build_client_report(history, "acme", NOV, now=AFTER), "html")
    page = tmp_path / "report.html"
    page.write_text(html, encoding="utf-8")
    pdf = tmp_path / "report.pdf"
    proc = _run("--no-pdf-header-footer", f"--print-to-pdf={pdf}", page.as_uri(), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-")
    assert len(re.findall(rb"/Type\s*/Page\b", data)) >= 2  # the availability page break
    probe = tmp_path / "probe.html"
    probe.write_text(html.replace("@media print", "@media all").replace("</body>",
                                                                        PROBE + "</body>"))
    proc = _run(f"--window-size={A4_PRINTABLE_PX},1100", "--dump-dom", probe.as_uri(),
                cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    title = re.search(r"<title>(.*?)</title>", proc.stdout)
    assert title is not None
    assert re.fullmatch(r"TABLES=\d+ WIDE=0", title.group(1)), title.group(1)
    assert int(title.group(1).split()[0].split("=")[1]) >= 5

"""Documentation facts and sites in a real browser: the host page's facts with the
software list unfolded, the full documentation page it links to, and the fleet page's
offline sites; screenshots go where ``test_browser`` puts its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.waiting import wait_for
from tests.web.fleetdata import fill
from tests.web.test_browser import artefacts as artefacts  # the fixtures, re-exported
from tests.web.test_browser import browser as browser
from tests.web.test_browser import shot, text_of
from tests.web.test_docs_sites import documented, sites
from upkeeper.store.history import History
from upkeeper.web.server import Bind, WebServer

pytestmark = pytest.mark.slow


@pytest.fixture
def server(tmp_path: Path) -> Iterator[WebServer]:
    history = History(tmp_path / "history.sqlite3")
    fill(history, days=30)
    documented(history)
    sites(history, live=False)
    web = WebServer(history, Bind("127.0.0.1", 0))
    web.start()
    yield web
    web.stop()
    history.close()


def test_host_facts_and_offline_sites_in_a_browser(server: WebServer, browser: Any,
                                                   artefacts: Path) -> None:
    base = server.url.rstrip("/")
    b = browser
    b.get(base + "/")
    wait_for(lambda: b.find_elements("css selector", "section.sites-offline"),
             "the offline sites on the fleet page")
    assert "acme-office" in text_of(b)
    shot(b, artefacts, "fleet-sites")

    b.get(base + "/hosts/web1")
    wait_for(lambda: b.find_elements("css selector", "section.facts"), "the host's facts")
    facts = b.find_element("css selector", "section.facts")
    assert "Listening ports" in facts.text and "Reached through site" in text_of(b)
    software = b.find_element("xpath", "//section[contains(@class,'facts')]//details"
                                       "[summary/strong[text()='Installed software']]")
    assert not software.find_element("tag name", "table").is_displayed()
    software.find_element("tag name", "summary").click()
    wait_for(lambda: software.find_element("tag name", "table").is_displayed(),
             "the software list to unfold")
    assert "nginx" in software.text
    b.execute_script("window.scrollTo(0, 0)")
    shot(b, artefacts, "host-facts")

    b.find_element("link text", "full page").click()
    wait_for(lambda: "/docs/hosts/web1-" in b.current_url, "the documentation page")
    assert "web1" in b.title and "Installed software" in text_of(b)
    shot(b, artefacts, "host-documentation")

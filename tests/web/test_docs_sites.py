"""Documentation facts and sites on the dashboard: a host's latest as-built snapshot and
health flags on its page, the client's documentation rendered by asbuilt's own
renderer, offline sites on the fleet page and the site a host is reached through, all
within the viewer's scope."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.asbuilt.factsgen import doc, iso_in, store
from tests.web.conftest import FAST_HASHER
from tests.web.fleetdata import NOW
from upkeeper.after_run.asbuilt_step import doc_hygiene
from upkeeper.asbuilt.document import iter_documents
from upkeeper.asbuilt.render import write_documents
from upkeeper.sites import store as site_store
from upkeeper.store.history import History
from upkeeper.web.app import create_app
from upkeeper.web.auth import Users
from upkeeper.web.site import WebConfig

URL = "http://127.0.0.1:8470"
COLLECTED = NOW.timestamp() - 3600


def documented(history: History) -> None:
    """web1 (acme) with an expiring certificate and an end-of-life OS; a globex machine
    that was also once called web1, with its own serial."""
    def edit(d: dict[str, Any]) -> dict[str, Any]:
        d["sections"]["certificates"]["items"][0]["not_after"] = iso_in(20, time.time())
        d["sections"]["os"]["fields"].update(eol=True, eol_date="2025-05-31")
        return d

    store(history, edit(doc("web1", "m-web1", COLLECTED, software=40)))
    other = doc("web1", "m-globex", COLLECTED)
    other["sections"]["identity"]["fields"]["serial"] = "SN-GLOBEX-SECRET"
    store(history, other, client="globex")


def sites(history: History, *, live: bool) -> None:
    """web1 reached through site acme-office, mail1 through globex-dc."""
    site_store.ensure_tables(history)
    site_store.record_published(history, [("j1", "run-001", "acme-office", "web1", 0.0),
                                          ("j2", "run-001", "globex-dc", "mail1", 0.0)])
    site_store.finish_job(history, "j1", "acme-office", site_store.DONE, worker="w-acme-1")
    seen = time.time() if live else time.time() - 3600
    site_store.saw_workers(history, [("acme-office", "w-acme-1", seen),
                                     ("globex-dc", "w-globex-1", seen)])


@pytest.fixture
def users(fleet_history: History) -> Users:
    u = Users(fleet_history, hasher=FAST_HASHER)
    u.add("alice", "operator", password="alice-pw-1")
    u.add("acme-staff", "viewer", ("acme",), password="acme-pw-1")
    return u


@pytest.fixture
def authed(fleet_history: History, users: Users) -> Iterator[TestClient]:
    with TestClient(create_app(fleet_history, WebConfig(hasher=FAST_HASHER)), base_url=URL,
                    follow_redirects=False) as c:
        yield c


def login(client: TestClient, name: str, password: str) -> None:
    assert client.post("/login", data={"user": name, "password": password}
                       ).status_code == 303


def test_host_page_shows_the_latest_facts_and_health(fleet_history: History,
                                                      client: TestClient) -> None:
    documented(fleet_history)
    page = client.get("/hosts/web1").text
    facts = page[page.index('id="documentation"'):]
    for text in ("machine-id:m-web1", "Operating system", "Ubuntu", "2025-05-31",
                 "Hardware", "Intel Xeon", "8.0 GiB", "Network interfaces", "192.0.2.10/24",
                 "Listening ports", "nginx", "Local administrators", "alice", "Certificates",
                 "CN=Test CA", iso_in(20, time.time())[:10]):
        assert text in facts, text
    # Software is a count with the list folded away, not 43 rows on the page.
    assert re.search(r"<details[^>]*><summary><strong>Installed software</strong>: 43"
                     r" entries</summary>", facts), facts[:2000]
    flags = facts[facts.index("health-flags"):facts.index("</ul>")]
    assert "expires" in flags and "end of life" in flags.lower(), flags
    assert "SN-GLOBEX-SECRET" not in page  # another client's machine of the same name
    assert 'href="/clients/acme/docs/hosts/web1-' in facts


def test_undocumented_host_has_no_facts(fleet_history: History, client: TestClient) -> None:
    documented(fleet_history)
    page = client.get("/hosts/db1")
    assert page.status_code == 200 and 'id="documentation"' not in page.text


def test_client_documentation_is_asbuilts_own_rendering(fleet_history: History,
                                                        client: TestClient,
                                                        tmp_path: Path) -> None:
    documented(fleet_history)
    assert "/clients/acme/docs/index.html" in client.get("/clients/acme").text
    assert "/docs/index.html" not in client.get("/clients/mail-less").text
    index = client.get("/clients/acme/docs/index.html")
    assert index.status_code == 200
    assert "sandbox" in index.headers["content-security-policy"]
    built = write_documents(iter_documents(fleet_history, ["acme"]), tmp_path, doc_hygiene(),
                            names=["acme"])
    assert index.text == (tmp_path / "acme" / "index.html").read_text()
    host_file = next(f for f in built.files if f.startswith("acme/hosts/")
                     and f.endswith(".html"))
    page = client.get(f"/clients/acme/docs/{host_file.removeprefix('acme/')}")
    assert page.status_code == 200 and page.text == (tmp_path / host_file).read_text()
    assert client.get("/clients/acme/docs/hosts/nobody-0000.html").status_code == 404
    assert client.get("/clients/globex/docs/index.html").status_code == 200


def test_client_scoped_viewer_sees_only_their_documentation(fleet_history: History,
                                                            authed: TestClient) -> None:
    documented(fleet_history)
    login(authed, "acme-staff", "acme-pw-1")
    assert "machine-id:m-web1" in authed.get("/hosts/web1").text
    for url in ("/clients/globex/docs/index.html", "/hosts/mail1",
                "/clients/globex/docs/hosts/web1-0000000000.html"):
        assert authed.get(url).status_code == 404, url
    assert authed.get("/clients/acme/docs/index.html").status_code == 200


def test_fleet_lists_offline_sites_within_scope(fleet_history: History,
                                                authed: TestClient) -> None:
    sites(fleet_history, live=False)
    login(authed, "alice", "alice-pw-1")
    fleet = authed.get("/").text
    assert "Offline sites" in fleet and "acme-office" in fleet and "globex-dc" in fleet
    host = authed.get("/hosts/web1").text
    assert re.search(r"Reached through site <strong>acme-office</strong> \(worker"
                     r" w-acme-1\): the site is offline", host), host[:3000]
    authed.post("/logout", data={"csrf": re.search(r'name="csrf" value="([^"]+)"',
                                                   fleet).group(1)})  # type: ignore[union-attr]
    login(authed, "acme-staff", "acme-pw-1")
    fleet = authed.get("/").text
    assert "acme-office" in fleet and "globex-dc" not in fleet


def test_live_site_is_not_offline(fleet_history: History, client: TestClient) -> None:
    sites(fleet_history, live=True)
    assert "Offline sites" not in client.get("/").text
    host = client.get("/hosts/web1").text
    assert "Reached through site <strong>acme-office</strong>" in host
    assert "the site is offline" not in host
    assert "Reached through site" not in client.get("/hosts/db1").text


def test_hostile_fact_values_are_escaped_and_cleaned(fleet_history: History,
                                                     client: TestClient) -> None:
    d = doc("web1", "m-web1", COLLECTED)
    d["sections"]["ports"]["items"].append({"proto": "tcp", "address": "0.0.0.0",
                                           "port": 6666,
                                           "process": "<script>alert(1)</script>\x1b[31mred"})
    store(fleet_history, d)
    page = client.get("/hosts/web1").text
    assert "<script>alert(1)" not in page and "\x1b" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_a_host_belongs_to_the_site_of_its_newest_job(fleet_history: History) -> None:
    from upkeeper.sites.hostsite import host_site, site_hosts

    assert host_site(fleet_history, "web1") is None and site_hosts(fleet_history, "x") == set()
    sites(fleet_history, live=False)
    with fleet_history.transaction() as db:  # web1 moved: its next job went to acme-dc
        db.execute("INSERT INTO site_jobs (job_id, run_id, site, host, published, deadline,"
                   " state) VALUES ('j3', 'run-002', 'acme-dc', 'web1', ?, 0, 'queued')",
                   (time.time(),))
    assert site_hosts(fleet_history, "acme-office") == set()
    assert site_hosts(fleet_history, "acme-dc") == {"web1"}
    found = host_site(fleet_history, "web1")
    assert found is not None and (found.site, found.worker) == ("acme-dc", None)

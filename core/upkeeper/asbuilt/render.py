"""Writing client documents: self-contained HTML and Markdown (Jinja2 in a sandbox, facts
are hostile input), ``docs.json`` plus one JSON file per host, and ``hosts.csv``.

Output is deterministic: same snapshots, same bytes (JSON and Markdown; HTML too).
Text hygiene comes in as a :class:`Hygiene` (core's secret masking and control-character
cleaning live above this layer), so there is one implementation of each.
"""

from __future__ import annotations

import csv
import functools
import html
import io
import json
import multiprocessing
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from upkeeper.asbuilt.categories import DocCategory, category_table, is_unavailable
from upkeeper.asbuilt.document import ClientDocument, host_slug, iso, ordered_categories, slug
from upkeeper.asbuilt.snapshots import HostDoc
from upkeeper.measures import format_size

if TYPE_CHECKING:
    import jinja2

TEMPLATES = Path(__file__).parent / "templates"
#: Cells a spreadsheet would run as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Hygiene:
    """How text is made safe: ``mask`` hides secrets by key name in nested data,
    ``clean`` drops control characters and escape sequences (one line), ``md`` escapes
    a Markdown table cell."""

    mask: Callable[[Any], Any]
    clean: Callable[[Any], str]
    md: Callable[[Any], str]


def csv_cell(value: Any) -> str:
    """A CSV cell a spreadsheet shows as text: formula starts get a leading quote."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def show(name: str, value: Any) -> str:
    """A fact value as one line of text."""
    if type(value) is str:
        return value
    if is_unavailable(value):
        return f"unavailable: {value['unavailable']}"
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)) and name.endswith("bytes"):
        return format_size(value)
    if isinstance(value, (list, tuple)):
        return ", ".join(show(name, v) for v in value)
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={show(str(k), v)}" for k, v in sorted(value.items()))
    return str(value)


@dataclass
class SectionView:
    key: str
    title: str
    columns: list[str]
    rows: list[list[str]]
    unavailable: str
    source: str

    def html_rows(self) -> Markup:
        """The table body as markup, every cell escaped here: thousands of packages per
        host cost a few joins instead of a sandboxed template call per cell."""
        return Markup("\n".join(_html_row(tuple(row)) for row in self.rows))

    def md_rows(self, md: Callable[[Any], str]) -> list[str]:
        return ["| " + " | ".join(md(c) for c in row) + " |" for row in self.rows]


@functools.lru_cache(maxsize=1 << 16)
def _html_row(cells: tuple[str, ...]) -> str:
    """One escaped table row; hosts of a fleet share most rows (same package, version)."""
    return "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>"


def section_view(cat: DocCategory, data: Any, clean: Callable[[Any], str]) -> SectionView:
    data = data if isinstance(data, Mapping) else {}
    unavailable = clean(data.get("unavailable") or "")
    source = clean(data.get("source") or "")
    if cat.rows is not None:
        try:
            drawn = [dict(r) for r in cat.rows(data)]
        except Exception as exc:  # a plugin's drawing must not break the document
            return SectionView(cat.key, cat.title, [], [], clean(f"section failed: {exc}"),
                               source)
        columns = list(dict.fromkeys(str(k) for r in drawn for k in r))
        return SectionView(cat.key, cat.title, columns,
                           [[clean(show(c, r.get(c))) for c in columns] for r in drawn],
                           unavailable, source)
    if cat.kind == "fields":
        fields = data.get("fields") if isinstance(data.get("fields"), Mapping) else {}
        names = [c for c in cat.columns if c in fields] or sorted(fields)
        names += sorted(k for k in fields if k not in names and cat.columns)
        return SectionView(cat.key, cat.title, ["field", "value"],
                           [[clean(n), clean(show(n, fields[n]))] for n in names],
                           unavailable, source)
    items = [i for i in data.get("items") or [] if isinstance(i, Mapping)]
    columns = list(cat.columns) or sorted({str(k) for i in items for k in i})
    rows = sorted([clean(show(c, i.get(c))) for c in columns] for i in items)
    return SectionView(cat.key, cat.title, columns, rows, unavailable, source)


@functools.lru_cache(maxsize=4)
def environment(html: bool) -> jinja2.Environment:
    from jinja2 import FileSystemLoader, StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    return SandboxedEnvironment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=html,
                                undefined=StrictUndefined, trim_blocks=True,
                                lstrip_blocks=True, keep_trailing_newline=True)


def _write(path: Path, text: str) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    data = text.encode("utf-8")
    tmp.unlink(missing_ok=True)  # a leftover, or a planted symlink: never written through
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    tmp.replace(path)  # readers (and git) never see half a file
    return len(data)


def to_json(data: Any) -> str:
    """Sorted JSON, one object member or list element per line down to items (diffs
    read well in git), each item on one line (json's C encoder: fast)."""
    return _pretty(data, 0) + "\n"


#: One encoder for the whole build (json.dumps with options builds one per call).
_ENCODE = json.JSONEncoder(sort_keys=True, ensure_ascii=False, default=str).encode


def _pretty(value: Any, level: int) -> str:
    if level >= 4 or not isinstance(value, (dict, list)) or not value:
        return _ENCODE(value)
    pad, inner = " " * level, " " * (level + 1)
    if isinstance(value, dict):
        body = ",\n".join(f"{inner}{_ENCODE(str(k))}: "
                          f"{_pretty(value[k], level + 1)}"
                          for k in sorted(value, key=str))
        return "{\n" + body + "\n" + pad + "}"
    body = ",\n".join(inner + _pretty(v, level + 1) for v in value)
    return "[\n" + body + "\n" + pad + "]"


def hosts_csv(doc: ClientDocument) -> str:
    index = doc.index_json()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    head = ["id", "name", "platform", "os", "addresses", "manufacturer", "model", "serial",
            "virtual", "cpu", "ram_bytes", "last_seen", "health"]
    writer.writerow(head)
    for h in index["hosts"]:
        s = h["summary"]
        problems = len(doc.findings_of(h["id"]))
        writer.writerow([csv_cell(v) for v in (
            h["id"], h["name"], h["platform"], s["os"], " ".join(s["addresses"]),
            s["manufacturer"], s["model"], s["serial"], s["virtual"], s["cpu"],
            s["ram_bytes"], h["last_seen"], problems)])
    return out.getvalue()


@dataclass
class Written:
    """What a build wrote: files and their sizes."""

    files: dict[str, int]

    @property
    def largest(self) -> tuple[str, int]:
        return max(self.files.items(), key=lambda kv: kv[1], default=("", 0))


def client_dirs(names: Sequence[str]) -> dict[str, str]:
    """Client -> its directory name (slugs; a clash gets a numbered suffix)."""
    out: dict[str, str] = {}
    taken: set[str] = set()
    for name in sorted(names):
        base = candidate = slug(name)
        n = 2
        while candidate in taken:
            candidate, n = f"{base}-{n}", n + 1
        taken.add(candidate)
        out[name] = candidate
    return out


@dataclass
class _HostJob:
    """What writing one client's host pages needs (inherited by forked workers)."""

    doc: ClientDocument
    base: Path
    dirname: str
    table: Mapping[str, DocCategory]
    hygiene: Hygiene
    common: dict[str, Any]


#: The job forked workers render from: set just before the pool forks, so nothing
#: (templates, a plugin's ``rows`` function) has to be pickled.
_JOB: _HostJob | None = None
#: Fewer hosts than this are not worth starting workers for.
_PARALLEL_MIN_HOSTS = 40


def _write_hosts(job: _HostJob, indices: Sequence[int]) -> dict[str, int]:
    html, md = environment(True), environment(False)
    templates = {"html": html.get_template("host.html.j2"),
                 "md": md.get_template("host.md.j2")}
    written: dict[str, int] = {}
    for i in indices:
        host = job.doc.hosts[i]
        name = host_slug(host)
        page = _host_page(job.doc, host, job.table, job.hygiene)
        for fmt, tpl in templates.items():
            written[f"{job.dirname}/hosts/{name}.{fmt}"] = _write(
                job.base / "hosts" / f"{name}.{fmt}", tpl.render(host=page, **job.common))
        data = job.doc.host_json(host)
        data["health"] = job.hygiene.mask(data["health"])
        written[f"{job.dirname}/hosts/{name}.json"] = _write(
            job.base / "hosts" / f"{name}.json", to_json(data))
    return written


def _write_hosts_forked(indices: Sequence[int]) -> dict[str, int]:
    assert _JOB is not None, "worker started without a job"
    return _write_hosts(_JOB, indices)


def _write_all_hosts(job: _HostJob, workers: int) -> dict[str, int]:
    """Host pages, in ``workers`` forked processes when there are enough hosts (each
    page depends on its host alone, so the output is the same either way)."""
    global _JOB
    count = len(job.doc.hosts)
    if workers <= 1 or count < _PARALLEL_MIN_HOSTS or \
            "fork" not in multiprocessing.get_all_start_methods():
        return _write_hosts(job, range(count))
    chunks = [list(range(start, count, workers * 4)) for start in range(workers * 4)]
    written: dict[str, int] = {}
    _JOB = job
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")
                                 ) as pool:
            for part in pool.map(_write_hosts_forked, chunks):
                written.update(part)
    finally:
        _JOB = None
    return written


def write_client(doc: ClientDocument, root: Path, dirname: str, hygiene: Hygiene,
                 categories: Iterable[DocCategory] = (), workers: int = 1) -> dict[str, int]:
    """Write one client's document under ``root/dirname``; returns file -> bytes."""
    base = root / dirname
    common = _common(doc, hygiene)
    job = _HostJob(doc, base, dirname, category_table(categories), hygiene, common)
    written = _write_all_hosts(job, workers)
    _remove_stale(base / "hosts", {p.rpartition("/")[2] for p in written})
    for fmt in ("html", "md"):
        text = environment(fmt == "html").get_template(f"index.{fmt}.j2").render(**common)
        written[f"{dirname}/index.{fmt}"] = _write(base / f"index.{fmt}", text)
    written[f"{dirname}/docs.json"] = _write(base / "docs.json", to_json(common["doc"]))
    written[f"{dirname}/hosts.csv"] = _write(base / "hosts.csv", hosts_csv(doc))
    return dict(sorted(written.items()))


def _common(doc: ClientDocument, hygiene: Hygiene) -> dict[str, Any]:
    """What the index and every host page of one client are rendered with."""
    counts = {h.identity: len(doc.findings_of(h.identity)) for h in doc.hosts}
    return {"doc": hygiene.mask(doc.index_json()), "health_counts": counts,
            **_text_functions(hygiene)}


def render_index(doc: ClientDocument, hygiene: Hygiene, fmt: str = "html") -> str:
    """The client's ``index.html`` (or ``.md``) as text, as a build writes it (the
    dashboard serves it without writing files)."""
    return environment(fmt == "html").get_template(f"index.{fmt}.j2").render(
        **_common(doc, hygiene))


def render_host(doc: ClientDocument, host: HostDoc, hygiene: Hygiene,
                categories: Iterable[DocCategory] = (), fmt: str = "html") -> str:
    """One host's page (``hosts/<slug>.html`` or ``.md``) as text, as a build writes it."""
    page = _host_page(doc, host, category_table(categories), hygiene)
    return environment(fmt == "html").get_template(f"host.{fmt}.j2").render(
        host=page, **_common(doc, hygiene))


def _cached(hygiene: Hygiene) -> Hygiene:
    """Text functions remembered for one build: a fleet's hosts share most package
    names, versions and services, so most cells are cleaned and escaped once."""
    clean = functools.lru_cache(maxsize=1 << 16)(hygiene.clean)
    md = functools.lru_cache(maxsize=1 << 16)(hygiene.md)

    def cached(fn: Callable[[Any], str]) -> Callable[[Any], str]:
        def call(value: Any) -> str:
            return fn(value) if isinstance(value, str) else fn.__wrapped__(value)  # type: ignore[attr-defined]
        return call

    return Hygiene(hygiene.mask, cached(clean), cached(md))


def _text_functions(hygiene: Hygiene) -> dict[str, Callable[[Any], str]]:
    """What templates print values through: one line, cleaned, Markdown-escaped for md."""
    return {"clean": lambda v: hygiene.clean(show("", v)),
            "md": lambda v: hygiene.md(show("", v))}


def _remove_stale(folder: Path, keep: set[str]) -> None:
    """Pages of hosts no longer documented (a renamed host's old file) go."""
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if path.is_file() and path.suffix in (".html", ".md", ".json") \
                and path.name not in keep:
            path.unlink()


def _host_page(doc: ClientDocument, host: HostDoc, table: Mapping[str, DocCategory],
               hygiene: Hygiene) -> dict[str, Any]:
    # Sections were masked when snapshotted (snapshots.store_doc requires a mask).
    views = [section_view(cat, data, hygiene.clean)
             for cat, data in ordered_categories(host, table)]
    sections = [{"key": v.key, "title": v.title, "columns": v.columns, "source": v.source,
                 "unavailable": v.unavailable, "html_rows": v.html_rows(),
                 "md_rows": v.md_rows(hygiene.md)} for v in views]
    return {"slug": host_slug(host), "name": host.host, "id": host.identity,
            "weak": host.weak, "aliases": list(host.aliases), "platform": host.platform,
            "last_seen": iso(host.collected_at), "sections": sections,
            "health": [f.to_json() for f in doc.findings_of(host.identity)],
            "changes": [c.to_json() for c in doc.changes_of(host.identity)],
            "drift": [c.to_json() for c in doc.drift_of(host.identity)]}


def write_documents(docs: Iterable[ClientDocument], out: Path, hygiene: Hygiene,
                    categories: Iterable[DocCategory] = (),
                    names: Sequence[str] | None = None, index: bool = True,
                    workers: int = 1) -> Written:
    """Write every client's document under ``out`` and (with ``index``) an index of the
    clients; a build of some clients leaves the index of a full build alone.

    ``docs`` may be a generator (one client in memory at a time); ``names`` are all
    the clients it yields, for their directory names (default: read ``docs`` first).
    ``workers`` > 1 renders host pages in that many forked processes (a command-line
    process only: forking a threaded one such as ``serve`` is not safe).
    """
    cats = list(categories)
    hygiene = _cached(hygiene)
    if names is None:
        docs = list(docs)
        names = [d.name for d in docs]
    dirs = client_dirs(names)
    files: dict[str, int] = {}
    listing: list[dict[str, Any]] = []
    latest = 0.0
    for doc in docs:
        files.update(write_client(doc, out, dirs[doc.name], hygiene, cats, workers))
        listing.append({"name": doc.name, "dir": dirs[doc.name], "hosts": len(doc.hosts),
                        "changes": len(doc.changes), "drift": len(doc.drift),
                        "health": len(doc.findings)})
        latest = max(latest, doc.as_of)
    if not index:
        return Written(files)
    listing.sort(key=lambda c: c["name"])
    as_of = iso(latest)
    for fmt in ("html", "md"):
        text = environment(fmt == "html").get_template(f"clients.{fmt}.j2").render(
            clients=listing, as_of=as_of, **_text_functions(hygiene))
        files[f"index.{fmt}"] = _write(out / f"index.{fmt}", text)
    return Written(files)

"""Showing runs to people and machines: progress, result tables, plain lines and JSON.

On a terminal: rich tables and a progress bar. Off a terminal (a pipe, a file, a
monitoring system): nothing is truncated or wrapped, tables are tab-separated rows under
one header line (so ``grep`` and ``cut`` work), and each result line is printed once, on
stdout. rich is imported only when a terminal is there to show it (it costs start-up time
that scheduled and monitoring-system runs do not need).
"""

from __future__ import annotations

import json
import shlex
import sys
import threading
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TextIO

from upkeeper.after_run.text import clean_text
from upkeeper.models import Result, RunRecord, Status

if TYPE_CHECKING:
    from rich.progress import Progress
    from rich.table import Table

STATUS_STYLE = {
    Status.OK: "green",
    Status.WARN: "yellow",
    Status.CRIT: "bold red",
    Status.UNKNOWN: "magenta",
    Status.SKIPPED: "dim",
}


def to_json(data: Any, pretty: bool | None = None) -> str:
    """JSON text; indented for people (a terminal), compact for programs, since the
    indenting encoder is pure Python and slow on runs with thousands of results."""
    if pretty is None:
        pretty = sys.stdout.isatty()
    if pretty:
        return json.dumps(data, indent=2, default=str, ensure_ascii=False)
    return json.dumps(data, default=str, ensure_ascii=False)


def _cell(value: Any) -> str:
    # A tab or newline inside a value would shift columns or split a row; an escape
    # sequence from a host would rewrite the terminal.
    return clean_text(value, single_line=True)


def print_table(columns: Sequence[str], rows: Iterable[Sequence[Any]],
                stream: TextIO | None = None, styles: Sequence[str | None] = ()) -> None:
    """A table: rich on a terminal, else tab-separated rows under a header line.

    ``styles`` gives an optional rich style per row (the terminal only).
    """
    out = stream or sys.stdout
    if not out.isatty():
        out.write("\t".join(columns) + "\n")
        for row in rows:
            out.write("\t".join(_cell(v) for v in row) + "\n")
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(*columns)
    for i, row in enumerate(rows):
        style = styles[i] if i < len(styles) else None
        table.add_row(*(Text(_cell(v)) for v in row), style=style)
    Console(file=out).print(table)


def plain_line(r: Result) -> str:
    """One result on one line, without escape sequences or control characters from the
    host (a summary must not be able to rewrite the terminal)."""
    return f"{r.status.value:<8} {_cell(r.host)} {_cell(r.name)}: {_cell(r.summary)}"


class RunDisplay:
    """Progress while hosts run: a rich bar on a terminal; off a terminal nothing, since
    the final report on stdout carries every result line (printing them here too would
    show each line twice under ``2>&1``).

    With ``quiet`` (``--format json``) nothing is shown while running.
    """

    def __init__(self, total_hosts: int, checks_per_host: int, *, quiet: bool = False,
                 stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.tty = self.stream.isatty()
        self.total = total_hosts * checks_per_host
        self._lock = threading.Lock()
        self._progress: Progress | None = None
        self._task: Any = None

    def __enter__(self) -> RunDisplay:
        if not self.quiet and self.tty:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), TextColumn("{task.fields[last]}"),
                console=Console(file=self.stream), transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task("checks", total=self.total, last="")
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.stop()

    def result(self, r: Result) -> None:
        if self._progress is None:
            return
        with self._lock:
            from rich.markup import escape  # the column parses markup

            self._progress.update(self._task, advance=1,
                                  last=escape(_cell(f"{r.host}: {r.name} {r.status.value}")))


def results_table(results: Iterable[Result], title: str | None = None) -> Table:
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, show_lines=False, expand=False)
    table.add_column("Status", no_wrap=True)
    table.add_column("Host", no_wrap=True)
    table.add_column("Check", no_wrap=True)
    table.add_column("Summary")
    table.add_column("Time", justify="right", no_wrap=True)
    for r in results:
        table.add_row(Text(r.status.value, style=STATUS_STYLE[r.status]), Text(_cell(r.host)),
                      Text(_cell(r.name)), Text(_cell(r.summary)), f"{r.duration:.1f}s")
    return table


def print_run(run: RunRecord, fmt: str, stream: TextIO | None = None) -> None:
    """The final report of a run on stdout in the chosen format."""
    out = stream or sys.stdout
    fixes = run.meta.get("remediation") or []
    if fmt == "json":
        doc = run.to_dict()
        if fixes:
            doc["remediation"] = fixes
        out.write(to_json(doc) + "\n")
        return
    counts = run.counts()
    parts = [f"{n} {s}" for s, n in counts.items() if n]
    tail = " (interrupted)" if run.interrupted else ""
    tail += " - results not stored" if run.meta.get("history_error") else ""
    line = f"{run.status.value}: {', '.join(parts) or 'no results'} - run {run.run_id}{tail}"
    if out.isatty():
        from rich.console import Console

        console = Console(file=out)
        console.print(results_table(run.results, title=run.playbook))
        for text in fix_lines(fixes):
            console.print(text, markup=False, highlight=False)
        console.print(line, markup=False, highlight=False)
        return
    # Monitoring-plugin style: the first line is the verdict, the rest the long output.
    out.write(line + "\n")
    for r in run.results:
        out.write(plain_line(r) + "\n")
    for text in fix_lines(fixes):
        out.write(text + "\n")


def fix_lines(fixes: list[dict[str, Any]]) -> list[str]:
    """One line per fix the run triggered, and under a plan the commands it would run."""
    out = []
    for f in fixes:  # plans name files and mounts the host chose: no escape sequences
        summary = str(f["summary"])
        # A fixed outcome's summary already says so ("fixed: restart nginx").
        summary = summary.removeprefix(f"{f['outcome']}: ")
        out.append(_cell(f"fix {f['fix']} on {f['host']} ({f['name']}): {f['outcome']}: "
                         f"{summary}"))
        if f["outcome"] in ("planned", "awaiting-approval") and f.get("plan"):
            out += [f"    would run: {_cell(shlex.join(c))}"
                    for c in f["plan"].get("commands", [])[:20]]
    return out

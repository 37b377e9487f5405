"""CLI for unattended runs: ``upkeeper serve`` and ``upkeeper windows`` (``status`` is in
:mod:`upkeeper.cli.status`).

The commands are mounted into the ``upkeeper`` group; ``python -m upkeeper.cli.serve``
runs them standalone.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click

from upkeeper.cli.state import duration, open_history, resolve_state_dir
from upkeeper.models import RunRecord
from upkeeper.schedule.daemon import Daemon, JobDef, LoadResult, Slot
from upkeeper.store.history import History

log = logging.getLogger("upkeeper.serve")
UTC = timezone.utc
HEALTH_FILE = "serve-health.json"
LOCK_FILE = "serve.lock"
CHILDREN_FILE = "serve-children.json"
#: Default history retention of ``serve`` (``--retention``).
DEFAULT_RETENTION = "400d"
PLAYBOOK_SUFFIXES = (".yml", ".yaml")


class PlaybookDir:
    """Loads every scheduled playbook under a directory plus the inventories; on reload,
    a broken inventory keeps the previous one (broken playbooks: see Daemon._apply)."""

    def __init__(self, directory: Path, inventories: tuple[str, ...],
                 plugins: Callable[[], Any], history: History | None = None) -> None:
        self.directory, self.sources, self._plugins_factory = directory, inventories, plugins
        self.history = history
        self.inventory: Any = None
        #: With ``--hub``: the sites hub, and how long a slot's site jobs stay useful.
        self.hub: Any = None
        self.catch_up = 3600.0
        self._plugins: Any = None
        #: The playbooks of the last load (None before the first), for the site watch.
        self.playbooks: list[Any] | None = None

    @property
    def plugins(self) -> Any:
        if self._plugins is None:
            self._plugins = self._plugins_factory()
        return self._plugins

    def load_inventory(self) -> Any:
        from upkeeper.inventory.loader import load_inventory, local_inventory
        from upkeeper.inventory.patterns import InventoryError
        from upkeeper.yamlsource import SourceError

        if not self.sources:
            return local_inventory()
        # Plugins are only needed for sources that are not files (slow to load them all).
        files = all(Path(src).exists() for src in self.sources)
        try:
            return load_inventory(list(self.sources), extra_sources=(
                () if files else self.plugins.registry.inventory_sources))
        except (InventoryError, SourceError, OSError) as exc:
            raise ValueError(f"inventory: {exc}") from None

    def __call__(self) -> LoadResult:
        from upkeeper.engine.playbook import load_playbook
        from upkeeper.remediation.wiring import playbook_fix_problems
        from upkeeper.schedule.specs import parse_schedules
        from upkeeper.yamlsource import SourceError, load_yaml

        errors: dict[str, str] = {}
        try:
            self.inventory = self.load_inventory()
        except ValueError as exc:
            if self.inventory is None:
                raise
            errors["<inventory>"] = f"{exc} (keeping the previously loaded inventory)"
        jobs: dict[str, JobDef] = {}
        files = sorted(p for p in self.directory.rglob("*")
                       if p.suffix in PLAYBOOK_SUFFIXES and p.is_file())
        for path in files:
            key = path.relative_to(self.directory).as_posix()
            try:
                raw = load_yaml(path).data
                if not isinstance(raw, Mapping) or raw.get("schedule") is None:
                    log.debug("%s has no schedule: not served", key)
                    continue
                pb = load_playbook(path, self.plugins.registry)
                specs = parse_schedules(pb)
                fix_problems = playbook_fix_problems(pb, self.plugins)
                if fix_problems:
                    errors[key] = fix_problems[0]
                    continue
            except SourceError as exc:
                errors[key] = str(exc)
                continue
            except Exception as exc:  # one bad playbook never stops the others
                log.debug("loading %s failed", key, exc_info=True)
                errors[key] = f"{path}: cannot be loaded: {type(exc).__name__}: {exc}"
                continue
            jobs[key] = JobDef(key=key, name=pb.name, specs=specs, payload=pb)
        self.playbooks = [job.payload for job in jobs.values()]
        return LoadResult(jobs=jobs, errors=errors)

    def run(self, job: JobDef, slot: Slot, stop: threading.Event) -> RunRecord:
        from upkeeper.after_run.context import RunContext
        from upkeeper.after_run.pipeline import after_run
        from upkeeper.engine.runner import run_playbook
        from upkeeper.remediation.engine import default_actor
        from upkeeper.remediation.wiring import fix_pass_for

        assert self.history is not None
        fix_pass = fix_pass_for(job.payload, self.plugins, self.history,
                                actor=default_actor("schedule"))
        # A slot's site jobs are useful as long as the slot could still be caught up.
        remote = (self.hub.remote(slot.due.timestamp()
                                  + max(self.catch_up, 2 * self.hub.settings.ack_wait))
                  if self.hub is not None else None)
        record = run_playbook(job.payload, self.inventory, self.plugins, self.history,
                              stop_event=stop, run_id=slot.run_id, remote=remote,
                              host_finished=fix_pass,
                              meta={"trigger": "schedule", "job": job.key,
                                    "schedule": slot.index, "slot_due": slot.due.isoformat(),
                                    "schedule_period": min(s.period for s in job.specs)})
        after_run(record, RunContext.for_run(record, job.payload, self.history, self.plugins,
                                             inventory=self.inventory, sleep=stop.wait))
        return record


def kill_children() -> int:
    """SIGKILL the process groups of this process's children (commands of abandoned runs;
    the local transport starts each in its own group). Linux only; elsewhere 0."""
    me = os.getpid()
    killed = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) != me:
            continue
        pid = int(stat.parent.name)
        try:
            os.killpg(pid, signal.SIGKILL) if os.getpgid(pid) == pid else os.kill(
                pid, signal.SIGKILL)
            killed += 1
        except (ProcessLookupError, PermissionError):
            continue
    return killed


class JsonFormatter(logging.Formatter):
    """One JSON object per line (journald, ELK)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(),
            "level": record.levelname.lower(), "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:  # already formatted (and secrets masked) by MaskingFilter
            out["exc"] = record.exc_text
        return json.dumps(out)


def setup_logging(fmt: str, verbose: int) -> None:
    from upkeeper.engine.secrets import install_log_masking

    handler = install_log_masking(logging.StreamHandler(sys.stderr))
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        plain = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s",
                                  "%Y-%m-%dT%H:%M:%S")
        plain.converter = lambda *a: datetime.now(UTC).timetuple()
        handler.setFormatter(plain)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose > 1 else logging.INFO)
    logging.getLogger("paramiko").setLevel(logging.WARNING)


def _plugins(ctx: click.Context) -> Any:
    obj = ctx.find_root().obj
    if obj is not None and hasattr(obj, "plugins"):
        return obj.plugins
    from upkeeper.plugins import get_plugin_manager

    return get_plugin_manager()


@click.command()
@click.option("--playbooks", "playbooks_dir", default="playbooks", show_default=True,
              type=click.Path(file_okay=False), help="Directory of playbooks to serve.")
@click.option("-i", "--inventory", "inventories", multiple=True, metavar="INV",
              help="Inventory file or directory (repeatable). Default: this machine only.")
@click.option("--state-dir", "state_opt", type=click.Path(file_okay=False),
              help="History and slot database directory (default: upkeeper's state dir).")
@click.option("--workers", default=4, show_default=True, type=click.IntRange(1, 256),
              help="Playbook runs in parallel.")
@click.option("--catch-up", default="1h", show_default=True,
              help="Run a slot missed while down if at most this late (0 disables).")
@click.option("--grace", default="5m", show_default=True,
              help="On SIGTERM/SIGINT, how long running jobs may finish.")
@click.option("--heartbeat", default="15s", show_default=True,
              help="How often liveness is recorded.")
@click.option("--max-runtime", default=None, help="Stop by itself after this long.")
@click.option("--retention", default=DEFAULT_RETENTION, show_default=True,
              envvar="UPKEEPER_RETENTION",
              help="Prune history older than this at start and daily (0 keeps everything).")
@click.option("--web", "web_bind", metavar="HOST:PORT", envvar="UPKEEPER_WEB",
              help="Also serve the dashboard here (as `upkeeper web --bind`).")
@click.option("--log-format", type=click.Choice(["plain", "json"]), default="plain",
              show_default=True)
@click.option("--hub", "hub_url", envvar="UPKEEPER_HUB", metavar="URL",
              help="NATS URL of the hub: hosts with a 'site' var run at their site's workers.")
@click.option("--hub-creds", envvar="UPKEEPER_HUB_CREDS", type=click.Path(dir_okay=False),
              help="NATS credentials file of the hub [default: STATE_DIR/sites/hub.creds"
              " when it exists].")
@click.option("-v", "--verbose", count=True)
@click.pass_context
def serve(ctx: click.Context, playbooks_dir: str, inventories: tuple[str, ...],
          state_opt: str | None, workers: int, catch_up: str, grace: str, heartbeat: str,
          max_runtime: str | None, retention: str, web_bind: str | None, log_format: str,
          hub_url: str | None, hub_creds: str | None, verbose: int) -> None:
    """Run scheduled playbooks unattended until SIGTERM/SIGINT; SIGHUP reloads."""
    setup_logging(log_format, verbose)
    state_dir = resolve_state_dir(ctx, state_opt)
    directory = Path(playbooks_dir)
    if not directory.is_dir():
        raise click.UsageError(f"--playbooks {playbooks_dir}: no such directory")
    history = open_history(state_dir, create=True)
    source = PlaybookDir(directory, inventories, lambda: _plugins(ctx), history)
    try:
        source.inventory = source.load_inventory()
    except ValueError as exc:
        click.echo(f"upkeeper: error: {exc}", err=True)
        sys.exit(3)
    source.plugins  # noqa: B018 - load plugins now, not while the daemon counts as up
    source.catch_up = duration(catch_up, "--catch-up")
    watch = None
    if hub_url:
        from upkeeper.cli.hub import start_hub

        source.hub = start_hub(hub_url, hub_creds, history, state_dir, sync=True)
        watch = _site_watch(source, history)
    daemon = Daemon(history, source, source.run, workers=workers,
                    catch_up=duration(catch_up, "--catch-up"),
                    grace=duration(grace, "--grace"),
                    heartbeat_interval=max(1.0, duration(heartbeat, "--heartbeat")),
                    health_file=state_dir / HEALTH_FILE, lock_path=state_dir / LOCK_FILE,
                    children_file=state_dir / CHILDREN_FILE,
                    retention=duration(retention, "--retention") or None)
    # Handlers only note the signal; the loop acts on it (see upkeeper.schedule.wakeup).
    daemon.inbox.install(daemon.wakeup, stop=(signal.SIGTERM, signal.SIGINT),
                         reload=(signal.SIGHUP,) if hasattr(signal, "SIGHUP") else ())
    dashboard = _start_web(web_bind, state_dir, source.inventory) if web_bind else None
    try:
        abandoned = daemon.serve(duration(max_runtime, "--max-runtime") if max_runtime
                                 else None)
        if abandoned:
            killed = kill_children()
            log.warning("%d run(s) abandoned; killed %d command(s) they left running",
                        abandoned, killed)
    except RuntimeError as exc:
        click.echo(f"upkeeper: error: {exc}", err=True)
        sys.exit(3)
    finally:
        if watch is not None:
            watch.stop()
        if source.hub is not None:
            source.hub.close()
        if dashboard is not None:
            dashboard.stop()
            dashboard.history.close()
        history.close()


def _site_watch(source: PlaybookDir, history: History) -> Any:
    """Alerts for sites that go offline (and come back) between runs."""
    from upkeeper.sites.watch import Served, SiteWatch

    offline_after = float(source.hub.settings.offline_after)
    return SiteWatch(source.hub, history,
                     lambda: Served(source.playbooks, source.inventory, source.plugins),
                     interval=max(0.5, min(10.0, offline_after / 3))).start()


def _start_web(bind: str, state_dir: Path, inventory: Any) -> Any:
    """The dashboard in a thread, on its own connection (reads never wait for writes)."""
    from upkeeper.web.server import WebServer, WebSetupError, inventory_vars, parse_bind

    try:
        server = WebServer(open_history(state_dir), parse_bind(bind),
                           inventory=inventory_vars(inventory))
    except WebSetupError as exc:
        click.echo(f"upkeeper: error: --web: {exc}", err=True)
        sys.exit(3)
    server.start()
    log.info("dashboard on %s", server.url)
    return server


@click.command()
@click.option("-i", "--inventory", "inventories", multiple=True, metavar="INV")
@click.option("-l", "--limit", metavar="PATTERN", help="Only these hosts.")
@click.option("-n", "--count", default=3, show_default=True, help="Windows listed per host.")
@click.option("--all", "show_all", is_flag=True, help="Also hosts without windows.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.pass_context
def windows(ctx: click.Context, inventories: tuple[str, ...], limit: str | None, count: int,
            show_all: bool, fmt: str) -> None:
    """Each host's maintenance window state and next windows (in the host's timezone)."""
    from upkeeper.engine.windows import HostWindows

    source = PlaybookDir(Path("."), inventories, lambda: _plugins(ctx))
    try:
        inv = source.load_inventory()
    except ValueError as exc:
        click.echo(f"upkeeper: error: {exc}", err=True)
        sys.exit(3)
    hosts = inv.select(limit or "all")
    now = datetime.now(UTC)
    out, bad = [], 0
    for host in hosts:
        entry: dict[str, Any] = {"host": host.name}
        try:
            hw = HostWindows(host.vars)
        except ValueError as exc:
            bad += 1
            entry["error"] = str(exc)
            out.append(entry)
            continue
        if not hw.defined and not hw.blackouts and not show_all:
            continue
        st = hw.state(now)
        entry.update(timezone=hw.tz.key, inside=st.inside, reason=st.reason,
                     windows=[{"start": s.isoformat(), "end": e.isoformat(), "window": w}
                              for s, e, w in hw.upcoming(now, count)])
        out.append(entry)
    if fmt == "json":
        click.echo(json.dumps(out, indent=1))
    else:
        for e in out:
            if "error" in e:
                click.echo(f"{e['host']}: ERROR {e['error']}")
                continue
            click.echo(f"{e['host']} ({e['timezone']}): {e['reason']}")
            tz = HostWindows({"timezone": e["timezone"]}).tz
            for w in e["windows"]:
                s, t = datetime.fromisoformat(w["start"]), datetime.fromisoformat(w["end"])
                click.echo(f"  {s.astimezone(tz):%a %Y-%m-%d %H:%M} -> "
                           f"{t.astimezone(tz):%a %Y-%m-%d %H:%M %Z}  ({w['window']})")
        if not out:
            click.echo("no host defines maintenance windows or blackout dates")
    sys.exit(3 if bad else 0)


def _status() -> click.Command:
    from upkeeper.cli.status import status

    return status


COMMANDS = (serve, _status(), windows)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """upkeeper unattended runs (standalone entry; normally ``upkeeper serve``)."""


for _cmd in COMMANDS:
    main.add_command(_cmd)

if __name__ == "__main__":
    main()

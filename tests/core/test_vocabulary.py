"""One vocabulary for every built-in check, checked by walking what is registered: threshold
params named ``warn_<measure>``/``crit_<measure>``, durations and sizes through
``upkeeper.measures``, and no plugin or core module with a parser or formatter of its own."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import types
import typing
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from pydantic import BaseModel

import upkeeper
from upkeeper.plugins import get_plugin_manager

BUILTIN_PACKAGES = ("upkeeper_system", "upkeeper_ssh", "upkeeper_winrm", "upkeeper_disk",
                    "upkeeper_patching", "upkeeper_backup", "upkeeper_notify",
                    "upkeeper_docs")
#: The walk must at least find these (it found nothing would make every test pass).
KNOWN_CHECKS = {"backup.restic", "backup.borg", "backup.files", "backup.windows_server_backup",
                "disk.usage", "disk.smart", "patching.status", "patching.apply",
                "system.command", "system.uptime", "docs.collect"}

#: Names that look like thresholds but are not, each with the reason.
NOT_THRESHOLDS = {
    ("backup.borg", "max_duration"): "borg check --max-duration: a time budget for borg's "
                                     "partial check, named as borg names it",
}
#: Floors: the level fires strictly below them ("keep at least N copies").
FLOORS = {
    ("backup.files", "min_size"): "CRIT when the newest file is smaller",
    ("backup.files", "min_count"): "WARN when fewer copies are kept",
}
_MISPLACED = re.compile(r"^max_|_warn_|_crit_|_warn$|_crit$")
_THRESHOLD_NAME = re.compile(r"^(warn|crit)(_[a-z0-9]+)*$")
_OWN_HELPER = re.compile(r"^(parse|format)_(duration|size|bytes|age)$|^human_")
_DURATION_EXAMPLES = ["26h", "2d", "90m"]


def builtin_checks() -> dict[str, Any]:
    checks = get_plugin_manager().registry.resolve_checks()
    return {name: cls for name, cls in sorted(checks.items())
            if cls.__module__.split(".")[0] in BUILTIN_PACKAGES}


def _models(annotation: Any) -> Iterator[type[BaseModel]]:
    """Params models nested in a field's type (``dict[str, Thresholds]``...)."""
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in typing.get_args(annotation):
        yield from _models(arg)


def params_fields(model: type[BaseModel], seen: set[type[BaseModel]] | None = None,
                  ) -> Iterator[tuple[str, Any]]:
    """(name, FieldInfo) of a params model and the models nested in it."""
    seen = seen if seen is not None else set()
    if model in seen:
        return
    seen.add(model)
    for name, info in model.model_fields.items():
        yield name, info
        for nested in _models(info.annotation):
            yield from params_fields(nested, seen)


def every_field() -> list[tuple[str, str, Any]]:
    return [(check, name, info) for check, cls in builtin_checks().items()
            for name, info in params_fields(cls.Params)]


def _types(annotation: Any) -> set[Any]:
    """The plain types a (possibly optional or annotated) field type allows."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Annotated:
        return _types(args[0])
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return set().union(*(_types(a) for a in args))
    return {annotation}


def _metadata(annotation: Any) -> Iterator[Any]:
    """Validators and serialisers inside ``Annotated`` types, also within ``X | None``."""
    if typing.get_origin(annotation) is typing.Annotated:
        yield from annotation.__metadata__
        yield from _metadata(typing.get_args(annotation)[0])
    elif typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            yield from _metadata(arg)


def _measured_by(info: Any, function: str) -> bool:
    """True when a validator of ``upkeeper.measures`` named ``function`` (any, for ``*``)
    reads the field."""
    for item in (*info.metadata, *_metadata(info.annotation)):
        func = getattr(item, "func", None)
        if func is not None and func.__module__ == "upkeeper.measures" and (
                func.__name__ == function or function == "*"):
            return True
    return False


def _schema_of(model: type[BaseModel], name: str) -> dict[str, Any]:
    prop = model.model_json_schema()["properties"][name]
    return next((p for p in prop.get("anyOf", [prop]) if p.get("type") != "null"), prop)


def test_the_walk_finds_every_builtin_check():
    assert set(builtin_checks()) >= KNOWN_CHECKS


@pytest.mark.parametrize(("check", "name"), [(c, n) for c, n, _ in every_field()])
def test_threshold_names_follow_warn_and_crit(check: str, name: str):
    if (check, name) in NOT_THRESHOLDS:
        return
    assert not _MISPLACED.search(name), (
        f"{check}: param {name!r}: thresholds are named warn_<measure>/crit_<measure> "
        "(rename it and accept the old name with upkeeper.measures.renamed_params)")


@pytest.mark.parametrize(("check", "name", "info"), every_field())
def test_params_that_raise_a_level_are_named_for_it(check: str, name: str, info: Any):
    """A number, duration or size whose description says it makes a result WARN or CRIT
    is a threshold, and is named like one."""
    kinds = _types(info.annotation) - {type(None)}
    if not re.search(r"\b(WARN|CRIT)\b", info.description or "") or kinds & {bool, str} \
            or not kinds <= {int, float, timedelta}:
        return
    assert _THRESHOLD_NAME.match(name) or (check, name) in FLOORS, (
        f"{check}: param {name!r} is a threshold ({info.description!r}): name it "
        "warn_<measure> or crit_<measure>")


def test_the_renamed_thresholds_are_gone_from_every_builtin():
    names = {name for _, name, _ in every_field()}
    old = {"max_age", "max_shrink_pct", "security_crit_days", "max_days_since_patch",
           "reboot_warn_days", "max_days", "forecast_warn_days", "forecast_crit_days",
           "nvme_warn_temp_c", "nvme_crit_temp_c", "wear_warn_pct"}
    assert not names & old
    assert {"warn_age", "crit_age", "warn_shrink_pct", "crit_security_days",
            "crit_days_since_patch", "warn_reboot_days"} <= names


@pytest.mark.parametrize(("check", "name", "info"),
                         [f for f in every_field() if timedelta in _types(f[2].annotation)])
def test_durations_are_the_shared_duration_type(check: str, name: str, info: Any):
    assert _measured_by(info, "*"), f"{check}: {name} is parsed by its own duration code"
    model = builtin_checks()[check].Params
    if name in model.model_fields:
        schema = _schema_of(model, name)
        assert schema.get("type") == "string" and schema.get("examples") == \
            _DURATION_EXAMPLES, f"{check}: {name}: not shown as a duration with a unit"


def test_the_duration_walk_finds_durations():
    found = {(c, n) for c, n, i in every_field() if timedelta in _types(i.annotation)}
    assert {("backup.restic", "warn_age"), ("backup.files", "crit_age"),
            ("backup.borg", "max_duration"), ("backup.restic", "integrity_every")} <= found


@pytest.mark.parametrize(("check", "name", "info"),
                         [f for f in every_field() if f[1].endswith("_size")])
def test_sizes_are_the_shared_size_type(check: str, name: str, info: Any):
    assert _measured_by(info, "parse_size"), f"{check}: {name} is parsed by its own code"


def _modules(package: str) -> Iterator[str]:
    module = importlib.import_module(package)
    yield package
    for info in pkgutil.walk_packages(module.__path__, prefix=f"{package}."):
        yield info.name


def test_no_builtin_or_core_module_has_its_own_duration_or_size_code():
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("upkeeper_backup.durations")
    own: list[str] = []
    walked = 0
    for package in (*BUILTIN_PACKAGES, upkeeper.__name__):
        for name in _modules(package):
            if name == "upkeeper.measures" or name.endswith("__main__"):
                continue
            module = importlib.import_module(name)
            walked += 1
            own += [f"{name}.{fn}" for fn, obj in vars(module).items()
                    if inspect.isfunction(obj) and obj.__module__ == name
                    and _OWN_HELPER.match(fn)]
    assert walked > 40
    assert not own, f"use upkeeper.measures instead of: {own}"

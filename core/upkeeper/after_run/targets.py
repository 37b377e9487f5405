"""Where a channel's messages go for one host: its params rendered with that host's vars.

A channel such as ``email: {to: "{{ notify_email }}"}`` sends each client's alerts to
that client's helpdesk: params are rendered per host (playbook vars, host and group vars,
``env``), and hosts whose params come out the same share one notifier and one message.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import ChainMap
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ValidationError

from upkeeper.after_run.notify_config import ChannelConfig
from upkeeper.engine.secrets import SECRET_KEY_RE, Redactor, secrets_in_model
from upkeeper.engine.templating import TemplateError, is_templated, render_value
from upkeeper.models import Host
from upkeeper.notifier import Notifier

#: Params rendered per message by the notifier itself, not here.
LATE_PARAMS = {"body_template"}
_ENV_RE = re.compile(r"\benv\b")


class UnknownFacts(dict[str, Any]):
    """Facts not gathered (validation, or a host whose checks never looked): ''."""

    def __missing__(self, key: str) -> str:
        return ""

    def __getattr__(self, key: str) -> str:
        return ""


def host_context(playbook_vars: Mapping[str, Any], host: Host | None) -> Mapping[str, Any]:
    """Variables a channel's params see for ``host``; facts only if already gathered
    (looking must never open a connection after the run). A lookup chain, so a host var
    renders only when a param names it."""
    if host is None:
        return {**playbook_vars, "facts": UnknownFacts()}
    facts = UnknownFacts(host.facts if getattr(host.facts, "loaded", True) else {})
    own = {"facts": facts, "ansible_facts": facts, "inventory_hostname": host.name,
           "group_names": [g for g in host.groups if g not in ("all", "ungrouped")]}
    return ChainMap(own, host.vars, dict(playbook_vars))


class ParamError(TemplateError):
    """A channel param did not render; ``param`` names it."""

    def __init__(self, param: str, exc: TemplateError) -> None:
        super().__init__(f"{param}: {exc}", exc.variable)
        self.param = param


def render_params(chan: ChannelConfig, context: Mapping[str, Any]) -> dict[str, Any]:
    """The channel's params for one host; raises :class:`ParamError`."""
    out: dict[str, Any] = {}
    for key, value in chan.params.items():
        if key in LATE_PARAMS:
            out[key] = value
            continue
        try:
            out[key] = render_value(value, context)
        except TemplateError as exc:
            raise ParamError(key, exc) from exc
    return out


def secrets_in_params(chan: ChannelConfig, rendered: Mapping[str, Any],
                      model: BaseModel) -> set[str]:
    """Values to mask in anything said about this channel: secret fields of the model,
    templated values from ``env`` or under secret-looking names, URLs (webhook URLs
    carry their token) and header values."""
    out = secrets_in_model(model)
    for key, raw in chan.params.items():
        if key in LATE_PARAMS or not is_templated(raw):
            continue
        if _ENV_RE.search(json.dumps(raw)) or SECRET_KEY_RE.search(key) or key == "url":
            out |= _strings(rendered.get(key))
    headers = rendered.get("headers")
    if isinstance(headers, Mapping):
        out |= {str(v) for k, v in headers.items() if str(k).lower() != "content-type"}
    return out


def _strings(value: Any) -> set[str]:
    if isinstance(value, Mapping):
        return set().union(*(_strings(v) for v in value.values()))
    if isinstance(value, (list, tuple)):
        return set().union(*(_strings(v) for v in value))
    return {str(value)} if value not in (None, "") else set()


def describe_target(rendered: Mapping[str, Any]) -> str:
    """A short, safe label of where messages go: recipients, or a URL's scheme://host."""
    to = rendered.get("to")
    if to:
        return ", ".join(to if isinstance(to, list) else [str(to)])[:200]
    url = rendered.get("url")
    if isinstance(url, str):
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}" if parts.netloc else ""
    return ""


@dataclass
class Target:
    """One destination of a channel: a notifier built from params rendered for a host."""

    key: str
    label: str
    notifier: Notifier
    redactor: Redactor = field(default_factory=Redactor)


def build_target(chan: ChannelConfig, cls: type[Notifier],
                 context: Mapping[str, Any]) -> Target:
    """The notifier for ``chan`` on a host; raises TemplateError, ValidationError or
    ValueError when the params do not render or fit the notifier."""
    rendered = render_params(chan, context)
    try:
        model = cls.Params.model_validate(rendered)
    except ValidationError as exc:
        # pydantic quotes the input (``input_value=...``): a token or password would be
        # printed and stored. Keep where and what, never the value.
        reasons = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'params'}: {err['msg']}"
                            for err in exc.errors(include_input=False, include_url=False))
        raise ValueError(f"invalid {chan.notifier} settings: {reasons}") from None
    key = hashlib.sha256(json.dumps(rendered, sort_keys=True, default=str).encode())
    redactor = Redactor(secrets_in_params(chan, rendered, model))
    label = redactor.text(describe_target(rendered))
    return Target(key.hexdigest(), label, cls(model), redactor)

"""The ``webhook`` notifier: a JSON POST as generic JSON, Slack, Teams, or your own body."""

from __future__ import annotations

import functools
import json
import os
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator

from upkeeper import Notification, Notifier, Params, Status

from .common import DeliveryError, safe_url, tls_context

if TYPE_CHECKING:
    from jinja2.sandbox import SandboxedEnvironment

_EMOJI = {"OK": ":white_check_mark:", "WARN": ":warning:", "CRIT": ":red_circle:",
          "UNKNOWN": ":grey_question:", "SKIPPED": ":white_circle:"}
_TEAMS_COLOUR = {"OK": "Good", "WARN": "Warning", "CRIT": "Attention", "UNKNOWN": "Accent"}


@functools.lru_cache(maxsize=1)
def _body_env() -> SandboxedEnvironment:
    """Custom bodies render in Jinja2's sandbox (built on first use)."""
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    return SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


class WebhookParams(Params):
    url: str = Field(description='Endpoint; secret URLs as "{{ env.SLACK_WEBHOOK_URL }}"')
    format: Literal["json", "slack", "teams"] = Field("json", description="Built-in body")
    headers: dict[str, str] = Field(default_factory=dict,
                                    description='e.g. Authorization: "Bearer {{ env.TOKEN }}"')
    body_template: str | None = Field(None, description="Jinja2 body (overrides format)")
    content_type: str = "application/json"
    method: Literal["POST", "PUT", "PATCH"] = "POST"
    timeout: float = Field(15, gt=0)
    tls_verify: bool = True
    ca_file: str | None = None

    @field_validator("url")
    @classmethod
    def _http_only(cls, v: str) -> str:
        if not v.lower().startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        return v

    @field_validator("body_template")
    @classmethod
    def _compiles(cls, v: str | None) -> str | None:
        if v is not None:
            from jinja2 import TemplateError

            try:
                _body_env().parse(v)
            except TemplateError as exc:
                raise ValueError(f"body_template does not compile: {exc}") from None
        return v


def payload_context(n: Notification) -> dict[str, Any]:
    """What custom body templates see (and what the generic JSON body contains)."""
    run = n.run
    return {
        "subject": n.subject,
        "text": n.text,
        "status": n.status.value,
        "client": n.extra.get("client") or "",
        "kind": n.extra.get("kind", ""),
        "alerts": n.extra.get("alerts", []),
        "run": {"run_id": run.run_id, "playbook": run.playbook,
                "started": run.started.isoformat(), "status": run.status.value,
                "counts": dict(run.counts())},
    }


def generic_body(n: Notification) -> dict[str, Any]:
    return {"source": "upkeeper", **payload_context(n)}


def chat_escape(text: Any) -> str:
    """Text from hosts made inert for Slack mrkdwn and Teams card text: ``&``, ``<`` and
    ``>`` as entities (Slack's own escaping rule), so ``<!channel>``, ``<@U123>``,
    ``<!here>``, ``<https://evil|a link>`` or ``<at>`` arrive as text, not as mentions
    or links."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _code(text: Any) -> str:
    """Inline code in mrkdwn; a backtick inside would end it early."""
    return "`" + chat_escape(text).replace("`", "'") + "`"


def slack_body(n: Notification) -> dict[str, Any]:
    lines = []
    for a in n.extra.get("alerts", []):
        label = "RECOVERED" if a["kind"] == "recovery" else a["status"]
        lines.append(f"{_EMOJI.get(a['status'], '')} *{label}* {_code(a['host'])} "
                     f"{chat_escape(a['name'])}: {chat_escape(a['summary'])}")
    blocks: list[dict[str, Any]] = [
        # Slack reads &, < and > as control characters in every text object
        {"type": "header", "text": {"type": "plain_text",
                                    "text": chat_escape(n.subject[:150])}},
    ]
    if lines:
        blocks.append({"type": "section",
                       "text": {"type": "mrkdwn", "text": "\n".join(lines)[:2900]}})
    blocks.append({"type": "context", "elements": [
        {"type": "mrkdwn",
         "text": f"run {chat_escape(n.run.run_id)} of {chat_escape(n.run.playbook)}"}]})
    return {"text": chat_escape(n.subject), "blocks": blocks}


def teams_body(n: Notification) -> dict[str, Any]:
    """An Adaptive Card, as Teams Workflows ("Post to a channel when a webhook request is
    received") and the older incoming webhooks both accept."""
    facts = [{"title": chat_escape(f"{a['host']} {a['name']}"),
              "value": f"{'RECOVERED' if a['kind'] == 'recovery' else a['status']}: "
                       f"{chat_escape(a['summary'])}"}
             for a in n.extra.get("alerts", [])]
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {"type": "TextBlock", "text": chat_escape(n.subject), "weight": "Bolder",
             "size": "Medium", "wrap": True,
             "color": _TEAMS_COLOUR.get(n.status.value, "Default")},
            {"type": "FactSet", "facts": facts},
            {"type": "TextBlock",
             "text": chat_escape(f"run {n.run.run_id} of {n.run.playbook}"),
             "isSubtle": True, "size": "Small", "wrap": True},
        ],
    }
    return {"type": "message", "attachments": [
        {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None,
         "content": card}]}


class WebhookNotifier(Notifier):
    """POSTs one JSON document per notification."""

    name = "webhook"
    Params = WebhookParams

    def __init__(self, params: WebhookParams) -> None:
        super().__init__(params)
        self.p = params

    def body(self, n: Notification) -> bytes:
        if self.p.body_template is not None:
            from jinja2 import TemplateError

            try:
                text = _body_env().from_string(self.p.body_template).render(
                    **payload_context(n), env=dict(os.environ), Status=Status)
            except TemplateError as exc:
                raise DeliveryError(f"body_template: {exc}", retryable=False) from None
            if "json" in self.p.content_type:
                try:
                    json.loads(text)
                except ValueError as exc:
                    raise DeliveryError(f"body_template did not render valid JSON: {exc}",
                                        retryable=False) from None
            return text.encode("utf-8")
        builder = {"json": generic_body, "slack": slack_body, "teams": teams_body}[self.p.format]
        return json.dumps(builder(n), default=str).encode("utf-8")

    def send(self, notification: Notification) -> None:
        import urllib.error  # with http.client and ssl: only when a webhook is posted
        import urllib.request

        p = self.p
        where = safe_url(p.url)
        data = self.body(notification)
        headers = {"Content-Type": p.content_type, "User-Agent": "upkeeper-notify/1",
                   **p.headers}
        req = urllib.request.Request(p.url, data=data, headers=headers, method=p.method)
        ctx = tls_context(p.tls_verify, p.ca_file, f"webhook {where}") \
            if p.url.lower().startswith("https") else None
        try:
            with urllib.request.urlopen(req, timeout=p.timeout, context=ctx) as resp:
                resp.read(65536)
        except urllib.error.HTTPError as exc:
            exc.close()
            raise DeliveryError(f"{where} answered HTTP {exc.code} {exc.reason}",
                                retryable=exc.code >= 500 or exc.code in (408, 429)) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise DeliveryError(f"{where}: {reason}") from None

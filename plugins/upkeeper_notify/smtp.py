"""The ``email`` notifier: SMTP with STARTTLS or implicit TLS, AUTH, HTML plus plain text."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator

from upkeeper import Notification, Notifier, Params

from .common import DeliveryError, tls_context

if TYPE_CHECKING:
    import smtplib
    from email.message import EmailMessage


class EmailParams(Params):
    host: str = Field(validation_alias=AliasChoices("host", "smtp_host"),
                      description="SMTP server")
    port: int | None = Field(None, ge=1, le=65535,
                             description="Default 587 (starttls), 465 (ssl) or 25")
    starttls: bool = Field(True, description="Upgrade the connection with STARTTLS")
    ssl: bool = Field(False, description="Implicit TLS from the start (port 465)")
    username: str | None = None
    password: SecretStr | None = Field(None, description='Usually "{{ env.SMTP_PASSWORD }}"')
    sender: str = Field(validation_alias=AliasChoices("from", "sender"),
                        description="From address")
    to: list[str] = Field(min_length=1)
    cc: list[str] = Field(default_factory=list)
    subject_prefix: str = "[upkeeper]"
    timeout: float = Field(30, gt=0)
    tls_verify: bool = Field(True, description="Verify the server certificate")
    ca_file: str | None = Field(None, description="CA bundle for a private mail relay")

    @field_validator("to", "cc", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @model_validator(mode="after")
    def _tls_for_passwords(self) -> EmailParams:
        if self.password is not None and not (self.starttls or self.ssl):
            raise ValueError("refusing to send a password without TLS: set starttls or ssl")
        if self.ssl and self.starttls and "starttls" in self.model_fields_set:
            raise ValueError("choose one of ssl (implicit TLS) and starttls")
        return self


class EmailNotifier(Notifier):
    """Sends each notification as one multipart/alternative email."""

    name = "email"
    Params = EmailParams

    def __init__(self, params: EmailParams) -> None:
        super().__init__(params)
        self.p = params

    def build(self, n: Notification) -> EmailMessage:
        # The email package only when a message is sent (start-up: README "Speed").
        from email.message import EmailMessage
        from email.utils import formatdate, make_msgid

        msg = EmailMessage()
        subject = " ".join(f"{self.p.subject_prefix} {n.subject}".split())
        msg["Subject"] = subject[:250]
        msg["From"] = self.p.sender
        msg["To"] = ", ".join(self.p.to)
        if self.p.cc:
            msg["Cc"] = ", ".join(self.p.cc)
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(domain=self.p.sender.rpartition("@")[2] or None)
        msg["X-Upkeeper-Status"] = n.status.value
        msg.set_content(n.text)
        if n.html:
            msg.add_alternative(n.html, subtype="html")
        return msg

    def send(self, notification: Notification) -> None:
        import smtplib  # with ssl: only when an email is sent, not on every run

        p = self.p
        msg = self.build(notification)
        port = p.port or (465 if p.ssl else 587 if p.starttls else 25)
        where = f"{p.host}:{port}"
        ctx = tls_context(p.tls_verify, p.ca_file, f"email via {where}")
        try:
            smtp: smtplib.SMTP
            if p.ssl:
                smtp = smtplib.SMTP_SSL(p.host, port, timeout=p.timeout, context=ctx)
            else:
                smtp = smtplib.SMTP(p.host, port, timeout=p.timeout)
            with smtp:
                smtp.ehlo()
                if p.starttls and not p.ssl:
                    smtp.starttls(context=ctx)
                    smtp.ehlo()
                if p.username and p.password is not None:
                    smtp.login(p.username, p.password.get_secret_value())
                smtp.send_message(msg, to_addrs=[*p.to, *p.cc])
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(f"{where}: authentication failed ({exc.smtp_code})",
                                retryable=False) from None
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(f"{where}: recipients refused: {', '.join(exc.recipients)}",
                                retryable=False) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise DeliveryError(f"{where}: {exc}", retryable=False) from None
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(f"{where}: server said {exc.smtp_code}",
                                retryable=400 <= exc.smtp_code < 500) from None
        except (OSError, smtplib.SMTPException) as exc:
            reason = "timed out" if isinstance(exc, TimeoutError) else str(exc) or type(
                exc).__name__
            raise DeliveryError(f"{where}: {reason}") from None

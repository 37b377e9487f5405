"""Keeping secrets out of output: find secret values and mask them wherever they appear."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, SecretBytes, SecretStr

MASK = "********"
#: Host var names whose values are secrets (Ansible's and ours).
SECRET_KEY_RE = re.compile(r"pass(word|phrase)?$|_pass$|secret|token|api_?key|private_key_pass",
                           re.IGNORECASE)
_MIN_SECRET_LEN = 4


def secrets_in_vars(hostvars: Mapping[str, Any]) -> set[str]:
    """Values of host vars whose names say they are secrets."""
    out: set[str] = set()
    for key, value in hostvars.items():
        if SECRET_KEY_RE.search(str(key)) and isinstance(value, (str, int)) and value != "":
            out.add(str(value))
    return out


def secrets_in_model(model: BaseModel) -> set[str]:
    """Values of ``SecretStr``/``SecretBytes`` fields (nested models included)."""
    out: set[str] = set()
    for name in type(model).model_fields:
        out |= _secrets_in(getattr(model, name, None))
    return out


def _secrets_in(value: Any) -> set[str]:
    if isinstance(value, SecretStr):
        return {value.get_secret_value()}
    if isinstance(value, SecretBytes):
        return {value.get_secret_value().decode("utf-8", "replace")}
    if isinstance(value, BaseModel):
        return secrets_in_model(value)
    if isinstance(value, Mapping):
        return set().union(*(_secrets_in(v) for v in value.values()))
    if isinstance(value, (list, tuple, set)):
        return set().union(*(_secrets_in(v) for v in value))
    return set()


class Redactor:
    """Replaces known secret values with ``********`` in text and nested data."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        self._secrets |= {s for s in secrets if len(s) >= _MIN_SECRET_LEN}

    def text(self, value: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret in value:
                value = value.replace(secret, MASK)
        return value

    def obj(self, value: Any) -> Any:
        if not self._secrets:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.obj(k): self.obj(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.obj(v) for v in value]
        return value

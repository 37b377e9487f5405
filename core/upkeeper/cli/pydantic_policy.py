"""The command line's pydantic policy (README "Speed").

pydantic plugins are off unless the user set ``PYDANTIC_DISABLE_PLUGINS`` (pydantic
otherwise reads the entry points of every installed distribution on the first model it
builds), and then pydantic's plugin loader is not even imported: it imports
``importlib.metadata`` (the ``email`` package, ``zipfile`` ...) for nothing.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
import types
from typing import Any

_PYDANTIC_LOADER = "pydantic.plugin._loader"
#: The values for which pydantic's ``get_plugins()`` returns no plugins.
_PLUGINS_OFF = ("__all__", "1", "true")
_LOCK = threading.Lock()


class _PydanticPluginsOff(types.ModuleType):
    """Stands in for ``pydantic.plugin._loader`` while pydantic plugins are disabled.

    ``get_plugins()`` answers as pydantic's own does when ``PYDANTIC_DISABLE_PLUGINS``
    disables them all; should the variable change, or anything else of the module be
    used, the real loader is imported and takes over.
    """

    def get_plugins(self) -> Any:
        if os.environ.get("PYDANTIC_DISABLE_PLUGINS") in _PLUGINS_OFF:
            return ()
        return self._real().get_plugins()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            # The import system probing a module (``__path__`` for ``from . import``).
            raise AttributeError(name)
        return getattr(self._real(), name)

    def _real(self) -> types.ModuleType:
        with _LOCK:
            if sys.modules.get(_PYDANTIC_LOADER) is self:
                del sys.modules[_PYDANTIC_LOADER]
            return importlib.import_module(_PYDANTIC_LOADER)


def pydantic_plugins_off() -> None:
    """Unless the user chose (README "Speed"): no pydantic plugins, and no plugin loader.

    Called by the command line's group for the real command line (not for a caller
    embedding the group), before pydantic builds its first model."""
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    if (os.environ["PYDANTIC_DISABLE_PLUGINS"] in _PLUGINS_OFF
            and _PYDANTIC_LOADER not in sys.modules):
        sys.modules[_PYDANTIC_LOADER] = _PydanticPluginsOff(_PYDANTIC_LOADER)

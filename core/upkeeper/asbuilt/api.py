"""What plugins add to client documents: their fact categories (how a category is keyed,
which fields are volatile, how its changes read) and their document sections, through
``upkeeper_register_doc_categories``. A category registered twice or not a
:class:`DocCategory` is refused with one error naming the plugin; the rest still count.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from upkeeper.asbuilt.categories import BUILTIN, DocCategory

if TYPE_CHECKING:
    from upkeeper.plugins import PluginSystem

HOOK = "upkeeper_register_doc_categories"


def doc_categories(plugins: PluginSystem | None) -> list[DocCategory]:
    """Categories plugins register, validated; problems are logged and put on the
    plugin's report (``upkeeper plugins``)."""
    if plugins is None:
        return []
    taken = {c.key: "upkeeper" for c in BUILTIN}
    out: list[DocCategory] = []
    for pname, values in plugins.call(HOOK):
        for obj in values or []:
            problem = None
            if not isinstance(obj, DocCategory):
                problem = f"{HOOK} returned {type(obj).__name__}, not a DocCategory"
            elif obj.key in taken:
                problem = (f"doc category {obj.key!r} of plugin {pname} is already "
                           f"registered by {taken[obj.key]}")
            if problem is not None:
                plugins.report_problem(pname, problem)
                continue
            assert isinstance(obj, DocCategory)
            taken[obj.key] = pname
            out.append(obj)
    return out

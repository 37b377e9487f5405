"""Client documentation (as-built records): fact snapshots keyed by a stable host identity,
structural vs volatile fields, change lists, approved baselines and the ``docs build``
renderers (HTML, Markdown, JSON with its schema, CSV). May import store, plugins,
checks, models and below, never engine; imported by monthly, after_run, web and cli.
"""

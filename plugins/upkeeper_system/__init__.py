"""upkeeper built-in plugin: system (work in progress)."""

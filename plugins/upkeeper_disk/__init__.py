"""upkeeper built-in plugin: disk (work in progress)."""

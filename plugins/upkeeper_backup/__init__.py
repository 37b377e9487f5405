"""upkeeper built-in plugin: backup (work in progress)."""

"""upkeeper built-in plugin: notify (work in progress)."""

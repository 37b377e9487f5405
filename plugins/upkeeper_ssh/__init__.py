"""upkeeper built-in plugin: ssh (work in progress)."""

"""upkeeper built-in plugin: patching (work in progress)."""

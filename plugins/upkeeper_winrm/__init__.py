"""upkeeper built-in plugin: winrm (work in progress)."""

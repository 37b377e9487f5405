"""How upkeeper reaches a host: the ``Transport`` contract and the local transport.

Owns: the contract every connection type implements (``base``), running commands on this
machine (``local``), POSIX facts (``facts``). Imports only ``upkeeper.models``; never the
engine, the store or any plugin. SSH and WinRM live in their plugins.
"""

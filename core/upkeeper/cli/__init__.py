"""The ``upkeeper`` command (click + rich): the top of the stack, importing any layer.

Owns: argument parsing, output formats and exit codes (``main``, ``output``), the daemon's
commands (``serve``), reports (``report``) and the plugin scaffold (``plugin``, ``scaffold``).
"""

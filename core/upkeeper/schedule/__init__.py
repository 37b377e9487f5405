"""Unattended operation: schedule specs, slot records and the ``serve`` daemon.

Owns: parsing ``schedule:`` (``specs``), claiming each slot at most once (``slots``) and the
daemon loop with its signals and grace periods (``daemon``). May import ``engine``,
``after_run``, ``store`` and the kernel; never ``cli``.
"""

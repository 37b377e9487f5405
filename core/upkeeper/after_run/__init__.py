"""What happens after a run: alert policy and delivery, and reports with their templates.

Owns: deciding which results are news (``alerts``) and rendering per-client reports
(``report``, ``templates/``). May import ``engine``, ``store`` and the kernel; never
``schedule`` or ``cli``.
"""

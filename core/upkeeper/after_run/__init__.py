"""What happens after every run, done by core whichever plugins are loaded.

``pipeline.after_run(run, RunContext)`` is called by ``upkeeper run`` and ``upkeeper serve``:
it writes the playbook's ``report:`` (``report``, ``sections``, ``templates/``) and sends
its ``notify:`` alerts: policy (``notify_config``, ``alerts``), per-host destinations
(``targets``), messages (``messages``), delivery with retries (``delivery``) and the record
of every delivery (``ledger``). ``validate`` checks both sections before a run; ``text``
cleans what hosts said before it reaches a terminal or a message. May import ``engine``,
``store`` and the kernel; never ``schedule`` or ``cli``.
"""

"""Running a playbook: the playbook model, templating, facts, secret masking, the runner.

Owns: loading and validating playbooks (``playbook``), rendering params and ``when:`` in a
sandbox (``templating``), masking secrets (``secrets``), lazily gathered facts (``facts``),
maintenance windows (``windows``) and the runner that turns every check on every host into
exactly one result (``runner``). May import the kernel (models, checks, plugins, hookspecs),
``transport``, ``inventory`` and ``store``; never ``schedule``, ``after_run`` or ``cli``.
"""

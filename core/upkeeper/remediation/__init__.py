"""Remediation: fixes attached to checks, matched to failures by signature, planned,
applied within budgets and approval tiers, verified by re-running the check that failed,
and recorded in a hash-chained audit trail. May import engine, store and below; imported
by after_run (the "fixed for you" section, "fixed" notifications), sites, web and cli.
"""

"""The client view over time: the current state of every (host, check) across all
playbooks, and the period (monthly) client report built from every result in a date
range: availability, incidents, patches, backups, forecasts, fixes and what is planned.
May import remediation, asbuilt, engine, store and below; imported by web and cli.
"""

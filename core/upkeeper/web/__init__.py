"""The web dashboard (``upkeeper web``, also started from ``serve``): server-rendered
pages over the history database (fleet, client, host, runs), authenticated actions with
CSRF protection, roles scoped to clients. May import every core layer below cli;
imported by cli only.
"""

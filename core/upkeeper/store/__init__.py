"""What upkeeper remembers: the SQLite history of runs, results, metrics and check state.

Owns: the schema and every query (``history``). Imports only ``upkeeper.models``.
"""

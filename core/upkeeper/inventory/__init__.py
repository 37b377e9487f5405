"""Ansible-compatible inventories: INI, YAML, directories, host lists, and host patterns.

Owns: parsing sources (``sources``: ``ini``, ``yamlfile``) into hosts and groups
(``data``), Ansible's variable precedence (``loader``) and host patterns (``patterns``).
Imports only ``upkeeper.models`` and ``upkeeper.yamlsource``; knows nothing of playbooks
or transports.
"""

"""Ansible-compatible inventories: INI, YAML, directories, host lists, and host patterns.

Owns: parsing sources into hosts with Ansible's variable precedence (``loader``, ``ini``,
``yamlfile``, ``data``) and evaluating host patterns (``patterns``). Imports only
``upkeeper.models`` and ``upkeeper.yamlsource``; knows nothing of playbooks or transports.
"""

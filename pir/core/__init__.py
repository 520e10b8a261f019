"""The ground floor: settings, errors, disk space, store waiting, SQLite caches and retrieval metrics.

Everything in pir may import these; they import nothing of pir above them (import-linter's layers contract).
"""

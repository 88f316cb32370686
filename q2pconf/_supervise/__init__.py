"""Supervision of a running session: signals and shutdown (`closing`), steps of an abandoned run
(`abandon`), and the watches that say why steps can never run (`watchdog`, `connect`).

Above `config`; below `_observe` and `pipeline`.
"""

"""Supervision of a running session: stopping its Parsl parts (`closing`), what is known of an
HTEX interchange (`interchange`), SIGTERM, SIGHUP and Ctrl-C (`signals`), steps of an
abandoned run (`abandon`), and the watches that say why steps can never run (`watchdog`,
`connect`).

Above `config`; below `_observe` and `pipeline`.
"""

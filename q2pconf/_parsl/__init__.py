"""Every place q2pconf reaches into Parsl or runs beside it: the first room to open when Parsl
releases.

Each module says why it exists and which Parsl versions it was checked against:
`guard` (no HTEX process outlives its program), `pool` (the worker pool started from a warm
server), `typecache` (typeguard's instrumentation of Parsl kept on disk), `pickling` (C pickle
where it means what dill means), `tasklog` (Parsl's lines about each task left out of
parsl.log), `statuses` (every block launched counted in Parsl's record of them) and `load`
(how every q2pconf process imports Parsl). `guard` and `pool` are the programs HTEX job
scripts run (`python -m q2pconf._parsl.guard`), so they import as little as they can. Above
`_base` only.
"""

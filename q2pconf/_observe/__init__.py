"""What a run leaves to read: each step's measurement, the trace, the run's history, the
progress line, traced runs on disk, the advice on limits and the HTML report.

Above `_supervise`; only `pipeline` and the command line are above it.
"""

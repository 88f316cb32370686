"""The ground floor: what every other layer may use, and which imports none of them.

Errors and warnings, where files live, reading TOML, CPUs, the one notice for a wait that
lasts, a run's directory, and the futures a step call returns. Nothing here imports Parsl at
import time or any other part of q2pconf.
"""

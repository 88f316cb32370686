"""The keywords q2pconf adds to a step's call: Parsl carries them to the step's Runner on the
worker (or thread), which takes them off before the user's function runs. Defined here once;
a user's own keyword that collides with one is escaped on the way in (q2pconf.pipeline._shapes).
"""
OWN_PREFIX = "_q2pconf"  # every hidden keyword starts so

RUN_KEY = "_q2pconf_run"  # the run's abandon marker path (q2pconf._supervise.abandon)
TRACE_KEY = "_q2pconf_trace"  # the call's key in the run's trace, an int (q2pconf._observe)
CODE_KEY = "_q2pconf_code"  # the step's code digest: only the resume memoizer reads it

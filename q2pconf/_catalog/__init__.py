"""What the installed Parsl accepts, read from its source files without importing it.

Above `_base` only. The config checker asks this catalog which executors, providers,
launchers and keywords exist, so that checking a config costs milliseconds, not Parsl's import.
"""

"""Say it when a name matches nothing: a step's executor hint that names no executor of the
config in force, and mapping keys that matched no step of a pipeline run.

Both used to fall back to "default" silently (`@step(executor="htx")`, `denoize = "htex"`).
Each warning is given once per process, naming the close match when there is one.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

from q2pconf._base.errors import warn_once

SHOWN = 5  # unmatched mapping keys named in one warning; the rest are counted


def hint(step: str, hint: str, labels: Iterable[str]) -> None:
    """`@step(executor=hint)` names no executor of the config in force."""
    labels = list(labels)
    close = difflib.get_close_matches(hint, labels, n=1, cutoff=0.6)
    fix = f"did you mean {close[0]!r}?" if close else f"executors: {', '.join(labels)}"
    warn_once(f"step {step} asks for executor {hint!r} (@step(executor=...)), but the config "
              f"in force has no executor of that name; it runs on 'default'. Fix: {fix}")


def unused_keys(mapping: Mapping[str, str], ran: Iterable[tuple[str, str]],
                pipeline: str) -> None:
    """Mapping keys ("plugin.action" or "step") that no step of the finished run matched.

    `ran` holds the (plugin, name) of each step the run submitted."""
    ran = set(ran)
    matched = {f"{plugin}.{name}" for plugin, name in ran} | {name for _, name in ran}
    unused = [key for key in mapping if key not in matched]
    if not unused:
        return
    names = sorted(matched)
    shown = [_with_match(key, names) for key in unused[:SHOWN]]
    more = f" and {len(unused) - SHOWN} more" if len(unused) > SHOWN else ""
    warn_once(f"the executor mapping names {', '.join(shown)}{more}, but no step of that "
              f"name ran in {pipeline}(); such keys send nothing anywhere. Fix: spell them as "
              "the step's function name (or plugin.name), or remove them")


def _with_match(key: str, names: list[str]) -> str:
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    return repr(key) + (f" (did you mean {close[0]!r}?)" if close else "")

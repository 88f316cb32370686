"""Steps the HTEX benchmarks run, importable on workers (sent by reference, as in real use)."""
from __future__ import annotations

from q2pconf import step


def plain(i: int) -> int:
    """A trivial function, for raw Parsl."""
    return i


trivial = step(plain)
trivial_htex = step(executor="htex")(plain)

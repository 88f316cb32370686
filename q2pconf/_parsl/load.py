"""How every q2pconf process imports Parsl: typeguard's instrumentation of Parsl from the cache
(`q2pconf._parsl.typecache`), and data sent to HTEX workers by C pickle first
(`q2pconf._parsl.pickling`).

Importing this module does it, once per process: a forkserver's preload list can only name
modules, and the program's first Parsl import is build's import of this module.
"""
from q2pconf._parsl import pickling, typecache


def load() -> None:
    typecache.import_parsl()
    pickling.register()


load()

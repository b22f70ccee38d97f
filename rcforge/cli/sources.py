"""`rcforge sources`: the registered readers and their recipe options."""

from __future__ import annotations

from rcforge import readers
from rcforge.core.config import describe


def add_arguments(parser) -> None:
    pass


def main(args, rest) -> None:
    for name in readers.names():
        spec = readers.get(name)
        print(f"{name}: {spec.doc.splitlines()[0] if spec.doc else ''}")
        for option, typ, default in describe(spec.config_class):
            print(f"    {option:<22} {typ:<40} {default}")

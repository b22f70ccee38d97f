"""`rcforge tasks`: the registered tasks, the annotations they need (and the sources that have them), their
variants and options."""

from __future__ import annotations

from rcforge import rc_tasks, readers
from rcforge.core.config import describe


def add_arguments(parser) -> None:
    pass


def main(args, rest) -> None:
    for name in rc_tasks.names():
        spec = rc_tasks.get(name)
        print(f"{name}: {spec.doc}")
        how = []
        for what, needs, runs in (("sampled per image", spec.sample_needs, spec.samples),
                                  ("one per annotation", spec.enumerate_needs, spec.enumerates)):
            if needs:
                sources = [s for s in readers.names() if runs(readers.get(s).provides)]
                how.append(f"{what} on records with {', '.join(needs)} ({', '.join(sources) or 'no source yet'})")
        print(f"    {'; '.join(how)}; variants: {', '.join(sorted(spec.variables))}")
        print(f"    {'weight':<22} {'float':<44} 1.0")
        for option, typ, default in describe(spec.config_class):
            print(f"    {option:<22} {typ:<44} {default}")

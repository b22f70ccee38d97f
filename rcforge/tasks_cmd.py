"""`rcforge tasks`: the registered tasks, the sources they use, their variants and options."""

from __future__ import annotations

from rcforge import rc_tasks
from rcforge.config import describe


def add_arguments(parser) -> None:
    pass


def main(args, rest) -> None:
    for name in rc_tasks.names():
        spec = rc_tasks.get(name)
        print(f"{name}: {spec.doc}")
        how = []
        if spec.sample_sources:
            how.append(f"sampled per image on {', '.join(spec.sample_sources)}")
        if spec.enumerate_sources:
            how.append(f"one per annotation on {', '.join(spec.enumerate_sources)}")
        print(f"    {'; '.join(how)}; variants: {', '.join(sorted(spec.variables))}")
        print(f"    {'weight':<22} {'float':<44} 1.0")
        for option, typ, default in describe(spec.config_class):
            print(f"    {option:<22} {typ:<44} {default}")

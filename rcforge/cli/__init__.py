"""Layer 7, the `rcforge` command: the parser and dispatch (`main`), and the commands that only print
(`tasks`, `sources`); the pipeline commands' flags live with their pipelines (`rcforge.pipelines`)."""

from rcforge.cli.main import main

__all__ = ["main"]

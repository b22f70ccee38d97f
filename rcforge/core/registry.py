"""One registry type for everything registered by name (readers, tasks, coordinate formats).

A `Registry` maps names to entries, refuses a name registered twice, imports its plugin modules on first lookup
(so that importing a package stays cheap), and answers an unknown name with a `RecipeError` that lists the
registered ones, which is what a user who misspelled a recipe key needs to read.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Generic, Iterable, TypeVar

from rcforge.core.errors import RecipeError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, what: str, modules: Iterable[str] = (), *, package: str | None = None):
        """``what`` names an entry in messages ("source", "task"). Entries register themselves when their module
        is imported: ``modules`` names those modules, and ``package`` adds every module of that package, so a new
        task or reader is one new file and nothing else."""
        self.what = what
        self._modules = tuple(modules)
        self._package = package
        self._entries: dict[str, T] = {}
        self._loaded = not self._modules and package is None

    def add(self, name: str, entry: T) -> T:
        if name in self._entries:
            raise ValueError(f"{self.what} {name!r} is registered twice")
        self._entries[name] = entry
        return entry

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            modules = list(self._modules)
            if self._package is not None:
                path = importlib.import_module(self._package).__path__
                modules += sorted(f"{self._package}.{m.name}" for m in pkgutil.iter_modules(path)
                                  if not m.name.startswith("_"))
            for module in modules:
                importlib.import_module(module)

    def get(self, name: str) -> T:
        self._load()
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise RecipeError(f"Unknown {self.what} {name!r}; registered: {', '.join(self.names())}") from None

    def names(self) -> list[str]:
        self._load()
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._entries

    def items(self):
        self._load()
        return sorted(self._entries.items())

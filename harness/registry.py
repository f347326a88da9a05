"""Named registries: decorator registration, lazy "module:object" entries, entry-point plugins.

One `Registry` type serves initialization methods, training objectives and datasets. Built-in
entries are declared lazily as "module:object" strings so listing them imports nothing heavy;
third-party packages add entries through an entry-point group (e.g. ``harness.methods``).
Built-ins win name clashes. Unknown names fail with "did you mean ...".
"""
from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Callable, Iterator


class UnknownNameError(KeyError):
    """A registry lookup for a name that does not exist (message suggests the closest names)."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


@dataclass
class Entry:
    name: str
    origin: str  # "builtin" or "plugin:<distribution>"
    target: Any  # the object, or a "module:attr" string until first use
    shadowed: tuple[str, ...] = ()  # plugin origins that lost a name clash to this entry

    def load(self) -> Any:
        if isinstance(self.target, str):
            module_name, _, attr = self.target.partition(":")
            module = importlib.import_module(module_name)
            # a module using the decorator has already replaced the lazy target while importing
            if isinstance(self.target, str):
                self.target = getattr(module, attr) if attr else module
        return self.target


class Registry:
    """A name -> object mapping with lazy built-ins and entry-point plugins."""

    def __init__(self, kind: str, entry_point_group: str | None = None):
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._entries: dict[str, Entry] = {}
        self._plugins_loaded = False

    # -- registration -------------------------------------------------------------------------
    def register(self, name: str, *, origin: str = "builtin") -> Callable[[Any], Any]:
        """Decorator: ``@objectives.register("splade")``."""

        def decorator(obj: Any) -> Any:
            self.add(name, obj, origin=origin, module=getattr(obj, "__module__", None))
            return obj

        return decorator

    def add(self, name: str, target: Any, *, origin: str = "builtin", module: str | None = None) -> None:
        """Register ``target``. ``module`` is the defining module of a decorated object: it lets a
        lazy "module:attr" entry be resolved by that module's own decorator while it imports."""
        existing = self._entries.get(name)
        if existing is None:
            self._entries[name] = Entry(name, origin, target)
        elif isinstance(existing.target, str) and module and existing.target.partition(":")[0] == module:
            existing.target = target
        elif existing.origin == "builtin" and origin != "builtin":
            existing.shadowed += (origin,)  # built-ins win name clashes
        # otherwise the first registration wins

    def add_lazy(self, name: str, target: str) -> None:
        """Declare a built-in as "module:attr"; the module is imported on first use."""
        self._entries.setdefault(name, Entry(name, "builtin", target))

    # -- plugins ----------------------------------------------------------------------------------
    def _load_plugins(self) -> None:
        if self._plugins_loaded or not self.entry_point_group:
            return
        self._plugins_loaded = True
        for ep in metadata.entry_points(group=self.entry_point_group):
            dist = ep.dist.name if ep.dist is not None else "unknown"
            self.add(ep.name, ep.value, origin=f"plugin:{dist}")

    # -- lookup -----------------------------------------------------------------------------------
    def names(self) -> list[str]:
        self._load_plugins()
        return sorted(self._entries)

    def entry(self, name: str) -> Entry:
        self._load_plugins()
        if name not in self._entries:
            raise UnknownNameError(self.unknown_message(name))
        return self._entries[name]

    def get(self, name: str) -> Any:
        return self.entry(name).load()

    def __contains__(self, name: str) -> bool:
        self._load_plugins()
        return name in self._entries

    def __iter__(self) -> Iterator[Entry]:
        self._load_plugins()
        return iter(self._entries[n] for n in sorted(self._entries))

    def unknown_message(self, name: str) -> str:
        names = self.names()
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.0) if names else []
        hint = f"did you mean '{close[0]}'? " if close else ""
        return f"unknown {self.kind} '{name}': {hint}known {self.kind}s: {', '.join(names)}"


methods = Registry("method", "harness.methods")
objectives = Registry("objective", "harness.objectives")
datasets = Registry("dataset", "harness.datasets")

"""The runner's side of the method registry: a registered function becomes a ``MethodSpec``.

Plugins never import this module (``harness.api`` is theirs). Built-in methods are the modules of
the ``methods`` package, declared lazily under their file name (``my_method.py`` -> "my-method");
a module that registers no method of that name is a clear error naming both, not a traceback.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from harness.params import Param, resolve, signature_params
from harness.registry import methods as method_registry
from harness.util import HarnessError


class MethodLoadError(HarnessError):
    """A registered method that cannot be loaded or called: a plugin's import fails, or it names no function."""


@dataclass
class MethodSpec:
    """A registered initialization method: the function, its typed parameters and its metadata
    (``register_method``'s citation, resources, deterministic; None where not declared)."""

    name: str
    fn: Callable[..., Any]
    description: str
    params: tuple[Param, ...]
    citation: str = ""
    resources: tuple[str, ...] | None = None
    deterministic: bool | None = None
    omit_when_default: tuple[str, ...] = ()

    def resolve_params(self, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """Defaults updated by ``overrides``; unknown names and wrong types raise ValueError.

        Parameters in ``omit_when_default`` are left out while at their default (the function's
        own default then applies), so adding one keeps the run ids of existing records."""
        resolved = resolve(f"method '{self.name}'", self.params, overrides)
        defaults = {p.name: p.default for p in self.params}
        return {k: v for k, v in resolved.items() if not (k in self.omit_when_default and v == defaults[k])}

    def __call__(self, ctx: Any, **params: Any) -> Any:
        from harness.api import TransferPlan

        plan = self.fn(ctx, **self.resolve_params(params))
        if not isinstance(plan, TransferPlan):
            raise HarnessError(f"method '{self.name}' returned {type(plan).__name__}, not a TransferPlan: "
                               f"fix the method (`harness check-method {self.name}`)")
        plan.info.setdefault("method", self.name)
        if self.deterministic is not None:  # a plan may have said it for this run already
            plan.info.setdefault("deterministic", self.deterministic)
        return plan


def method_spec(name: str, fn: Callable[..., Any]) -> MethodSpec:
    """Build a spec from a function's keyword-only parameters, docstring and registration metadata."""
    import inspect

    from harness.api import method_metadata

    doc = inspect.getdoc(fn) or ""
    meta = method_metadata(fn)
    return MethodSpec(name, fn, doc.splitlines()[0] if doc else "", signature_params(f"method '{name}'", fn),
                      citation=meta["citation"], resources=meta["resources"], deterministic=meta["deterministic"],
                      omit_when_default=meta["omit_when_default"])


def get_method(name: str) -> MethodSpec:
    """The spec of a registered method (unknown names fail with "did you mean")."""
    entry = method_registry.entry(name)
    try:
        obj = entry.load()
    except Exception as err:  # a plugin's module that fails to import: its error, in one line
        first = (str(err).strip().splitlines() or [""])[0]
        raise MethodLoadError(f"method '{name}' ({entry.origin}) fails to load: {type(err).__name__}: {first}: "
                              f"fix or uninstall it") from None
    if isinstance(obj, MethodSpec):
        return obj
    if callable(obj):  # a decorated function, or a plugin entry point naming one
        spec = method_spec(name, obj)
        entry.target = spec
        return spec
    if getattr(obj, "__name__", "").startswith("methods."):  # a built-in module registering another name
        found = sorted(e.name for e in method_registry if getattr(e.target, "__module__", None) == obj.__name__)
        raise MethodLoadError(f"built-in method file {obj.__name__.replace('.', '/')}.py registers "
                           f"{', '.join(repr(n) for n in found) or 'no method'}, not '{name}': a built-in method's "
                           f"file name must be its registered name ('-' written as '_')")
    raise MethodLoadError(f"method '{name}' is registered as {obj!r}, not a function")


def provided_resources(resources: dict[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    """``resources`` checked against ``harness.api.METHOD_RESOURCES``: a runner provides exactly those."""
    from harness.api import METHOD_RESOURCES

    if set(resources) != set(METHOD_RESOURCES):
        missing, extra = sorted(set(METHOD_RESOURCES) - set(resources)), sorted(set(resources) - set(METHOD_RESOURCES))
        raise AssertionError(f"method resources differ from harness.api.METHOD_RESOURCES: missing {missing}, extra {extra}")
    return resources


def declare_builtin_methods() -> None:
    """Each module of the ``methods`` package is a built-in method of the same name, loaded lazily."""
    import pkgutil

    import methods as builtin_methods

    for module in pkgutil.iter_modules(builtin_methods.__path__):
        if not module.name.startswith("_"):
            method_registry.add_lazy(module.name.replace("_", "-"), f"methods.{module.name}")


declare_builtin_methods()

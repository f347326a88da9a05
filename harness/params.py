"""Typed parameters declared in a signature: how methods and objectives state what they accept.

A parameter is a keyword-only argument with an annotation and a default; its help text is a
``name: text`` line under a ``Parameters:`` heading of the docstring. ``Literal[...]`` annotations
give choices; ``Annotated[float, Range(gt=1)]`` gives a range (on the value, when it is not None),
checked with the type. ``resolve`` checks overrides against the declarations, with "did you mean".
"""
from __future__ import annotations

import difflib
import inspect
import types
import typing
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Range:
    """Bounds of a number: ``Range(gt=1)``, ``Range(ge=0, le=1)``; a value must satisfy all that are set.

    Declared next to a parameter's type, ``alpha: Annotated[float, Range(gt=1)] = 4.0``, or on a config
    key. On a list-valued config key every element is checked (``seeds``)."""

    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None

    def __contains__(self, value: Any) -> bool:
        # comparisons with NaN are False, so NaN falls outside every range
        return ((self.gt is None or value > self.gt) and (self.ge is None or value >= self.ge)
                and (self.lt is None or value < self.lt) and (self.le is None or value <= self.le))

    def __str__(self) -> str:
        bounds = [f"{op} {_number(x)}" for op, x in ((">", self.gt), (">=", self.ge), ("<", self.lt), ("<=", self.le))
                  if x is not None]
        return " and ".join(bounds) or "any number"


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


@dataclass(frozen=True)
class Param:
    name: str
    type: type
    default: Any
    help: str = ""
    choices: tuple[Any, ...] | None = None
    range: Range | None = None

    def describe(self) -> str:
        """``name=default``, with the range when one is declared (listings)."""
        return f"{self.name}={self.default!r}" + (f" ({self.range})" if self.range else "")

    def coerce(self, value: Any) -> Any:
        """Check ``value`` against this parameter's type and range (ints widen to floats)."""
        value = self._typed(value)
        if self.range is not None and value is not None and value not in self.range:
            raise ValueError(f"parameter '{self.name}' must be {self.range}, got {value!r}")
        return value

    def _typed(self, value: Any) -> Any:
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"parameter '{self.name}' must be one of {list(self.choices)}, got {value!r}")
        if value is None and self.default is None:
            return None
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if self.type is bool and not isinstance(value, bool):
            raise ValueError(f"parameter '{self.name}' must be true or false, got {value!r}")
        if not isinstance(value, self.type) or (self.type is int and isinstance(value, bool)):
            raise ValueError(f"parameter '{self.name}' must be {self.type.__name__}, got {value!r}")
        return value


def signature_params(owner: str, fn: Callable[..., Any]) -> tuple[Param, ...]:
    """The keyword-only parameters of ``fn`` as typed, documented ``Param``s (``owner`` names it in errors)."""
    hints = typing.get_type_hints(fn, include_extras=True)
    docs = param_docs(inspect.getdoc(fn) or "")
    params = []
    for p in inspect.signature(fn).parameters.values():
        if p.kind is not inspect.Parameter.KEYWORD_ONLY:
            continue
        if p.default is inspect.Parameter.empty:
            raise TypeError(f"{owner}: parameter '{p.name}' needs a default")
        hint, bounds = _split_range(hints.get(p.name, type(p.default)))
        choices = None
        if typing.get_origin(hint) is typing.Literal:
            choices = typing.get_args(hint)
            hint = type(choices[0])
        elif typing.get_origin(hint) in (typing.Union, types.UnionType):
            hint, inner = _split_range(next(a for a in typing.get_args(hint) if a is not type(None)))
            bounds = bounds or inner  # Annotated[float, Range(...)] | None
        elif typing.get_origin(hint) is not None:  # list[str] and the like: check the container
            hint = typing.get_origin(hint)
        if bounds is not None and p.default is not None and p.default not in bounds:
            raise TypeError(f"{owner}: the default of '{p.name}' ({p.default!r}) is outside its range {bounds}")
        params.append(Param(p.name, hint, p.default, docs.get(p.name, ""), choices, bounds))
    return tuple(params)


def _split_range(hint: Any) -> tuple[Any, Range | None]:
    """``Annotated[T, Range(...)]`` -> (T, the Range); any other hint -> (hint, None)."""
    if typing.get_origin(hint) is not typing.Annotated:
        return hint, None
    base, *extras = typing.get_args(hint)
    return base, next((e for e in extras if isinstance(e, Range)), None)


def resolve(owner: str, params: tuple[Param, ...], overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Defaults updated by ``overrides``; unknown names and wrong types raise ValueError."""
    by_name = {p.name: p for p in params}
    resolved = {p.name: p.default for p in params}
    for key, value in (overrides or {}).items():
        if key not in by_name:
            close = difflib.get_close_matches(key, by_name, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ValueError(f"{owner} has no parameter '{key}': {hint}parameters: {', '.join(by_name) or 'none'}")
        try:
            resolved[key] = by_name[key].coerce(value)
        except ValueError as err:
            raise ValueError(f"{owner}: {err}") from None
    return resolved


def param_docs(doc: str) -> dict[str, str]:
    """``name: text`` lines (indented continuations appended) under a ``Parameters:`` heading."""
    docs: dict[str, str] = {}
    lines = inspect.cleandoc(doc or "").splitlines()
    heading = next((i for i, line in enumerate(lines) if line.strip().lower() == "parameters:"), None)
    if heading is None:
        return docs
    indent, last = None, None
    for line in lines[heading + 1 :]:
        depth = len(line) - len(line.lstrip())
        name, sep, text = line.strip().partition(":")
        if sep and name.isidentifier() and (indent is None or depth == indent):
            indent, last = depth, name
            docs[name] = text.strip()
        elif last and line.strip() and depth > (indent or 0):
            docs[last] += " " + line.strip()
    return docs

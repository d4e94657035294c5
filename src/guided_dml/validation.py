"""The one validation layer of settings: a :class:`Rule` per setting, checked before any work.

A rule says what a setting accepts (its type, whether it may be unset, its range or choices)
and checks a value against it, giving one line that names the setting and what it accepts:
``--threads: expected an integer >= 1, got -1``. The same rules serve the command line (as
argparse types, :func:`arg_type`), config files and the estimator's parameters (through
:func:`guided_dml.experiments.config.resolve_config`), so every entry point refuses the same
values with the same words.

Nothing is converted silently: ``"5"`` is not an integer, ``2.5`` is not an integer, ``true``
is not a number, NaN and infinities are not numbers a setting can take. NumPy scalars are taken
as the Python numbers they hold (scikit-learn's searches pass them).
"""

from __future__ import annotations

import argparse
import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

_KIND_WORDS = {int: "an integer", float: "a finite number", str: "a string", bool: "true or false"}
_ITEM_WORDS = {int: "integers", float: "finite numbers", str: "strings", bool: "booleans"}


@dataclass(frozen=True)
class Rule:
    """What one setting accepts.

    Attributes:
        kind: ``int``, ``float``, ``str`` or ``bool``; or ``tuple`` (a list of ``item``, each
            checked against the bounds).
        optional: None (unset) is accepted.
        low, high: bounds of numbers (None: unbounded); ``low_open``/``high_open`` exclude them.
        choices: the accepted strings (None: any string).
    """

    kind: type
    optional: bool = False
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] | None = None
    item: type | None = None  # kind tuple: the type of the items

    def describe(self) -> str:
        """What the rule accepts, in words: ``an integer >= 1 (or unset)``."""
        if self.choices is not None:
            text = "one of " + ", ".join(self.choices)
        else:
            text = (f"a list of {_ITEM_WORDS[self.item]}" if self.kind is tuple and self.item
                    else _KIND_WORDS[self.kind])
            if self.low is not None and self.high is not None:
                lo = "(" if self.low_open else "["
                hi = ")" if self.high_open else "]"
                text += f" in {lo}{_num(self.low)}, {_num(self.high)}{hi}"
            elif self.low is not None:
                text += f" {'>' if self.low_open else '>='} {_num(self.low)}"
            elif self.high is not None:
                text += f" {'<' if self.high_open else '<='} {_num(self.high)}"
        return text + (" (or unset)" if self.optional else "")

    def check(self, value: Any, name: str, key: str | None = None) -> Any:
        """``value`` if the rule accepts it (NumPy scalars as Python numbers), else ConfigError.

        ``name``: the setting as the user gave it (``--lr``, ``'lr' in config file x.json``);
        ``key``: its plain name, for choices (``unknown method 'x'``).
        """
        if value is None:
            if self.optional:
                return None
            raise ConfigError(f"{name}: expected {self.describe()}, got null (it cannot be unset)")
        if self.kind is tuple:
            return self._check_items(value, name)
        v = _typed(value, self.kind)
        if v is _REFUSED:
            raise ConfigError(f"{name}: expected {self.describe()}, got {_shown(value)}")
        if self.kind in (int, float) and not self._in_range(v):
            raise ConfigError(f"{name}: expected {self.describe()}, got {_shown(value)}")
        if self.choices is not None and v not in self.choices:
            what = f"unknown {key.replace('_', ' ')}" if key else "unknown value"
            raise ConfigError(f"{name}: {what} {_shown(value)}; expected {self.describe()}")
        return v

    def _check_items(self, value: Any, name: str) -> tuple[Any, ...]:
        items = list(value) if isinstance(value, (list, tuple)) else None
        typed = [_typed(v, self.item or str) for v in items] if items is not None else None
        if typed is None or any(v is _REFUSED for v in typed) or (
                self.item in (int, float) and not all(self._in_range(v) for v in typed)):
            raise ConfigError(f"{name}: expected {self.describe()}, got {_shown(value)}")
        return tuple(typed)

    def _in_range(self, v: float) -> bool:
        if self.low is not None and (v < self.low or (self.low_open and v == self.low)):
            return False
        return not (self.high is not None and (v > self.high or (self.high_open and v == self.high)))


_REFUSED = object()


def _num(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


def _typed(value: Any, kind: type) -> Any:
    """``value`` as ``kind`` without any conversion a user could be surprised by, or _REFUSED."""
    t = type(value)
    is_bool = isinstance(value, bool) or (t.__module__ == "numpy" and t.__name__ in ("bool", "bool_"))
    if kind is bool:
        return bool(value) if is_bool else _REFUSED
    if is_bool:
        return _REFUSED  # True is an int to Python, not to a user
    if kind is int:
        if isinstance(value, int):
            return value
        return int(value) if isinstance(value, numbers.Integral) else _REFUSED
    if kind is float:
        if isinstance(value, numbers.Real) and not isinstance(value, (int, float)):
            value = float(value)  # NumPy floats and ints; a Python int stays an int (config hashes)
        if isinstance(value, (int, float)) and math.isfinite(value):
            return value
        return _REFUSED
    return value if isinstance(value, str) else _REFUSED


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # nan, inf
    text = repr(value)
    text = text if len(text) <= 60 else text[:57] + "..."
    return f"{text} ({type(value).__name__})" if not isinstance(value, (int, float)) else text


def arg_type(rule: Rule) -> Callable[[str], Any]:
    """An argparse ``type=`` that parses a flag's text as ``rule.kind`` and checks ``rule``.

    argparse names the flag in its error: ``argument --threads: expected an integer >= 1, got -1``.
    """

    def parse(text: str) -> Any:
        value: Any = text
        try:
            if rule.kind is int:
                value = int(text)
            elif rule.kind is float:
                value = float(text)
            elif rule.kind is bool:
                value = parse_bool(text)
            elif rule.kind is tuple:  # "40,60,80"
                item = {int: int, float: float}.get(rule.item or str, str)
                value = tuple(item(t.strip()) for t in text.split(",") if t.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {rule.describe()}, got {text!r}") from None
        try:
            return rule.check(value, "")
        except ConfigError:
            raise argparse.ArgumentTypeError(f"expected {rule.describe()}, got {text!r}") from None

    parse.__name__ = rule.kind.__name__  # argparse's fallback message names the type
    return parse


def parse_bool(text: str) -> bool:
    """``true``/``false`` (also 1/0, yes/no, on/off) from a command line."""
    v = text.lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true/false, got {text!r}")


def check_all(values: dict[str, Any], rules: dict[str, Rule], name_of: Callable[[str], str],
              only: Sequence[str] | None = None) -> dict[str, Any]:
    """``values`` with every key that has a rule checked (and normalised); first error raised."""
    out = dict(values)
    for key in (only if only is not None else list(values)):
        if key in rules and key in values:
            out[key] = rules[key].check(values[key], name_of(key), key)
    return out

"""Small validators for kernels' ``[params]``, shared by every kernel (and the SDK's users).

Each raises ``ParamError`` naming the key, the value and what was expected. Messages come in
the phrases kernels already use, so a user sees the same words whichever kernel refuses:

- ``expected(key, "an integer in [1, 100]", value)``: ``expected an integer in [1, 100], got 0``
  (``typed=True`` names the value's type too: ``got str 'many'``);
- ``out_of_range(key, value, lo, hi)``: ``8192 is out of range; expected 64..4096``;
- ``not_one_of(key, value, "jpeg, png")``: ``'gif' is not one of jpeg, png``;
- ``unknown_key(key, allowed)``: ``unknown key; did you mean 'tile_size'?``.

Values are shown as ``repr`` shows them, except booleans, which are shown as the job file
writes them (``got bool true``, not ``got bool True``).

Kernels import nothing from ``tessera.engine``; this module imports only the kernel base.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from typing import Any

from tessera.kernels.base import ParamError

MISSING: Any = object()  # the default of a required key


def shown(value: Any) -> str:
    """A value as a message shows it: ``repr``, except that booleans are written as the job
    file writes them, ``true`` and ``false`` (also inside lists and tables: ``[true]``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return f"[{', '.join(map(shown, value))}]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k!r}: {shown(v)}" for k, v in value.items()) + "}"
    return repr(value)


def got(value: Any, typed: bool = False) -> str:
    """How a message shows a bad value: ``'many'``, or with its type (``typed``): ``str 'many'``;
    booleans as ``true``/``false`` (see ``shown``)."""
    return f"{type(value).__name__} {shown(value)}" if typed else shown(value)


def expected(key: str, what: str, value: Any, *, typed: bool = False) -> ParamError:
    """``ParamError(key, "expected <what>, got <value>")``."""
    return ParamError(key, f"expected {what}, got {got(value, typed)}")


def out_of_range(key: str, value: Any, lo: Any, hi: Any) -> ParamError:
    """``ParamError(key, "<value> is out of range; expected <lo>..<hi>")``."""
    return ParamError(key, f"{shown(value)} is out of range; expected {lo}..{hi}")


def not_one_of(key: str, value: Any, choices: str, hint: str = "") -> ParamError:
    """``ParamError(key, "<value> is not one of <choices><hint>")``; ``hint`` from ``suggest``."""
    return ParamError(key, f"{shown(value)} is not one of {choices}{hint}")


def suggest(word: str, choices: Sequence[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``choices``, or ``""`` when none is close."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def unknown_key(key: str, allowed: Sequence[str], prefix: str = "") -> ParamError:
    """An unknown key (``prefix`` names the table it is in, e.g. ``"dzi."``): ``unknown key;
    did you mean 'x'?``, or ``unknown key; expected one of [...]`` when nothing is close."""
    close = difflib.get_close_matches(key, list(allowed), n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"expected one of {list(allowed)}"
    return ParamError(f"{prefix}{key}", f"unknown key; {hint}")


def check_keys(raw: Mapping[str, Any], allowed: Sequence[str], prefix: str = "") -> None:
    """Raise ``unknown_key`` for the first key of ``raw`` that is not in ``allowed``."""
    for key in raw:
        if key not in allowed:
            raise unknown_key(str(key), allowed, prefix)


def is_integer(value: Any) -> bool:
    """An ``int`` that is not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """An ``int`` or ``float`` that is not a ``bool``."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def integer_in(raw: Mapping[str, Any], key: str, lo: int, hi: int, default: Any = MISSING) -> Any:
    """``raw[key]`` (or ``default`` when absent and not ``MISSING``), an integer in
    ``[lo, hi]``; otherwise ``expected an integer in [lo, hi], got <value>``."""
    if key not in raw and default is not MISSING:
        return default
    value = raw.get(key)
    if not is_integer(value) or not lo <= value <= hi:
        raise expected(key, f"an integer in [{lo}, {hi}]", value)
    return int(value)


def bounded_integer(
    raw: Mapping[str, Any], key: str, lo: int, hi: int, default: Any, name: str | None = None
) -> Any:
    """``raw[key]`` (``default`` when absent), an integer in ``lo..hi``: ``expected an integer,
    got <type> <value>`` or ``out_of_range``. ``name`` is the key as the message names it
    (``dzi.quality`` for ``quality`` in the ``dzi`` table)."""
    if key not in raw:
        return default
    name = name or key
    value = raw[key]
    if not is_integer(value):
        raise expected(name, "an integer", value, typed=True)
    if not lo <= value <= hi:
        raise out_of_range(name, value, lo, hi)
    return value


def finite_number(raw: Mapping[str, Any], key: str) -> float:
    """``raw[key]`` as a finite float (an int is accepted): ``expected a number``, or ``expected
    a finite number`` for NaN, infinity and integers too large for a float."""
    value = raw[key]
    if not is_number(value):
        raise expected(key, "a number", value)
    try:
        out = float(value)
    except OverflowError:  # an integer of more than 308 digits
        digits = len(str(abs(value)))
        raise ParamError(
            key, f"expected a finite number, got an integer of {digits} digits"
        ) from None
    if not math.isfinite(out):
        raise expected(key, "a finite number", value)
    return out


def choice(raw: Mapping[str, Any], key: str, choices: Sequence[str], default: Any) -> Any:
    """``raw[key]`` (``default`` when absent; ``None`` stays ``None``), one of the strings
    ``choices``: ``expected one of a, b, got <value>`` for a non-string, ``not_one_of`` with a
    "did you mean" for another string."""
    value = raw.get(key, default)
    if value is None:
        return None
    listed = ", ".join(choices)
    if not isinstance(value, str):
        raise expected(key, f"one of {listed}", value)
    if value not in choices:
        raise not_one_of(key, value, listed, suggest(value, choices))
    return value


def boolean(raw: Mapping[str, Any], key: str, default: bool, *, typed: bool = False) -> bool:
    """``raw[key]`` (``default`` when absent), ``true`` or ``false``: ``expected true or
    false, got <value>`` otherwise."""
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise expected(key, "true or false", value, typed=typed)
    return value

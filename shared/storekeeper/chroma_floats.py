"""What chromadb 1.5.9 stores for a metadata float: not always the float it was given.

Its write-ahead log keeps records as JSON and parses them back with serde_json's default float parser,
which is not correctly rounded: the significand times or divided by a power of ten, each rounded on
its own. About one full-precision float in ten (`random.random()`'s, a model's score) comes back one
unit in the last place off; short decimals (0.5, 12.375, round(x, 3)) never do. Upstream fixed it
after 1.5.9 (chroma-core/chroma#7755, serde_json's `float_roundtrip`), the newest release on the
package index here. The compactor cannot route around it (no float near the value parses to it for
most of them), so the change is documented (docs/records.md, "Floats in metadata") and predicted
exactly here; tests/unit/test_chroma_floats.py holds the prediction to real chromadb and fails once
an upgrade stores every float exactly. Standard library only: the producer may import it.
"""

from __future__ import annotations

import math

#: serde_json's POW10 table: 1e0 ... 1e308, each the correctly rounded double (as Python's literals)
_POW10 = tuple(float(f"1e{i}") for i in range(309))


def parse_like_serde(text: str) -> float:
    """A JSON number as serde_json's default parser reads it (significand as an integer, then one
    multiplication or division by a power of ten; exponents past 308 in steps of 1e308)."""
    negative = text.startswith("-")
    body = text[1:] if negative else text
    mantissa, _, exponent = body.lower().partition("e")
    whole, _, fraction = mantissa.partition(".")
    significand = int((whole + fraction).lstrip("0") or "0")
    exp10 = (int(exponent) if exponent else 0) - len(fraction)
    value = float(significand)
    while True:
        if abs(exp10) < len(_POW10):
            value = value * _POW10[exp10] if exp10 >= 0 else value / _POW10[-exp10]
            break
        if value == 0.0:
            break
        if exp10 >= 0:
            return math.inf  # serde_json refuses it; chromadb never writes one (repr is in range)
        value /= 1e308
        exp10 += 308
    return -value if negative else value


def stored_metadata_float(value: float) -> float:
    """The float chromadb 1.5.9 gives back for metadata `value` (finite; written as the shortest
    round-trip decimal, as Rust's ryu and Python's repr both write it)."""
    if not math.isfinite(value):
        return value
    return parse_like_serde(repr(value))

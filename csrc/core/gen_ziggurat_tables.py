"""Writes csrc/core/ziggurat_tables.hpp: the exponential ziggurat's layers as exact hex doubles.

    python3 csrc/core/gen_ziggurat_tables.py > csrc/core/ziggurat_tables.hpp

The tables are computed once here with 60-digit arithmetic (mpmath) and embedded as hex-float
literals, so no platform's libm ever takes part in the stream. tests/test_sampler.py re-runs this
script and checks that the header is what it prints.
"""

from __future__ import annotations

import mpmath

mpmath.mp.dps = 60
LAYERS = 256


def layer_edges(r: mpmath.mpf) -> tuple[mpmath.mpf, list[mpmath.mpf]] | None:
    """x_0 = r > x_1 > ... for equal-area layers under exp(-x); None when the area is too large."""
    area = (r + 1) * mpmath.exp(-r)  # base rectangle r * e^-r plus the tail beyond r
    edges = [r]
    for _ in range(1, LAYERS - 1):
        top = mpmath.exp(-edges[-1]) + area / edges[-1]
        if top >= 1:
            return None
        edges.append(-mpmath.log(top))
    return area, edges


def solve_r() -> mpmath.mpf:
    """The base edge r for which the top layer closes exactly at density 1 (bisection)."""
    low, high = mpmath.mpf(6), mpmath.mpf(9)
    for _ in range(400):
        middle = (low + high) / 2
        solved = layer_edges(middle)
        if solved is None:
            low = middle  # layers too large: they pass density 1 early, so r must grow
            continue
        area, edges = solved
        closing = mpmath.exp(-edges[-1]) + area / edges[-1] - 1
        if closing > 0:
            low = middle
        else:
            high = middle
    return high


def main() -> None:
    r = solve_r()
    area, edges = layer_edges(r)
    edges.append(mpmath.mpf(0))  # x_255 = 0: the top layer is all wedge
    # Layer 0 is the base: a rectangle of width area / e^-r = r + 1 whose part beyond r stands
    # for the tail. Layer i >= 1 is the rectangle [0, x_{i-1}] x [e^-x_{i-1}, e^-x_i].
    widths = [r + 1] + edges[:-1]
    inner = edges
    density = [mpmath.exp(-x) for x in edges]
    scale = mpmath.mpf(2) ** -53  # x = (53-bit integer) * width * 2^-53

    def hexes(values, factor=1):
        out = [float(mpmath.mpf(v)).hex() for v in values]
        if factor != 1:
            out = [(float.fromhex(h) * factor).hex() for h in out]  # exact: a power of two
        return ",\n    ".join(", ".join(out[i : i + 3]) for i in range(0, len(out), 3))

    print(f"""// Exponential ziggurat layers: made by gen_ziggurat_tables.py, do not edit.
#pragma once

namespace fastloader::ziggurat {{

// {LAYERS} layers of equal area. The base layer's inner edge r and the common layer area v.
constexpr double kTailStart = {float(r).hex()};
constexpr double kLayerArea = {float(area).hex()};

// Layer i's rectangle width times 2^-53: x = (53-bit integer) * kScaledWidth[i].
constexpr double kScaledWidth[{LAYERS}] = {{
    {hexes(widths, float(scale))}}};

// Below kInnerEdge[i] the whole column of layer i lies under exp(-x): accept at once.
constexpr double kInnerEdge[{LAYERS}] = {{
    {hexes(inner)}}};

// exp(-x_i) at the layer edges; layer i >= 1 spans densities [kDensity[i-1], kDensity[i]].
constexpr double kDensity[{LAYERS}] = {{
    {hexes(density)}}};

}}  // namespace fastloader::ziggurat""")


if __name__ == "__main__":
    main()

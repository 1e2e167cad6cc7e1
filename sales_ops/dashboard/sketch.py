"""Distinct customers counted over slices of the orders: a HyperLogLog sketch.

Where the dashboard's open dates are more than one statement may read (at hundreds of changes/s),
its figures are read a slice of the orders at a time (snapshot.py) and added up. Every figure
adds up but one: the distinct customers of the last hour (a customer's orders may lie in several
slices). For that figure each slice returns, per register (`{customer_register}`, 4,096 of them),
the highest rank (`{customer_rank}`) among its customers; the registers' maxima over all slices
are the sketch of all of them, whatever the slicing, and `estimate` turns it into a count within
about 1.6 % (1.04 / sqrt(4096); Flajolet et al., "HyperLogLog: the analysis of a near-optimal
cardinality estimation algorithm", 2007, with its small-range correction). Read in one statement,
the figure stays exact (count(DISTINCT …)); the page marks a sketched one as approximate.
"""

from __future__ import annotations

import hashlib
import math

REGISTERS = 4096  # 2^12: the first three hex digits of md5(customer_id)
RANK_BITS = 24  # the next six hex digits


def register_of(customer_id: str | None) -> int:
    """`{customer_register}` in Python."""
    return int(_md5(customer_id)[:3], 16)


def rank_of(customer_id: str | None) -> int:
    """`{customer_rank}` in Python: the position of the first 1 bit in the 24 bits after the
    register's (25 when they are all 0)."""
    bits = int(_md5(customer_id)[3:9], 16)
    return RANK_BITS + 1 if bits == 0 else RANK_BITS - bits.bit_length() + 1


def estimate(ranks: dict[int, int]) -> int:
    """Distinct values from a sketch (register → highest rank seen; a missing register is 0)."""
    alpha = 0.7213 / (1 + 1.079 / REGISTERS)
    harmonic = sum(2.0 ** -ranks.get(r, 0) for r in range(REGISTERS))
    raw = alpha * REGISTERS * REGISTERS / harmonic
    empty = sum(1 for r in range(REGISTERS) if ranks.get(r, 0) == 0)
    if raw <= 2.5 * REGISTERS and empty:  # few values: count the empty registers instead
        return round(REGISTERS * math.log(REGISTERS / empty))
    return round(raw)


def merge(sketches: list[dict[int, int]]) -> dict[int, int]:
    """The sketch of the union: each register's highest rank."""
    out: dict[int, int] = {}
    for sketch in sketches:
        for register, rank in sketch.items():
            out[register] = max(out.get(register, 0), rank)
    return out


def _md5(customer_id: str | None) -> str:
    return hashlib.md5((customer_id or "").encode()).hexdigest()

"""Grafana unit ids -> display text, for values shown in previews.

Covers the units VirtEngine dashboards use (time, data, rates, percent,
counts); an unknown unit id is shown as a plain number followed by the id,
so a misspelt unit stays visible in the picture. ``KNOWN`` lists the ids.
"""
from __future__ import annotations

import math

SI = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))
SI_SMALL = ((1e-3, "m"), (1e-6, "µ"), (1e-9, "n"))
IEC = ((1 << 50, "PiB"), (1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB"))
DEC_BYTES = ((1e15, "PB"), (1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "kB"))
SUFFIX = {"reqps": " req/s", "ops": " ops/s", "rps": " rd/s", "wps": " wr/s", "iops": " io/s",
          "opm": " ops/min", "reqpm": " req/min", "pps": " p/s", "cps": " c/s", "eps": " evt/s"}
KNOWN = {"none", "short", "percent", "percentunit", "s", "ms", "µs", "us", "ns", "m", "h", "d",
         "bytes", "decbytes", "bits", "bps", "Bps", "binBps", "dtdurations", "dtdurationms",
         "locale", "sci", "hertz", "bool", "bool_yes_no", "currencyUSD", "celsius",
         "watt", "kwatt", "string"} | set(SUFFIX)


def _num(v: float, decimals: int | None = None) -> str:
    if decimals is not None:
        return f"{v:.{decimals}f}"
    a = abs(v)
    if a == 0:
        return "0"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}".rstrip("0").rstrip(".")
    if a >= 0.01:
        return f"{v:.2f}".rstrip("0").rstrip(".")
    return f"{v:.2g}"


def _scaled(v: float, steps, unit_suffix: str = "", base: str = "") -> str:
    for factor, name in steps:
        if abs(v) >= factor:
            return f"{_num(v / factor)} {name}{unit_suffix}".rstrip()
    return f"{_num(v)} {base}{unit_suffix}".rstrip()


def _short(v: float) -> str:
    return _scaled(v, SI + ((1, ""),))


def _duration(seconds: float) -> str:
    a = abs(seconds)
    if a == 0:
        return "0 s"
    if a < 1e-3:
        return f"{_num(seconds * 1e6)} µs"
    if a < 1:
        return f"{_num(seconds * 1e3)} ms"
    if a < 60:
        return f"{_num(seconds)} s"
    if a < 3600:
        return f"{_num(seconds / 60)} min"
    if a < 86400:
        return f"{_num(seconds / 3600)} hour"
    if a < 86400 * 365:
        return f"{_num(seconds / 86400)} day"
    return f"{_num(seconds / 86400 / 365)} year"


def fmt(value: float | None, unit: str | None, decimals: int | None = None) -> str:
    """``value`` as Grafana shows it with ``unit`` (e.g. 0.25, percentunit -> 25%)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "No data"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    u = unit or "none"
    if u in ("none", "short", "locale", "string"):
        return _num(value, decimals) if u == "none" else _short(value)
    if u == "percent":
        return f"{_num(value, decimals)}%"
    if u == "percentunit":
        return f"{_num(value * 100, decimals)}%"
    if u in ("s", "dtdurations"):
        return _duration(value)
    if u in ("ms", "dtdurationms"):
        return _duration(value / 1e3)
    if u in ("µs", "us"):
        return _duration(value / 1e6)
    if u == "ns":
        return _duration(value / 1e9)
    if u == "m":
        return _duration(value * 60)
    if u == "h":
        return _duration(value * 3600)
    if u == "d":
        return _duration(value * 86400)
    if u == "bytes":
        return _scaled(value, IEC, base="B")
    if u == "decbytes":
        return _scaled(value, DEC_BYTES, base="B")
    if u == "bits":
        return _scaled(value, SI, "b", base="")
    if u == "bps":
        return _scaled(value, SI, "b/s")
    if u in ("Bps", "binBps"):
        return _scaled(value, IEC if u == "binBps" else DEC_BYTES, "/s", base="B")
    if u in SUFFIX:
        return _short(value) + SUFFIX[u]
    if u in ("bool", "bool_yes_no"):
        return ("Yes" if value else "No") if u == "bool_yes_no" else ("True" if value else "False")
    if u == "hertz":
        return _scaled(value, SI, "Hz")
    if u == "sci":
        return f"{value:.2e}"
    if u == "currencyUSD":
        return "$" + _short(value)
    if u == "celsius":
        return f"{_num(value)}°C"
    if u in ("watt", "kwatt"):
        return f"{_num(value)} {'W' if u == 'watt' else 'kW'}"
    return f"{_num(value)} {u}"

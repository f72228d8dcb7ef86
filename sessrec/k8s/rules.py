"""Rules shared by rendering, validation and the chart's values schema: object names, cron
schedules, time zones, resource quantities and image references."""

from __future__ import annotations

import re
import zoneinfo
from fractions import Fraction
from typing import Any

from sessrec.k8s.defaults import DNS1035, DNS1123_SUBDOMAIN, GENERATE_NAME_SUFFIX, NAME_LIMITS, SUBDOMAIN_LIMIT

#: A container image reference as registries parse it (distribution/reference): an optional
#: registry host and port, a lower-case path, an optional tag and an optional digest.
IMAGE_REFERENCE = re.compile(
    r"^((?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?\.)*[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?::[0-9]+)?/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$"
)


def name_problem(kind: str, name: str, generated: bool = False) -> str | None:
    """Why ``name`` cannot name a ``kind`` (``generated``: it is a generateName prefix), or None."""
    limit = NAME_LIMITS.get(kind, SUBDOMAIN_LIMIT)
    length = len(name) + (GENERATE_NAME_SUFFIX if generated else 0)
    if length > limit:
        extra = f" with the {GENERATE_NAME_SUFFIX} generated characters" if generated else ""
        return f"is {length} characters{extra}; at most {limit} are allowed"
    stem = name.rstrip("-") if generated else name
    if kind in NAME_LIMITS and kind != "CronJob":
        if not DNS1035.match(stem):
            return "must be a DNS-1035 label: lower-case letters, digits and '-', starting with a letter"
    elif not DNS1123_SUBDOMAIN.match(stem):
        return "must be a DNS-1123 subdomain: lower-case letters, digits, '-' and '.'"
    return None


_CRON_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")),
    ("day of week", 0, 6, ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")),
)
_CRON_DESCRIPTORS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
_GO_DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$")


def cron_problem(expr: str) -> str | None:
    """Why ``expr`` is not a standard cron schedule as KubeRay and Kubernetes parse it (robfig/cron), or None."""
    if "TZ" in expr:
        return "put the time zone in timeZone, not CRON_TZ/TZ in the schedule"
    expr = expr.strip()
    if expr.startswith("@"):
        if expr in _CRON_DESCRIPTORS or (expr.startswith("@every ") and _GO_DURATION.match(expr[7:].strip())):
            return None
        return f"unknown descriptor {expr.split()[0]!r}"
    fields = expr.split()
    if len(fields) != 5:
        return f"needs 5 fields (minute hour day-of-month month day-of-week), got {len(fields)}"
    for text, (label, low, high, names) in zip(fields, _CRON_FIELDS, strict=True):
        for part in text.split(","):
            span, _, step = part.partition("/")
            if step and (not step.isdigit() or int(step) == 0):
                return f"{label}: bad step {step!r}"
            if span in ("*", "?"):
                continue
            bounds = [_cron_value(v, low, high, names) for v in span.split("-", 1)]
            if None in bounds:
                return f"{label}: {part!r} is not a value or range within {low}-{high}"
            if len(bounds) == 2 and bounds[0] > bounds[1]:  # type: ignore[operator]
                return f"{label}: range {span!r} runs backwards"
    return None


#: The shape of a cron schedule (5 fields, or an @descriptor), for the chart's values schema: a short
#: pattern keeps Helm's message short. The chart's checks.yaml matches the full ``cron_pattern()``
#: (in the chart's files/cron-pattern.txt) and names the value in a readable message.
CRON_SHAPE = r"^\s*(@[a-z]+( \S+)?|\S+\s+\S+\s+\S+\s+\S+\s+\S+)\s*$"


def cron_pattern() -> str:
    """A regular expression (RE2 and ECMAScript alike, for the chart's values schema) that accepts
    what ``cron_problem`` accepts, from the same field table; ranges that run backwards are the
    one thing it lets through."""

    def value(low: int, high: int, names: tuple[str, ...]) -> str:
        spelled = ["".join(f"[{c.upper()}{c.lower()}]" for c in name) for name in names]
        return "(" + "|".join(["0*(" + "|".join(str(n) for n in range(high, low - 1, -1)) + ")", *spelled]) + ")"

    def field(low: int, high: int, names: tuple[str, ...]) -> str:
        part = rf"([*?]|{value(low, high, names)}(-{value(low, high, names)})?)(/0*[1-9][0-9]*)?"
        return f"{part}(,{part})*"

    fields = r"\s+".join(field(low, high, names) for _, low, high, names in _CRON_FIELDS)
    descriptors = "|".join(sorted(d[1:] for d in _CRON_DESCRIPTORS))
    return rf"^\s*(@({descriptors})|@every \s*{_GO_DURATION.pattern[1:-1]}|{fields})\s*$"


def _cron_value(text: str, low: int, high: int, names: tuple[str, ...]) -> int | None:
    if text.upper() in names:
        return names.index(text.upper()) + low
    if text.isdigit() and low <= int(text) <= high:
        return int(text)
    return None


def time_zone_problem(name: str) -> str | None:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return "not an IANA time zone (e.g. Europe/Berlin, UTC)"
    return None


QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_QUANTITY_SCALE = {
    "": 1,
    "m": Fraction(1, 1000),
    **{s: 1000**i for i, s in enumerate("kMGTPE", 1)},
    **{f"{s}i": 1024**i for i, s in enumerate("KMGTPE", 1)},
}


def quantity_value(quantity: Any) -> Fraction | None:
    """A resource quantity ("500m", "1.5Gi", 4) as an exact number; None for what is not one (the
    schema names that)."""
    if isinstance(quantity, (int, float)) and not isinstance(quantity, bool):
        return Fraction(quantity)
    match = QUANTITY.match(quantity) if isinstance(quantity, str) else None
    return Fraction(match.group(1)) * _QUANTITY_SCALE[match.group(2) or ""] if match else None

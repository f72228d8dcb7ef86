"""Development script: keep the Helm chart's values.schema.json in step with sessrec's definitions.

The chart's values schema embeds sessrec's sweep spec schema (``sessrec.spec.SWEEP_SPEC_SCHEMA``,
its parameter schema once, as ``definitions.sweepParameter``, that each ``space`` entry refers to),
the cron schedule's shape and the image reference pattern (``sessrec.k8s.rules``); the chart's
``files/cron-pattern.txt`` holds the full cron pattern made from the same rules as ``cron_problem``
(templates/checks.yaml matches it, with a readable message). After changing any of them, run

    .venv/bin/python scripts/sync_chart_schema.py            # rewrite helm/sessrec/values.schema.json
    .venv/bin/python scripts/sync_chart_schema.py --check    # exit 1 when it is out of date

tests/test_k8s_chart.py fails while the chart's copies are out of date.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any

from sessrec.errors import SessrecError
from sessrec.k8s.rules import CRON_SHAPE, IMAGE_REFERENCE, cron_pattern
from sessrec.spec import PARAMETER_SCHEMA, SWEEP_SPEC_SCHEMA

CHART = Path(__file__).resolve().parents[1] / "helm" / "sessrec"
COMMAND = "scripts/sync_chart_schema.py"
CRON_FILE = Path("files") / "cron-pattern.txt"
PARAMETER_REF = {"$ref": "#/definitions/sweepParameter"}
#: Helm reads values as YAML 1.1: a bare `n:` key becomes "false". The schema lets it through so that
#: checks.yaml can say so (the schema's own message would be "additional properties 'false' not allowed").
UNQUOTED_N = {"description": "split.n written as a bare n: YAML 1.1 reads it as false; checks.yaml names it"}


def chart_sweep_schema() -> dict[str, Any]:
    """SWEEP_SPEC_SCHEMA as a sub-schema (`$schema` belongs only at a schema document's root), each
    space parameter a reference to the one parameter schema, and split's misread `n` let through."""
    schema = copy.deepcopy({key: value for key, value in SWEEP_SPEC_SCHEMA.items() if key != "$schema"})
    space = schema["properties"]["space"]["properties"]
    for name, parameter in space.items():
        assert parameter == PARAMETER_SCHEMA, name  # one schema for every parameter
        space[name] = dict(PARAMETER_REF)
    schema["properties"]["split"]["properties"]["false"] = UNQUOTED_N
    return schema


def chart_schema_parts() -> dict[tuple[str, ...], Any]:
    """What the chart's values.schema.json takes from sessrec's own definitions, by where it goes."""
    return {
        ("properties", "sweep"): chart_sweep_schema(),
        ("definitions", "sweepParameter"): PARAMETER_SCHEMA,
        ("properties", "schedule", "properties", "cron", "pattern"): CRON_SHAPE,
        ("definitions", "image", "pattern"): IMAGE_REFERENCE.pattern,
    }


def sync_chart_schema(chart_dir: Path, check: bool) -> bool:
    """Make the parts of values.schema.json that sessrec defines (``chart_schema_parts``) equal
    their definitions; returns whether they already were. With ``check``, nothing is written."""
    path = chart_dir / "values.schema.json"
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SessrecError(f"cannot read {path}: {exc}") from None
    if not isinstance(schema, dict) or not isinstance(schema.get("properties", {}), dict):
        raise SessrecError(f"{path} is not a JSON Schema of the chart's values (an object with 'properties')")
    current = True
    for where, wanted in chart_schema_parts().items():
        node = schema
        for key in where[:-1]:
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        if node.get(where[-1]) != wanted:
            current = False
            node[where[-1]] = wanted
    if not current and not check:
        path.write_text(json.dumps(schema, indent=2) + "\n", encoding="utf-8")
    cron_file = chart_dir / CRON_FILE
    if not cron_file.is_file() or cron_file.read_text(encoding="utf-8") != cron_pattern() + "\n":
        current = False
        if not check:
            cron_file.parent.mkdir(exist_ok=True)
            cron_file.write_text(cron_pattern() + "\n", encoding="utf-8")
    return current


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--chart", type=Path, default=CHART, help="the Helm chart folder (default: helm/sessrec)")
    parser.add_argument("--check", action="store_true", help="only report whether it is current; exit 1 if not")
    args = parser.parse_args(argv)
    try:
        current = sync_chart_schema(args.chart, args.check)
    except SessrecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.check and not current:
        print(
            f"error: {args.chart}/values.schema.json is out of date: run `.venv/bin/python {COMMAND}"
            + ("" if args.chart.resolve() == CHART else f" --chart {args.chart}")
            + "`",
            file=sys.stderr,
        )
        return 1
    print(f"{args.chart}/values.schema.json: " + ("up to date" if current else "updated"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

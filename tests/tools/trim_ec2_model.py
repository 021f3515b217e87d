#!/usr/bin/env python3
"""Produce schemas/ec2-2016-11-15.trimmed.json from botocore's EC2 service model.

Keeps only the operations listed in schemas/supported-operations.txt and the
shapes they reach (input and output, transitively), with every
`documentation` string removed. Run it after adding an action:

    python3 tests/tools/trim_ec2_model.py            # rewrite the trimmed model
    python3 tests/tools/trim_ec2_model.py --check    # exit 1 if it is stale
"""
import gzip
import json
import os
import sys

import botocore

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCHEMAS = os.path.join(ROOT, "schemas")
OUTPUT = os.path.join(SCHEMAS, "ec2-2016-11-15.trimmed.json")


def strip_docs(value):
    if isinstance(value, dict):
        return {k: strip_docs(v) for k, v in value.items() if k != "documentation"}
    if isinstance(value, list):
        return [strip_docs(v) for v in value]
    return value


def reachable(shapes, roots):
    seen, todo = set(), list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        shape = shapes[name]
        for member in shape.get("members", {}).values():
            todo.append(member["shape"])
        for key in ("member", "key", "value"):
            if key in shape:
                todo.append(shape[key]["shape"])
    return seen


def trimmed_model():
    path = os.path.join(os.path.dirname(botocore.__file__), "data", "ec2", "2016-11-15", "service-2.json.gz")
    with gzip.open(path) as f:
        model = json.load(f)
    with open(os.path.join(SCHEMAS, "supported-operations.txt")) as f:
        wanted = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    operations = {name: model["operations"][name] for name in sorted(wanted)}
    roots = []
    for op in operations.values():
        for key in ("input", "output"):
            if key in op:
                roots.append(op[key]["shape"])
    shapes = {name: model["shapes"][name] for name in sorted(reachable(model["shapes"], roots))}
    out = {"metadata": model["metadata"], "operations": operations, "shapes": shapes}
    out = strip_docs(out)
    out["metadata"]["trimmedFrom"] = "botocore " + botocore.__version__ + " data/ec2/2016-11-15/service-2.json.gz"
    return json.dumps(out, indent=1, sort_keys=True) + "\n"


def main():
    text = trimmed_model()
    if "--check" in sys.argv:
        with open(OUTPUT) as f:
            current = json.load(f)
        fresh = json.loads(text)
        # The botocore version may differ between machines; compare the content.
        current["metadata"].pop("trimmedFrom", None)
        fresh["metadata"].pop("trimmedFrom", None)
        if current != fresh:
            print("schemas/ is stale: run python3 tests/tools/trim_ec2_model.py", file=sys.stderr)
            sys.exit(1)
        print("schemas/ is fresh")
        return
    with open(OUTPUT, "w") as f:
        f.write(text)
    print("wrote", OUTPUT)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The costliest functions of a callgrind profile, self and inclusive (callgrind_annotate 3.19
attributes a profile zeroed by `callgrind_control -z` to its thread's entry point only).

    python3 project/bench/callgrind_top.py PROFILE [TOP] [REQUESTS]

With REQUESTS, costs are also shown per request.
"""
import re
import sys
from collections import defaultdict


def parse(path):
    names, self_cost, inclusive = {}, defaultdict(int), defaultdict(int)
    current, in_call = None, False
    name_re = re.compile(r"^c?fn=\((\d+)\)(?: (.*))?$")
    for line in open(path, errors="replace"):
        line = line.rstrip("\n")
        match = name_re.match(line)
        if match:
            ident, name = match.groups()
            if name:
                names[ident] = name
            if line.startswith("fn="):
                current = ident
            continue
        if line.startswith("calls="):
            in_call = True
            continue
        if current is None or not line or not (line[0].isdigit() or line[0] in "+-*"):
            continue
        parts = line.split()
        if len(parts) < 2:
            continue
        cost = int(parts[1])
        if in_call:
            inclusive[current] += cost
            in_call = False
        else:
            self_cost[current] += cost
            inclusive[current] += cost
    return names, self_cost, inclusive


def main():
    path = sys.argv[1]
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    requests = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    names, self_cost, inclusive = parse(path)
    total = sum(self_cost.values())

    def show(title, costs):
        print(f"\n{title} (total {total:,} instructions" + (f", {total // requests:,} per request)" if requests else ")"))
        for ident, cost in sorted(costs.items(), key=lambda item: -item[1])[:top]:
            per = f"{cost // requests:>9,} /req  " if requests else ""
            print(f"{cost:>14,} {100 * cost / total:5.1f}%  {per}{names.get(ident, ident)[:170]}")

    show("self", self_cost)
    show("inclusive", inclusive)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Where two builds' (or configurations') instructions per call differ, function by function, from the callgrind
files `loadtest/ab-instructions.sh` keeps with KEEP=DIR: each side's per-call cost of a function is its count in the
N2 run minus its count in the N1 run, over N2 - N1 (start-up cancels out). Work on a clock shows up too (it runs
longer in the N2 run); --match narrows the sum to functions whose names contain a string (e.g. Switchyard, for the
gateway's own code).

    loadtest/instructions_by_function.py DIR N1 N2 [--match Switchyard] [--top 25]
"""

import argparse
import re
import subprocess


def totals(path):
    out = subprocess.run(["callgrind_annotate", "--threshold=100", path], capture_output=True, text=True,
                         check=True).stdout
    counts = {}
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+) \([^)]*\)\s+(.*?) \[", line)
        if m:
            name = re.sub(r"^\?\?\?:", "", m.group(2))
            counts[name] = counts.get(name, 0) + int(m.group(1).replace(",", ""))
    return counts


def per_call(directory, side, n1, n2):
    low, high = totals(f"{directory}/{side}.{n1}"), totals(f"{directory}/{side}.{n2}")
    return {k: (high.get(k, 0) - low.get(k, 0)) / (n2 - n1) for k in set(low) | set(high)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory")
    parser.add_argument("n1", type=int)
    parser.add_argument("n2", type=int)
    parser.add_argument("--match", default="")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    old, new = per_call(args.directory, "old", args.n1, args.n2), per_call(args.directory, "new", args.n1, args.n2)
    names = [k for k in set(old) | set(new) if args.match in k]
    print(f"per call, all functions: old {sum(old.values()):.0f}, new {sum(new.values()):.0f}")
    print(f"per call, functions matching '{args.match}': old {sum(old.get(k, 0) for k in names):.0f}, "
          f"new {sum(new.get(k, 0) for k in names):.0f}")
    for name in sorted(names, key=lambda k: -abs(new.get(k, 0) - old.get(k, 0)))[:args.top]:
        print(f"{new.get(name, 0) - old.get(name, 0):+9.1f}  {old.get(name, 0):9.1f}  {name[:150]}")


if __name__ == "__main__":
    main()

"""Copy results tables from benchmarks/results/*.md into README.md, where a marked block asks for them:

    <!-- results: promoter.md table 1 -->
    | ... the first table of benchmarks/results/promoter.md, replaced on every run ... |
    <!-- /results -->

    .venv/bin/python benchmarks/readme_tables.py           # rewrite the marked blocks
    .venv/bin/python benchmarks/readme_tables.py --check   # exit 1 if a marked block is out of date

Tables outside marked blocks (the README's own summaries, which pick and label rows) are left alone.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from helixlab.paths import write_text

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
README = ROOT / "README.md"
BLOCK = re.compile(r"^<!-- results: (?P<file>[\w./-]+\.md) table (?P<n>\d+) -->\n.*?^<!-- /results -->$", re.M | re.S)


class StaleBlock(Exception):
    pass


def tables(markdown: str) -> list[str]:
    """The markdown tables of a text, in order, each as its lines joined (with the final newline)."""
    found, current = [], []
    for line in markdown.splitlines():
        if line.startswith("|"):
            current.append(line)
        elif current:
            found.append("\n".join(current) + "\n")
            current = []
    if current:
        found.append("\n".join(current) + "\n")
    return found


def render(readme: str, results: Path = RESULTS) -> str:
    """The README with every marked block holding its results table; an error naming a block whose
    file or table does not exist."""

    def fill(m: re.Match[str]) -> str:
        path = results / m["file"]
        if not path.is_file():
            raise StaleBlock(f"README.md block 'results: {m['file']} table {m['n']}': {path} does not exist")
        found = tables(path.read_text(encoding="utf-8"))
        n = int(m["n"])
        if not 1 <= n <= len(found):
            raise StaleBlock(f"README.md block 'results: {m['file']} table {n}': {path} has {len(found)} table(s)")
        return f"<!-- results: {m['file']} table {n} -->\n{found[n - 1]}<!-- /results -->"

    return BLOCK.sub(fill, readme)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="only report whether the README is up to date")
    args = ap.parse_args()
    text = README.read_text(encoding="utf-8")
    try:
        new = render(text)
    except StaleBlock as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    blocks = len(BLOCK.findall(text))
    if args.check:
        if new != text:
            print("README.md results tables are out of date: run benchmarks/readme_tables.py", file=sys.stderr)
            return 1
        print(f"README.md: {blocks} results table(s) up to date")
        return 0
    if new != text:
        write_text(README, new)
    print(f"README.md: {blocks} results table(s) {'rewritten' if new != text else 'already up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

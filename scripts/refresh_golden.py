"""Rewrite tests/golden/*.json from the current code.

Run this only for a deliberate change of the model's results (new physics, new default
parameters, a new outcome) and commit the diff with a message that says why; a refactor
or a speed-up must leave the golden files unchanged (``pytest tests/test_golden.py``).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from golden_cases import GOLDEN, cases, dumps


def main() -> None:
    GOLDEN.mkdir(exist_ok=True)
    keep = set()
    with tempfile.TemporaryDirectory() as tmp:
        for name, fn in cases().items():
            path = GOLDEN / f"{name}.json"
            text = dumps(fn(Path(tmp) / name))
            old = path.read_text() if path.exists() else None
            path.write_text(text)
            keep.add(path.name)
            sys.stdout.write(f"{'unchanged' if old == text else 'written  '} {path.name}\n")
    for stale in GOLDEN.glob("*.json"):
        if stale.name not in keep:
            stale.unlink()
            sys.stdout.write(f"removed   {stale.name}\n")


if __name__ == "__main__":
    main()

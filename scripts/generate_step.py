"""Write simulator/kernel/step_generated.py from kernel/disease.py's coefficient pattern.

Run after changing the disease model's states or couplings (``PATTERN``);
tests/test_kinetics.py fails while the file is out of date.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulator.kernel import disease  # noqa: E402


def main() -> None:
    path = ROOT / "simulator" / "kernel" / "step_generated.py"
    text = disease.generated_step_module()
    old = path.read_text() if path.exists() else None
    path.write_text(text)
    sys.stdout.write(f"{'unchanged' if old == text else 'written'} {path.relative_to(ROOT)}\n")


if __name__ == "__main__":
    main()

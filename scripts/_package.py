"""Makes the aerialseg package in ../src importable from the rule scripts.

Snakemake puts this folder on the search path of every script job (local, cluster or conda),
so `import _package` first in a script is enough; no installation is needed.
"""

import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[1] / "src")
if SRC not in sys.path:
    sys.path.insert(0, SRC)

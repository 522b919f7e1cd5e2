"""Insert (or refresh) the checked exercise cells of every numbered notebook, before its "Try this" section.

    python tools/add_exercises.py [NOTEBOOKS_DIR] [--colab]

Idempotent (cells are tagged ``exercise``); ``--colab`` also adds a first code cell installing nclab where it
is missing. Run ``nbstripout`` afterwards as for any notebook edit.
"""

import argparse
import sys
from pathlib import Path

from nclab.teach import NOTEBOOK_GLOB, add_exercises


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", default=str(Path(__file__).resolve().parents[1] / "notebooks"))
    parser.add_argument("--colab", action="store_true", help="also add the Colab install cell")
    args = parser.parse_args(argv)
    for path in sorted(Path(args.folder).glob(NOTEBOOK_GLOB)):
        print(f"{path.name}: {add_exercises(path, colab=args.colab)} exercise cells")
    return 0


if __name__ == "__main__":
    sys.exit(main())

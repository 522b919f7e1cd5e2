"""Insert (or refresh) the checked exercise cells of every numbered notebook, before its "Try this" section.

    python tools/add_exercises.py [NOTEBOOKS_DIR] [--colab]

Idempotent (cells are tagged ``exercise``); ``--colab`` also adds a first code cell installing nclab where it
is missing. Then runs ``nbstripout`` on the notebooks (as for any notebook edit: it also renumbers cell ids).
"""

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from nclab.teach import NOTEBOOK_GLOB, add_exercises


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", default=str(Path(__file__).resolve().parents[1] / "notebooks"))
    parser.add_argument("--colab", action="store_true", help="also add the Colab install cell")
    args = parser.parse_args(argv)
    paths = sorted(Path(args.folder).glob(NOTEBOOK_GLOB))
    for path in paths:
        print(f"{path.name}: {add_exercises(path, colab=args.colab)} exercise cells")
    strip = Path(sys.executable).with_name("nbstripout")
    strip = str(strip) if strip.exists() else shutil.which("nbstripout")
    if strip and paths:
        subprocess.run([strip, *map(str, paths)], check=True)
    else:
        print("nbstripout not found: run it on the notebooks before committing")
    return 0


if __name__ == "__main__":
    sys.exit(main())

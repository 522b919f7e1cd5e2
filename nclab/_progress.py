"""Progress bars of the trainers: tqdm (a notebook widget in Jupyter), kept when done; a run that stops early
because it converged ends complete (green), one stopped by Ctrl-C or an error stays incomplete (red)."""

from __future__ import annotations

import sys


def progress(total: int, enabled: bool, desc: str = "UFM"):
    """A tqdm bar over ``total`` steps (disabled when ``enabled`` is false)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, desc=desc, mininterval=0.5)


def close(bar, interrupted: bool) -> None:
    """Close ``bar``; unless ``interrupted`` or an exception is on its way out (call it in ``finally``), a run
    that finished early (converged) is shown as complete."""
    if not interrupted and sys.exc_info()[0] is None and not bar.disable and bar.total and bar.n < bar.total:
        bar.total = bar.n
        bar.refresh()
    bar.close()

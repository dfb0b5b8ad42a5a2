"""Progress bars (tqdm): on terminals by default, never in quiet runs."""

from __future__ import annotations

from typing import Any

#: Seconds a terminal bar (``verbose=1``) waits before it appears: a pass that ends sooner
#: (a fit served from the cache, as every fold of a grid search after the first is) prints
#: nothing. ``verbose=2`` shows the bar at once.
TERMINAL_DELAY = 0.5


def progress_bar(total: int, verbose: int, desc: str) -> Any:
    """A tqdm bar over ``total`` images.

    Parameters
    ----------
    total : int
        Number of images.
    verbose : int
        0 never, 1 on terminals only (after :data:`TERMINAL_DELAY` seconds), 2 always.
    desc : str
        The bar's label.

    Returns
    -------
    tqdm.tqdm
        A context manager; call ``update(k)`` as images finish.
    """
    from tqdm.auto import tqdm

    # verbose=1: a bar on terminals only (tqdm's disable=None); 2: always; 0: never.
    disable = True if verbose <= 0 else (None if verbose == 1 else False)
    delay = TERMINAL_DELAY if verbose == 1 else 0.0
    return tqdm(total=total, disable=disable, unit="img", desc=desc, dynamic_ncols=True,
                delay=delay)

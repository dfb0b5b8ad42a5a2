"""Progress bars (tqdm): on terminals by default, never in quiet runs."""

from __future__ import annotations


def progress_bar(total: int, verbose: int, desc: str):
    from tqdm.auto import tqdm

    # verbose=1: a bar on terminals only (tqdm's disable=None); 2: always; 0: never.
    disable = True if verbose <= 0 else (None if verbose == 1 else False)
    return tqdm(total=total, disable=disable, unit="img", desc=desc, dynamic_ncols=True)

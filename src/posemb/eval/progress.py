"""One progress bar for a whole eval or sweep, with an overall ETA (tqdm).

The unit is a token run through the model: an evaluation counts the tokens of its
forward passes, training counts ``TRAIN_COST`` per token of its batches (forward and
backward), so the rate is roughly constant over a job and the ETA means something.
The bar is drawn on stderr only when stderr is a terminal; elsewhere it is silent.
"""

from __future__ import annotations

import sys

TRAIN_COST = 3  # a training token costs about three forward tokens (forward + backward)


class Progress:
    """``advance(n)`` after each piece of work, ``stage(text)`` to say what runs now.

    Args:
        total: the job's total, in tokens (see the module docstring).
        desc: the bar's label.
        enabled: draw the bar; default: when stderr is a terminal.
    """

    def __init__(self, total: int, desc: str = "eval", enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.bar = None
        if self.enabled:
            from tqdm import tqdm  # text, in a terminal as in a notebook (no ipywidgets)

            self.bar = tqdm(
                total=total,
                desc=desc,
                unit="tok",
                unit_scale=True,
                smoothing=0,  # the ETA from the average rate since the start
                dynamic_ncols=True,
                file=sys.stderr,
            )

    def advance(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def stage(self, text: str) -> None:
        if self.bar is not None:
            self.bar.set_description_str(text)

    def write(self, line: str) -> None:
        """Print a line (stdout) without breaking the bar."""
        if self.bar is not None:
            self.bar.write(line, file=sys.stdout)
        else:
            print(line, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

"""The main job's progress bar: tqdm on stderr when installed and stderr is a terminal."""

from __future__ import annotations

import sys

__all__ = ["Progress"]


class Progress:
    """A tqdm bar on stderr when tqdm is installed, enabled and stderr is a terminal; tables go
    through ``write``, which clears the bar's line first, so a table never shares a line with it."""

    def __init__(self, total: int, enabled: bool) -> None:
        self._bar = None
        if enabled:
            try:
                from tqdm.auto import tqdm

                # disable=None: no bar when stderr is not a terminal (a log file would get the
                # bar's carriage-return updates mixed into the tables' lines).
                self._bar = tqdm(
                    total=total,
                    desc="fastloader bench",
                    unit="step",
                    leave=False,
                    file=sys.stderr,
                    disable=None,
                )
            except ImportError:
                self._bar = None

    def step(self, what: str) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(what, refresh=False)
            self._bar.update(1)

    def write(self, text: str) -> None:
        if self._bar is not None:
            self._bar.write(text, file=sys.stdout)
        else:
            print(text, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

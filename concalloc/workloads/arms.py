"""Two-armed workloads: one program, two variants compared side by side
(`concalloc advice` runs both arms on the same seed).  A subclass names its
modes, the first being the default; `name:mode` selects one (workloads/__init__)."""

from __future__ import annotations


class TwoArms:
    NAME = ""                      #: the workload's name, for errors
    MODES: tuple[str, str] = ("", "")
    DESCRIPTION = ""               #: the module's description; an instance adds its mode

    def __init__(self, mode: str | None = None):
        mode = mode or self.MODES[0]
        if mode not in self.MODES:
            raise ValueError(f"{self.NAME} workload: mode must be {' or '.join(self.MODES)}, got {mode!r}")
        self.mode = mode
        self.DESCRIPTION = f"{type(self).DESCRIPTION}; this is {mode}"

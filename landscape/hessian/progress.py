"""Progress of curvature computations: HVPs counted per section, and a time estimate.

:class:`HVPProgress` wraps a curvature operator so that every Hessian-vector product (HVP)
moves a tqdm bar of the current section ("top-5 eigenvalues", "trace (hutchpp)", ...). Where a
section's HVP count is known in advance (trace: the number of probes; density: runs x steps)
the bar has a total and an ETA; eigen-solves stop when converged, so their bars count HVPs and
show the rate. After the first HVP the expected total time (the first HVP's time x the HVPs
the sections are expected to need) is printed once when it exceeds
:data:`landscape._grid.LONG_RUN_SECONDS`, with what makes it shorter.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any

from .._grid import LONG_RUN_SECONDS, format_duration

__all__ = ["HVPProgress"]

#: Sections whose HVP count is known before they start (the bar gets a total and an ETA).
_KNOWN_TOTAL = ("trace", "density")


class _Counted:
    """``op`` with ``@`` and ``.shape`` whose products move a progress bar."""

    def __init__(self, op: Any, owner: HVPProgress) -> None:
        self._op, self._owner = op, owner
        self.shape = op.shape
        self.dtype = getattr(op, "dtype", None)
        self.device = getattr(op, "device", None)

    def __matmul__(self, v: Any) -> Any:
        t0 = time.perf_counter()
        out = self._op @ v
        k = 1 if getattr(v, "ndim", 1) == 1 else int(v.shape[1])
        self._owner.advance(k, time.perf_counter() - t0)
        return out


class HVPProgress:
    """Progress bars over the sections of one curvature computation.

    Parameters
    ----------
    op : operator with ``@`` and ``.shape``
        The Hessian operator.
    expected : dict[str, int]
        HVPs each section is expected to need (0: the section does not run).
    enabled : bool
        Show bars and the estimate (otherwise :meth:`section` returns ``op`` itself).
    """

    def __init__(self, op: Any, expected: Mapping[str, int], *, enabled: bool) -> None:
        self.op, self.expected, self.enabled = op, dict(expected), enabled
        self.bar: Any = None
        self.estimated = False

    def section(self, name: str, desc: str) -> Any:
        """The operator to hand to the solver of section ``name``."""
        if not self.enabled:
            return self.op
        from tqdm.auto import tqdm

        self.close()
        total = self.expected.get(name) if name in _KNOWN_TOTAL else None
        self.bar = tqdm(total=total, desc=desc, unit="HVP", dynamic_ncols=True)
        return _Counted(self.op, self)

    def advance(self, k: int, seconds: float) -> None:
        """Count ``k`` products that took ``seconds``."""
        if self.bar is None:
            return
        self.bar.update(k)
        if not self.estimated:
            self.estimated = True
            per_hvp = seconds / max(k, 1)
            eta = per_hvp * sum(self.expected.values())
            if eta >= LONG_RUN_SECONDS:
                self.bar.write(
                    f"curvature: about {format_duration(eta)} (~{sum(self.expected.values())} "
                    f"HVPs at {per_hvp:.3g} s each); use a data subset or float32 HVPs to "
                    "make it shorter", file=sys.stderr)

    def close(self) -> None:
        """Close the current bar."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None

"""Energy of a live replica: measured from its GPUs through NVML where there are GPUs,
estimated from the power model where there are none, and always labelled which.

`EnergyMeter` reads the cumulative energy counter of each of the replica's GPUs
(``nvmlDeviceGetTotalEnergyConsumption``, millijoules since the driver loaded;
Volta and later) and reports joules since the meter started. Without NVML (no
driver, no GPU, or a twin replica) it reports the estimate it is given instead,
with ``source == "estimated"`` and the reason; a meter never mixes the two.
`Attribution` shares each interval's joules among the requests by the tokens each
had processed in it, so the shares add up to the measured total.
"""

from __future__ import annotations

import os
from collections.abc import Callable


class EnergyMeter:
    def __init__(self, gpus: int, estimate: Callable[[], float], use_nvml: bool = True) -> None:
        """``gpus``: how many GPUs the replica holds (the first ``gpus`` it can see);
        ``estimate``: joules so far by the power model, used when NVML cannot measure."""
        self.estimate = estimate
        self.source, self.reason = "estimated", "NVML not asked for (a twin replica)"
        self._handles: list = []
        self._start = 0.0
        if use_nvml:
            self._open(gpus)

    def _open(self, gpus: int) -> None:
        try:
            import pynvml

            pynvml.nvmlInit()
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            indices = [int(i) for i in visible.split(",")] if visible else list(range(gpus))
            self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in indices[:gpus]]
            if len(self._handles) < gpus:
                raise RuntimeError(f"{gpus} GPUs wanted, {len(self._handles)} visible")
            self._read = lambda: (
                sum(pynvml.nvmlDeviceGetTotalEnergyConsumption(h) for h in self._handles) / 1000.0
            )
            self._start = self._read()
            self.source, self.reason = "nvml", f"{gpus} GPU(s) measured"
        except Exception as e:  # no module, no driver, no GPU, no energy counter
            self._handles = []
            self.source, self.reason = "estimated", f"NVML unavailable: {type(e).__name__}: {e}"

    @property
    def measured(self) -> bool:
        return self.source == "nvml"

    def joules(self) -> float:
        """Joules since the meter started: measured, or estimated (see ``source``)."""
        if self.measured:
            return self._read() - self._start
        return self.estimate()


class Attribution:
    """Share each interval's energy among requests by the tokens they processed."""

    def __init__(self) -> None:
        self.tokens: dict[int, int] = {}  # request -> tokens processed this interval
        self.shares: dict[int, float] = {}  # request -> joules so far

    def processed(self, request_id: int, tokens: int) -> None:
        self.tokens[request_id] = self.tokens.get(request_id, 0) + tokens

    def close_interval(self, joules: float) -> None:
        """Give out ``joules`` (the interval's) by tokens; none processed: unattributed
        (idle energy stays the replica's)."""
        total = sum(self.tokens.values())
        if total:
            for rid, n in self.tokens.items():
                self.shares[rid] = self.shares.get(rid, 0.0) + joules * n / total
        self.tokens.clear()

    def pop(self, request_id: int) -> float:
        return self.shares.pop(request_id, 0.0)

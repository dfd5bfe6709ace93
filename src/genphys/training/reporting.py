"""What a run reports as it goes: a progress bar, ``metrics.jsonl`` and TensorBoard."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from genphys import io
from genphys.errors import GenphysError


def progress_bar(total: int, initial: int, desc: str) -> Any:
    """A tqdm bar for one epoch; none when stderr is not a terminal (logs, CI)."""
    from tqdm.auto import tqdm

    return tqdm(
        total=total, initial=initial, leave=False, dynamic_ncols=True, disable=None, desc=desc
    )


class MetricsLog:
    """One JSON line per epoch in ``run_dir/metrics.jsonl`` (and TensorBoard scalars).

    ``run_dir=None`` (no run directory, or a process other than rank 0) writes nothing.
    Asking for TensorBoard without the package fails here, before training starts.
    """

    def __init__(self, run_dir: Path | None, tensorboard: bool = False) -> None:
        self.path = run_dir / io.METRICS_FILE if run_dir is not None else None
        self._writer: Any = None
        self._tensorboard = tensorboard and run_dir is not None
        if self._tensorboard:
            try:
                import torch.utils.tensorboard  # noqa: F401
            except ImportError:
                raise GenphysError("tensorboard logging needs: pip install tensorboard") from None

    def write(self, metrics: dict[str, Any]) -> None:
        if self.path is None:
            return
        with open(self.path, "a") as fh:
            fh.write(json.dumps(metrics) + "\n")
        if self._tensorboard and self._writer is None:  # created with the first record
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.path.parent / "tensorboard"))
        if self._writer is not None:
            for k, v in metrics.items():
                if isinstance(v, (int, float)) and k not in ("epoch", "step"):
                    self._writer.add_scalar(k, v, metrics["epoch"])

    @staticmethod
    def read(run_dir: Path, epochs: int) -> list[dict[str, Any]]:
        """The first ``epochs`` records (a line torn by a crash is skipped)."""
        path = run_dir / io.METRICS_FILE
        lines = [x for x in path.read_text().splitlines() if x.strip()] if path.is_file() else []
        history = []
        for line in lines[:epochs]:
            with contextlib.suppress(ValueError):
                history.append(json.loads(line))
        return history

    def rewrite(self, history: list[dict[str, Any]]) -> None:
        """Replace the file by ``history`` (epochs logged after a resumed checkpoint go)."""
        if self.path is not None:
            io.atomic_write_text(self.path, "".join(json.dumps(m) + "\n" for m in history))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()

"""Writing results: JSON files and figures (PNG and PDF), the same way everywhere; the line a job
logs with the seconds of its own work."""

from __future__ import annotations

import json
from pathlib import Path


def write_json(path: str | Path, data, *, indent: int | None = 2) -> Path:
    """``data`` as JSON (``indent=None``: one line, for large arrays) with a final newline; parents made."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=indent, default=str) + "\n")
    return path


# A job logs one line naming the seconds of its own work (training, scoring, estimating): the rest
# of its time is start-up, loading and saving. cofi.devtools.bench reads it back to report the overhead.
COMPUTE_LINE = "compute {seconds:.3f}s"  # milliseconds: a tiny job's work must not read as none
COMPUTE_PATTERN = r"\] compute (\d+(?:\.\d+)?)s$"


def compute_line(seconds: float) -> str:
    return COMPUTE_LINE.format(seconds=seconds)


def read_json(path: str | Path):
    with open(path) as handle:
        return json.load(handle)


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (jobs have no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure, stem: str | Path, dpi: int = 150, suffixes: tuple[str, ...] = (".png", ".pdf")) -> list[Path]:
    """``figure`` as ``<stem>.png`` and ``<stem>.pdf`` (or the ``suffixes`` given), then closed."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_name(stem.name + suffix) for suffix in suffixes]
    for path in paths:
        figure.savefig(path, dpi=dpi)
    pyplot().close(figure)
    return paths

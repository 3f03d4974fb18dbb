"""Progress bars for anything that runs more than a few seconds.

Drawn on stderr with rich, only when stderr is a terminal, so piped output and
CI logs stay clean and ``--json`` output stays parseable.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)


@contextmanager
def progress(
    description: str, total: float | None = None, unit: str = ""
) -> Iterator[Callable[[float, str], None]]:
    """Yields ``update(completed, note)``; ``total`` None shows a spinner and a count."""
    columns = [SpinnerColumn(), TextColumn("[bold]{task.description}")]
    if total is not None:
        columns += [BarColumn(), TextColumn("{task.percentage:>3.0f}%")]
    else:
        columns += [MofNCompleteColumn()]
    columns += [TextColumn("{task.fields[note]}"), TimeElapsedColumn()]
    with Progress(
        *columns,
        transient=True,
        disable=not sys.stderr.isatty(),
        console=Console(stderr=True),
    ) as bar:
        task = bar.add_task(description, total=total, note="")

        def update(completed: float, note: str = "") -> None:
            bar.update(task, completed=completed, note=f"{note} {unit}".strip())

        yield update

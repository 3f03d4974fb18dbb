"""The one error type for bad user input.

Anything a user typed or pointed us at (a scenario, a spec, a trace) fails with an
`InputError` that knows the file, the line and the field, so the CLI can print one
precise line and exit 2 instead of a traceback.
"""

from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    """Bad input, located as precisely as we know: ``file:line: field: message``."""

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.path = str(path) if path is not None else None
        self.line = line
        self.field = field
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.path:
            where = self.path + (f":{self.line}" if self.line else "") + ": "
        return where + (f"{self.field}: " if self.field else "") + self.message


class InputErrors(InputError):
    """Several problems found in one file (every validation error at once, one per line)."""

    def __init__(self, errors: list[InputError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)

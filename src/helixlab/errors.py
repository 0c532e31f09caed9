"""The one exception type helixlab raises for bad input and bad configuration."""

from __future__ import annotations


class HelixError(Exception):
    """A user-facing error: the message names the file, the record and what was expected."""

    def __init__(self, message: str, *, path: str | None = None, record: str | None = None) -> None:
        where = ""
        if path is not None:
            where = f"{path}"
            if record is not None:
                where += f", {record}"
            where += ": "
        elif record is not None and record not in message:
            where = f"{record}: "
        super().__init__(where + message)
        self.message = message
        self.path = path
        self.record = record

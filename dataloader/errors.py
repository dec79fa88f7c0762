"""The one error type for bad user input (files, CSV rows, configs, CLI arguments).

Every command catches `UserError` at its entry and prints exactly one line
`error: <where>: <what>` to stderr with exit code 2 (docs/design.md section 6).
Anything else is a bug and keeps its traceback.
"""
from __future__ import annotations


class UserError(Exception):
    """Bad input that the user can fix.

    `where` names the file (and `:row` or a config key path) or the CLI option;
    `what` says what is wrong and, where it helps, what was expected.
    """

    def __init__(self, where: str, what: str) -> None:
        super().__init__(f"{where}: {what}")
        self.where = str(where)
        self.what = what

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"

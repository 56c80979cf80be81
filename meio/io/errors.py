"""The one error type for bad input: it names the table, column, rule and first offenders."""

from __future__ import annotations

from collections.abc import Sequence


class InputError(ValueError):
    """Input that breaks the data contract; raised before any work starts.

    Parameters
    ----------
    table : str
        ``"stages"``, ``"arcs"`` or a configuration section.
    column : str
        The offending column (or ``"-"`` when the problem is the file itself).
    rule : str
        The rule that is broken, in words a planner reads.
    count : int
        How many rows break it.
    examples : sequence of str
        The first few offending ``network``/``stage`` ids, already formatted.

    """

    def __init__(
        self, table: str, column: str, rule: str, count: int = 0, examples: Sequence[str] = ()
    ) -> None:
        self.table = table
        self.column = column
        self.rule = rule
        self.count = count
        self.examples = tuple(examples)
        message = f"{table}.{column}: {rule}"
        if count:
            message += f" ({count} row{'s' if count != 1 else ''}"
            if self.examples:
                message += "; first: " + ", ".join(self.examples)
            message += ")"
        super().__init__(message)

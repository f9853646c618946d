"""What a metric provider returns: a number, no data, or an error. The core judges; providers only measure."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ReadingKind(StrEnum):
    VALUE = "Value"
    NO_DATA = "NoData"
    ERROR = "Error"


@dataclass(frozen=True, slots=True)
class Reading:
    """One query's result. ``NoData`` (empty result, NaN, Inf) is neither a pass nor a fail."""

    kind: ReadingKind
    value: float | None = None
    message: str = ""

    @classmethod
    def of(cls, value: float) -> Reading:
        return cls(ReadingKind.VALUE, value=value)

    @classmethod
    def no_data(cls, message: str = "no data") -> Reading:
        return cls(ReadingKind.NO_DATA, message=message)

    @classmethod
    def error(cls, message: str) -> Reading:
        return cls(ReadingKind.ERROR, message=message)

    @property
    def available(self) -> bool:
        return self.kind is ReadingKind.VALUE

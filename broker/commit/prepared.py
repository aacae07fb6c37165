"""Statements compiled once to the driver's own SQL, for writers that bypass SQLAlchemy's
per-execution work on the hot path.

A :class:`Prepared` holds the SQL text in the dialect's paramstyle and, per positional
parameter, where its value comes from (the caller's parameters, a literal bound in the
statement, or a column's scalar Python default) and the type's bind processor (so a
``UTCDateTime`` or a ``Boolean`` is stored exactly as SQLAlchemy would store it). Only
positional paramstyles (SQLite's ``qmark``, asyncpg's ``numeric_dollar``) are supported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import Insert

from broker.commit.base import Unit, needs_savepoint, steps
from broker.errors import BrokerError


class PrepareError(BrokerError):
    code = "prepare_error"


_REQUIRED = object()

@dataclass(frozen=True, slots=True)
class BoundStep:
    """A step as driver SQL with its positional arguments, ready for a driver's execute."""

    sql: str
    args: tuple[Any, ...]
    expect: int | None = None
    returning: bool = False


@dataclass(frozen=True, slots=True)
class BoundUnit:
    steps: list[BoundStep]
    savepoint: bool  # a later guard may have to undo earlier writes


BoundBatch = list[BoundUnit]

Processor = Callable[[Any], Any] | None


@dataclass(frozen=True, slots=True)
class Prepared:
    """One statement's driver SQL and how to build its positional arguments."""

    sql: str
    slots: tuple[tuple[str, Any, Processor], ...]  # (parameter key, fallback, processor)

    def args(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        out = []
        for key, fallback, process in self.slots:
            value = params.get(key, fallback)
            if value is _REQUIRED:
                raise PrepareError(f"missing parameter {key!r}")
            out.append(value if process is None or value is None else process(value))
        return tuple(out)


def prepare(stmt: Executable, dialect: Dialect, keys: Iterable[str] = ()) -> Prepared:
    """Compile ``stmt`` for ``dialect``. For an INSERT without explicit values, ``keys``
    names the columns given; the others take their scalar Python default or NULL."""
    if not isinstance(stmt, ClauseElement):
        raise PrepareError(f"cannot compile {type(stmt).__name__}")
    column_keys = sorted(keys) if isinstance(stmt, Insert) else None
    compiled = stmt.compile(dialect=dialect, column_keys=column_keys)
    if not isinstance(compiled, SQLCompiler):
        raise PrepareError(f"{type(stmt).__name__} does not compile to SQL")
    if not compiled.positional or compiled.positiontup is None:
        raise PrepareError(f"{dialect.name}: only positional paramstyles are supported")
    by_name = {name: bind for bind, name in compiled.bind_names.items()}
    defaults: dict[str, Any] = {}
    for column in compiled.insert_prefetch:
        default = column.default
        if default is None or not default.is_scalar:
            raise PrepareError(f"column {column.key!r} has a default that is not a constant")
        defaults[column.key] = default.arg  # type: ignore[attr-defined]
    if compiled.update_prefetch:
        raise PrepareError("statements with onupdate defaults are not supported")
    slots = []
    for name in compiled.positiontup:
        bind = by_name[name]
        if bind.key in defaults:
            fallback = defaults[bind.key]
        elif bind.required or bind.callable is not None:
            fallback = _REQUIRED
        else:
            fallback = bind.value
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        slots.append((bind.key, fallback, process))
    return Prepared(compiled.string, tuple(slots))


class StatementCache:
    """Prepared statements per (statement, columns given), for one dialect. Statements are
    kept alive by the cache, so their ids are never reused while cached."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._cache: dict[tuple[int, frozenset[str] | None], tuple[Executable, Prepared]] = {}

    def get(self, stmt: Executable, params: Mapping[str, Any]) -> Prepared:
        keys = frozenset(params) if isinstance(stmt, Insert) else None
        hit = self._cache.get((id(stmt), keys))
        if hit is None:
            hit = (stmt, prepare(stmt, self.dialect, keys or ()))
            self._cache[(id(stmt), keys)] = hit
        return hit[1]

    def bind(self, units: Iterable[Unit]) -> BoundBatch:
        """Each unit's steps as driver SQL with their positional arguments."""
        batch: BoundBatch = []
        for unit in units:
            unit_steps = steps(unit)
            bound = []
            for step in unit_steps:
                prepared = self.get(step.stmt, step.params)
                bound.append(
                    BoundStep(prepared.sql, prepared.args(step.params), step.expect, step.returning)
                )
            batch.append(BoundUnit(bound, needs_savepoint(unit_steps)))
        return batch

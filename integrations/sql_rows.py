"""Model rows read and written with statements composed once, for the run-environment
path (``apps_registry.run_env``) and the audit log.

The ORM builds and compiles a statement on every call: on the run path that was half of
the call's time, more than the round trips themselves (bench/run_env.py,
docs/benchmarks.md). Here a statement's column list comes from the model (its concrete
fields, quoted as the ORM quotes them), rows become model instances through
``Model.from_db`` with each field's converters applied, as the ORM's own iterator does,
and an insert prepares each value as ``save()`` would. Querysets stay the rule
everywhere else: use these only where the bench shows the ORM's cost matters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Model

Converter = Callable[[Any, Any, Any], Any]


def quote(name: str) -> str:
    return str(connections[DEFAULT_DB_ALIAS].ops.quote_name(name))


def column(model: type[Model], name: str) -> str:
    """``table.column`` of ``model``'s field ``name``, quoted (the table's own name: the
    statements here never alias a table, as the ORM does not for its first join)."""
    field = model._meta.get_field(name)
    return f"{quote(model._meta.db_table)}.{quote(str(getattr(field, 'column', name)))}"


def param(model: type[Model], name: str, value: Any) -> Any:
    """``value`` as a parameter compared with ``model``'s field ``name``, prepared as the
    ORM prepares it (a datetime on SQLite is a string in UTC)."""
    field = model._meta.get_field(name)
    return field.get_db_prep_value(value, connections[DEFAULT_DB_ALIAS])  # type: ignore[union-attr]


class Selected:
    """The concrete columns of ``model`` in a SELECT, and how a row's slice of values
    becomes an instance (``None`` for an outer join that found nothing)."""

    def __init__(self, model: type[Model]) -> None:
        self.model = model
        meta = model._meta
        table = quote(meta.db_table)
        self.fields = tuple(meta.concrete_fields)
        self.width = len(self.fields)
        self.sql = ", ".join(f"{table}.{quote(str(f.column))}" for f in self.fields)
        self.pk_index = self.fields.index(meta.pk)
        self._converters: list[tuple[int, list[Converter], Any]] | None = None

    def converters(self) -> list[tuple[int, list[Converter], Any]]:
        """Per column that has any: the backend's and the field's converters (the ones
        ``SQLCompiler.get_converters`` applies), found once."""
        if self._converters is None:
            connection = connections[DEFAULT_DB_ALIAS]
            found = []
            for i, field in enumerate(self.fields):
                col = field.get_col(self.model._meta.db_table)
                convs = connection.ops.get_db_converters(col) + field.get_db_converters(connection)
                if convs:
                    found.append((i, convs, col))
            self._converters = found
        return self._converters

    def build(self, row: Sequence[Any], start: int = 0) -> Any:
        """The instance held by ``row[start:start + width]``."""
        values = list(row[start : start + self.width])
        if values[self.pk_index] is None:
            return None
        connection = connections[DEFAULT_DB_ALIAS]
        for i, convs, col in self.converters():
            value = values[i]
            for convert in convs:
                value = convert(value, col, connection)
            values[i] = value
        return self.model.from_db(DEFAULT_DB_ALIAS, (), values)


@cache
def selected(model: type[Model]) -> Selected:
    """:class:`Selected` of ``model``, composed once per process."""
    return Selected(model)


def fetch(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


@cache
def _insert_into(model: type[Model]) -> tuple[str, tuple[Any, ...]]:
    """``INSERT INTO table (columns)`` of ``model``'s concrete fields but its primary
    key, and those fields."""
    meta = model._meta
    fields = tuple(f for f in meta.concrete_fields if f is not meta.pk)
    columns = ", ".join(quote(str(f.column)) for f in fields)
    return f"INSERT INTO {quote(meta.db_table)} ({columns})", fields


@cache
def _insert_sql(model: type[Model]) -> tuple[str, tuple[Any, ...]]:
    connection = connections[DEFAULT_DB_ALIAS]
    into, fields = _insert_into(model)
    returning = ""
    if connection.features.can_return_columns_from_insert:
        returning = f" RETURNING {quote(str(model._meta.pk.column))}"
    return f"{into} VALUES ({', '.join(['%s'] * len(fields))}){returning}", fields


def _insert_params(obj: Model, fields: tuple[Any, ...]) -> list[Any]:
    """``obj``'s values for ``fields``, prepared as ``save()`` prepares them."""
    connection = connections[DEFAULT_DB_ALIAS]
    return [f.get_db_prep_save(f.pre_save(obj, True), connection=connection) for f in fields]


def insert[M: Model](obj: M) -> M:
    """INSERT ``obj`` (a new instance whose primary key the database assigns) in one
    statement, its values prepared as ``save()`` prepares them (``auto_now_add`` set,
    JSON adapted); sets its primary key. No signals are sent: only for models that have
    no receivers and no logic in ``save()`` beyond refusing updates."""
    connection = connections[DEFAULT_DB_ALIAS]
    sql, fields = _insert_sql(type(obj))
    meta = obj._meta
    params = _insert_params(obj, fields)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if connection.features.can_return_columns_from_insert:
            pk = cursor.fetchone()[0]
        else:
            pk = connection.ops.last_insert_id(cursor, meta.db_table, str(meta.pk.column))
    obj.pk = pk
    obj._state.adding = False
    obj._state.db = DEFAULT_DB_ALIAS
    return obj


def insert_after_update(update_sql: str, update_params: Sequence[Any], obj: Model) -> int:
    """PostgreSQL: run ``update_sql`` (an UPDATE of one row) and INSERT ``obj`` in one
    statement, ``WITH updated AS (<update> RETURNING 1) INSERT ... SELECT ... FROM
    updated``: a round trip less than the two (the refresh writes both on every token).
    The row is inserted only if the UPDATE found its row; returns the rows inserted
    (0: the row was gone). ``obj`` gets no primary key back."""
    sql, params = insert_after_update_statement(update_sql, update_params, obj)
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute(sql, params)
        return int(cursor.rowcount)


def insert_after_update_statement(
    update_sql: str, update_params: Sequence[Any], obj: Model
) -> tuple[str, list[Any]]:
    """The statement ``insert_after_update`` runs, and its parameters: to run later,
    with others of the same statement (``execute_each``)."""
    sql, fields = _insert_after_update_sql(update_sql, type(obj))
    return sql, [*update_params, *_insert_params(obj, fields)]


def execute_each(sql: str, rows: Sequence[Sequence[Any]]) -> int:
    """``sql`` once for each row of parameters, sent together: psycopg's ``executemany``
    pipelines them on PostgreSQL, one round trip for all. Returns the rows they
    affected in all."""
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.executemany(sql, rows)
        return int(cursor.rowcount)


@cache
def _insert_after_update_sql(update_sql: str, model: type[Model]) -> tuple[str, tuple[Any, ...]]:
    """Composed once per UPDATE (one per field set) and model."""
    into, fields = _insert_into(model)
    values = ", ".join(["%s"] * len(fields))
    sql = f"WITH updated AS ({update_sql} RETURNING 1) {into} SELECT {values} FROM updated"  # noqa: S608 (names from the models)
    return sql, fields

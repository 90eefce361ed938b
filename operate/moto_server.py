"""moto server, one request at a time: `python -m operate.moto_server -H HOST -p PORT`.

DynamoDB applies each write and each transaction atomically; moto's threaded server does not. Its
`TransactWriteItems` copies the tables, writes, and on a failed condition puts the copy back, so a
transaction cancelled on one connection (a replayed post key, say) undoes what another connection wrote
meanwhile, and two `ADD`s racing each other can lose one. Two KCL processors counting posts into the
same minute hit exactly that. Serving requests one at a time (connections are still accepted
concurrently) gives the live table DynamoDB's guarantees locally; moto answers in milliseconds, so
nobody waits long.

Its `TransactWriteItems` also deep-copies a whole table for every item of a transaction, to put it back if a
condition fails: on the `live` table, which keeps a key per post counted, each 26-item transaction copied
every key ever counted 26 times (the server grew from 255 MB to 3.3 GB in 80 s, and slowed to a request a
second). Here a transaction keeps a copy of the items it touches only, and puts those back on a failure: the
same all-or-nothing, at a cost that does not grow with the table.

One more gap closed here: moto's CloudFormation change sets create the resources but leave the stack's
outputs as they were before (AWS recomputes them), so `coinstream deploy --apply` could not read back the
names it created; executing a change set recomputes them here as on AWS.
"""

from __future__ import annotations

import argparse
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple


class OneAtATime:
    """WSGI middleware: the wrapped application handles one request at a time, its body read in full."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with self.lock:
            body = self.app(environ, start_response)
            try:
                return list(body)
            finally:
                close = getattr(body, "close", None)
                if close is not None:
                    close()


def _outputs_after_change_sets() -> None:
    from moto.cloudformation.models import ChangeSet

    applied = ChangeSet.apply

    def apply(self: Any) -> None:
        applied(self)
        self.stack.template = self.template
        self.stack._parse_template()
        self.stack.output_map = self.stack._create_output_map()

    ChangeSet.apply = apply  # type: ignore[method-assign]


class _KeepTables:
    """`copy` as moto's DynamoDB module sees it during a transaction: a table is not copied (its items are)."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def deepcopy(self, value: Any, memo: Any = None) -> Any:
        from moto.dynamodb.models.table import Table

        return value if isinstance(value, Table) else self.real.deepcopy(value, memo)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def _transactions_copy_what_they_touch() -> None:
    import copy

    from moto.dynamodb import models
    from moto.dynamodb.exceptions import (
        MockValidationException,
        MultipleTransactionsException,
        TransactionCanceledException,
    )

    original = models.DynamoDBBackend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        before: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = []
        for entry in transact_items:
            op: Any = next(iter(entry.values()), {})
            name = op.get("TableName") if isinstance(op, dict) else None
            if not name or name not in self.tables:
                continue
            table = self.tables[name]
            if "Key" in op:
                key = dict(op["Key"])
            elif "Item" in op and table.hash_key_attr in op["Item"]:
                attrs = [table.hash_key_attr, *([table.range_key_attr] if table.range_key_attr else [])]
                key = {a: op["Item"][a] for a in attrs if a in op["Item"]}
            else:
                continue
            try:
                current = self.get_item(name, key)
            except Exception:  # a malformed key: moto's own checks answer it
                current = None
            before.append((name, key, copy.deepcopy(current.to_json()["Attributes"]) if current else None))
        models.copy = _KeepTables(copy)  # type: ignore[assignment]
        try:
            original(self, transact_items)
        except (TransactionCanceledException, MultipleTransactionsException, MockValidationException):
            for name, key, attributes in reversed(before):
                if attributes is None:
                    if self.get_item(name, key) is not None:
                        self.delete_item(name, key)
                else:
                    self.put_item(name, attributes)
            raise
        finally:
            models.copy = copy

    models.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    parser.add_argument("--copy-whole-tables", action="store_true", help="moto's own transactions (a baseline)")
    args = parser.parse_args(argv)
    _outputs_after_change_sets()
    # werkzeug logs a line per request (about 1,000 a minute under two KCL applications): weeks of `coinstream run`
    # would fill the disk with them; what goes wrong is still logged
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    if not args.copy_whole_tables:
        _transactions_copy_what_they_touch()
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(args.host, args.port, OneAtATime(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()

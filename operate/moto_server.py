"""moto server, one request at a time: `python -m operate.moto_server -H HOST -p PORT`.

DynamoDB applies each write and each transaction atomically; moto's threaded server does not. Its
`TransactWriteItems` copies the tables, writes, and on a failed condition puts the copy back, so a
transaction cancelled on one connection (a replayed post key, say) undoes what another connection wrote
meanwhile, and two `ADD`s racing each other can lose one. Two KCL processors counting posts into the
same minute hit exactly that. Serving requests one at a time (connections are still accepted
concurrently) gives the live table DynamoDB's guarantees locally; moto answers in milliseconds, so
nobody waits long.

One more gap closed here: moto's CloudFormation change sets create the resources but leave the stack's
outputs as they were before (AWS recomputes them), so `coinstream deploy --apply` could not read back the
names it created; executing a change set recomputes them here as on AWS.
"""

from __future__ import annotations

import argparse
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    args = parser.parse_args(argv)
    _outputs_after_change_sets()
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(args.host, args.port, OneAtATime(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()

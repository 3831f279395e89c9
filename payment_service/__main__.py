"""CLI: `serve` runs one replica, `migrate` is the seed's migration Job as its own step.

Usage errors are one line on stderr and a non-zero exit, never a traceback.
"""
from __future__ import annotations

import argparse
import sys


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line instead of usage + message
        print(f"payment-service: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m zerodrop.payment_service",
                     description="The reference payment-service under test (configured by environment variables).")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    serve = sub.add_parser("serve", help="run one replica")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080, help="0 = let the kernel pick a free port")
    serve.add_argument("--port-file", help="write the bound port here (atomically) once listening")
    migrate = sub.add_parser("migrate", help="apply pending schema migrations to DATABASE_URL and exit")
    migrate.add_argument("--to", type=int, default=None, metavar="VERSION",
                         help="stop at this schema version (default: latest)")
    migrate.add_argument("--release", default=None, metavar="NAME",
                         help="then apply this release's migration, which the base migrate never "
                              "applies (default: $MIGRATE_RELEASE; e.g. add_payment_note)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from . import config

    try:
        settings = config.load()
    except config.UsageError as exc:
        print(f"payment-service: {exc}", file=sys.stderr)
        return 2
    if args.command == "migrate":
        import os

        from .migrations import RELEASE_ENV, UnknownRelease, release_migration
        release = args.release if args.release is not None else os.environ.get(RELEASE_ENV, "")
        if release.strip():
            if args.to is not None:
                print("payment-service: --to and a release migration exclude each other "
                      "(a release builds on the whole base schema)", file=sys.stderr)
                return 2
            try:
                release_migration(release.strip())
            except UnknownRelease as exc:
                print(f"payment-service: {exc}", file=sys.stderr)
                return 2
        return _migrate(settings, args.to, release.strip() or None)
    if not 0 <= args.port <= 65535:
        print(f"payment-service: --port {args.port} is not a port number (0-65535)", file=sys.stderr)
        return 2
    from . import server

    try:
        return server.serve(settings, args.host, args.port, args.port_file)
    except (server.PortInUse, server.BindError) as exc:
        print(f"payment-service: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. the port file's directory does not exist
        print(f"payment-service: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return 2


def _migrate(settings, target: int | None, release: str | None = None) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from . import migrations, storage

    engine = storage.create_engine(settings.database_url)
    try:
        log = lambda line: print(line, flush=True)  # noqa: E731
        applied = migrations.apply(storage.write_engine(engine), target, log=log)
        if release is not None:
            applied += migrations.apply_release(storage.write_engine(engine), release, log=log)
        with engine.connect() as conn:
            version = migrations.current_version(conn)
    except migrations.ReleaseError as exc:
        print(f"payment-service: migrate failed: {exc}", file=sys.stderr)
        return 1
    except SQLAlchemyError as exc:
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        print(f"payment-service: migrate failed: {detail[0] if detail else type(exc).__name__}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    print(f"payment-service: schema at version {version} ({applied} applied)", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

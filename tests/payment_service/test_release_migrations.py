"""The next releases' migrations (payment_service/migrations.py RELEASE_MIGRATIONS): applied only
when named (``migrate --release NAME`` or ``MIGRATE_RELEASE``), recorded in schema_version,
idempotent, on SQLite and PostgreSQL, and each does to a replica that is ALREADY running what
its catalogue entry says: the additive one leaves it working, the breaking ones break it (the
negative controls the migration-safety scenario must catch)."""
from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from zerodrop.payment_service import migrations
from tests.payment_service.conftest import (BACKENDS, base_env, cli, fresh_db, pay, sql,
                                            start_service)


def _versions(db_url: str) -> dict[int, str]:
    return {v: n for v, n in sql(db_url, "SELECT version, name FROM schema_version")}


def _columns(db_url: str, table: str) -> set[str]:
    engine = sa.create_engine(db_url)
    try:
        return {c["name"] for c in sa.inspect(engine).get_columns(table)}
    finally:
        engine.dispose()


def test_the_base_migrate_applies_no_release_migration(tmp_path: Path, template_db: Path) -> None:
    db = fresh_db(template_db, tmp_path)
    again = cli("migrate", env=base_env(db))
    assert again.returncode == 0, again.stderr
    assert max(_versions(db)) == migrations.MIGRATIONS[-1].version
    assert "note" not in _columns(db, "payments")


@pytest.mark.parametrize("database", BACKENDS, indirect=True)
def test_add_payment_note_is_recorded_idempotent_and_leaves_a_running_replica_working(
        database: str, tmp_path: Path) -> None:
    with start_service(tmp_path, database, APP_VERSION="v1.0.0") as blue:
        assert blue.get("/api/accounts/acc-001/balance").status_code == 200
        first = cli("migrate", "--release", "add_payment_note", env=base_env(database))
        assert first.returncode == 0, first.stderr
        assert first.stdout.splitlines() == [
            "applied release migration 1001_add_payment_note (v1.2.0: adds the nullable column "
            "payments.note (additive: the previous version never reads it))"]
        assert "schema at version 1001 (1 applied)" in first.stderr
        # the replica that started before the migration keeps working on the new schema
        assert blue.get("/api/accounts/acc-001/balance").status_code == 200
        created = pay(blue, "test-account-0", "test-account-5", amount=1)
        assert created.status_code == 201, created.text
        assert blue.get(f"/api/payments/{created.json()['id']}").status_code == 200
        assert blue.get("/health/ready").status_code == 200
    assert "note" in _columns(database, "payments")
    assert _versions(database)[1001] == "add_payment_note"
    again = cli("migrate", env=base_env(database, MIGRATE_RELEASE="add_payment_note"))
    assert again.returncode == 0 and again.stdout == "", again.stdout + again.stderr
    assert "(0 applied)" in again.stderr


@pytest.mark.parametrize("database", BACKENDS, indirect=True)
def test_rename_balance_column_breaks_a_running_replica(database: str, tmp_path: Path) -> None:
    """Negative control: the previous version reads balance_minor; after the rename its balance
    reads fail while its readiness still says healthy (a switch would not notice by itself)."""
    with start_service(tmp_path, database, APP_VERSION="v1.0.0") as blue:
        assert blue.get("/api/accounts/acc-001/balance").status_code == 200
        done = cli("migrate", env=base_env(database, MIGRATE_RELEASE="rename_balance_column"))
        assert done.returncode == 0, done.stderr
        assert "1002_rename_balance_column" in done.stdout
        broken = blue.get("/api/accounts/acc-001/balance")
        assert broken.status_code >= 500, broken.text
        assert blue.get("/health/ready").status_code == 200
    assert {"balance_cents"} <= _columns(database, "accounts")
    assert "balance_minor" not in _columns(database, "accounts")
    again = cli("migrate", "--release", "rename_balance_column", env=base_env(database))
    assert again.returncode == 0 and "(0 applied)" in again.stderr, again.stderr


@pytest.mark.parametrize("database", BACKENDS, indirect=True)
def test_drop_payment_description_breaks_a_running_replica(database: str, tmp_path: Path) -> None:
    with start_service(tmp_path, database, APP_VERSION="v1.0.0") as blue:
        assert pay(blue, "test-account-0", "test-account-5", amount=1).status_code == 201
        done = cli("migrate", "--release", "drop_payment_description", env=base_env(database))
        assert done.returncode == 0, done.stderr
        broken = pay(blue, "test-account-0", "test-account-5", amount=1)
        assert broken.status_code >= 500, broken.text
    assert "description" not in _columns(database, "payments")
    assert _versions(database)[1003] == "drop_payment_description"


@pytest.mark.parametrize("args, env", [
    (["migrate", "--release", "no_such"], {}),
    (["migrate"], {"MIGRATE_RELEASE": "no_such"}),
])
def test_an_unknown_release_is_one_line_exit_2_and_touches_nothing(tmp_path: Path, args, env) -> None:
    db = tmp_path / "payments.db"
    done = cli(*args, env=base_env(f"sqlite:///{db}", **env))
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        "payment-service: unknown release migration 'no_such'; known: add_payment_note, "
        "rename_balance_column, drop_payment_description"]
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert not db.exists(), "a refused migrate must not create the database"


def test_to_and_release_exclude_each_other(tmp_path: Path) -> None:
    db = tmp_path / "payments.db"
    done = cli("migrate", "--to", "3", "--release", "add_payment_note",
               env=base_env(f"sqlite:///{db}"))
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stderr
    assert "exclude each other" in done.stderr and not db.exists()


def test_a_release_needs_the_base_schema_first(tmp_path: Path) -> None:
    """apply_release on a schema without the base migrations refuses and changes nothing (the
    CLI always applies the base first; this is the library's own guard)."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'p.db'}")
    try:
        migrations.apply(engine, target=3, log=lambda _l: None)
        with pytest.raises(migrations.ReleaseError, match=r"needs the base schema first .*\[4, 5\]"):
            migrations.apply_release(engine, "add_payment_note", log=lambda _l: None)
        with engine.connect() as conn:
            assert migrations.current_version(conn) == 3
            assert "note" not in {c["name"] for c in sa.inspect(conn).get_columns("payments")}
    finally:
        engine.dispose()


def test_the_catalogue_says_which_are_backward_compatible() -> None:
    by_name = {m.name: m for m in migrations.RELEASE_MIGRATIONS}
    assert by_name["add_payment_note"].backward_compatible
    assert not by_name["rename_balance_column"].backward_compatible
    assert not by_name["drop_payment_description"].backward_compatible
    base = {m.version for m in migrations.MIGRATIONS}
    assert not base & set(by_name[n].version for n in by_name), "release numbers are their own"
    with pytest.raises(migrations.UnknownRelease, match="known: add_payment_note"):
        migrations.release_migration("nope")

"""The /api handlers: payments, account balances and transactions.

Every write goes through one front (token, Idempotency-Key, body, all problems reported at once)
and every storage error becomes the same JSON answer, so the routes cannot drift apart. Storage is
synchronous SQLAlchemy, so it runs in the threadpool. A validation failure is a 400, and a 5xx only
under the bad_input_500 fault: the negative control the harness must notice.
"""
from __future__ import annotations

import hashlib
from typing import Any, Awaitable, Callable

from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from . import money, validation
from .context import Context, Handlers
from .storage import (BalanceLimit, DatabaseUnavailable, IdempotencyConflict, InsufficientFunds, InvalidAmount,
                      NotFound, Result)
from .web import CLOSE_AFTER, BadBody, bearer_ok, errors_response, json_response, read_json, unauthorized

KEY_REUSED = [{"field": "Idempotency-Key", "message": "already used with a different request body"}]


def bad_input(ctx: Context, errors: list[dict[str, str]], close: bool = False,
              request: Request | None = None) -> Response:
    if close and request is not None:
        request.scope[CLOSE_AFTER] = True
    # bad_input_500 is a negative control: validation failures must never be 5xx otherwise.
    return errors_response(500 if ctx.faults.current.bad_input_500 else 400, errors)


async def db(fn: Callable[..., Any], *args: Any) -> Any:
    return await run_in_threadpool(fn, *args)


def db_down(exc: Exception) -> Response:
    detail = str(exc).splitlines()[0] if isinstance(exc, DatabaseUnavailable) else "database unavailable"
    return errors_response(503, [{"field": "database", "message": detail}])


def replay_headers(result: Result) -> dict[str, str] | None:
    return {"Idempotent-Replayed": "true"} if result.replayed else None


def written(ctx: Context, result: Result, route: str, count_new: Callable[[], None]) -> Response:
    """The answer to a stored (or replayed) write, counted as one or the other."""
    if result.replayed:
        ctx.metrics.replayed(route)
    else:
        count_new()
    return json_response(result.status, result.body, replay_headers(result))


async def parse_write(ctx: Context, request: Request, validate) -> Response | tuple[dict, str | None, str]:
    """The common front of both POSTs: the token, the Idempotency-Key and the body, every
    problem reported at once. An error Response, or (clean body, key, body fingerprint)."""
    s = ctx.settings
    if not bearer_ok(request, s.auth_token):
        return unauthorized()
    key, errors = validation.idempotency_key(request.headers.get("idempotency-key"))
    try:
        body = await read_json(request, s.max_body_bytes)
    except BadBody as exc:
        return bad_input(ctx, errors + [{"field": "body", "message": str(exc)}], exc.close, request)
    clean, field_errors = validate(body)
    if errors or field_errors:
        return bad_input(ctx, errors + field_errors)
    return clean, key, hashlib.sha256(money.canonical(body).encode()).hexdigest()


async def handle_write(ctx: Context, request: Request, validate,
                       store: Callable[[dict, str | None, str], Awaitable[Response]]) -> Response:
    """parse_write, then `store` the clean body unless the front already answered."""
    parsed = await parse_write(ctx, request, validate)
    if isinstance(parsed, Response):
        return parsed
    clean, key, fingerprint = parsed
    if ctx.faults.current.ignore_idempotency_key:  # a negative control: a service that ignores it
        key = None
    return await store(clean, key, fingerprint)


async def lookup(ctx: Context, request: Request, field: str, noun: str, fetch) -> Response:
    """GET one stored thing by its path id: 401, 404 or the JSON of it."""
    if not bearer_ok(request, ctx.settings.auth_token):
        return unauthorized()
    key = request.path_params["id"]
    if not validation.storable(key):
        return errors_response(404, [{"field": field, "message": f"{noun} not found"}])
    try:
        return json_response(200, await db(fetch, key))
    except NotFound:
        return errors_response(404, [{"field": field, "message": f"{noun} {key} not found"}])
    except (DatabaseUnavailable, SQLAlchemyError) as exc:
        return db_down(exc)


class Payments(Handlers):
    async def create(self, request: Request) -> Response:
        return await handle_write(self.ctx, request, validation.payment, self._store)

    async def _store(self, clean: dict, key: str | None, fingerprint: str) -> Response:
        s, store = self.ctx.settings, self.ctx.store
        try:
            result = await db(store.create_payment, clean, key, fingerprint, s.payment_processing_seconds,
                              s.replica_name, self.ctx.faults.should_lose_payment)
        except IdempotencyConflict:
            return errors_response(422, KEY_REUSED)
        except (DatabaseUnavailable, SQLAlchemyError) as exc:
            return db_down(exc)
        return written(self.ctx, result, "/api/payments", self.ctx.metrics.payment_created)

    async def list_by_key(self, request: Request) -> Response:
        if not bearer_ok(request, self.ctx.settings.auth_token):
            return unauthorized()
        key = request.query_params.get("idempotency_key")
        if not key:
            return bad_input(self.ctx, [{"field": "idempotency_key", "message": "query parameter is required"}])
        if not validation.storable(key):
            return json_response(200, {"payments": []})  # no stored key can contain it
        try:
            found = await db(self.ctx.store.payments_by_key, key)
        except (DatabaseUnavailable, SQLAlchemyError) as exc:
            return db_down(exc)
        return json_response(200, {"payments": found})

    async def get(self, request: Request) -> Response:
        return await lookup(self.ctx, request, "id", "payment", self.ctx.store.payment)


class Accounts(Handlers):
    async def balance(self, request: Request) -> Response:
        return await lookup(self.ctx, request, "account_id", "account", self._account)

    def _account(self, account_id: str) -> dict[str, Any]:
        faults = self.ctx.faults
        if faults.current.stale_balance_reads:  # a negative control: a stale read after a write
            return faults.stale_balance(account_id, self.ctx.store.account)
        return self.ctx.store.account(account_id)


class Transactions(Handlers):
    async def create(self, request: Request) -> Response:
        return await handle_write(self.ctx, request, validation.transaction, self._store)

    async def _store(self, clean: dict, key: str | None, fingerprint: str) -> Response:
        try:
            # Check the decimals before taking the write lock: a bad amount costs no contention.
            refused = await self._check_amount(clean)
            if refused is not None:
                return refused
            result = await db(self.ctx.store.create_transaction, clean, key, fingerprint)
        except NotFound:
            return _no_account(clean)
        except InvalidAmount as exc:
            return bad_input(self.ctx, [{"field": "amount", "message": str(exc)}])
        except InsufficientFunds:
            return errors_response(422, [{"field": "amount", "message": "insufficient funds"}])
        except BalanceLimit:
            return errors_response(422, [{"field": "amount", "message": "balance limit exceeded"}])
        except IdempotencyConflict:
            return errors_response(422, KEY_REUSED)
        except (DatabaseUnavailable, SQLAlchemyError) as exc:
            return db_down(exc)
        return written(self.ctx, result, "/api/transactions",
                       lambda: self.ctx.metrics.transaction_created(clean["type"]))

    async def _check_amount(self, clean: dict) -> Response | None:
        """A 404 for an unknown account, a 400 for an amount its currency cannot hold, else None."""
        currency = await db(self._currency_of, clean["account_id"])
        if currency is None:
            return _no_account(clean)
        try:
            money.to_minor(clean["amount"], currency)
        except money.NotRepresentable as exc:
            return bad_input(self.ctx, [{"field": "amount", "message": str(exc)}])
        return None

    def _currency_of(self, account_id: str) -> str | None:
        cached = self.ctx.cache.get(account_id)
        if cached is not None:
            return cached
        currency = self.ctx.store.account_currency(account_id)
        if currency is not None:
            self.ctx.cache.put(account_id, currency)  # immutable per account, so never stale
        return currency


def _no_account(clean: dict) -> Response:
    return errors_response(404, [{"field": "account_id", "message": f"account {clean['account_id']} not found"}])

"""The reference payment-service the harness deploys as blue and green.

    python -m zerodrop.payment_service serve --host 127.0.0.1 --port 0 --port-file PATH
    python -m zerodrop.payment_service migrate [--to VERSION]

`serve` binds the socket itself, writes the bound port to PATH (atomically) as soon as it
listens, and never migrates; `migrate` is the seed's migration Job as its own step. Exit codes:
0 ok, 1 migrate failed, 2 usage error or port in use (one stderr line), 3 crash_on_start,
143 SIGTERM under the no_graceful_shutdown fault.

Environment: APP_VERSION, APP_COLOR, REPLICA_NAME, SERVICE_NAME, DATABASE_URL (sqlite:///file or
postgresql+psycopg://...), AUTH_TOKEN, ADMIN_TOKEN (empty = no admin API), DRAIN_SECONDS,
SHUTDOWN_TIMEOUT_SECONDS, KEEP_ALIVE_SECONDS, PAYMENT_PROCESSING_SECONDS, MAX_BODY_BYTES,
EXTERNAL_APIS (JSON list), FAULTS (JSON object, see faults.Faults).

Modules: config (environment), money (ISO 4217, exact amounts, JSON), validation, faults,
migrations, storage (engine, tables, queries), cache, health, metrics, processor (completion
worker), web (JSON answers, body reading, Bearer check), context (the state handlers get),
handlers_health / handlers_api / handlers_admin (the endpoints), app (route table, edge
middleware), server (socket, uvicorn, drain), __main__ (CLI).
Importing this package has no side effects.
"""

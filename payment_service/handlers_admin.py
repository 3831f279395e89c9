"""The fault admin API (/admin/faults): how the harness switches failure modes on a live replica.

Gated by its own token (and absent, a 404, when ADMIN_TOKEN is unset) so that the public token can
never turn faults on. Every change is logged to stderr, so a run's log says which faults were live.
"""
from __future__ import annotations

import sys
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from . import faults as faults_mod
from .context import Handlers
from .faults import FaultError, Faults
from .web import BadBody, bearer_ok, errors_response, json_response, read_json, unauthorized


class FaultAdmin(Handlers):
    async def get(self, request: Request) -> Response:
        return self._gate(request) or json_response(200, self._body())

    async def replace(self, request: Request) -> Response:
        return await self._change(request, merge=False)

    async def merge(self, request: Request) -> Response:
        return await self._change(request, merge=True)

    async def reset(self, request: Request) -> Response:
        return self._gate(request) or self._install(Faults())

    def _gate(self, request: Request) -> Response | None:
        token = self.ctx.settings.admin_token
        if not token:
            return errors_response(404, [{"field": "path", "message": "admin API disabled (ADMIN_TOKEN unset)"}])
        if not bearer_ok(request, token):
            return unauthorized()
        return None

    async def _change(self, request: Request, merge: bool) -> Response:
        denied = self._gate(request)
        if denied:
            return denied
        faults = self.ctx.faults
        try:
            # Plain JSON here: fault knobs are floats/ints, not money.
            data = _plain(await read_json(request, self.ctx.settings.max_body_bytes))
            new = faults_mod.validate(data, base=faults.current if merge else None)
        except BadBody as exc:
            return errors_response(400, [{"field": "body", "message": str(exc)}])
        except FaultError as exc:
            return errors_response(400, exc.errors)
        return self._install(new)

    def _install(self, new: Faults) -> Response:
        self.ctx.faults.replace(new)
        print(f"payment-service: faults now {new.active() or 'all off'}", file=sys.stderr, flush=True)
        return json_response(200, self._body())

    def _body(self) -> dict[str, Any]:
        current = self.ctx.faults.current
        return {"faults": current.to_dict(), "active": current.active()}


def _plain(obj: Any) -> Any:
    """Decimals from the money parser back to int/float for the fault validator."""
    if isinstance(obj, Decimal):
        return int(obj) if obj == obj.to_integral_value() and "." not in str(obj) and "E" not in str(obj).upper() \
            else float(obj)
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    return obj

"""Health and metrics endpoints: what the harness and the probes read.

Thin on purpose: the decisions (readiness, liveness) live in health.Health so that they can be
tested without HTTP; here they only become JSON answers.
"""
from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from .context import Handlers
from .web import json_response


class Probes(Handlers):
    async def health(self, _r: Request) -> Response:
        return json_response(200, {"status": "ok", "version": self.ctx.settings.app_version})

    async def live(self, _r: Request) -> Response:
        return json_response(200, self.ctx.health.live())

    async def ready(self, _r: Request) -> Response:
        status, body = await self.ctx.health.ready()
        return json_response(status, body)

    async def metrics(self, _r: Request) -> Response:
        return Response(self.ctx.metrics.render(), media_type=self.ctx.metrics.content_type)

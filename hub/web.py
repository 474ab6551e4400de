"""The hub's operational HTTP API, served by each Faust worker's web server: the books
(partner status), ``/metrics`` and ``/v1/health``. Person reads are in ``hub.people_api``.

Handlers are thin: authenticate, check the role, call one function, format the reply.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from hub.app import Hub
from hub.stages import accounting
from hub.stages.accounting import partner_status
from hub.users import Role

__all__ = ["install_web", "local_books", "problem"]


def _owned(ledger_key: str, owned: set[tuple[str, int]]) -> bool:
    topic, _, partition = ledger_key.rpartition("|")
    return (topic, int(partition)) in owned


def local_books(hub: Hub) -> dict[str, dict[str, int]]:
    """Each declared partner's books over the partitions this worker owns (its share)."""
    owned = {(tp.topic, tp.partition) for tp in hub.app.assignor.assigned_actives()}
    views, consent = hub.internal.view, hub.topics.consent
    fates = {k: v for k, v in hub.fates.items() if v}
    books = accounting.local_books(
        [v for k, v in hub.ledger.items() if v and _owned(k, owned)],
        [v for v in hub.views.values() if v and (views, v["partition"]) in owned],
        [v for v in hub.held.values() if v and (consent, v[0]["partition"]) in owned],
        [f for f in fates.values() if (f["topic"], f["partition"]) in owned],
        fates,
    )
    empty = dict.fromkeys(accounting.BOOKS, 0)
    return {p.id: books.get(p.id, empty) for p in hub.partners}


def problem(view: View, status: int, title: str) -> Response:
    """An RFC 9457-style problem reply: the status and a title naming the rule broken."""
    return view.json({"status": status, "title": title}, status=status)


def install_web(hub: Hub) -> None:
    """Add the ``/v1`` API and ``/metrics`` to the hub's Faust web server."""
    app = hub.app

    def may_see_books(view: View, request: Request, partner_id: str | None) -> Response | None:
        """None if the caller may see ``partner_id``'s books (every partner's if None)."""
        user = hub.users.authenticate(request.headers.get("Authorization"))
        if user is None:
            return problem(view, 401, "a valid bearer token is required")
        own_partner = user.role is Role.PARTNER and user.partner == partner_id
        if not (own_partner or user.role in (Role.STEWARD, Role.ADMIN)):
            return problem(view, 403, "you may only see your own partner's status")
        if partner_id is not None and partner_id not in {partner.id for partner in hub.partners}:
            return problem(view, 404, f"partner {partner_id} is not part of this place")
        return None

    async def gather_books(request: Request, path: str) -> list[dict[str, Any]] | None:
        """Every worker's share (``/v1/_books...``): views and holds are partitioned."""
        own = hub.settings.canonical_url
        others = [u for u in hub.app.router.tables_metadata() if str(u).rstrip("/") != own]
        shares = [local_books(hub)]
        headers = {"Authorization": request.headers.get("Authorization", "")}
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as client:
            for url in others:
                async with client.get(f"{url}{path}", headers=headers) as reply:
                    if reply.status != 200:
                        return None
                    shares.append(await reply.json())
        return shares

    class PartnerStatusPage(View):
        """``GET /v1/partners/{partner_id}/status``: that partner's accounting, and only it."""

        async def get(self, request: Request, partner_id: str) -> Response:
            refused = may_see_books(self, request, partner_id)
            if refused is not None:
                return refused
            shares = await gather_books(request, f"/v1/_books/{partner_id}")
            if shares is None:
                return problem(self, 503, "a worker did not report its share")
            own, *others = shares
            status = partner_status([own[partner_id], *others])
            return self.json({"partner": partner_id, **status})

    class PlaceStatusPage(View):
        """``GET /v1/partners/status``: every partner's accounting in one pass (stewards)."""

        async def get(self, request: Request) -> Response:
            refused = may_see_books(self, request, None)
            if refused is not None:
                return refused
            shares = await gather_books(request, "/v1/_books")
            if shares is None:
                return problem(self, 503, "a worker did not report its share")
            partners = {
                p.id: partner_status([share[p.id] for share in shares]) for p in hub.partners
            }
            return self.json({"partners": partners})

    class BooksPage(View):
        """``GET /v1/_books/{partner_id}``: this worker's share, for the status page."""

        async def get(self, request: Request, partner_id: str) -> Response:
            refused = may_see_books(self, request, partner_id)
            return refused or self.json(local_books(hub)[partner_id])

    class AllBooksPage(View):
        """``GET /v1/_books``: this worker's share of every partner's books."""

        async def get(self, request: Request) -> Response:
            refused = may_see_books(self, request, None)
            return refused or self.json(local_books(hub))

    class MetricsPage(View):
        """``GET /metrics``: Prometheus exposition of the hub's counters."""

        async def get(self, request: Request) -> Response:
            return self.bytes(
                generate_latest(hub.metrics.registry),
                content_type=CONTENT_TYPE_LATEST.split(";")[0],
            )

    class HealthPage(View):
        """``GET /v1/health``: 200 once this worker has its partitions and every agent runs."""

        async def get(self, request: Request) -> Response:
            crashed, stalled = hub.crashed_agents(), hub.health.stalled
            if crashed or stalled:
                body = {"status": "failed", "crashed_agents": crashed, "stalled_stages": stalled}
                return self.json(body, status=503)
            ready = bool(hub.app.consumer.assignment()) and not hub.app.rebalancing
            if not ready:
                return self.json({"status": "starting"}, status=503)
            return self.json({"status": "ok"})

    app.page("/v1/partners/status")(PlaceStatusPage)
    app.page("/v1/partners/{partner_id}/status")(PartnerStatusPage)
    app.page("/v1/_books")(AllBooksPage)
    app.page("/v1/_books/{partner_id}")(BooksPage)
    app.page("/metrics")(MetricsPage)
    app.page("/v1/health")(HealthPage)

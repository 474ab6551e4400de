"""The hub's operational HTTP API, served by each Faust worker's web server: the books
(partner status), ``/metrics`` and ``/v1/health``. Person reads are in ``hub.people_api``.

A partner's status (and each partner's in the place's) also shows its webhook's figures
(``hub.webhooks``: delivered, retried, failed attempts, dead-lettered, the last success
and failure; None without a webhook) added up over the workers, each of which delivers for
its share of ``hub.alerts`` and counts since it started (``/v1/_webhooks``: a share).

Handlers are thin: authenticate, check the role, call one function, format the reply.
Who may call what: the books, a partner's own token (its own partner only), stewards and
admins; ``/v1/_books`` (one worker's share), only another worker (``hub.routing``);
``/metrics``, the scrape token (``PLACEHUB_METRICS_TOKEN(_FILE)``) or an admin; ``/v1/health``
anyone, but only an admin learns which agents or stages failed.
"""

from __future__ import annotations

import hmac
from typing import Any

from faust.exceptions import ConsumerNotStarted
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST

from hub._http import problem
from hub.app import Hub
from hub.routing import PeerUnavailable, caller, peers, principal_of
from hub.stages import accounting
from hub.stages.accounting import partner_status
from hub.users import Role, User
from hub.webhook_sender import WebhookStats
from hub.webhooks import webhook_stats

__all__ = ["install_web", "local_books", "place_books"]


def _owned(ledger_key: str, owned: set[tuple[str, int]]) -> bool:
    topic, _, partition = ledger_key.rpartition("|")
    return (topic, int(partition)) in owned


def local_books(hub: Hub) -> dict[str, dict[str, int]]:
    """Each declared partner's books over the partitions this worker owns (its share).

    The tables are read one row at a time, never listed whole: with a million people a list
    of every view took about a gigabyte for the length of each read (the scale bench)."""
    owned = {(tp.topic, tp.partition) for tp in hub.app.assignor.assigned_actives()}
    views, consent = hub.internal.view, hub.topics.consent
    fates = {k: v for k, v in hub.fates.items() if v}  # looked up by source: kept whole
    books = accounting.local_books(
        (v for k, v in hub.ledger.items() if v and _owned(k, owned)),
        (v for v in hub.views.values() if v and (views, v["partition"]) in owned),
        (v for v in hub.held.values() if v and (consent, v[0]["partition"]) in owned),
        (f for f in fates.values() if (f["topic"], f["partition"]) in owned),
        fates,
    )
    empty = dict.fromkeys(accounting.BOOKS, 0)
    return {p.id: books.get(p.id, empty) for p in hub.partners}


async def place_books(hub: Hub, user: User) -> dict[str, dict[str, int | bool]]:
    """Every partner's books, each worker's share added up (the others asked with a
    worker assertion for ``user``); PeerUnavailable if a worker does not give its share."""
    shares = [local_books(hub), *await peers(hub).shares("/v1/_books", user)]
    empty = dict.fromkeys(accounting.BOOKS, 0)  # a worker the partner has not joined yet
    return {
        p.id: partner_status([share.get(p.id, empty) for share in shares]) for p in hub.partners
    }


def install_web(hub: Hub) -> None:
    """Add the ``/v1`` API and ``/metrics`` to the hub's Faust web server."""
    app = hub.app
    scrape_token = hub.settings.metrics_token_value()  # read once; ConfigError at start
    hub.metrics.declare_partners(partner.id for partner in hub.partners)
    hub.metrics.declare_rules(rule.code for rule in hub.rules)

    def may_see_books(view: View, user: User | None, partner_id: str | None) -> Response | None:
        """None if ``user`` may see ``partner_id``'s books (every partner's if None)."""
        if user is None:
            return problem(view, 401, "a valid bearer token is required")
        own_partner = user.role is Role.PARTNER and user.partner == partner_id
        if not (own_partner or user.role in (Role.STEWARD, Role.ADMIN)):
            return problem(view, 403, "you may only see your own partner's status")
        if partner_id is not None and partner_id not in {partner.id for partner in hub.partners}:
            return problem(view, 404, f"partner {partner_id} is not part of this place")
        return None

    def share_for_a_worker(view: View, request: Request, partner_id: str | None) -> Response | None:
        """None if another worker, acting for a user who may see the books, asks."""
        principal = principal_of(hub, request)
        if principal is None or not principal.via_worker:
            return problem(view, 401, "only the place's workers may ask for one worker's share")
        return may_see_books(view, principal.user, partner_id)

    async def gather_books(user: User, path: str) -> list[dict[str, Any]] | None:
        """Every worker's share (``/v1/_books...``): views and holds are partitioned. Other
        workers are asked with a worker assertion for ``user``, never the user's token."""
        try:
            return [local_books(hub), *await peers(hub).shares(path, user)]
        except PeerUnavailable:
            return None

    with_webhook = sorted(p.id for p in hub.partners if p.webhook is not None)

    def local_webhooks(partner_ids: list[str]) -> dict[str, dict[str, object]]:
        """This worker's webhook figures for those of ``partner_ids`` with a webhook."""
        return {p: webhook_stats(hub).share(p) for p in partner_ids if p in with_webhook}

    async def gather_webhooks(
        user: User, path: str, partner_ids: list[str]
    ) -> dict[str, dict[str, object]]:
        """Every worker's webhook figures (``/v1/_webhooks...``) added up, per partner with a
        webhook among ``partner_ids``; PeerUnavailable if a worker does not give its share."""
        wanted = [p for p in partner_ids if p in with_webhook]
        if not wanted:
            return {}
        shares = [local_webhooks(wanted), *await peers(hub).shares(path, user)]
        return {p: WebhookStats.combine([share[p] for share in shares]) for p in wanted}

    class WebhookSharePage(View):
        """``GET /v1/_webhooks/{partner_id}``: this worker's webhook figures, for a worker."""

        async def get(self, request: Request, partner_id: str) -> Response:
            refused = share_for_a_worker(self, request, partner_id)
            return refused or self.json(local_webhooks([partner_id]))

    class AllWebhooksSharePage(View):
        """``GET /v1/_webhooks``: this worker's figures for every webhook, for a worker."""

        async def get(self, request: Request) -> Response:
            refused = share_for_a_worker(self, request, None)
            return refused or self.json(local_webhooks(with_webhook))

    class PartnerStatusPage(View):
        """``GET /v1/partners/{partner_id}/status``: that partner's accounting, and only it."""

        async def get(self, request: Request, partner_id: str) -> Response:
            user = caller(hub, request)
            refused = may_see_books(self, user, partner_id)
            if refused is not None:
                return refused
            assert user is not None  # may_see_books refused a missing user
            shares = await gather_books(user, f"/v1/_books/{partner_id}")
            if shares is None:
                return problem(self, 503, "a worker did not report its share")
            own, *others = shares
            status = partner_status([own[partner_id], *others])
            try:
                path = f"/v1/_webhooks/{partner_id}"
                webhooks = await gather_webhooks(user, path, [partner_id])
            except PeerUnavailable:
                return problem(self, 503, "a worker did not report its share")
            webhook = webhooks.get(partner_id)
            return self.json({"partner": partner_id, **status, "webhook": webhook})

    class PlaceStatusPage(View):
        """``GET /v1/partners/status``: every partner's accounting in one pass (stewards)."""

        async def get(self, request: Request) -> Response:
            user = caller(hub, request)
            refused = may_see_books(self, user, None)
            if refused is not None:
                return refused
            assert user is not None  # may_see_books refused a missing user
            try:
                books = await place_books(hub, user)
                webhooks = await gather_webhooks(user, "/v1/_webhooks", with_webhook)
            except PeerUnavailable:
                return problem(self, 503, "a worker did not report its share")
            partners = {p: {**status, "webhook": webhooks.get(p)} for p, status in books.items()}
            return self.json({"partners": partners})

    class BooksPage(View):
        """``GET /v1/_books/{partner_id}``: this worker's share, for another worker."""

        async def get(self, request: Request, partner_id: str) -> Response:
            refused = share_for_a_worker(self, request, partner_id)
            return refused or self.json(local_books(hub)[partner_id])

    class AllBooksPage(View):
        """``GET /v1/_books``: this worker's share of every partner's books, for a worker."""

        async def get(self, request: Request) -> Response:
            refused = share_for_a_worker(self, request, None)
            return refused or self.json(local_books(hub))

    def may_scrape(request: Request) -> bool:
        """The scrape token (compared in constant time), or an admin's own token."""
        authorization = request.headers.get("Authorization", "")
        if scrape_token is not None and authorization.startswith("Bearer "):
            given = authorization.removeprefix("Bearer ").strip().encode()
            if hmac.compare_digest(given, scrape_token.encode()):
                return True
        user = hub.users.authenticate(authorization)
        return user is not None and user.role is Role.ADMIN

    class MetricsPage(View):
        """``GET /metrics``: Prometheus exposition of the hub's counters, for scrapers."""

        async def get(self, request: Request) -> Response:
            if not may_scrape(request):
                return problem(
                    self, 401, "the metrics scrape token (or an admin token) is required"
                )
            return self.bytes(
                hub.metrics.exposition(),
                content_type=CONTENT_TYPE_LATEST.split(";")[0],
            )

    class HealthPage(View):
        """``GET /v1/health``: 200 once this worker has its partitions and every agent runs.

        Anyone may ask, and learns only ok, starting or failed; an admin also learns which
        agents crashed and which stages stalled (and the error class), which name internals.
        """

        async def get(self, request: Request) -> Response:
            crashed, stalled = hub.crashed_agents(), hub.health.stalled
            if crashed or stalled:
                status, code = "failed", 503
            elif not _assigned(hub) or hub.app.rebalancing:
                status, code = "starting", 503
            else:
                status, code = "ok", 200
            body: dict[str, Any] = {"status": status}
            user = hub.users.authenticate(request.headers.get("Authorization"))
            if user is not None and user.role is Role.ADMIN:
                body.update(crashed_agents=crashed, stalled_stages=stalled)
            return self.json(body, status=code)

    app.page("/v1/partners/status")(PlaceStatusPage)
    app.page("/v1/partners/{partner_id}/status")(PartnerStatusPage)
    app.page("/v1/_books")(AllBooksPage)
    app.page("/v1/_books/{partner_id}")(BooksPage)
    app.page("/v1/_webhooks")(AllWebhooksSharePage)
    app.page("/v1/_webhooks/{partner_id}")(WebhookSharePage)
    app.page("/metrics")(MetricsPage)
    app.page("/v1/health")(HealthPage)


def _assigned(hub: Hub) -> bool:
    """Whether the worker has partitions; false, not an error, while its consumer thread
    is still starting (health is asked from the first moment the web server answers)."""
    try:
        return bool(hub.app.consumer.assignment())
    except ConsumerNotStarted:
        return False

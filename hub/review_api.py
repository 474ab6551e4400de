"""``GET /v1/identity/reviews``: joins identity refused to make, for admins to look at.

A join that would give one person two NHS numbers is listed (``hub.stages.review``) rather
than merged. Admins see what kind of evidence asked for it, which partner, when, and the
identifier schemes involved; never the tokens or the people.
"""

from __future__ import annotations

from faust.web import Request, Response, View

from hub._http import problem
from hub.app import Hub
from hub.routing import caller
from hub.users import Role

__all__ = ["install_review_api"]


def install_review_api(hub: Hub) -> None:
    """Add the review list to the hub's Faust web server."""

    class ReviewsPage(View):
        """``GET /v1/identity/reviews``: the refused joins (admins only)."""

        async def get(self, request: Request) -> Response:
            user = caller(hub, request)
            if user is None:
                return problem(self, 401, "a valid bearer token is required")
            if user.role is not Role.ADMIN:
                return problem(self, 403, "only admins may list identity reviews")
            rows = [
                {
                    "review_id": key,
                    "kind": row["kind"],
                    "partner": row["partner"],
                    "at": row["at"],
                    "schemes": sorted(token.split(":", 1)[0] for token in row["tokens"]),
                }
                for key, row in sorted(hub.identity_review.items(), key=lambda kv: kv[1]["at"])
                if row
            ]
            return self.json({"reviews": rows, "count": len(rows)})

    hub.app.page("/v1/identity/reviews")(ReviewsPage)

"""Joins identity refuses to make are listed to admins, without tokens."""

from __future__ import annotations

from tests.integration.helpers import WorkerProcess
from tests.integration.test_stream_core import publish_link, wait_until

NHS, OTHER_NHS = "943 476 5919", "401 023 2137"


def test_a_link_joining_two_nhs_numbers_is_listed_for_admins_only(worker: WorkerProcess) -> None:
    publish_link(worker.settings, "council-housing", "l-1", ("nhs", NHS), ("nhs", OTHER_NHS))

    def reviews() -> list[dict[str, object]]:
        reply = worker.get("/v1/identity/reviews")  # the admin token
        assert reply.status_code == 200, reply.text
        rows: list[dict[str, object]] = reply.json()["reviews"]
        return rows

    wait_until(lambda: len(reviews()) == 1)
    (row,) = reviews()
    assert (row["kind"], row["partner"], row["schemes"]) == ("link", "council-housing", ["nhs"] * 2)
    assert "nhs:" not in str(row)  # no token leaves the hub this way
    assert worker.get("/v1/identity/reviews", token="demo-practitioner-housing").status_code == 403
    assert worker.get("/v1/identity/reviews", token=None).status_code == 401

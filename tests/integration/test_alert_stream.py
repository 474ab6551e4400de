"""The live alert stream on the real broker: an alert reaches the stream of a practitioner
whose organisation is told of it, exactly as the inbox shows it, and no other; a stream
resumed with its Last-Event-ID gets what it missed and not what it had; an erasure reaches
the stream; a worker with a stream open stops promptly; with two workers, each streams the
alerts whose rows the other holds."""

from __future__ import annotations

import json
import random
import re
import signal
import subprocess

from connectors.simulate import synthetic_nhs_number
from tests.integration.conftest import WorkerFactory
from tests.integration.helpers import free_port
from tests.integration.sse import SseClient, SseEvent
from tests.integration.test_alerts import (
    HOUSING_PRACTITIONER,
    SCHOOL_PRACTITIONER,
    alerts_on_topic,
    inbox,
    publish_three_domains,
    publish_under_consent,
    withdraw_consent,
)
from tests.integration.test_stream_core import wait_until

STREAM = "/v1/alerts/stream"


def alerts_in(events: list[SseEvent]) -> list[dict[str, object]]:
    return [json.loads(e.data) for e in events if e.event == "alert"]


def test_alerts_reach_the_streams_of_those_told_resumably_and_erasures_follow(
    make_worker: WorkerFactory,
) -> None:
    worker = make_worker()
    s = worker.settings
    url = f"{worker.url}{STREAM}"
    live = SseClient(url, HOUSING_PRACTITIONER)
    assert (live.status, live.content_type) == (200, "text/event-stream")
    live.caught_up()  # subscribed: nothing published from here on can be missed

    a = publish_three_domains(s)
    events = live.wait_for(lambda es: alerts_in(es), "an alert")
    [shown] = alerts_in(events)
    assert shown["person_id"] == a
    assert [shown] == inbox(worker, HOUSING_PRACTITIONER)  # exactly as the inbox shows it
    had = next(e.id for e in events if e.event == "alert")
    live.close()

    # Person B, while housing's stream is closed: the school named is not northfield.
    b = publish_under_consent(s)

    def raised() -> set[str]:
        return {x.person_id for x in alerts_on_topic(worker).values() if x is not None}

    wait_until(lambda: b in raised(), describe=raised)

    # Resumed from the last id it had: B, which it missed, and not A, which it had.
    resumed = SseClient(url, HOUSING_PRACTITIONER, last_event_id=had)
    assert [x["person_id"] for x in alerts_in(resumed.caught_up())] == [b]
    # The school, from the start of the topic: told of A, not of B.
    start = ".".join("0" * s.partitions)
    school_stream = SseClient(url, SCHOOL_PRACTITIONER, last_event_id=start)
    assert [x["person_id"] for x in alerts_in(school_stream.caught_up())] == [a]
    school_stream.close()

    # B's consent withdrawn: its alert is erased, and the stream says so.
    b_alert = next(x for x in inbox(worker, HOUSING_PRACTITIONER) if x["person_id"] == b)
    withdraw_consent(s)
    erased = resumed.wait_for(lambda es: any(e.event == "erased" for e in es), "an erasure")
    # The resumed stream is open (those the client closed count until a ping finds them gone).
    metrics = worker.get("/metrics", token="demo-admin").text
    open_streams = re.search(r"^placehub_alert_streams (\S+)$", metrics, re.MULTILINE)
    assert open_streams is not None and 1 <= float(open_streams.group(1)) <= 3
    assert [json.loads(e.data) for e in erased if e.event == "erased"] == [
        {"alert_id": b_alert["alert_id"]}
    ]

    # A worker stopping ends its open streams rather than waiting for them (aiohttp would
    # wait 60 s for a handler that does not end).
    assert worker.process is not None
    worker.process.send_signal(signal.SIGTERM)
    try:
        worker.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        raise AssertionError("the worker did not stop with a stream open") from None
    resumed.close()


def test_each_of_two_workers_streams_alerts_whose_rows_the_other_holds(
    make_worker: WorkerFactory,
) -> None:
    first = make_worker()
    second = make_worker(web_port=free_port(), state_dir=first.settings.state_dir.parent / "w2")
    for worker in (first, second):  # the group has settled: each answers with the other's share
        worker.wait_for("/v1/alerts", lambda r: r.status_code == 200, token=HOUSING_PRACTITIONER)
    # Each like a browser: should a row not be had (a rebalance), it resumes from its id.
    streams = [
        SseClient(f"{w.url}{STREAM}", HOUSING_PRACTITIONER, reconnect=True) for w in (first, second)
    ]
    for stream in streams:
        stream.caught_up()
    rng = random.Random(5)
    # Eight people: each worker holds about half of the alerts table's partitions, so each
    # stream shows alerts whose rows only the other worker has.
    people = {publish_three_domains(first.settings, synthetic_nhs_number(rng)) for _ in range(8)}
    for stream in streams:
        stream.wait_for(
            lambda es: {x["person_id"] for x in alerts_in(es)} >= people, "every person's alert"
        )
    expected = {x["alert_id"]: x for x in inbox(first, HOUSING_PRACTITIONER)}
    for stream in streams:
        shown = alerts_in(stream.events)
        assert {x["person_id"] for x in shown} == people
        for item in shown:
            assert item == expected[item["alert_id"]]
        stream.close()


def test_the_stream_refuses_who_may_not_read_alerts_and_a_bad_last_event_id(
    make_worker: WorkerFactory,
) -> None:
    worker = make_worker()
    url = f"{worker.url}{STREAM}"
    assert SseClient(url, None).status == 401
    assert SseClient(url, "demo-steward").status == 403
    for bad in ("12", "x.y.z", "-1." * 2, "9" * 40):
        refused = SseClient(url, HOUSING_PRACTITIONER, last_event_id=bad)
        assert refused.status == 400
        reply = refused.reply.json()
        assert reply["title"].startswith("Last-Event-ID: ")
        assert bad not in reply["title"]

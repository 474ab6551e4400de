"""Faust's aiokafka transport, with the consumer's fetch wait a setting.

aiokafka keeps one fetch in flight per broker, asking only for the partitions that had
nothing buffered when it was built, and Faust's driver hard-codes that fetch to wait up
to 1,500 ms for data. A partition that drains in the meantime (an internal hop's topic,
typically: identity or view) is not fetched again until that request returns, so a
batch could sit for up to 1.5 s between two stages while the worker idled. A short wait
(``Settings.fetch_max_wait_ms``) bounds that stall; the price is more fetch requests
when the hub is idle.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.transport.drivers import aiokafka as driver
from faust.types import TransportT

__all__ = ["HubApp"]


class _ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # AIOKafkaConsumer hands this to its Fetcher when it starts (after this returns).
        consumer._fetch_max_wait_ms = getattr(self.app, "fetch_max_wait_ms", 1500)
        return consumer


class _Consumer(driver.Consumer):
    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _Transport(driver.Transport):
    Consumer = _Consumer


class HubApp(faust.App):
    """A Faust app whose consumer waits at most ``fetch_max_wait_ms`` per fetch."""

    def __init__(self, *args: Any, fetch_max_wait_ms: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fetch_max_wait_ms = fetch_max_wait_ms

    def _new_transport(self) -> TransportT:
        return _Transport(self.conf.broker_consumer, self)

"""A place that turns the patterns off (``Settings.patterns_enabled``): the view sends no
timelines to the patterns stages, and still sends them to the alerts."""

from __future__ import annotations

import dataclasses

from hub.alerts import load_rules
from hub.config import PROJECT_ROOT
from hub.models import HealthEvent, HealthKind
from hub.stages.view import ViewStage
from tests.unit import factories
from tests.unit.test_stages import CTX, PERSON, event_item, items_on, run, view_record

RULES = load_rules(PROJECT_ROOT / "deploy" / "local" / "alerts")


def test_the_view_sends_timelines_to_the_patterns_only_when_they_are_on() -> None:
    event = factories.event(payload=HealthEvent(kind=HealthKind.AE_ATTENDANCE))
    on = dataclasses.replace(CTX, rules=RULES)
    off = dataclasses.replace(on, patterns=False)
    effects, _ = run(ViewStage(on), [view_record([event_item(event, "s1")])])
    (sent,) = items_on(effects, CTX.internal.patterns)
    assert sent.key == PERSON
    effects, _ = run(ViewStage(off), [view_record([event_item(event, "s1")])])
    assert items_on(effects, CTX.internal.patterns) == []
    assert [item.key for item in items_on(effects, CTX.internal.alerts)] == [PERSON]

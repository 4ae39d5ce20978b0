"""The docs that derive from code are current, and stored event classes are permanent."""

from __future__ import annotations

from pathlib import Path

from eventsourcing.utils import resolve_topic

from anxin.docs import all_topics, generated

REGISTER = Path(__file__).resolve().parents[1] / "event_topics.txt"


def test_the_event_catalogue_and_permission_table_match_the_code() -> None:
    # when the docs are generated from the code, then they equal the committed files
    for path, text in generated().items():
        assert path.read_text(encoding="utf-8") == text, f"{path.name} is stale: run python -m anxin.docs"


def registered_topics() -> list[str]:
    return [t.strip() for t in REGISTER.read_text().splitlines() if t.strip() and not t.startswith("#")]


def test_every_event_topic_ever_stored_still_resolves_to_its_class() -> None:
    # given the register of every topic ever stored; then each one still resolves
    for topic in registered_topics():
        resolve_topic(topic)


def test_every_current_event_class_is_in_the_permanent_register() -> None:
    # a new event class must be added to the register, so it can never silently go away
    missing = sorted(set(all_topics()) - set(registered_topics()))
    assert missing == [], f"add to tests/event_topics.txt: {missing}"

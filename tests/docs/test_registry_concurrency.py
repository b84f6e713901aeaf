"""A question asked at the instant the doc is decided, on two connections: either the
question lands first and the decision is refused, or the decision lands first and the
question is refused; never a decided doc with an unanswered question.

On PostgreSQL the doc row is locked (FOR UPDATE) by both; on SQLite writers are
serialised by BEGIN IMMEDIATE."""

from __future__ import annotations

import threading

from mechanisms.core.context import Ctx
from mechanisms.core.errors import Conflict
from mechanisms.docs import registry, reviews
from mechanisms.docs.registry import NewDoc
from tests.docs.conftest import BODY


def test_a_question_and_a_decision_at_the_same_instant(db, run, clock, team, as_user):
    slug = run(registry.create, NewDoc(title="Cache", body=BODY), as_=as_user("eve")).slug
    run(registry.submit, slug, as_=as_user("eve"))
    barrier = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def act(name, principal, fn):
        try:
            with db.transaction() as session:
                ctx = Ctx(session, principal, clock.now())
                barrier.wait(timeout=10)
                fn(ctx)
            outcomes[name] = "done"
        except Conflict as exc:
            outcomes[name] = exc.code
        except BaseException as exc:  # noqa: BLE001 - reported below
            outcomes[name] = repr(exc)

    threads = [
        threading.Thread(
            target=act,
            args=(
                "decide",
                as_user("eve"),
                lambda ctx: registry.decide(ctx, slug, "accepted", "two_way"),
            ),
        ),
        threading.Thread(
            target=act,
            args=(
                "ask",
                as_user("rex"),
                lambda ctx: reviews.comment(ctx, slug, "question", "Why?", 2),
            ),
        ),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert outcomes in (
        {"decide": "done", "ask": "invalid_transition"},
        {"decide": "decision_blocked", "ask": "done"},
    ), outcomes
    doc = run(registry.get, slug)
    blockers = run(lambda ctx: reviews.blockers(ctx, registry.get(ctx, slug)))
    assert doc.status == "in_review" or not [b for b in blockers if b.code == "unanswered_question"]

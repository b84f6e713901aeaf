"""The docs part of the demo organisation: decision docs in every status.

- *Cache the catalog in checkout* (erin) is in review: sam's question is unanswered and
  lena, a required reviewer, has not reviewed, so it cannot be decided yet.
- *Use PostgreSQL for scale-out* (evan) was accepted (a one-way door) after sam's question
  was answered and oliver reviewed with no questions; it authorised the search deploys.
- *Weekly on-call rotation* (lena) was accepted, then superseded by *Follow-the-sun
  on-call*, which its review meeting read together.
- *Shard the search index* (sam) is a draft; *Drop the legacy payments API* was rejected.
- A shelf of older accepted decisions, so that this week's reading loads differ: lena
  (reading in Berlin time) above the 7–9 norm, oliver within it, the others below.
"""

from __future__ import annotations

from datetime import timedelta

# The docs link flags and deploys of those demos: importing them first registers their
# demo data first, so it exists when the docs' is written.
# isort: off
import mechanisms.flags.demo  # noqa: F401
import mechanisms.ops.demo  # noqa: F401
import mechanisms.deploys.demo  # noqa: F401

# isort: on
from mechanisms.core.context import Ctx
from mechanisms.demo import acting_as, extend
from mechanisms.docs import reading, registry, reviews
from mechanisms.docs.document import DEFAULT_TEMPLATE
from mechanisms.docs.registry import NewDoc


def _body(
    title: str, why: str, components: str, alternative: str, impact: str, decision: str
) -> str:
    return (
        f"# {title}\n\n## Why now\n\n{why}\n\n## Components affected and how\n\n{components}\n\n"
        f"## Alternatives considered\n\n{alternative}\n\n## Customer impact\n\n{impact}\n\n"
        f"## Decision\n\n{decision}\n"
    )


CACHE = _body(
    "Cache the catalog in checkout",
    "Checkout's p99 latency doubled during the autumn sale; every page load asks the catalog "
    "for prices, and the catalog is the slowest call we make.",
    "The checkout service gains a read-through cache of catalog prices with a 60-second "
    "lifetime. The catalog service is unchanged.",
    "Scaling the catalog database was discarded: it costs four times as much and fixes only "
    "the read path. A CDN was discarded: prices are per customer.",
    "Checkout pages load in about half the time. A price change reaches checkout within a minute.",
    "We cache prices in checkout. This is a two-way door: the cache sits behind a flag.",
)
POSTGRES = _body(
    "Use PostgreSQL for scale-out",
    "The search team needs three replicas of the API for the holiday peak; SQLite serves one.",
    "Storage moves to PostgreSQL behind the same SQLAlchemy models; migrations run on both.",
    "A managed key-value store was discarded: our audit chain needs transactions.",
    "None during the move; afterwards the API survives a replica's loss.",
    "We adopt PostgreSQL for every deployment above one replica. A one-way door.",
)
WEEKLY = _body(
    "Weekly on-call rotation",
    "Two people carry every page; both are tired.",
    "Every engineer joins the rotation; a shift is one week.",
    "Daily shifts were discarded: too many handovers.",
    "Pages are answered by a rested person.",
    "Weekly rotation for every team. A two-way door.",
)
FOLLOW_THE_SUN = _body(
    "Follow-the-sun on-call",
    "We now have engineers in Berlin and in Austin; nobody needs to be paged at night.",
    "Shifts follow office hours: Berlin by day, Austin by its day.",
    "Keeping weekly shifts was discarded: night pages remain.",
    "Pages are answered within minutes, day or night, by someone awake.",
    "Follow-the-sun replaces the weekly rotation. A two-way door.",
)
SHELF = [
    ("Adopt Markdown decision docs", "docs"),
    ("Two-person rule for break-glass", "deploys"),
    ("Block production deploys on weekends", "deploys"),
    ("Alarms roll back the change that caused them", "ops"),
    ("Every launch behind a feature flag", "flags"),
    ("Per-minute metric rollups", "ops"),
    ("Integration tests gate every promotion", "deploys"),
]


@extend
def seed_docs(ctx: Ctx) -> None:
    now = ctx.now
    days_ago = lambda n: now - timedelta(days=n)  # noqa: E731

    def as_(who: str, at=None) -> Ctx:
        return acting_as(ctx, who, at or now)

    # The older shelf, decided weeks ago.
    shelf = []
    for i, (title, tag) in enumerate(SHELF):
        then = days_ago(60 - i)
        doc = registry.create(
            as_("evan", then),
            NewDoc(title=title, body=DEFAULT_TEMPLATE.replace("{title}", title), tags=[tag, "adr"]),
        )
        registry.submit(as_("evan", then), doc.slug)
        registry.decide(as_("evan", then), doc.slug, "accepted", "two_way")
        shelf.append(doc.slug)

    # Accepted after a question was answered and resolved; authorised the search deploys.
    pg = registry.create(
        as_("evan", days_ago(20)),
        NewDoc(
            title="Use PostgreSQL for scale-out",
            body=POSTGRES,
            team="platform",
            reviewers=["oliver", "sam"],
            tags=["storage", "adr"],
            links=[("deploy", "search"), ("roadmap", "RM-42 holiday peak")],
        ),
    )
    registry.submit(as_("evan", days_ago(19)), pg.slug)
    q = reviews.comment(
        as_("sam", days_ago(18)), pg.slug, "question", "Do migrations lock the audit table?", 4
    )
    reviews.answer(
        as_("evan", days_ago(18)), q.id, "No: they run under an advisory lock and add columns only."
    )
    reviews.resolve(as_("sam", days_ago(17)), q.id)
    reviews.review(as_("oliver", days_ago(17)), pg.slug, no_questions=True)
    registry.decide(
        as_("evan", days_ago(16)),
        pg.slug,
        "accepted",
        "one_way",
        "Reviewed by platform and search.",
    )

    # Superseded by its successor, which a review meeting read together.
    weekly = registry.create(
        as_("lena", days_ago(40)),
        NewDoc(title="Weekly on-call rotation", body=WEEKLY, team="payments", tags=["oncall"]),
    )
    registry.submit(as_("lena", days_ago(40)), weekly.slug)
    registry.decide(as_("lena", days_ago(39)), weekly.slug, "accepted", "two_way")
    sun = registry.create(
        as_("lena", days_ago(3)),
        NewDoc(
            title="Follow-the-sun on-call",
            body=FOLLOW_THE_SUN,
            team="payments",
            reviewers=["erin"],
            tags=["oncall"],
        ),
    )
    registry.submit(as_("lena", days_ago(3)), sun.slug)
    meeting = reading.start_meeting(as_("lena", days_ago(2)), sun.slug)
    reading.finish_reading(as_("erin", days_ago(2) + timedelta(minutes=5)), meeting.id)
    reviews.review(as_("erin", days_ago(2) + timedelta(minutes=20)), sun.slug, no_questions=True)
    reading.end_meeting(as_("lena", days_ago(2) + timedelta(minutes=30)), meeting.id)
    registry.decide(as_("lena", days_ago(1)), sun.slug, "accepted", "two_way")
    registry.supersede(
        as_("lena", days_ago(1)), weekly.slug, sun.slug, "Berlin and Austin share the pager."
    )

    # In review and blocked: an unanswered question and a missing review.
    cache = registry.create(
        as_("erin", days_ago(2)),
        NewDoc(
            title="Cache the catalog in checkout",
            body=CACHE,
            team="payments",
            owners=["erin", "lena"],
            reviewers=["lena", "sam"],
            tags=["checkout", "performance"],
            links=[("flag", "shop/checkout-v2"), ("deploy", "checkout")],
        ),
    )
    registry.submit(as_("erin", days_ago(2)), cache.slug)
    reviews.comment(
        as_("sam", days_ago(1)),
        cache.slug,
        "question",
        "What happens to a price change during the 60 seconds?",
        4,
    )
    reviews.comment(
        as_("oliver", days_ago(1)),
        cache.slug,
        "concern",
        "Measure the hit rate before the sale.",
        6,
    )

    # A draft and a rejected doc.
    registry.create(
        as_("sam", days_ago(1)),
        NewDoc(title="Shard the search index", team="search", reviewers=["evan"], tags=["search"]),
    )
    legacy = registry.create(
        as_("erin", days_ago(30)),
        NewDoc(
            title="Drop the legacy payments API",
            body=DEFAULT_TEMPLATE.replace("{title}", "Drop the legacy payments API"),
            team="payments",
            tags=["payments"],
        ),
    )
    registry.submit(as_("erin", days_ago(30)), legacy.slug)
    registry.decide(
        as_("lena", days_ago(28)), legacy.slug, "rejected", None, "Three merchants still call it."
    )

    # Reading weeks in people's own zones; this week's reading: lena above the norm,
    # oliver within it, the others below.
    reading.set_zone(as_("lena"), "Europe/Berlin")
    reading.set_zone(as_("sam"), "America/New_York")
    everything = [*shelf, pg.slug, weekly.slug, sun.slug, cache.slug]
    plan = {"lena": 11, "oliver": 8, "sam": 5, "evan": 3, "erin": 2, "alice": 1}
    for who, count in plan.items():
        for slug in everything[:count]:
            reading.record_read(as_(who), slug)

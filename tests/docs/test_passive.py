"""Passive voice: the hard cases one by one, then the whole labelled set.

The labelled set (benchmarks/data/passive_sentences.tsv) is the truth; the floor below is
what the finder reached on it, less a small margin, so a change that makes it worse on
the set fails here, without node or timing (write-good's figures are in the benchmark).
"""

from __future__ import annotations

import pytest
from benchmarks.docs_sets import passive_sentences, score_sentences

from mechanisms.docs.passive import find_passive, is_participle

# Reached: F1 0.983 on all 558 sentences, 0.982 on the 110 held-out ones (0.966 on the
# 60 of the second held-out part).
F1_FLOOR = 0.97
HELDOUT_F1_FLOOR = 0.96


def found(text: str) -> list[str]:
    return [span.text for span in find_passive(text)]


@pytest.mark.parametrize(
    ("text", "spans"),
    [
        # Plain, with and without an agent.
        ("The migration was reviewed by two engineers.", ["was reviewed"]),
        ("Every request is logged.", ["is logged"]),
        # Irregular participles, including ones spelled like their base form.
        ("The config is written in YAML.", ["is written"]),
        ("The default is set to three retries.", ["is set"]),
        ("The job is run every five minutes.", ["is run"]),
        # Words between the auxiliary and the participle.
        ("The bug was quickly fixed.", ["was quickly fixed"]),
        ("The feature was never announced.", ["was never announced"]),
        ("The deploy was, in the end, rolled back.", ["was, in the end, rolled"]),
        ("The pages are all served from one process.", ["are all served"]),
        # Negation and contractions.
        ("The change wasn't reviewed.", ["wasn't reviewed"]),
        ("The change wasn’t reviewed.", ["wasn’t reviewed"]),
        ("These errors aren't counted.", ["aren't counted"]),
        ("It's stored in a single row.", ["'s stored"]),
        ("They're paid by the hour.", ["'re paid"]),
        ("I'm paged for every failed backup.", ["'m paged"]),
        ("That's been fixed.", ["'s been fixed"]),
        # Progressive, perfect, modal, infinitive and gerund passives.
        ("The service is being deployed.", ["is being deployed"]),
        ("The incident has been resolved.", ["been resolved"]),
        ("It will have been deployed by then.", ["been deployed"]),
        ("The change should be reviewed.", ["be reviewed"]),
        ("Secrets should never be shared.", ["be shared"]),
        ("The design needs to be approved.", ["be approved"]),
        ("Nobody likes being paged at night.", ["being paged"]),
        # Get-passives.
        ("He got fired after the outage.", ["got fired"]),
        ("Our staging database gets wiped every night.", ["gets wiped"]),
        ("Our proposal is getting reviewed.", ["getting reviewed"]),
        # Questions: the subject stands between.
        ("Was the bug fixed?", ["Was the bug fixed"]),
        ("Why was the deploy rolled back?", ["was the deploy rolled"]),
        ("Is this endpoint used by any customer?", ["Is this endpoint used"]),
        ("Has the migration been reviewed yet?", ["been reviewed"]),
        # Hyphenated verbs with a prefix.
        ("The client is auto-generated from the schema.", ["is auto-generated"]),
        # An agent turns a feeling or a state into a passive.
        ("The team was surprised by the size of the bill.", ["was surprised"]),
        ("The door is locked by the last person out.", ["is locked"]),
        ("That old library is used to gate the rollout.", ["is used"]),
        # After a closed quote, the author's own words again.
        ('It says "done". The key was revoked.', ["was revoked"]),
        # Two in one text.
        ("The key was stolen. It was revoked.", ["was stolen", "was revoked"]),
    ],
)
def test_passives_are_found(text: str, spans: list[str]) -> None:
    assert found(text) == spans


@pytest.mark.parametrize(
    "text",
    [
        # Adjectives from participles: feelings and states.
        "The team is tired after the launch.",
        "I am interested in the new design.",
        "She is worried that the deadline is too early.",
        "The office is closed on Sundays.",
        "The build is broken.",
        "Two tasks are left.",
        "The token is expired.",
        "Our team is committed to reliability.",
        "The incident is related to the DNS change.",
        # A degree adverb makes it an adjective.
        "He was very tired after the incident.",
        "They were too scared to touch the billing code.",
        # Words in -ed that are not participles.
        "The light on the panel is red.",
        "The cat's favourite place is bed.",
        "The bottleneck is speed, not memory.",
        "The tree was naked after the storm.",
        "That old library is beloved by its users.",
        "The driver on call tonight is Ted.",
        "The laptop is old-fashioned but reliable.",
        "This module is undocumented and untested.",
        # "has been" + an adjective; intransitive verbs.
        "The light has been red since midnight.",
        "The team has been tired for weeks.",
        "The keys are gone.",
        # Semi-modals.
        "We are used to deploying on Fridays.",
        "The service is supposed to restart by itself.",
        "This approach is bound to fail.",
        # Get idioms and the causative.
        "Let's get started with the agenda.",
        "We got lost in the details.",
        "She got the pull request reviewed before lunch.",
        # Participles without be or get.
        "The bug reported last week is still open.",
        "The build seems broken.",
        "The problem became known in April.",
        # Active voice, possessives, questions without a participle.
        "The team has deployed the service.",
        "The team's tired engineers went home.",
        "Is the new format worth the migration?",
        # Not English prose.
        "if (was_deployed && is_cached) { return null; }",
        "https://example.com/was/fixed/is-deployed?id=42",
        "--was-merged --is-enabled",
        "El servicio fue reiniciado anoche.",
        # Quoted: mentioned or cited, not the author's own words.
        'write-good misses "was quickly fixed" and "got fired".',
        "The customer wrote: “the data was lost”.",
        "",
    ],
)
def test_not_passive(text: str) -> None:
    assert found(text) == []


def test_span_is_the_text_it_points_at() -> None:
    text = "First line.\nThe build was\n  quickly cancelled, and nothing was lost."
    spans = find_passive(text)
    assert [s.text for s in spans] == ["was\n  quickly cancelled", "was lost"]
    assert all(text[s.start : s.end] == s.text for s in spans)


def test_a_chain_of_auxiliaries_is_one_span() -> None:
    assert found("It is being built and will have been shipped.") == [
        "is being built",
        "been shipped",
    ]


@pytest.mark.parametrize(
    ("word", "participle"),
    [
        ("fixed", True),
        ("written", True),
        ("agreed", True),
        ("unlocked", True),
        ("re-deployed", True),
        ("need", False),
        ("speed", False),
        ("red", False),
        ("untested", False),
        ("one-sided", False),
        ("gone", False),
        ("expired", False),
    ],
)
def test_participles(word: str, participle: bool) -> None:
    assert is_participle(word) is participle


def test_labelled_set_stays_above_the_reached_figures() -> None:
    items = passive_sentences()
    assert len(items) >= 300
    positives = sum(s.passive for s in items)
    assert 0.4 <= positives / len(items) <= 0.6  # both classes roughly balanced
    score = score_sentences([s.passive for s in items], [bool(find_passive(s.text)) for s in items])
    assert score.f1 >= F1_FLOOR, score
    assert score.precision >= F1_FLOOR and score.recall >= F1_FLOOR, score
    heldout = [s for s in items if s.split == "heldout"]
    held = score_sentences(
        [s.passive for s in heldout], [bool(find_passive(s.text)) for s in heldout]
    )
    assert held.f1 >= HELDOUT_F1_FLOOR, held


def test_quotes_across_lines_of_a_long_list_with_its_markers_blanked() -> None:
    # The rule engine blanks Markdown's list markers; the list is longer than the finder
    # looks back for a paragraph's start, so the sentence bounds the quotes.
    items = "    A short item that says nothing much.\n" * 20
    text = (
        items + '    A result is an adjective ("the door is locked", "the\n'
        '    build is broken"), not after a past tense ("was locked",\n'
        '    "has been broken"). The key was revoked.\n'
    )
    assert found(text) == ["was revoked"]

"""The docs API end to end: create → comment → answer → review → decide, with strict
input, clear 4xx answers and nothing half-written."""

from __future__ import annotations

from mechanisms.core.tables import AuditRecord
from tests.docs.conftest import BODY


def _create(client, org, who="eve", **fields):
    payload = {"title": "Cache the checkout page", "body": BODY, **fields}
    response = client.post("/api/v1/docs", json=payload, headers=org.header(who))
    assert response.status_code == 201, response.text
    return response.json()


def test_comment_answer_review_decide_through_the_api(client, org):
    doc = _create(client, org, reviewers=["leo"], owners=["eve"], tags=["checkout"])
    slug, eve, leo = doc["slug"], org.header("eve"), org.header("leo")
    assert doc["status"] == "draft" and doc["actions"] == ["submit"]
    assert client.post(f"/api/v1/docs/{slug}/submit", headers=eve).json()["status"] == "in_review"
    q = client.post(
        f"/api/v1/docs/{slug}/comments",
        json={"kind": "question", "body": "Hit rate?", "paragraph": 2},
        headers=leo,
    ).json()
    assert q["quote"].startswith("Checkout latency") and q["state"] == "open"
    refused = client.post(
        f"/api/v1/docs/{slug}/decide", json={"outcome": "accepted", "door": "two_way"}, headers=eve
    )
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "decision_blocked"
    assert [r["code"] for r in refused.json()["error"]["details"]["reasons"]] == [
        "unanswered_question"
    ]
    answered = client.post(
        f"/api/v1/docs/comments/{q['id']}/answer", json={"body": "90 %"}, headers=eve
    )
    assert answered.status_code == 201
    assert client.get(f"/api/v1/docs/{slug}/blockers", headers=eve).json() == []
    decided = client.post(
        f"/api/v1/docs/{slug}/decide", json={"outcome": "accepted", "door": "two_way"}, headers=eve
    )
    assert decided.status_code == 200 and decided.json()["status"] == "accepted"
    threads = client.get(f"/api/v1/docs/{slug}/comments", headers=org.header("vic")).json()
    assert threads[0]["state"] == "answered" and threads[0]["replies"][0]["kind"] == "answer"
    found = client.get(
        "/api/v1/docs",
        params={"q": "catalog cache", "status": "accepted"},
        headers=org.header("vic"),
    )
    assert [d["slug"] for d in found.json()] == [slug] and found.json()[0]["score"] > 0


def test_bad_input_is_a_clear_4xx_and_writes_nothing(client, org, db):
    eve = org.header("eve")
    cases = [
        ({"title": "x", "body": "a\u0000b"}, 422),
        ({"title": "x", "template": "no sections here"}, 422),
        ({"title": "x", "owners": ["nobody"]}, 422),
        ({"title": "x", "links": [{"kind": "deploy", "ref": "ghost"}]}, 422),
        ({"title": "x", "unknown": 1}, 422),
        ({"title": 5}, 422),
    ]
    for payload, status in cases:
        response = client.post("/api/v1/docs", json=payload, headers=eve)
        assert response.status_code == status, (payload, response.text)
        assert set(response.json()) == {"error"}
    huge = client.post("/api/v1/docs", json={"title": "x", "body": "w " * 40_000}, headers=eve)
    assert huge.status_code == 413
    bad = client.post(
        "/api/v1/docs/upload?path=x.md",
        content=b"# Caf\xe9",
        headers={**eve, "content-type": "text/markdown"},
    )
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "not_utf8"
    _create(client, org, slug="cache")
    dup = client.post("/api/v1/docs", json={"title": "y", "slug": "cache"}, headers=eve)
    assert dup.status_code == 409 and dup.json()["error"]["code"] == "duplicate_slug"
    wrong = client.post("/api/v1/docs/cache/withdraw", headers=eve)
    assert wrong.status_code == 409 and wrong.json()["error"]["details"]["allowed"] == ["submit"]
    assert client.get("/api/v1/docs", params={"status": "maybe"}, headers=eve).status_code == 422
    with db.transaction(write=False) as session:
        created = session.query(AuditRecord).filter(AuditRecord.action == "docs.created").count()
    assert created == 1


def test_upload_sync_versions_and_diff(client, org):
    eve = org.header("eve")
    file = "---\nid: adr-7\ntitle: Weekly on-call\ntags: [oncall]\n---\n# Weekly on-call\n\nRotate weekly.\n"
    up = client.post(
        "/api/v1/docs/upload?path=adr/7.md",
        content=file.encode(),
        headers={**eve, "content-type": "text/markdown"},
    )
    assert up.status_code == 200 and up.json()["outcome"] == "created"
    same = client.post(
        "/api/v1/docs/sync", json={"files": [{"path": "adr/7.md", "content": file}]}, headers=eve
    )
    assert same.json() == {"created": [], "updated": [], "unchanged": ["weekly-on-call"]}
    changed = file.replace("Rotate weekly.", "Rotate every two weeks.")
    assert client.post(
        "/api/v1/docs/sync", json={"files": [{"path": "adr/7.md", "content": changed}]}, headers=eve
    ).json()["updated"] == ["weekly-on-call"]
    diff = client.get("/api/v1/docs/weekly-on-call/diff?from=1", headers=eve).json()
    assert "-Rotate weekly." in diff["unified"] and "+Rotate every two weeks." in diff["unified"]
    assert [
        v["number"] for v in client.get("/api/v1/docs/weekly-on-call/versions", headers=eve).json()
    ] == [1, 2]


def test_a_viewer_reads_but_changes_nothing(client, org):
    slug = _create(client, org)["slug"]
    vic = org.header("vic")
    assert client.get(f"/api/v1/docs/{slug}", headers=vic).status_code == 200
    for path, body in [
        ("/api/v1/docs", {"title": "x"}),
        (f"/api/v1/docs/{slug}/submit", None),
        (f"/api/v1/docs/{slug}/comments", {"kind": "note", "body": "x"}),
        (f"/api/v1/docs/{slug}/meetings", None),
    ]:
        assert client.post(path, json=body, headers=vic).status_code == 403, path


def test_meeting_queue_and_load(client, org, clock):
    eve, leo = org.header("eve"), org.header("leo")
    slug = _create(client, org, reviewers=["leo"])["slug"]
    client.post(f"/api/v1/docs/{slug}/submit", headers=eve)
    queue = client.get("/api/v1/docs/queue", headers=leo).json()
    assert [d["slug"] for d in queue["to_review"]] == [slug]
    meeting = client.post(f"/api/v1/docs/{slug}/meetings", headers=eve).json()
    assert meeting["phase"] == "reading" and meeting["reading_seconds"] >= 60
    read = client.post(f"/api/v1/docs/meetings/{meeting['id']}/read", headers=leo).json()
    assert [a["username"] for a in read["attendees"]] == ["eve", "leo"]
    load = client.get("/api/v1/docs/load", headers=leo).json()
    assert (load["docs"], load["band"], load["norm"]) == (1, "below", [7, 9])
    client.post(f"/api/v1/docs/{slug}/reviews", json={"no_questions": True}, headers=leo)
    assert client.get("/api/v1/docs/queue", headers=leo).json()["to_review"] == []

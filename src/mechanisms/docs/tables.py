"""Tables of the docs registry and its reviews. Other modules use the services, never these.

A doc's text lives in its versions (immutable once written); the doc row holds where it
stands (status, current version) and the text its search index was built from. Storage,
anchoring, search and the status machine are decision 0016.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from mechanisms.core.db import Base, UTCDateTime


class Document(Base):
    """A decision doc: draft → in_review → accepted | rejected → superseded."""

    __tablename__ = "docs_documents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    # The stable id a synced Markdown file carries in its front matter (or its path).
    source_key: Mapped[str | None] = mapped_column(String(300), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    # draft | in_review | accepted | rejected | superseded
    status: Mapped[str] = mapped_column(String(16), index=True)
    # one_way | two_way, said when the doc is decided
    door: Mapped[str | None] = mapped_column(String(8))
    team: Mapped[str | None] = mapped_column(String(64))
    author: Mapped[str] = mapped_column(String(200), index=True)
    current_version: Mapped[int] = mapped_column(Integer, default=1)
    superseded_by_id: Mapped[int | None] = mapped_column(ForeignKey("docs_documents.id"))
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("docs_documents.id"))
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decision_note: Mapped[str] = mapped_column(Text, default="")
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer, default=0)

    __mapper_args__ = {"version_id_col": version}


class DocVersion(Base):
    """One version of a doc's Markdown body; never changed once written."""

    __tablename__ = "docs_versions"
    __table_args__ = (UniqueConstraint("doc_id", "number", name="uq_docs_versions_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    doc_id: Mapped[int] = mapped_column(ForeignKey("docs_documents.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    digest: Mapped[str] = mapped_column(String(64))
    words: Mapped[int] = mapped_column(Integer)
    reading_minutes: Mapped[float] = mapped_column(Float)
    note: Mapped[str] = mapped_column(String(2000), default="")
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class DocPerson(Base):
    """Who a doc involves: its owners and its required reviewers (the author is on the doc)."""

    __tablename__ = "docs_people"
    __table_args__ = (
        UniqueConstraint("doc_id", "username", "role", name="uq_docs_people_doc_id"),
        Index("ix_docs_people_username_role", "username", "role"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    doc_id: Mapped[int] = mapped_column(ForeignKey("docs_documents.id", ondelete="CASCADE"))
    username: Mapped[str] = mapped_column(String(64))
    # owner | reviewer
    role: Mapped[str] = mapped_column(String(16))


class DocTag(Base):
    __tablename__ = "docs_tags"
    __table_args__ = (UniqueConstraint("doc_id", "tag", name="uq_docs_tags_doc_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    doc_id: Mapped[int] = mapped_column(ForeignKey("docs_documents.id", ondelete="CASCADE"))
    tag: Mapped[str] = mapped_column(String(64), index=True)


class DocLink(Base):
    """What a decision authorised: a roadmap item, a flag rollout or a deploy."""

    __tablename__ = "docs_links"
    __table_args__ = (UniqueConstraint("doc_id", "kind", "ref", name="uq_docs_links_doc_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    doc_id: Mapped[int] = mapped_column(ForeignKey("docs_documents.id", ondelete="CASCADE"))
    # roadmap | flag | deploy
    kind: Mapped[str] = mapped_column(String(16))
    ref: Mapped[str] = mapped_column(String(300))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SearchTerm(Base):
    """The search index: how often each term occurs in a doc's title, tags and current body
    (decision 0016: one portable index, ranked the same way on SQLite and PostgreSQL)."""

    __tablename__ = "docs_search_terms"
    __table_args__ = (Index("ix_docs_search_terms_term", "term", "doc_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    doc_id: Mapped[int] = mapped_column(
        ForeignKey("docs_documents.id", ondelete="CASCADE"), index=True
    )
    term: Mapped[str] = mapped_column(String(64))
    weight: Mapped[float] = mapped_column(Float)


class Comment(Base):
    """A question, concern or note on one paragraph, or a reply to one (``parent_id``).

    The anchor is the paragraph's fingerprint, its text and its neighbours' fingerprints;
    each new version re-locates it (decision 0016) or marks it orphaned."""

    __tablename__ = "docs_comments"
    __table_args__ = (Index("ix_docs_comments_doc_parent", "doc_id", "parent_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    doc_id: Mapped[int] = mapped_column(ForeignKey("docs_documents.id", ondelete="CASCADE"))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("docs_comments.id"))
    # question | concern | note | reply | answer
    kind: Mapped[str] = mapped_column(String(16))
    body: Mapped[str] = mapped_column(Text)
    author: Mapped[str] = mapped_column(String(200), index=True)
    version_number: Mapped[int] = mapped_column(Integer)
    # The paragraph as the commenter saw it, and where the anchor stands now.
    quote: Mapped[str] = mapped_column(Text, default="")
    anchor_fingerprint: Mapped[str] = mapped_column(String(64), default="")
    anchor_text: Mapped[str] = mapped_column(Text, default="")
    anchor_before: Mapped[str] = mapped_column(String(64), default="")
    anchor_after: Mapped[str] = mapped_column(String(64), default="")
    paragraph: Mapped[int | None] = mapped_column(Integer)
    anchored_version: Mapped[int] = mapped_column(Integer)
    # exact | moved | changed | orphaned
    anchor_state: Mapped[str] = mapped_column(String(16), default="exact")
    # Questions: open → answered → resolved.
    state: Mapped[str] = mapped_column(String(16), default="open")
    answered_by: Mapped[str | None] = mapped_column(String(200))
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_by: Mapped[str | None] = mapped_column(String(200))
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Review(Base):
    """A reviewer's recorded review of a version: with questions, or explicitly none."""

    __tablename__ = "docs_reviews"
    __table_args__ = (Index("ix_docs_reviews_doc_reviewer", "doc_id", "reviewer"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    doc_id: Mapped[int] = mapped_column(ForeignKey("docs_documents.id", ondelete="CASCADE"))
    reviewer: Mapped[str] = mapped_column(String(64))
    version_number: Mapped[int] = mapped_column(Integer)
    no_questions: Mapped[bool] = mapped_column(Boolean)
    note: Mapped[str] = mapped_column(String(4000), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class Read(Base):
    """A person read a version of a doc (alone, or in a review meeting's silent reading)."""

    __tablename__ = "docs_reads"
    __table_args__ = (Index("ix_docs_reads_reader_at", "reader", "read_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    doc_id: Mapped[int] = mapped_column(ForeignKey("docs_documents.id", ondelete="CASCADE"))
    reader: Mapped[str] = mapped_column(String(64))
    version_number: Mapped[int] = mapped_column(Integer)
    meeting_id: Mapped[int | None] = mapped_column(
        ForeignKey("docs_meetings.id", ondelete="SET NULL")
    )
    read_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Meeting(Base):
    """A review meeting: silent reading sized by the doc's reading time, then comments."""

    __tablename__ = "docs_meetings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    doc_id: Mapped[int] = mapped_column(
        ForeignKey("docs_documents.id", ondelete="CASCADE"), index=True
    )
    version_number: Mapped[int] = mapped_column(Integer)
    started_by: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reading_seconds: Mapped[int] = mapped_column(Integer)
    reading_ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)


class Attendee(Base):
    __tablename__ = "docs_meeting_attendees"
    __table_args__ = (
        UniqueConstraint("meeting_id", "username", name="uq_docs_meeting_attendees_meeting_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("docs_meetings.id", ondelete="CASCADE"))
    username: Mapped[str] = mapped_column(String(64))
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_reading_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ReaderZone(Base):
    """The time zone a person's reading week is counted in (UTC when they set none)."""

    __tablename__ = "docs_reader_zones"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    tz: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

"""Democratic consultation: demands, topics, deliberation, opinion maps, votes, outcomes.

Anonymous demands keep the resident's id (for abuse handling, visible to staff only through
the audited detail view); everyone else sees no name. Secret ballots are split in two rows: a
voter register row (who voted, unique per poll and voter) and a ballot row with a random id and
no link to the voter, so the content of a ballot cannot be traced back to a person.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from linli.core.db import Base, UTCDateTime, utcnow

DEMAND_STATUSES = ("submitted", "accepted", "in_progress", "resolved", "closed", "rejected")
DEMAND_CHANNELS = ("app", "phone", "in_person")
TOPIC_STATUSES = ("open", "closed")
MEETING_MODES = ("online", "on_site")
POLL_KINDS = ("single", "multiple", "ranked", "owners")
POLL_UNITS = ("resident", "household", "owner")
POLL_STATUSES = ("draft", "open", "closed")
ACTION_STATUSES = ("open", "in_progress", "done")


class Demand(Base):
    """A resident's opinion, suggestion or request (意见、建议、诉求)."""

    __tablename__ = "consultation_demands"
    __table_args__ = (Index("ix_cons_demands_comm_created", "community_id", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    #: who raised it; kept for anonymous demands too (abuse handling), never shown publicly
    resident_id: Mapped[int | None] = mapped_column(
        ForeignKey("residents.id", ondelete="SET NULL"), index=True
    )
    submitted_by_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    channel: Mapped[str] = mapped_column(String(16), default="app")
    anonymous: Mapped[bool] = mapped_column(Boolean, default=False)
    text: Mapped[str] = mapped_column(Text)
    category: Mapped[str] = mapped_column(String(32))
    suggested_category: Mapped[str | None] = mapped_column(String(32))
    building_id: Mapped[int | None] = mapped_column(ForeignKey("buildings.id", ondelete="SET NULL"))
    location: Mapped[str | None] = mapped_column(String(200))
    photo: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="submitted")
    reply: Mapped[str | None] = mapped_column(Text)
    replied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    topic_id: Mapped[int | None] = mapped_column(
        ForeignKey("consultation_topics.id", ondelete="SET NULL"), index=True
    )
    work_order_id: Mapped[int | None] = mapped_column(
        ForeignKey("work_orders.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Topic(Base):
    """A consultation topic (议题)."""

    __tablename__ = "consultation_topics"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int] = mapped_column(
        ForeignKey("communities.id", ondelete="CASCADE"), index=True
    )
    title: Mapped[str] = mapped_column(String(200))
    background: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="open")
    created_by_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TopicExpert(Base):
    """A professional invited to the topic's panel."""

    __tablename__ = "consultation_topic_experts"
    __table_args__ = (UniqueConstraint("topic_id", "professional_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    topic_id: Mapped[int] = mapped_column(
        ForeignKey("consultation_topics.id", ondelete="CASCADE"), index=True
    )
    professional_id: Mapped[int] = mapped_column(ForeignKey("professionals.id", ondelete="CASCADE"))
    invited_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Meeting(Base):
    __tablename__ = "consultation_meetings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    topic_id: Mapped[int] = mapped_column(
        ForeignKey("consultation_topics.id", ondelete="CASCADE"), index=True
    )
    title: Mapped[str] = mapped_column(String(200))
    mode: Mapped[str] = mapped_column(String(16), default="on_site")
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    place: Mapped[str | None] = mapped_column(String(300))
    agenda: Mapped[str | None] = mapped_column(Text)
    minutes: Mapped[str | None] = mapped_column(Text)


class Comment(Base):
    """A comment or reply in a topic's deliberation."""

    __tablename__ = "consultation_comments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    topic_id: Mapped[int] = mapped_column(
        ForeignKey("consultation_topics.id", ondelete="CASCADE"), index=True
    )
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("consultation_comments.id", ondelete="CASCADE")
    )
    author_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    author_name: Mapped[str] = mapped_column(String(100))
    #: set when the author is on the topic's expert panel: shown as an expert opinion
    professional_id: Mapped[int | None] = mapped_column(
        ForeignKey("professionals.id", ondelete="SET NULL")
    )
    text: Mapped[str] = mapped_column(Text)
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    hidden_reason: Mapped[str | None] = mapped_column(String(300))
    reports: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CommentReport(Base):
    __tablename__ = "consultation_comment_reports"
    __table_args__ = (UniqueConstraint("comment_id", "user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    comment_id: Mapped[int] = mapped_column(
        ForeignKey("consultation_comments.id", ondelete="CASCADE")
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    reason: Mapped[str | None] = mapped_column(String(300))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


STATEMENT_META = -2  # Statement.moderated of a meta statement


class Statement(Base):
    """A short statement of a topic's opinion map; residents vote agree / disagree / pass."""

    __tablename__ = "consultation_statements"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    topic_id: Mapped[int] = mapped_column(
        ForeignKey("consultation_topics.id", ondelete="CASCADE"), index=True
    )
    text: Mapped[str] = mapped_column(Text)
    author_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    #: 1 accepted, 0 not yet moderated, -1 moderated out (Pol.is convention); -2 (STATEMENT_META)
    #: meta: it describes the participant (Pol.is ``is_meta``, e.g. "I am 30-39 years old") and,
    #: like -1, is left out of the opinion map
    moderated: Mapped[int] = mapped_column(Integer, default=1)
    #: comment id in an imported Pol.is conversation
    external_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class StatementVote(Base):
    """One participant's current vote on a statement (1 agree, -1 disagree, 0 pass)."""

    __tablename__ = "consultation_statement_votes"
    __table_args__ = (UniqueConstraint("statement_id", "participant"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    topic_id: Mapped[int] = mapped_column(
        ForeignKey("consultation_topics.id", ondelete="CASCADE"), index=True
    )
    statement_id: Mapped[int] = mapped_column(
        ForeignKey("consultation_statements.id", ondelete="CASCADE")
    )
    #: "u:<user id>" for Linli users, "polis:<voter id>" for imported votes
    participant: Mapped[str] = mapped_column(String(40))
    vote: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Poll(Base):
    """A vote: per resident, per household, or an owners' assembly decision (Civil Code 278)."""

    __tablename__ = "consultation_polls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int] = mapped_column(
        ForeignKey("communities.id", ondelete="CASCADE"), index=True
    )
    topic_id: Mapped[int | None] = mapped_column(
        ForeignKey("consultation_topics.id", ondelete="SET NULL")
    )
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16), default="single")
    unit: Mapped[str] = mapped_column(String(16), default="resident")
    secret: Mapped[bool] = mapped_column(Boolean, default=False)
    #: owners' assembly: raising/using maintenance funds, rebuilding, changing common parts
    special_matter: Mapped[bool] = mapped_column(Boolean, default=False)
    max_choices: Mapped[int] = mapped_column(Integer, default=1)
    #: share of the eligible voters that must take part (0..1)
    quorum: Mapped[float] = mapped_column(Float, default=0.0)
    #: share of the valid ballots an option needs to win (0..1; 0 = plurality)
    threshold: Mapped[float] = mapped_column(Float, default=0.0)
    status: Mapped[str] = mapped_column(String(16), default="open")
    closes_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class PollOption(Base):
    __tablename__ = "consultation_poll_options"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    poll_id: Mapped[int] = mapped_column(
        ForeignKey("consultation_polls.id", ondelete="CASCADE"), index=True
    )
    label: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(Integer, default=0)


class PollVoter(Base):
    """The voter register: one row per poll and voter (resident, household or owner)."""

    __tablename__ = "consultation_poll_voters"
    __table_args__ = (UniqueConstraint("poll_id", "voter_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    poll_id: Mapped[int] = mapped_column(ForeignKey("consultation_polls.id", ondelete="CASCADE"))
    #: "r:<resident id>", "h:<household id>" or "o:<resident id>" (owner)
    voter_key: Mapped[str] = mapped_column(String(40))
    resident_id: Mapped[int | None] = mapped_column(ForeignKey("residents.id", ondelete="SET NULL"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    voted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PollBallot(Base):
    """A ballot. Secret polls leave ``voter_key`` empty and use a random id (no order link)."""

    __tablename__ = "consultation_poll_ballots"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    poll_id: Mapped[int] = mapped_column(
        ForeignKey("consultation_polls.id", ondelete="CASCADE"), index=True
    )
    voter_key: Mapped[str | None] = mapped_column(String(40))
    #: option ids; in order of preference for ranked polls
    choices: Mapped[list[int]] = mapped_column(JSON)
    #: owners' assembly: floor area the ballot carries (m²)
    area_m2: Mapped[float] = mapped_column(Float, default=0.0)


class ActionItem(Base):
    """A decision turned into work: owner, deadline, progress residents can follow."""

    __tablename__ = "consultation_actions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int] = mapped_column(
        ForeignKey("communities.id", ondelete="CASCADE"), index=True
    )
    topic_id: Mapped[int | None] = mapped_column(
        ForeignKey("consultation_topics.id", ondelete="SET NULL")
    )
    poll_id: Mapped[int | None] = mapped_column(
        ForeignKey("consultation_polls.id", ondelete="SET NULL")
    )
    title: Mapped[str] = mapped_column(String(200))
    owner_name: Mapped[str] = mapped_column(String(100))
    owner_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    due_date: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="open")
    progress: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ActionUpdate(Base):
    __tablename__ = "consultation_action_updates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    action_id: Mapped[int] = mapped_column(
        ForeignKey("consultation_actions.id", ondelete="CASCADE"), index=True
    )
    text: Mapped[str] = mapped_column(Text)
    progress: Mapped[int] = mapped_column(Integer, default=0)
    author: Mapped[str] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ActionFollow(Base):
    __tablename__ = "consultation_action_follows"
    __table_args__ = (UniqueConstraint("action_id", "user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    action_id: Mapped[int] = mapped_column(
        ForeignKey("consultation_actions.id", ondelete="CASCADE")
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))


class Notification(Base):
    """An in-app notification (the bell)."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_user_read", "user_id", "read_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[int | None] = mapped_column(
        ForeignKey("communities.id", ondelete="CASCADE")
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str | None] = mapped_column(Text)
    link: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

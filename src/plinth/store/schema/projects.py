"""Tables of projects, users, their memberships and login sessions (revision 0009).

These tables are not project-scoped: they say who may see which project. Passwords are
stored as scrypt hashes (``password_hash``, with their parameters and salt); session tokens
and CSRF tokens only as sha256 digests.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from plinth.store.schema.base import PROJECT_LEN, Base


class ProjectRow(Base):
    __tablename__ = "projects"

    name: Mapped[str] = mapped_column(String(PROJECT_LEN), primary_key=True)
    description: Mapped[str] = mapped_column(Text)
    budget_tokens: Mapped[int | None] = mapped_column(BigInteger)
    budget_period: Mapped[str] = mapped_column(String(8))
    storage_bytes: Mapped[int | None] = mapped_column(BigInteger)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]


class UserRow(Base):
    __tablename__ = "users"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str | None] = mapped_column(String(300))
    is_admin: Mapped[bool] = mapped_column(Boolean)
    disabled: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime]


class MembershipRow(Base):
    __tablename__ = "memberships"

    user: Mapped[str] = mapped_column(String(128), ForeignKey("users.name", ondelete="CASCADE"), primary_key=True)
    project: Mapped[str] = mapped_column(String(PROJECT_LEN), ForeignKey("projects.name", ondelete="CASCADE"), primary_key=True, index=True)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]


class SessionRow(Base):
    """A login session: the cookie holds ``<id>.<secret>``; only sha256 of the secret and of
    the session's CSRF token are stored."""

    __tablename__ = "login_sessions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    csrf_hash: Mapped[str] = mapped_column(String(64))
    user: Mapped[str] = mapped_column(String(128), ForeignKey("users.name", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)
    last_seen_at: Mapped[datetime]


class ProjectWindowRow(Base):
    """Tokens a project's calls reserved (and then used) in one budget period."""

    __tablename__ = "project_windows"

    project: Mapped[str] = mapped_column(String(PROJECT_LEN), ForeignKey("projects.name", ondelete="CASCADE"), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(primary_key=True)
    tokens: Mapped[int] = mapped_column(BigInteger)

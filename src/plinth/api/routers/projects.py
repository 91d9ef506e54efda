"""Shared use: ``/api/v1/projects`` (and their members), ``/api/v1/users``, and login sessions
under ``/api/v1/auth``.

Any authenticated caller may call these; the account service decides what each may do:
server admins manage users and projects, a project's owners its members and description, and
everybody reads the projects they belong to. A project the caller may not see answers 404,
like one that does not exist.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from plinth.api.auth import principal_of
from plinth.api.deps import services_of
from plinth.auth.accounts import SESSION_COOKIE, AccountService
from plinth.domain.projects import ProjectQuotas
from plinth.errors import ErrorCode, PlinthError

router = APIRouter(prefix="/api/v1", tags=["projects"])

ProjectName = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$", description="a project")]
UserName = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$", description="a user")]


def _accounts(request: Request) -> AccountService:
    a = services_of(request).accounts
    if a is None:  # pragma: no cover - always built by build_services
        raise PlinthError(ErrorCode.UNSUPPORTED, "projects are not enabled on this server")
    return a


class Quotas(BaseModel):
    model_config = ConfigDict(extra="forbid")
    budget_tokens: int | None = Field(None, ge=1, le=10**15, description="tokens per budget period, over every key of the project")
    budget_period: str = Field("month", pattern="^(hour|day|week|month)$")
    storage_bytes: int | None = Field(None, ge=1, le=2**53 - 1, description="bytes of models, adapters, datasets and documents")

    def domain(self) -> ProjectQuotas:
        return ProjectQuotas(budget_tokens=self.budget_tokens, budget_period=self.budget_period, storage_bytes=self.storage_bytes)


class CreateProject(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    description: str = Field("", max_length=2000)
    quotas: Quotas | None = None


class UpdateProject(BaseModel):
    model_config = ConfigDict(extra="forbid")
    description: str | None = Field(None, max_length=2000)
    quotas: Quotas | None = None


class SetMember(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: str = Field(pattern="^(owner|editor|viewer|inference)$")


class CreateUser(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")
    password: str | None = Field(None, min_length=12, max_length=1024)
    is_admin: StrictBool = False
    display_name: str = Field("", max_length=200)


class UpdateUser(BaseModel):
    model_config = ConfigDict(extra="forbid")
    password: str | None = Field(None, min_length=12, max_length=1024)
    is_admin: StrictBool | None = None
    disabled: StrictBool | None = None
    display_name: str | None = Field(None, max_length=200)


class Login(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=1, max_length=1024)


# -- projects -----------------------------------------------------------------------------------------
@router.get("/projects")
def list_projects(request: Request) -> dict[str, Any]:
    """The projects the caller may see (a server admin: every one)."""
    return {"projects": [p.public_dict() for p in _accounts(request).projects_for(principal_of(request))]}


@router.post("/projects", status_code=201)
def create_project(body: CreateProject, request: Request) -> dict[str, Any]:
    """A new project (server admins); a user who creates one owns it."""
    quotas = body.quotas.domain() if body.quotas else None
    return _accounts(request).create_project(principal_of(request), body.name, description=body.description, quotas=quotas).public_dict()


@router.get("/projects/{name}")
def get_project(name: ProjectName, request: Request) -> dict[str, Any]:
    a = _accounts(request)
    p = principal_of(request)
    out = a.get_project(p, name).public_dict()
    out["usage"] = a.project_usage(p, name)
    return out


@router.patch("/projects/{name}")
def update_project(name: ProjectName, body: UpdateProject, request: Request) -> dict[str, Any]:
    """The description (owners) and quotas (server admins)."""
    quotas = body.quotas.domain() if body.quotas else None
    return _accounts(request).update_project(principal_of(request), name, description=body.description, quotas=quotas).public_dict()


@router.delete("/projects/{name}")
def delete_project(name: ProjectName, request: Request) -> dict[str, Any]:
    """Delete an empty project (server admins); 409 while it holds resources."""
    return _accounts(request).delete_project(principal_of(request), name).public_dict()


@router.get("/projects/{name}/members")
def list_members(name: ProjectName, request: Request) -> dict[str, Any]:
    return {"members": [m.public_dict() for m in _accounts(request).members(principal_of(request), name)]}


@router.put("/projects/{name}/members/{user}")
def set_member(name: ProjectName, user: UserName, body: SetMember, request: Request) -> dict[str, Any]:
    """Add a user to the project or change their role (owners and server admins)."""
    return _accounts(request).set_member(principal_of(request), name, user, body.role).public_dict()


@router.delete("/projects/{name}/members/{user}")
def remove_member(name: ProjectName, user: UserName, request: Request) -> dict[str, Any]:
    return _accounts(request).remove_member(principal_of(request), name, user).public_dict()


# -- users --------------------------------------------------------------------------------------------
@router.get("/users")
def list_users(request: Request) -> dict[str, Any]:
    return {"users": [u.public_dict() for u in _accounts(request).list_users(principal_of(request))]}


@router.post("/users", status_code=201)
def create_user(body: CreateUser, request: Request) -> dict[str, Any]:
    """A new user (server admins); without a password the user can only sign in through a
    single-sign-on proxy."""
    user = _accounts(request).create_user(
        principal_of(request), body.name, password=body.password, is_admin=body.is_admin, display_name=body.display_name
    )
    return user.public_dict()


@router.get("/users/{name}")
def get_user(name: UserName, request: Request) -> dict[str, Any]:
    a = _accounts(request)
    user = a.get_user(principal_of(request), name)
    return {**user.public_dict(), "memberships": [m.public_dict() for m in a.memberships_of(user.name)]}


@router.patch("/users/{name}")
def update_user(name: UserName, body: UpdateUser, request: Request) -> dict[str, Any]:
    """A user may change their own password and display name; server admins everything."""
    return (
        _accounts(request)
        .update_user(
            principal_of(request),
            name,
            password=body.password,
            is_admin=body.is_admin,
            disabled=body.disabled,
            display_name=body.display_name,
        )
        .public_dict()
    )


@router.delete("/users/{name}")
def delete_user(name: UserName, request: Request) -> dict[str, Any]:
    return _accounts(request).delete_user(principal_of(request), name).public_dict()


# -- login sessions -----------------------------------------------------------------------------------
@router.post("/auth/login")
def login(body: Login, request: Request, response: Response) -> dict[str, Any]:
    """Start a session: an HttpOnly, SameSite=Strict cookie, and a CSRF token that changing
    requests made with the cookie repeat in ``X-CSRF-Token``."""
    a = _accounts(request)
    result = a.login(body.user, body.password)
    settings = services_of(request).settings
    response.set_cookie(
        SESSION_COOKIE,
        result.cookie,
        max_age=int(settings.session_ttl_s),
        httponly=True,
        secure=settings.session_cookie_secure,
        samesite="strict",
        path="/",
    )
    return {
        "user": result.user.public_dict(),
        "csrf_token": result.csrf_token,
        "expires_at": result.expires_at.isoformat(),
        "projects": [m.public_dict() for m in a.memberships_of(result.user.name)],
    }


@router.post("/auth/logout")
def logout(request: Request, response: Response) -> dict[str, Any]:
    p = principal_of(request)
    if p.session is not None:
        _accounts(request).logout(p.session)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return {"logged_out": p.session is not None}


@router.get("/auth/me")
def me(request: Request) -> dict[str, Any]:
    """Who the caller is, in which project, with which scopes."""
    p = principal_of(request)
    return {
        "actor": p.actor,
        "user": p.user,
        "project": p.project,
        "role": p.role.value if p.role else None,
        "server_admin": p.server_admin,
        "scopes": sorted(s.value for s in p.scopes()),
        "key": p.key.public_dict() if p.key else None,
    }

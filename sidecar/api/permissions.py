"""Every route of the API, classified: what it needs before it runs.

One table, ``ROUTES``: (method, route path) -> ``PUBLIC`` (no launch token, no login: what the
Guard lets through), ``LAUNCH`` (the launch token, no login: logging in, the event stream an
``EventSource`` opens without headers, the sync status the status bar shows before anyone logs
in), ``LOGGED_IN`` (any logged-in user, whatever their role) or an ``Action`` of
``domain.access``. ``enforce``, an app-wide dependency, applies it to every request before the
route runs: a role that may not do the action at all is a 403 ``forbidden_role`` naming it,
before any record is looked at. Whose inspection it is (``OWN`` or ``ANY``) is checked where the
record is read (``deps.authorize``, the jobs' ``_job``, the lists' filters).

A route missing from the table is refused to everyone (``required``), and
``tests/test_roles.py`` fails for it: it holds the table to the OpenAPI document both ways and
probes every route as every role.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from fastapi import FastAPI, Request
from fastapi.routing import APIRoute

from sidecar.domain import access
from sidecar.domain.access import Action
from sidecar.errors import Forbidden


class Open(StrEnum):
    PUBLIC = "public"
    LAUNCH = "launch_token"
    LOGGED_IN = "logged_in"


PUBLIC: Final = Open.PUBLIC
LAUNCH: Final = Open.LAUNCH
LOGGED_IN: Final = Open.LOGGED_IN

_S = "/sessions/{session_id}"
_I = _S + "/items/{item_id}"

# fmt: off
ROUTES: dict[tuple[str, str], Open | Action] = {
    ("GET",  "/health"):                      PUBLIC,
    ("POST", "/auth/login"):                  LAUNCH,
    ("POST", "/auth/logout"):                 LOGGED_IN,
    ("GET",  "/auth/me"):                     LOGGED_IN,
    ("POST", "/users/{username}/unlock"):     Action.USERS,
    ("POST", "/scan"):                        Action.INSPECT,
    ("POST", "/scan/text"):                   Action.INSPECT,
    ("GET",  "/masters/targets"):             Action.INSPECT,
    ("POST", "/sessions"):                    Action.INSPECT,
    ("GET",  "/sessions/interrupted"):        Action.READ,
    ("GET",  _S):                             Action.READ,
    ("POST", _I + "/images"):                 Action.WORK,
    ("POST", _I + "/verification"):           Action.WORK,
    ("POST", _I + "/rejudge"):                Action.OVERRIDE,
    ("POST", _I + "/skip"):                   Action.WORK,
    ("POST", _I + "/retry"):                  Action.WORK,
    ("POST", _I + "/analyse"):                Action.WORK,
    ("POST", _S + "/complete"):               Action.WORK,
    ("POST", _S + "/resume"):                 Action.WORK,
    ("POST", _S + "/restart"):                Action.DISCARD,
    ("POST", _S + "/discard"):                Action.DISCARD,
    ("POST", _S + "/cancel"):                 Action.DISCARD,
    ("GET",  "/images/{image_id}"):           Action.READ,
    ("GET",  "/images/{image_id}/thumbnail"): Action.READ,
    ("GET",  "/history"):                     Action.READ,
    ("GET",  _S + "/audit"):                  Action.READ,
    ("GET",  "/stats"):                       Action.READ,
    ("GET",  "/jobs"):                        Action.READ,
    ("GET",  "/jobs/{job_id}"):               Action.READ,
    ("POST", "/jobs/{job_id}/cancel"):        Action.WORK,
    ("GET",  "/events"):                      LAUNCH,
    ("POST", "/events/ticket"):               LAUNCH,
    ("GET",  "/sync/status"):                 LAUNCH,
    ("POST", "/sync/now"):                    LAUNCH,
    ("POST", "/sync/connect"):                Action.CONNECT,
    ("GET",  "/calibrations"):                Action.INSPECT,
    ("POST", "/calibrations"):                Action.CALIBRATE,
    ("GET",  "/sync/refusals"):               Action.SET_ASIDE,
    ("POST", "/sync/refusals/{op_id}/resolve"): Action.OVERRIDE,
    ("POST", "/sync/set-aside/{seq}/retry"):  Action.SET_ASIDE,
    # First run: nobody exists to log in yet; closed (409 setup_done) once anyone does.
    ("GET",  "/setup"):                       LAUNCH,
    ("POST", "/setup/connect"):               LAUNCH,
    ("POST", "/setup/local-admin"):           LAUNCH,
}
# fmt: on


def entry(method: str, path: str) -> Open | Action | None:
    """The table's entry for a route (``HEAD`` is its ``GET``), or ``None``."""
    return ROUTES.get(("GET" if method == "HEAD" else method, path))


_METHODS = frozenset({"get", "put", "post", "delete", "patch"})


def documented_routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path) of every operation the OpenAPI document lists."""
    return sorted(
        (method.upper(), path)
        for path, item in app.openapi()["paths"].items()
        for method in item
        if method in _METHODS
    )


def unclassified(app: FastAPI) -> list[tuple[str, str]]:
    return [r for r in documented_routes(app) if r not in ROUTES]


def required(request: Request) -> Open | Action:
    """What the request's route needs. The built UI's pages (not in the document) are public;
    a documented route without an entry is refused rather than let through."""
    route = request.scope.get("route")
    if isinstance(route, APIRoute) and not route.include_in_schema:
        return PUBLIC
    found = entry(request.method, getattr(route, "path", request.url.path))
    if found is None:
        raise Forbidden("this route has no permission entry", code="forbidden_role")
    return found


def refuse(role: str, action: Action) -> Forbidden:
    return Forbidden(
        f"the role {role!r} may not {action.value.replace('_', ' ')} here",
        code="forbidden_role",
        action=action.value,
        role=role,
    )


def check_role(role: str, action: Action) -> None:
    if not access.may_do(role, action):
        raise refuse(role, action)

"""Shared vocabulary of the test cluster: JSON types, API errors as `Status` objects, time."""

from __future__ import annotations

import datetime
import re
from typing import Any

JSON = Any
Obj = dict[str, Any]

KUBERNETES_VERSION = {"major": "1", "minor": "33", "gitVersion": "v1.33.0-lrsweep-harness"}

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class ApiError(Exception):
    """An API failure, rendered to the client as a `meta/v1 Status` with the same code."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        details: Obj | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def status(self) -> Obj:
        body: Obj = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def not_found(resource: str, name: str, group: str = "") -> ApiError:
    what = f"{resource}.{group}" if group else resource
    return ApiError(
        404,
        "NotFound",
        f'{what} "{name}" not found',
        details={"name": name, "group": group, "kind": resource},
    )


def already_exists(resource: str, name: str, group: str = "") -> ApiError:
    what = f"{resource}.{group}" if group else resource
    return ApiError(
        409,
        "AlreadyExists",
        f'{what} "{name}" already exists',
        details={"name": name, "group": group, "kind": resource},
    )


def conflict(resource: str, name: str, group: str = "") -> ApiError:
    what = f"{resource}.{group}" if group else resource
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {what} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
        details={"name": name, "group": group, "kind": resource},
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def invalid(kind: str, group: str, name: str, causes: list[tuple[str, str]]) -> ApiError:
    """422 Invalid, the way the API server lists field errors: `field: message; ...`."""
    qualified = f"{kind}.{group}" if group else kind
    rendered = [f"{field}: {message}" if field else message for field, message in causes]
    if len(rendered) == 1:
        message = f'{qualified} "{name}" is invalid: {rendered[0]}'
    else:
        message = f'{qualified} "{name}" is invalid: [{", ".join(rendered)}]'
    return ApiError(
        422,
        "Invalid",
        message,
        details={
            "name": name,
            "group": group,
            "kind": kind,
            "causes": [
                {"reason": "FieldValueInvalid", "message": message, "field": field}
                for field, message in causes
            ],
        },
    )


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def timestamp(when: datetime.datetime | None = None) -> str:
    """RFC 3339 with second precision and a `Z`, as `metav1.Time` serialises."""
    return (when or now()).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(value: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


def human_duration(seconds: float) -> str:
    """`k8s.io/apimachinery/pkg/util/duration.HumanDuration`, which kubectl's AGE shows."""
    s = int(seconds)
    if s < 0:
        return "<invalid>"
    if s < 60 * 2:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        rest = s % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d{rest}h" if rest else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    return f"{hours // 24 // 365}y"


def kubeconfig(server: str, *, namespace: str = "default", token: str = "harness") -> Obj:
    """A kubeconfig for the test cluster at `server` (any token is accepted)."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "lrsweep-harness", "cluster": {"server": server}}],
        "users": [{"name": "lrsweep-harness", "user": {"token": token}}],
        "contexts": [
            {
                "name": "lrsweep-harness",
                "context": {
                    "cluster": "lrsweep-harness",
                    "user": "lrsweep-harness",
                    "namespace": namespace,
                },
            }
        ],
        "current-context": "lrsweep-harness",
    }

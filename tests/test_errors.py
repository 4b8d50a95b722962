"""The error tree: every leaf answers as RFC 9457 problem+json with its own status and code."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException

import vidq.errors
from vidq.api.problems import (
    _CODES_BY_STATUS,
    _FRAMEWORK_CODES,
    MEDIA_TYPE,
    PROBLEM_TYPE_BASE,
    install_problem_handlers,
)
from vidq.errors import InvalidOption, RangeNotSatisfiable, VidqError


def all_leaves(root: type[VidqError]) -> list[type[VidqError]]:
    """The classes under `root` with no subclass of their own, found through __subclasses__."""
    found: list[type[VidqError]] = []
    for sub in root.__subclasses__():
        found.extend(all_leaves(sub) if sub.__subclasses__() else [sub])
    return found


LEAVES = all_leaves(VidqError)
FIELD_ERRORS = [{"field": "crf", "message": "must be at most 51"}]
ARGUMENTS: dict[type[VidqError], dict[str, Any]] = {
    RangeNotSatisfiable: {"size": 1234},
    InvalidOption: {"errors": FIELD_ERRORS},
}

# The table framework errors were answered with before it was derived from the tree.
CODES_BEFORE = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    410: "gone",
    413: "too_large",
    415: "unsupported_content_type",
    416: "range_not_satisfiable",
    422: "invalid_option",
    429: "too_many_jobs",
    503: "unavailable",
}


def make_app() -> FastAPI:
    """A bare app with the problem handlers and two routes: one raises a leaf by name, one a
    framework HTTPException with a given status."""
    app = FastAPI()
    install_problem_handlers(app)
    by_name = {leaf.__name__: leaf for leaf in LEAVES}

    @app.get("/leaf/{name}")
    async def raise_leaf(name: str) -> None:
        leaf = by_name[name]
        raise leaf(**ARGUMENTS.get(leaf, {}))

    @app.get("/status/{status}")
    async def raise_status(status: int) -> None:
        raise StarletteHTTPException(status)

    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=make_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://vidq.test") as client:
        yield client


def test_the_tree_has_its_leaves() -> None:
    assert vidq.errors.leaves() == LEAVES
    names = {leaf.__name__ for leaf in LEAVES}
    assert {"RangeNotSatisfiable", "TargetRefused", "TargetUnresolved"} <= names
    codes = [leaf.code for leaf in LEAVES]
    assert len(codes) == len(set(codes)), "each leaf has a code of its own"


@pytest.mark.parametrize("leaf", LEAVES, ids=lambda leaf: leaf.__name__)
async def test_every_leaf_answers_problem_json(
    client: httpx.AsyncClient, leaf: type[VidqError]
) -> None:
    response = await client.get(f"/leaf/{leaf.__name__}")
    assert response.status_code == leaf.status, response.text
    assert response.headers["content-type"].startswith(MEDIA_TYPE)
    body = response.json()
    assert {"type", "title", "status", "detail", "code"} <= body.keys()
    assert body["status"] == leaf.status and body["code"] == leaf.code
    assert body["type"] == PROBLEM_TYPE_BASE + leaf.code
    assert body["title"] == leaf.title and body["detail"]
    if issubclass(leaf, InvalidOption):
        assert body["errors"] == FIELD_ERRORS
        assert body["detail"] == "crf: must be at most 51"
    if leaf.status == 401:
        assert response.headers["www-authenticate"] == "Bearer"
    if leaf.status == 429 or leaf.code == "busy":
        assert int(response.headers["retry-after"]) > 0
    if leaf.code in ("busy", "request_timeout"):  # answered before the body is all read
        assert response.headers["connection"] == "close"
    if leaf.status == 416:
        assert response.headers["content-range"] == "bytes */1234"


def test_the_tree_drawing_names_every_leaf() -> None:
    drawing = vidq.errors.__doc__ or ""
    for leaf in LEAVES:
        line = rf"── {leaf.__name__}\s+{leaf.status} {leaf.code}\b"
        assert re.search(line, drawing), f"{leaf.__name__} is missing from the tree drawing"


def test_framework_codes_come_from_the_tree() -> None:
    codes_by_status: dict[int, set[str]] = {}
    for leaf in LEAVES:
        codes_by_status.setdefault(leaf.status, set()).add(leaf.code)
    for status, codes in codes_by_status.items():
        if len(codes) == 1:
            assert _CODES_BY_STATUS[status] == codes.pop()
        else:
            assert status in _FRAMEWORK_CODES, f"several leaves answer {status}: name its code"
            assert _FRAMEWORK_CODES[status] in codes
    for status, code in CODES_BEFORE.items():
        assert _CODES_BY_STATUS[status] == code


@pytest.mark.parametrize("status", sorted(_CODES_BY_STATUS))
async def test_framework_errors_answer_problem_json(client: httpx.AsyncClient, status: int) -> None:
    response = await client.get(f"/status/{status}")
    assert response.status_code == status
    assert response.headers["content-type"].startswith(MEDIA_TYPE)
    body = response.json()
    assert body["status"] == status and body["code"] == _CODES_BY_STATUS[status]

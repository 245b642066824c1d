"""Requests and replies translated to and from azure.functions types as the host and worker do."""

from __future__ import annotations

import json

import azure.functions as func
import pytest

from shared.local.host.messages import Request, from_http_result, problem, to_http_request


def test_an_http_request_carries_url_query_headers_route_and_body() -> None:
    request = Request(
        "POST",
        "/api/images/g1?tag=a&tag=b&empty=",
        (("Content-Type", "application/json"), ("X-Trace", "1"), ("x-trace", "2")),
        b'{"a": 1}',
        "http://127.0.0.1:7071",
    )
    converted = to_http_request(request, {"gallery": "g1"})
    assert converted.method == "POST"
    assert converted.url == "http://127.0.0.1:7071/api/images/g1?tag=a&tag=b&empty="
    assert dict(converted.params) == {"tag": "a,b", "empty": ""}
    assert converted.headers["x-trace"] == "1,2"
    assert converted.headers["Content-Type"] == "application/json"
    assert dict(converted.route_params) == {"gallery": "g1"}
    assert converted.get_json() == {"a": 1}


def test_a_text_response_gets_its_mimetype_and_charset_as_content_type() -> None:
    reply = from_http_result(func.HttpResponse("hi", status_code=201, mimetype="text/html", charset="utf-8"))
    assert reply.status == 201
    assert ("Content-Type", "text/html; charset=utf-8") in reply.headers
    assert reply.body == b"hi"


def test_a_non_text_response_gets_its_mimetype_alone() -> None:
    reply = from_http_result(func.HttpResponse("{}", mimetype="application/json"))
    assert ("Content-Type", "application/json") in reply.headers


def test_an_explicit_content_type_header_wins_over_the_mimetype() -> None:
    reply = from_http_result(func.HttpResponse("{}", headers={"content-type": "application/problem+json"}))
    content_types = [value for name, value in reply.headers if name.lower() == "content-type"]
    assert content_types == ["application/problem+json"]


def test_framing_headers_set_by_a_function_are_dropped() -> None:
    reply = from_http_result(
        func.HttpResponse("x", headers={"Content-Length": "999", "Connection": "close", "X-A": "1"})
    )
    names = {name.lower() for name, _ in reply.headers}
    assert "content-length" not in names
    assert "connection" not in names
    assert "x-a" in names


def test_a_string_result_is_a_200_text_response() -> None:
    reply = from_http_result("hello")
    assert (reply.status, reply.body) == (200, b"hello")
    assert ("Content-Type", "text/plain; charset=utf-8") in reply.headers


def test_no_result_is_204() -> None:
    assert from_http_result(None).status == 204


def test_a_result_the_http_output_cannot_carry_is_an_error() -> None:
    with pytest.raises(TypeError, match="dict"):
        from_http_result({"a": 1})


def test_a_problem_carries_the_correlation_id_in_body_and_header() -> None:
    reply = problem(500, "The function failed.", "abc-123")
    document = json.loads(reply.body)
    assert document == {
        "type": "about:blank",
        "title": "Internal Server Error",
        "status": 500,
        "detail": "The function failed.",
        "correlationId": "abc-123",
    }
    assert ("x-correlation-id", "abc-123") in reply.headers
    assert ("Content-Type", "application/problem+json") in reply.headers

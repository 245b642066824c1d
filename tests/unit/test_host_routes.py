"""Route templates matched as the Functions host (ASP.NET Core routing) matches them."""

from __future__ import annotations

import pytest

from shared.local.host.routes import RouteTemplate


def match(template: str, path: str) -> dict[str, str] | None:
    return RouteTemplate.parse(template).match(path)


def test_parameters_are_captured_by_name() -> None:
    assert match("images/{gallery}/{image}/{version}", "/images/g1/win11/1.2.3") == {
        "gallery": "g1",
        "image": "win11",
        "version": "1.2.3",
    }


def test_literals_match_case_insensitively_and_values_keep_their_case() -> None:
    assert match("Images/{name}", "/IMAGES/Win11") == {"name": "Win11"}


def test_parameter_values_are_url_decoded() -> None:
    assert match("images/{name}", "/images/golden%20image") == {"name": "golden image"}


def test_a_trailing_slash_is_ignored() -> None:
    assert match("images/{name}", "/images/win11/") == {"name": "win11"}


def test_a_parameter_does_not_span_segments() -> None:
    assert match("images/{name}", "/images/a/b") is None


def test_missing_segments_do_not_match() -> None:
    assert match("images/{gallery}/{image}", "/images/g1") is None


def test_an_empty_template_matches_only_the_prefix_itself() -> None:
    assert match("", "/") == {}
    assert match("", "/anything") is None


@pytest.mark.parametrize(
    ("template", "accepted", "refused"),
    [
        ("{id:int}", "-42", "4.2"),
        ("{id:int}", "2147483647", "2147483648"),
        ("{id:long}", "2147483648", "x"),
        ("{flag:bool}", "True", "yes"),
        ("{id:guid}", "3f2504e0-4f89-11d3-9a0c-0305e82c3301", "not-a-guid"),
        ("{name:alpha}", "abc", "abc1"),
        ("{n:double}", "1.5", "nan"),
        ("{when:datetime}", "2026-03-01", "yesterday"),
        ("{n:range(1,5)}", "5", "6"),
        ("{n:min(10)}", "10", "9"),
        ("{name:minlength(3)}", "abc", "ab"),
        ("{name:length(2,3)}", "abc", "abcd"),
        ("{code:regex(^[a-z]{{2}}$)}", "ab", "abc"),
        ("{id:int:min(1)}", "1", "0"),
    ],
)
def test_constraints_decide_whether_a_value_matches(template: str, accepted: str, refused: str) -> None:
    assert match(template, accepted) is not None
    assert match(template, refused) is None


def test_unknown_constraints_are_ignored_rather_than_refused() -> None:
    assert match("{name:semver}", "1.2.3") == {"name": "1.2.3"}


def test_an_optional_parameter_may_be_omitted() -> None:
    assert match("pages/{page?}", "/pages") == {}
    assert match("pages/{page?}", "/pages/3") == {"page": "3"}


def test_an_optional_constrained_parameter_is_still_checked() -> None:
    assert match("pages/{page:int?}", "/pages") == {}
    assert match("pages/{page:int?}", "/pages/x") is None


def test_a_default_fills_an_omitted_parameter() -> None:
    assert match("pages/{page=1}", "/pages") == {"page": "1"}


def test_a_catch_all_takes_the_rest_of_the_path() -> None:
    assert match("files/{*path}", "/files/a/b/c.txt") == {"path": "a/b/c.txt"}
    assert match("files/{*path}", "/files") == {}


def test_several_parameters_may_share_a_segment() -> None:
    assert match("files/{name}.{ext}", "/files/report.json") == {"name": "report", "ext": "json"}


def test_literals_take_precedence_over_constrained_over_plain_parameters() -> None:
    templates = [RouteTemplate.parse(t) for t in ["items/{*rest}", "items/{name}", "items/{id:int}", "items/latest"]]
    ordered = sorted(templates, key=lambda template: template.precedence)
    assert [template.template for template in ordered] == [
        "items/latest",
        "items/{id:int}",
        "items/{name}",
        "items/{*rest}",
    ]


@pytest.mark.parametrize("template", ["images/{name", "images/name}", "files/{*rest}/more", "images/{1bad}"])
def test_malformed_templates_are_refused(template: str) -> None:
    with pytest.raises(ValueError, match="route"):
        RouteTemplate.parse(template)

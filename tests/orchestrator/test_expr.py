"""The safe expression and template language: values, operators, types and refusals."""

from __future__ import annotations

from typing import Any

import pytest

from aiservice.orchestrator.expr import ExprError, compile_template, parse_expr

SCOPE: dict[str, Any] = {
    "input": {"user_id": "u1", "flag": True, "off": False, "n": 3, "tags": ["a", "b"]},
    "steps": {"embed": {"output": {"embedding": [0.1, 0.2], "meta": {"k": "v"}}, "status": "ok"}},
    "settings": {"functions": {"url": "https://fn.example"}},
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("input.user_id", "u1"),
        ("input.tags[1]", "b"),
        ("input.tags.0", "a"),
        ("input['user_id']", "u1"),
        ("steps.embed.output.embedding", [0.1, 0.2]),
        ("steps.embed.output.missing.deeper", None),
        ("input.flag and input.n == 3", True),
        ("input.off or input.n", 3),
        ("not input.off", True),
        ("input.n >= 3 and input.n < 4", True),
        ("input.n > 'x'", False),
        ("input.missing ?? 'default'", "default"),
        ("(input.off or input.flag) and true", True),
        ('input.user_id != "u2"', True),
        ("null", None),
        ("-1.5", -1.5),
        ("'it\\'s \"q\"'", 'it\'s "q"'),
        ('"caf\\u00e9"', "café"),
    ],
)
def test_expressions_evaluate_over_the_scope(text: str, expected: Any) -> None:
    assert parse_expr(text).evaluate(SCOPE) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "input.",
        "input[",
        "a ==",
        "__import__('os').system('x')",
        "input.x; 1",
        "a = 1",
        "(a",
        '"bad \\x escape"',
    ],
)
def test_invalid_or_code_like_expressions_are_syntax_errors(text: str) -> None:
    with pytest.raises(ExprError):
        parse_expr(text)


def test_whole_placeholder_keeps_the_value_type() -> None:
    template = compile_template({"e": "${steps.embed.output.embedding}", "n": "${input.n}"})
    assert template.render(SCOPE) == {"e": [0.1, 0.2], "n": 3}


def test_interpolation_formats_values_into_strings() -> None:
    template = compile_template(
        "${settings.functions.url}/u/${input.user_id}?m=${steps.embed.output.meta}"
    )
    assert template.render(SCOPE) == 'https://fn.example/u/u1?m={"k":"v"}'


def test_dollar_dollar_escapes_and_plain_values_pass_through() -> None:
    template = compile_template(["$${literal}", 5, None, {"x": "plain"}])
    assert template.render(SCOPE) == ["${literal}", 5, None, {"x": "plain"}]


def test_braces_inside_quoted_strings_do_not_end_the_placeholder() -> None:
    assert compile_template("${input.missing ?? '}'}").render(SCOPE) == "}"


def test_unterminated_placeholder_is_an_error() -> None:
    with pytest.raises(ExprError, match="unterminated"):
        compile_template("${input.user_id")


def test_templates_report_the_paths_they_read() -> None:
    template = compile_template({"a": "${input.x ?? steps.s.output}", "b": ["${secrets.env.T}"]})
    assert sorted(str(p) for p in template.paths()) == [
        "input.x",
        "secrets.env.T",
        "steps.s.output",
    ]

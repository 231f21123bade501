import json

from typer.testing import CliRunner

from partnerflow.cli.fraud import app

runner = CliRunner()


def _lines(output: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in output.splitlines()]


def test_check_ua_writes_one_json_object_per_input_line() -> None:
    stdin = (
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)\n"
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.0.0 Safari/537.36\n"
        "curl/8.4.0\n"
    )
    result = runner.invoke(app, ["check-ua"], input=stdin)
    assert result.exit_code == 0, result.output
    assert _lines(result.output) == [
        {
            "user_agent": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "bot": True,
            "reason": "declared crawler: Googlebot",
        },
        {
            "user_agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
            "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
            "bot": False,
            "reason": None,
        },
        {"user_agent": "curl/8.4.0", "bot": True, "reason": "scripted client: curl"},
    ]


def test_check_ua_blank_line_is_an_empty_user_agent() -> None:
    result = runner.invoke(app, ["check-ua"], input="\ncurl/8\r\n")
    assert result.exit_code == 0, result.output
    assert _lines(result.output) == [
        {"user_agent": "", "bot": True, "reason": "empty user agent"},
        {"user_agent": "curl/8", "bot": True, "reason": "scripted client: curl"},
    ]


def test_check_ua_survives_invalid_utf8() -> None:
    result = runner.invoke(app, ["check-ua"], input=b"\xff\xfeWget/1.21\n\xc3(\n")
    assert result.exit_code == 0, result.output
    assert _lines(result.output) == [
        {"user_agent": "\ufffd\ufffdWget/1.21", "bot": True, "reason": "scripted client: wget"},
        {"user_agent": "\ufffd(", "bot": False, "reason": None},
    ]


def test_check_ua_last_line_without_newline_is_classified() -> None:
    result = runner.invoke(app, ["check-ua"], input="python-requests/2.31")
    assert result.exit_code == 0, result.output
    assert _lines(result.output) == [
        {
            "user_agent": "python-requests/2.31",
            "bot": True,
            "reason": "scripted client: python-requests",
        }
    ]


def test_check_ua_empty_stdin_prints_nothing() -> None:
    result = runner.invoke(app, ["check-ua"], input="")
    assert result.exit_code == 0
    assert result.output == ""

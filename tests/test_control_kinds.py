"""The control plane's table of kinds is the command line: every kind is a subcommand
whose arguments build exactly the change the rules read."""

import json
import re

import pytest

from pyservice import control
from pyservice.cli import build_parser, main


def change(*argv: str) -> dict[str, object]:
    args = build_parser().parse_args(list(argv))
    return control.change_of(args.command, vars(args))


def test_every_kind_is_a_subcommand_with_its_fields_in_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    for kind in control.KINDS.values():
        with pytest.raises(SystemExit) as exit:
            build_parser().parse_args([kind.command, "--help"])
        assert exit.value.code == 0
        text = capsys.readouterr().out
        assert text.startswith(f"usage: copyengine {kind.command} ")
        for f in control.fields_of(kind):
            shown = (f.metavar or f.name) if f.positional else f"--{f.name.replace('_', '-')}"
            assert shown in text, (kind.name, f.name)


def test_a_follow_with_every_setting_is_stored_in_field_order() -> None:
    argv = ["follow", "f1", "alpha", "--allocation", "2000", "--stop-copy-on-close", "false"]
    argv += ["--max-open-trades", "3", "--slippage-pct", "0.5", "--mode", "multiplier", "--multiplier", "2"]
    got = change(*argv)
    assert list(got.items()) == [
        ("type", "follow"),
        ("follower", "f1"),
        ("provider", "alpha"),
        ("allocation", "2000"),
        ("mode", "multiplier"),
        ("multiplier", "2"),
        ("max_open_trades", 3),
        ("slippage_pct", "0.5"),
        ("stop_copy_on_close", False),
    ]
    assert control.validate(got) == (
        '{"type":"follow","follower":"f1","provider":"alpha","allocation":"2000","mode":"multiplier",'
        '"multiplier":"2","max_open_trades":3,"slippage_pct":"0.5","stop_copy_on_close":false}'
    )


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["deposit", "f1", "alpha", "5"], {"type": "deposit", "follower": "f1", "provider": "alpha", "amount": "5"}),
        (["withdraw", "f1", "alpha", "5"], {"type": "withdraw", "follower": "f1", "provider": "alpha", "amount": "5"}),
        (["unfollow", "f1", "alpha"], {"type": "unfollow", "follower": "f1", "provider": "alpha"}),
        (["pause", "f1", "alpha"], {"type": "pause", "follower": "f1", "provider": "alpha"}),
        (["resume", "f1", "alpha"], {"type": "resume", "follower": "f1", "provider": "alpha"}),
        (
            ["settings", "f1", "alpha", "--max-loss-pct", "20"],
            {"type": "settings", "follower": "f1", "provider": "alpha", "max_loss_pct": "20"},
        ),
    ],
)
def test_each_kind_builds_the_change_the_rules_accept(argv: list[str], expected: dict[str, object]) -> None:
    got = change(*argv)
    assert got == expected
    control.validate(got)  # raises ControlError if the rules refuse its shape


def test_a_follow_needs_an_allocation() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["follow", "f1", "alpha"])


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["settle"], {"type": "settle"}),
        (["settle", "--period", "2026-W48"], {"type": "settle", "period": "2026-W48"}),
        (["settle", "--period", "2026-11"], {"type": "settle", "period": "2026-11"}),
    ],
)
def test_settle_names_no_relationship_and_may_name_its_period(argv: list[str], expected: dict[str, object]) -> None:
    got = change(*argv)
    assert got == expected
    assert control.validate(got) == json.dumps(expected, separators=(",", ":"))


@pytest.mark.parametrize(
    ("period", "reason"),
    [
        ("2026-W54", "is not an ISO week (2026-W48) or a month (2026-11)"),
        ("2026-W00", "is not an ISO week"),
        ("2026-13", "is not an ISO week"),
        ("2026-1", "is not an ISO week"),
        ("manual-3", "is not an ISO week"),
    ],
)
def test_settle_refuses_a_period_that_is_no_week_or_month(
    period: str, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(control.ControlError, match=re.escape(reason)):
        control.validate({"type": "settle", "period": period})
    # the command line says so and stores nothing (no database is opened)
    assert main(["settle", "--period", period, "--database", "postgresql://nowhere.invalid/x"]) == 2
    assert reason in capsys.readouterr().err


def test_settle_takes_no_other_field() -> None:
    with pytest.raises(control.ControlError, match="settle takes only period; unknown field 'follower'"):
        control.validate({"type": "settle", "follower": "f1"})
    with pytest.raises(SystemExit):
        build_parser().parse_args(["settle", "f1", "alpha"])


# -- the settlement terms ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["profit-share", "alpha", "20"], {"type": "profit_share", "provider": "alpha", "profit_share_pct": "20"}),
        (["profit-share", "alpha", "0"], {"type": "profit_share", "provider": "alpha", "profit_share_pct": "0"}),
        (["platform", "--platform-fee-pct", "10"], {"type": "platform", "platform_fee_pct": "10"}),
        (["platform", "--settlement", "monthly"], {"type": "platform", "settlement": "monthly"}),
        (
            ["platform", "--settlement", "weekly", "--platform-fee-pct", "12.5"],
            {"type": "platform", "platform_fee_pct": "12.5", "settlement": "weekly"},
        ),
        (["platform", "--max-profit-share-pct", "40"], {"type": "platform", "max_profit_share_pct": "40"}),
        (
            ["platform", "--max-profit-share-pct", "12.5", "--platform-fee-pct", "5"],
            {"type": "platform", "platform_fee_pct": "5", "max_profit_share_pct": "12.5"},
        ),
    ],
)
def test_the_terms_commands_build_the_change_the_rules_accept(argv: list[str], expected: dict[str, object]) -> None:
    got = change(*argv)
    assert list(got.items()) == list(expected.items())
    assert control.validate(got) == json.dumps(expected, separators=(",", ":"))


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (["profit-share", "alpha", "101"], "field 'profit_share_pct' must be in [0, 100]"),
        (["profit-share", "alpha", "-1"], "field 'profit_share_pct' must be in [0, 100]"),
        (["profit-share", "alpha", "ten"], "field 'profit_share_pct' is not a decimal: 'ten'"),
        (["profit-share", "al pha", "10"], "field 'provider' must be 1-64 characters of [A-Za-z0-9_.:-]"),
        (["platform", "--platform-fee-pct", "100.5"], "field 'platform_fee_pct' must be in [0, 100]"),
        (["platform", "--platform-fee-pct", "0.123456789"], "field 'platform_fee_pct' has more than 8 decimal"),
        (["platform"], "platform needs platform_fee_pct, max_profit_share_pct or settlement"),
        (["platform", "--max-profit-share-pct", "0"], "field 'max_profit_share_pct' must be in (0, 100]"),
        (["platform", "--max-profit-share-pct", "100.01"], "field 'max_profit_share_pct' must be in (0, 100]"),
    ],
)
def test_an_invalid_terms_change_exits_2_and_stores_nothing(
    argv: list[str], reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(control.ControlError, match=re.escape(reason)):
        control.validate(change(*argv))
    # no database is opened: a reachable one would be a store
    assert main([*argv, "--database", "postgresql://nowhere.invalid/x"]) == 2
    assert f"invalid: {reason}" in capsys.readouterr().err


def test_the_terms_commands_refuse_other_arguments() -> None:
    for argv in (
        ["platform", "--settlement", "daily"],  # argparse's choices
        ["platform", "--max-share", "40"],
        ["profit-share", "alpha"],
        ["profit-share", "f1", "alpha", "10"],
    ):
        with pytest.raises(SystemExit):
            build_parser().parse_args(argv)
    with pytest.raises(control.ControlError, match="unknown field 'max_share' for platform"):
        control.validate({"type": "platform", "max_share": "40"})
    with pytest.raises(control.ControlError, match="field 'settlement' must be one of weekly, monthly, none"):
        control.validate({"type": "platform", "settlement": "daily"})

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from partnerflow.cli.clv import app

DATA = Path(__file__).resolve().parents[2] / "data"
runner = CliRunner()


def _root() -> typer.Typer:
    root = typer.Typer()
    root.add_typer(app, name="clv")
    return root


def _calibration_csv(tmp_path: Path) -> Path:
    lines = (DATA / "cdnow_transactions_first120.csv").read_text().splitlines()
    kept = [lines[0]] + [ln for ln in lines[1:] if ln.split(",")[1] <= "1997-09-30"]
    out = tmp_path / "tx.csv"
    out.write_text("\n".join(kept) + "\n")
    return out


def test_fit_prints_json_with_every_model_and_the_summary(tmp_path: Path) -> None:
    path = _calibration_csv(tmp_path)
    res = runner.invoke(
        _root(),
        ["clv", "fit", "--transactions", str(path), "--calibration-end", "1997-09-30", "--json"],
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert set(out["bgnbd"]) == {"r", "alpha", "a", "b", "log_likelihood"}
    assert set(out["gamma_gamma"]) == {"p", "q", "v", "log_likelihood", "customers"}
    assert set(out["pareto_nbd"]) == {"r", "alpha", "s", "beta", "log_likelihood"}
    assert set(out["mbgnbd"]) == {"r", "alpha", "a", "b", "log_likelihood"}
    assert out["summary"] == {
        "customers": 120,
        "repeat_customers": 43,
        "transactions": 241,
        "repeat_transactions": 115,
        "calibration_end": "1997-09-30",
        "time_unit": "week",
        "mean_T": out["summary"]["mean_T"],
    }
    assert round(out["summary"]["mean_T"], 2) == 38.49


def test_fit_prints_a_table_by_default(tmp_path: Path) -> None:
    path = _calibration_csv(tmp_path)
    res = runner.invoke(
        _root(),
        [
            "clv",
            "fit",
            "--transactions",
            str(path),
            "--calibration-end",
            "1997-09-30",
            "--time-unit",
            "day",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "BG/NBD" in res.stdout and "Gamma-Gamma" in res.stdout
    assert "120 customers, 43 with repeat purchases" in res.stdout


def test_bad_rows_name_the_line_and_exit_non_zero(tmp_path: Path) -> None:
    cases = {
        "c1,2024-13-01,10\n": "line 3: bad date",
        "c1,2024-01-02,ten\n": "line 3: amount 'ten' is not a number",
        "c1,2024-01-02,-5\n": "line 3: negative amount -5",
        "c1,2024-01-02,NaN\n": "line 3: amount 'NaN' is not a number",
    }
    for row, message in cases.items():
        path = tmp_path / "bad.csv"
        path.write_text("customer_id,date,amount\nc0,2024-01-01,3\n" + row)
        res = runner.invoke(
            _root(), ["clv", "fit", "--transactions", str(path), "--calibration-end", "2024-02-01"]
        )
        assert res.exit_code == 2
        assert message in res.stderr
        assert res.stdout == ""


def test_missing_header_and_late_dates_are_errors(tmp_path: Path) -> None:
    path = tmp_path / "noheader.csv"
    path.write_text("c0,2024-01-01,3\n")
    res = runner.invoke(
        _root(), ["clv", "fit", "--transactions", str(path), "--calibration-end", "2024-02-01"]
    )
    assert res.exit_code == 2 and "header must contain" in res.stderr
    path.write_text("customer_id,date,amount\nc0,2024-01-01,3\nc1,2024-03-01,3\n")
    res = runner.invoke(
        _root(), ["clv", "fit", "--transactions", str(path), "--calibration-end", "2024-02-01"]
    )
    assert res.exit_code == 2 and "after the calibration end" in res.stderr


def test_no_repeat_customers_reports_each_model_and_exits_non_zero(tmp_path: Path) -> None:
    path = tmp_path / "once.csv"
    path.write_text("customer_id,date,amount\na,2024-01-01,3\nb,2024-01-05,4\nc,2024-01-09,5\n")
    res = runner.invoke(
        _root(),
        ["clv", "fit", "--transactions", str(path), "--calibration-end", "2024-02-01", "--json"],
    )
    assert res.exit_code == 1
    out = json.loads(res.stdout)
    assert out["bgnbd"] is None and out["gamma_gamma"] is None and out["mbgnbd"] is None
    assert "repeat purchase" in out["gamma_gamma_error"]
    assert "repeat purchase" in out["mbgnbd_error"]
    assert "repeat purchase" in res.stderr


def test_gamma_gamma_null_but_bgnbd_printed_when_repeat_spend_is_zero(tmp_path: Path) -> None:
    rows = ["customer_id,date,amount"]
    for i in range(30):
        rows.append(f"c{i},2024-01-{1 + i % 20:02d},10")
        for k in range(i % 4):
            rows.append(f"c{i},2024-02-{1 + (i + 7 * k) % 27:02d},0")
    path = tmp_path / "free.csv"
    path.write_text("\n".join(rows) + "\n")
    res = runner.invoke(
        _root(),
        [
            "clv",
            "fit",
            "--transactions",
            str(path),
            "--calibration-end",
            "2024-03-31",
            "--json",
            "--time-unit",
            "day",
        ],
    )
    out = json.loads(res.stdout)
    assert res.exit_code == 0, res.output
    assert out["gamma_gamma"] is None and "at least two customers" in out["gamma_gamma_error"]
    assert out["bgnbd"] is not None and out["bgnbd"]["r"] > 0

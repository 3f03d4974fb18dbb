"""`wrpfleet validate`: simulated configurations against measurements."""

from __future__ import annotations

import csv
import json
import math

from conftest import SHARED
from test_cli import wrpfleet

MLENERGY = SHARED / "calibration" / "mlenergy_v3_lm_arena_chat.csv"


def rows_of(path, keep) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), [r for r in reader if keep(r)]


def write(path, header, rows) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, header)
        w.writeheader()
        w.writerows(rows)


def test_mlenergy_rows_simulated_within_a_sane_error(tmp_path):
    header, rows = rows_of(
        MLENERGY,
        lambda r: (
            r["gpu_model"] == "H100"
            and r["max_num_seqs"] in ("32", "128")
            and "8B" in r["model_id"]
        ),
    )
    assert len(rows) == 4
    path = tmp_path / "h100.csv"
    write(path, header, rows)
    run = wrpfleet("validate", "mlenergy", path, "--json")
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert len(out["rows"]) == 4
    assert set(out["mape"]) == {"throughput", "power", "energy_per_token", "median_itl"}
    for figure, error in out["mape"].items():
        assert math.isfinite(error) and error < 0.25, figure
    for r in out["rows"]:  # more sequences, more throughput, as measured
        assert r["throughput_sim"] > 0 and r["power_sim"] > 0


def test_mlenergy_works_for_models_and_gpus_not_in_the_calibration(tmp_path):
    header, rows = rows_of(MLENERGY, lambda r: r["max_num_seqs"] == "64")
    row = dict(
        rows[0], model_id="Qwen/Qwen3-32B", gpu_model="H200", num_gpus="2", tensor_parallel="2"
    )
    path = tmp_path / "new.csv"
    write(path, header, [row])
    run = wrpfleet("validate", "mlenergy", path, "--json")
    assert run.returncode == 0, run.stderr
    (result,) = json.loads(run.stdout)["rows"]
    assert (result["model"], result["gpu"], result["tp"]) == ("Qwen3-32B", "H200", 2)
    assert result["throughput_sim"] > 0


def test_splitwise_prompt_and_token_times(tmp_path):
    src = SHARED / "calibration" / "splitwise_perf_model.csv"
    header, rows = rows_of(
        src,
        lambda r: (
            r["hardware"] == "h100-80gb"
            and r["model"] == "llama2-70b"
            and r["tensor_parallel"] == "4"
            and r["batch_size"] == "1"
            and r["token_size"] == "128"
        ),
    )
    path = tmp_path / "sw.csv"
    write(path, header, rows)
    run = wrpfleet("validate", "splitwise", path, "--json")
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["rows"] and set(out["mape"]) == {"prompt_time", "token_time"}
    prompts = sorted(out["rows"], key=lambda r: r["prompt_tokens"])
    assert prompts[-1]["prompt_time_sim"] > prompts[0]["prompt_time_sim"]  # longer, slower


def test_missing_file_is_a_clear_error(tmp_path):
    run = wrpfleet("validate", "mlenergy", tmp_path / "none.csv")
    assert run.returncode == 2 and "file not found" in run.stderr


def test_bad_calibration_csv_names_file_line_and_column(tmp_path):
    header, rows = rows_of(MLENERGY, lambda r: r["max_num_seqs"] == "64")
    path = tmp_path / "bad.csv"
    write(path, header, [rows[0], dict(rows[1], avg_power_watts="lots")])
    run = wrpfleet("validate", "mlenergy", path)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert f"{path}:3: avg_power_watts: not a number: 'lots'" in run.stderr
    write(path, header, [dict(rows[0], model_id="acme/Llama-9-1T")])
    run = wrpfleet("validate", "mlenergy", path)
    assert run.returncode == 2 and f"{path}:2: model_id: unknown model" in run.stderr
    write(
        path,
        [h for h in header if h != "median_itl_ms"],
        [{k: v for k, v in rows[0].items() if k != "median_itl_ms"}],
    )
    run = wrpfleet("validate", "mlenergy", path)
    assert run.returncode == 2 and "missing column(s): median_itl_ms" in run.stderr

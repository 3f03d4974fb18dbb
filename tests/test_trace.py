"""Tests for the trace readers (`wrpfleet.workload.trace`).

Five groups:

* the shared public traces (``../shared/data/traces``): exact row counts, format
  detection and the statistics quoted in ``SOURCES.md``;
* small synthetic files of every supported format (Azure 2024, BurstGPT, generic
  CSV / JSONL / parquet with a column mapping, gzip);
* writing a workload with `write_requests` and reading it back unchanged;
* the `TraceWorkload` transforms (speedup, window, limit, sample, rate_scale);
* bad input: every problem is an `InputError` that names the file and the line.
"""

from __future__ import annotations

import csv
import functools
import gzip
import io
import json
import math
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import SHARED

from wrpfleet.errors import InputError
from wrpfleet.schema import validate
from wrpfleet.types import Request
from wrpfleet.workload import SyntheticWorkload, load_workload
from wrpfleet.workload.trace import (
    ReadReport,
    Row,
    TraceWorkload,
    detect_format,
    read_rows,
    write_requests,
)

TRACES = SHARED / "traces"
CODE = TRACES / "azure2023_code.csv.gz"
CONV = TRACES / "azure2023_conv.csv.gz"
MOONCAKE = TRACES / "mooncake_conversation.jsonl.gz"

AZURE_HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens"
BURSTGPT_HEADER = "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type"


# ----------------------------------------------------------------------------- helpers


def trace(path: Path, **options: Any) -> TraceWorkload:
    """A trace workload spec over ``path``, validated like a user's YAML."""
    return validate(TraceWorkload, {"kind": "trace", "path": path, **options})


@functools.cache
def shared_rows(path: Path) -> list[Row]:
    """The checked rows of a shared trace, read once per test session."""
    return list(read_rows(path))


@functools.cache
def shared_requests(path: Path) -> list[Request]:
    """The requests of a shared trace with no transform, read once per test session."""
    return list(trace(path).requests())


def write_text(path: Path, text: str) -> Path:
    """Write ``text`` to ``path``, gzip-compressed when the name ends in ``.gz``."""
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def write_lines(path: Path, *lines: str) -> Path:
    return write_text(path, "".join(line + "\n" for line in lines))


def write_records(path: Path, records: list[dict[str, Any]]) -> Path:
    """Write ``records`` as CSV, JSON lines or parquet, as the name says (.gz for text)."""
    base = path.name.removesuffix(".gz")
    if base.endswith(".parquet"):
        pq.write_table(pa.Table.from_pylist(records), path)
        return path
    if base.endswith(".jsonl"):
        return write_lines(path, *(json.dumps(r) for r in records))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(records[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return write_text(path, out.getvalue())


def azure_row(second: float, input_tokens: int | str, output_tokens: int | str) -> str:
    """One Azure 2023 CSV line, ``second`` seconds after 2023-11-16 18:00:00."""
    minute, sec = divmod(second, 60)
    return f"2023-11-16 18:{int(minute):02d}:{sec:010.7f},{input_tokens},{output_tokens}"


def mooncake_row(ms: int, input_tokens: int, output_tokens: int = 10) -> str:
    blocks = list(range(math.ceil(input_tokens / 512)))
    return json.dumps(
        {
            "timestamp": ms,
            "input_length": input_tokens,
            "output_length": output_tokens,
            "hash_ids": blocks,
        }
    )


def consume(path: Path, via: str, **options: Any) -> list[Any]:
    """Read a whole trace through `read_rows` or through a workload's `requests()`."""
    if via == "read_rows":
        return list(read_rows(path, **options))
    return list(load_workload(path, **options).requests())


def sd_binomial(n: int, p: float) -> float:
    return math.sqrt(n * p * (1 - p))


def raw_azure_offsets(path: Path) -> np.ndarray:
    """Seconds from the first row of an Azure CSV, parsed independently of the reader."""
    with gzip.open(path, "rt", newline="") as f:
        rows = csv.reader(f)
        next(rows)
        stamps = [datetime.fromisoformat(row[0]) for row in rows if row]
    return np.array([(s - stamps[0]).total_seconds() for s in stamps])


# ----------------------------------------------------------------------------- shared traces


@dataclass(frozen=True)
class Expected:
    """What SOURCES.md says about one shared trace."""

    path: Path
    format: str
    rows: int
    span_s: float
    rate: float  # requests per second, rows / span
    rate_tol: float
    input_mean: float
    output_mean: float


SHARED_TRACES = [
    Expected(CODE, "azure2023", 8_819, 3_436, 2.57, 0.01, 2_048, 28),
    Expected(CONV, "azure2023", 19_366, 3_502, 5.53, 0.01, 1_155, 211),
    Expected(MOONCAKE, "mooncake", 12_031, 3_537, 3.4, 0.02, 12_035, 343),
]
each_shared_trace = pytest.mark.parametrize("exp", SHARED_TRACES, ids=lambda e: e.path.name)


@each_shared_trace
def test_shared_trace_format_and_row_count(exp):
    assert detect_format(exp.path) == exp.format
    assert trace(exp.path).format == exp.format
    assert len(shared_rows(exp.path)) == exp.rows
    assert len(shared_requests(exp.path)) == exp.rows


@each_shared_trace
def test_shared_trace_span_and_mean_rate(exp):
    arrivals = [r.arrival_s for r in shared_requests(exp.path)]
    assert arrivals[0] == 0.0
    assert arrivals == sorted(arrivals)
    assert arrivals[-1] == pytest.approx(exp.span_s, abs=1.0)
    assert len(arrivals) / arrivals[-1] == pytest.approx(exp.rate, abs=exp.rate_tol)


@each_shared_trace
def test_shared_trace_token_means(exp):
    requests = shared_requests(exp.path)
    assert np.mean([r.input_tokens for r in requests]) == pytest.approx(exp.input_mean, abs=1)
    assert np.mean([r.output_tokens for r in requests]) == pytest.approx(exp.output_mean, abs=1)


@pytest.mark.parametrize(("path", "low", "high"), [(CODE, 12.0, 14.0), (CONV, 1.0, 1.2)])
def test_azure_interarrival_cv(path, low, high):
    gaps = np.diff([r.t for r in shared_rows(path)])
    assert low < gaps.std() / gaps.mean() < high


@pytest.mark.parametrize(
    ("path", "field", "p99"),
    [(CONV, "output_tokens", 601), (CODE, "input_tokens", 7_436)],
)
def test_token_p99(path, field, p99):
    values = [getattr(r, field) for r in shared_rows(path)]
    assert np.percentile(values, 99) == pytest.approx(p99, rel=0.01)


def test_mooncake_prefix_block_reuse():
    seen: set[int] = set()
    repeats = total = 0
    for row in shared_rows(MOONCAKE):
        for block in row.prefix_blocks:
            total += 1
            repeats += block in seen
            seen.add(block)
    assert repeats / total == pytest.approx(0.366, abs=0.001)


def test_mooncake_one_block_per_512_tokens():
    requests = shared_requests(MOONCAKE)
    assert {r.block_tokens for r in requests} == {512}
    bad = [r.id for r in requests if len(r.prefix_blocks) != math.ceil(r.input_tokens / 512)]
    assert bad == []


# ----------------------------------------------------------------------------- small files


def test_azure2024_timestamps_with_zone(tmp_path):
    path = write_lines(
        tmp_path / "azure2024.csv",
        AZURE_HEADER,
        "2024-05-12 00:00:00.001163+00:00,100,10",
        "2024-05-12 00:00:01+00:00,200,20",
        "2024-05-12 00:01:30.5+00:00,300,30",
    )
    assert detect_format(path) == "azure2024"
    requests = list(trace(path).requests())
    assert [r.arrival_s for r in requests] == pytest.approx([0.0, 0.998837, 90.498837], abs=1e-6)
    assert [(r.input_tokens, r.output_tokens) for r in requests] == [
        (100, 10),
        (200, 20),
        (300, 30),
    ]


def test_burstgpt_drops_failed_requests_and_reports_them(tmp_path):
    path = write_lines(
        tmp_path / "burst.csv",
        BURSTGPT_HEADER,
        "5,ChatGPT,472,18,490,Conversation log",
        "7,GPT-4,100,20,120,API log",
        "9,ChatGPT,300,0,300,Conversation log",  # failed: no response
        "12,ChatGPT,50,60,110,Conversation log",
    )
    assert detect_format(path) == "burstgpt"
    report = ReadReport()
    requests = list(trace(path).requests(report=report))
    assert [(r.arrival_s, r.input_tokens, r.output_tokens, r.category) for r in requests] == [
        (5.0, 472, 18, "chat"),  # BurstGPT's clock is an offset: kept as it is
        (7.0, 100, 20, "api"),
        (12.0, 50, 60, "chat"),
    ]
    assert report.skipped == 0
    assert sum(report.dropped.values()) == 1
    assert any("left out 1" in note for note in report.notes())


GENERIC_RECORDS = [
    {"ts": 1_000, "prompt_len": 120, "gen_len": 7, "model": "a"},
    {"ts": 1_250, "prompt_len": 80, "gen_len": 12, "model": "b"},
    {"ts": 4_000, "prompt_len": 3_000, "gen_len": 1, "model": "a"},
]
GENERIC_OPTIONS = {
    "columns": {"arrival_s": "ts", "input_tokens": "prompt_len", "output_tokens": "gen_len"},
    "time_unit": "ms",
}


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("generic.csv", "csv"),
        ("generic.jsonl", "jsonl"),
        ("generic.parquet", "parquet"),
        ("generic.csv.gz", "csv"),
        ("generic.jsonl.gz", "jsonl"),
    ],
)
def test_generic_trace_with_column_mapping(tmp_path, name, fmt):
    path = write_records(tmp_path / name, GENERIC_RECORDS)
    assert detect_format(path) == fmt
    workload = trace(path, **GENERIC_OPTIONS)
    assert workload.format == fmt
    requests = list(workload.requests())
    # offsets in the file (here ms) are kept, not moved to start at 0
    assert [r.arrival_s for r in requests] == pytest.approx([1.0, 1.25, 4.0])
    assert [(r.input_tokens, r.output_tokens) for r in requests] == [
        (120, 7),
        (80, 12),
        (3_000, 1),
    ]
    assert [r.id for r in requests] == [0, 1, 2]


def test_generic_trace_without_mapping_names_the_missing_columns(tmp_path):
    path = write_records(tmp_path / "generic.csv", GENERIC_RECORDS)
    with pytest.raises(InputError) as err:
        list(trace(path).requests())
    assert "arrival_s" in err.value.message
    assert err.value.path == str(path)
    assert err.value.line == 1


# ----------------------------------------------------------------------------- round trip


@pytest.fixture(scope="module")
def synthetic_requests() -> list[Request]:
    workload = validate(
        SyntheticWorkload,
        {
            "arrival": {"process": "poisson", "rate": 5},
            "classes": [{"preset": "multiturn"}, {"preset": "chat"}],
            "duration_s": 120,
        },
    )
    requests = list(workload.requests())
    assert len(requests) > 100
    assert any(r.follows is not None for r in requests)  # sessions exercise id renumbering
    return requests


@pytest.mark.parametrize("name", ["out.csv", "out.jsonl", "out.jsonl.gz", "out.parquet"])
def test_write_then_read_gives_the_same_requests(tmp_path, synthetic_requests, name):
    path = tmp_path / name
    assert write_requests(iter(synthetic_requests), path) == len(synthetic_requests)
    back = list(load_workload(path).requests())
    # Exact equality, floats included: every format stores arrival_s losslessly.
    assert [r.arrival_s for r in back] == [r.arrival_s for r in synthetic_requests]
    assert back == synthetic_requests


# ----------------------------------------------------------------------------- transforms


def test_speedup_halves_the_span():
    base = shared_requests(CONV)
    fast = list(trace(CONV, speedup=2).requests())
    assert len(fast) == len(base)
    assert fast[-1].arrival_s == pytest.approx(base[-1].arrival_s / 2, rel=1e-6)
    assert [r.input_tokens for r in fast] == [r.input_tokens for r in base]


def test_window_keeps_the_requests_inside_it_and_rebases():
    offsets = raw_azure_offsets(CONV)
    inside = offsets[(offsets >= 600) & (offsets < 1200)]
    requests = list(trace(CONV, window_s=[600, 1200]).requests())
    assert len(requests) == len(inside)
    assert [r.arrival_s for r in requests] == pytest.approx(inside - 600, abs=1e-6)
    assert 0 <= requests[0].arrival_s < 5


def test_limit():
    requests = list(trace(CONV, limit=100).requests())
    assert len(requests) == 100
    assert requests == shared_requests(CONV)[:100]


@pytest.mark.parametrize("option", [{"sample": 0.5}, {"rate_scale": 0.5}], ids=str)
def test_thinning_keeps_about_half_deterministically(option):
    base = shared_requests(CONV)
    n = len(base)
    workload = trace(CONV, **option)
    kept = list(workload.requests(seed=1))
    assert abs(len(kept) - n / 2) < 4 * sd_binomial(n, 0.5)
    assert list(trace(CONV, **option).requests(seed=1)) == kept
    assert list(workload.requests(seed=2)) != kept
    assert list(trace(CONV, **option, seed=1).requests()) == kept
    # A thinned trace is a sub-multiset of the original one, on the original clock.
    original = Counter((r.arrival_s, r.input_tokens, r.output_tokens) for r in base)
    thinned = Counter((r.arrival_s, r.input_tokens, r.output_tokens) for r in kept)
    assert thinned <= original


def test_rate_scale_two_overlays_a_second_copy():
    base = shared_requests(CONV)
    n = len(base)
    doubled = list(trace(CONV, rate_scale=2.0).requests())
    assert len(doubled) == 2 * n
    arrivals = [r.arrival_s for r in doubled]
    assert arrivals == sorted(arrivals)
    assert [r.id for r in doubled] == list(range(2 * n))
    lengths = Counter((r.input_tokens, r.output_tokens) for r in base)
    assert Counter((r.input_tokens, r.output_tokens) for r in doubled) == lengths + lengths


def test_rate_scale_copy_gets_its_own_prefix_ids():
    base = shared_requests(MOONCAKE)
    originals = {b for r in base for b in r.prefix_blocks}
    doubled = list(trace(MOONCAKE, rate_scale=2.0).requests())
    assert len(doubled) == 2 * len(base)
    first = [r for r in doubled if set(r.prefix_blocks) <= originals]
    second = [r for r in doubled if not set(r.prefix_blocks) & originals]
    assert len(first) == len(second) == len(base)
    copy_ids = {b for r in second for b in r.prefix_blocks}
    assert len(copy_ids) == len(originals)  # same sharing structure, fresh ids


def test_rate_scale_two_and_a_half():
    n = len(shared_requests(CONV))
    scaled = list(trace(CONV, rate_scale=2.5).requests())
    assert abs(len(scaled) - 2.5 * n) < 4 * sd_binomial(n, 0.5)
    arrivals = [r.arrival_s for r in scaled]
    assert arrivals == sorted(arrivals)


# ----------------------------------------------------------------------------- bad input

BAD_LINES = [
    # file name, lines, bad line number, message fragment
    pytest.param(
        "non_numeric.csv",
        [AZURE_HEADER, azure_row(1, 10, 5), azure_row(2, "abc", 5), azure_row(3, 10, 5)],
        3,
        "not a number",
        id="non-numeric-length",
    ),
    pytest.param(
        "negative.csv",
        [AZURE_HEADER, azure_row(1, 10, 5), azure_row(2, 10, 5), azure_row(3, 10, -5)],
        4,
        "GeneratedTokens: must be >= 1",
        id="negative-length",
    ),
    pytest.param(
        "short.csv",
        [AZURE_HEADER, azure_row(1, 10, 5), azure_row(2, 10, 5), "2023-11-16 18:00:03.00,12"],
        4,
        "expected 3 fields",
        id="truncated-csv-line",
    ),
    pytest.param(
        "backwards.csv",
        [AZURE_HEADER, azure_row(1, 10, 5), azure_row(5, 10, 5), azure_row(4, 10, 5)],
        4,
        "backwards",
        id="timestamps-backwards",
    ),
    pytest.param(
        "cut.jsonl",
        [mooncake_row(0, 600), mooncake_row(3000, 1100), mooncake_row(6000, 700)[:40]],
        3,
        "truncated",
        id="mooncake-line-cut-off",
    ),
    pytest.param(
        "backwards.jsonl.gz",
        [mooncake_row(0, 600), mooncake_row(3000, 1100), mooncake_row(1000, 700)],
        3,
        "backwards",
        id="mooncake-gzip-backwards",
    ),
    pytest.param(
        "generic.csv",
        ["arrival_s,input_tokens,output_tokens", "0.5,10,2", "1.5,10,2.5", "2.5,10,2"],
        3,
        "not a whole number",
        id="generic-fractional-length",
    ),
]


@pytest.mark.parametrize("via", ["read_rows", "requests"])
@pytest.mark.parametrize(("name", "lines", "bad_line", "message"), BAD_LINES)
def test_bad_line_is_located(tmp_path, via, name, lines, bad_line, message):
    path = write_lines(tmp_path / name, *lines)
    with pytest.raises(InputError) as err:
        consume(path, via)
    assert err.value.path == str(path)
    assert err.value.line == bad_line
    assert message in err.value.message
    assert str(err.value).startswith(f"{path}:{bad_line}: ")


@pytest.mark.parametrize("via", ["read_rows", "requests"])
@pytest.mark.parametrize("name", ["empty.csv", "empty.jsonl", "empty.csv.gz"])
def test_empty_file(tmp_path, via, name):
    path = write_text(tmp_path / name, "")
    with pytest.raises(InputError) as err:
        consume(path, via)
    assert "empty" in err.value.message
    assert err.value.path == str(path)


@pytest.mark.parametrize("via", ["read_rows", "requests"])
@pytest.mark.parametrize(
    ("name", "header"),
    [
        ("azure.csv", AZURE_HEADER),
        ("burst.csv", BURSTGPT_HEADER),
        ("generic.csv", "arrival_s,input_tokens,output_tokens"),
    ],
)
def test_header_only_file(tmp_path, via, name, header):
    path = write_lines(tmp_path / name, header)
    with pytest.raises(InputError) as err:
        consume(path, via)
    assert "no requests" in err.value.message
    assert err.value.path == str(path)


@pytest.mark.parametrize("via", ["read_rows", "requests"])
@pytest.mark.parametrize("rows", [20, 5_000], ids=["small", "large"])
def test_truncated_gzip(tmp_path, via, rows):
    lines = [AZURE_HEADER, *(azure_row(i * 0.5, 100 + i % 977, 1 + i % 50) for i in range(rows))]
    data = gzip.compress("".join(line + "\n" for line in lines).encode())
    path = tmp_path / "download.csv.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError) as err:
        consume(path, via)
    assert err.value.path == str(path)
    assert "truncated" in err.value.message or "corrupt" in err.value.message


@pytest.mark.parametrize(
    "options", [{}, {"speedup": 2}, {"window_s": [1, 100]}], ids=["plain", "speedup", "window"]
)
def test_backwards_timestamps_caught_whatever_the_transform(tmp_path, options):
    path = write_lines(
        tmp_path / "late_start.jsonl",
        mooncake_row(5_000, 600),
        mooncake_row(9_000, 600),
        mooncake_row(7_000, 600),
    )
    with pytest.raises(InputError) as err:
        list(trace(path, **options).requests())
    assert err.value.line == 3
    assert "backwards" in err.value.message


SKIPPABLE = [
    AZURE_HEADER,
    azure_row(1, 10, 1),
    azure_row(2, 20, 2),
    azure_row(3, "x", 3),  # line 4
    azure_row(4, 40, 4),
    azure_row(5, 50, -1),  # line 6
    azure_row(6, 60, 6),
    "2023-11-16 18:00:07.0000000",  # line 8
]


@pytest.mark.parametrize("via", ["read_rows", "requests"])
def test_skip_bad_lines_counts_and_reports_them(tmp_path, via):
    path = write_lines(tmp_path / "some_bad.csv", *SKIPPABLE)
    report = ReadReport()
    if via == "read_rows":
        got = [r.input_tokens for r in read_rows(path, skip_bad_lines=True, report=report)]
    else:
        workload = load_workload(path, skip_bad_lines=True)
        got = [r.input_tokens for r in workload.requests(report=report)]
    assert got == [10, 20, 40, 60]
    assert report.skipped == 3
    notes = " ".join(report.notes())
    assert "skipped 3" in notes
    assert "line 4" in notes


def test_skip_bad_lines_without_it_stops_at_the_first(tmp_path):
    path = write_lines(tmp_path / "some_bad.csv", *SKIPPABLE)
    with pytest.raises(InputError) as err:
        consume(path, "requests")
    assert err.value.line == 4


@pytest.mark.parametrize("via", ["read_rows", "requests"])
def test_every_line_bad_fails_even_when_skipping(tmp_path, via):
    path = write_lines(
        tmp_path / "all_bad.csv", AZURE_HEADER, azure_row(1, "x", 1), azure_row(2, -3, 2)
    )
    with pytest.raises(InputError) as err:
        consume(path, via, skip_bad_lines=True)
    assert "no requests" in err.value.message
    assert "every line was bad" in err.value.message
    assert err.value.path == str(path)


@pytest.mark.parametrize("via", ["detect_format", "read_rows", "requests"])
def test_unknown_extension_asks_for_format(tmp_path, via):
    path = write_lines(tmp_path / "trace.txt", AZURE_HEADER, azure_row(1, 10, 1))
    with pytest.raises(InputError) as err:
        detect_format(path) if via == "detect_format" else consume(path, via)
    assert "--format" in err.value.message
    assert err.value.path == str(path)


def test_explicit_format_reads_an_unknown_extension(tmp_path):
    path = write_lines(tmp_path / "trace.txt", AZURE_HEADER, azure_row(1, 10, 1))
    assert [r.input_tokens for r in load_workload(path, format="azure2023").requests()] == [10]

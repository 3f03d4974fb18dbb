"""Replaying real traces: Azure LLM inference (2023 and 2024), Mooncake, BurstGPT,
and generic CSV / JSONL / parquet with a column mapping.

Every reader streams its file (gzip or not) and hands rows to one checker that
owns the rules: whole non-negative token counts, timestamps that never go back.
A bad row stops the read with ``file:line: what is wrong``; with
``skip_bad_lines`` it is counted and reported instead, never dropped silently.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import gzip
import heapq
import io
import itertools
import json
import math
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
from pydantic import Field, PositiveFloat, PositiveInt, model_validator

from wrpfleet.errors import InputError
from wrpfleet.schema import ExistingPath, Spec
from wrpfleet.types import Request

FORMATS = ("azure2023", "azure2024", "mooncake", "burstgpt", "csv", "jsonl", "parquet")
Format = Literal[
    "auto", "azure2023", "azure2024", "mooncake", "burstgpt", "csv", "jsonl", "parquet"
]
TimeUnit = Literal["s", "ms", "us", "ns", "iso"]

AZURE_HEADER = ["TIMESTAMP", "ContextTokens", "GeneratedTokens"]
MOONCAKE_BLOCK_TOKENS = 512  # Mooncake's README: one hash id per 512-token block
BURSTGPT_CATEGORY = {"Conversation log": "chat", "API log": "api"}

# Request fields a generic trace may carry, with the column names tried when no
# mapping is given (first match wins).
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "arrival_s": ("arrival_s", "arrival", "timestamp", "time", "ts", "arrival_time"),
    "input_tokens": ("input_tokens", "input_length", "prompt_tokens", "input_len"),
    "output_tokens": ("output_tokens", "output_length", "completion_tokens", "output_len"),
    "prefix_blocks": ("prefix_blocks", "hash_ids"),
    "output_blocks": ("output_blocks",),
    "id": ("id", "request_id"),
    "block_tokens": ("block_tokens",),
    "session_id": ("session_id",),
    "turn": ("turn",),
    "follows": ("follows",),
    "think_s": ("think_s",),
    "category": ("category",),
    "difficulty": ("difficulty",),
    "language": ("language",),
    "modality": ("modality",),
    "slo_class": ("slo_class",),
    "text": ("text", "prompt"),
}
REQUIRED = ("arrival_s", "input_tokens", "output_tokens")
TAGS = ("category", "language", "modality", "slo_class", "text")

# Copies of a trace overlaid to scale its rate up get prefix ids this far apart,
# so a copy does not hit the cache on its twin's identical prompts.
COPY_ID_STRIDE = 1 << 40


@dataclass(slots=True)
class Row:
    """One checked trace row; ``t`` in seconds on the trace's own clock."""

    line: int
    t: float
    input_tokens: int
    output_tokens: int
    prefix_blocks: tuple[int, ...] = ()
    extra: dict[str, Any] | None = None


@dataclass
class ReadReport:
    """What a read left out, and why: the caller prints it (no silent data loss)."""

    skipped: int = 0
    first_errors: list[str] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)

    def notes(self) -> list[str]:
        out = []
        if self.skipped:
            first = "; ".join(self.first_errors)
            out.append(f"skipped {self.skipped} bad line(s) (first: {first})")
        out += [f"left out {n} {why}" for why, n in self.dropped.items()]
        return out


class _Bad(Exception):
    """A problem with one row (the checker adds file and line)."""


class _Drop(Exception):
    """A well-formed row that the format says is not a request (reported, not an error)."""


# ----------------------------------------------------------------------------- reading


def _open(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), newline="")
    return open(path, newline="")


def _first_lines(path: Path, n: int = 2) -> list[str]:
    try:
        with _open(path) as f:
            lines = []
            for line in f:
                if line.strip():
                    lines.append(line.strip())
                if len(lines) == n:
                    break
            return lines
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise InputError(f"file is truncated or corrupt: {e}", path=path) from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read: {e}", path=path) from None


def detect_format(path: Path) -> str:
    """The trace format, from the file name's extension and its first line."""
    base = path.name.lower().removesuffix(".gz")
    if base.endswith(".parquet"):
        return "parquet"
    lines = _first_lines(path)
    if not lines:
        raise InputError("empty file: no requests", path=path, line=1)
    if base.endswith((".jsonl", ".json", ".ndjson")):
        try:
            first = json.loads(lines[0])
        except json.JSONDecodeError as e:
            raise InputError(f"not JSON lines: {e.msg}", path=path, line=1) from None
        keys = first.keys() if isinstance(first, dict) else ()
        return (
            "mooncake" if {"timestamp", "input_length", "output_length"} <= set(keys) else "jsonl"
        )
    if base.endswith(".csv"):
        header = [h.strip() for h in lines[0].split(",")]
        if header[:3] == AZURE_HEADER:
            second = lines[1].split(",")[0] if len(lines) > 1 else ""
            tz = second[19:]  # after "YYYY-MM-DD HH:MM:SS"
            return "azure2024" if ("+" in tz or tz.endswith("Z")) else "azure2023"
        if {"Request tokens", "Response tokens"} <= set(header):
            return "burstgpt"
        return "csv"
    raise InputError(
        f"cannot tell the trace format from the name {path.name!r}; "
        f"give --format (one of {', '.join(FORMATS)})",
        path=path,
    )


def _whole(value: Any, name: str, least: int = 0) -> int:
    if isinstance(value, bool):
        raise _Bad(f"{name}: not a number: {value!r}")
    if isinstance(value, str):
        value = value.strip()
        try:
            value = int(value)
        except ValueError:
            try:
                value = float(value)
            except ValueError:
                raise _Bad(f"{name}: not a number: {value!r}") from None
    if isinstance(value, float):
        if not value.is_integer():
            raise _Bad(f"{name}: not a whole number: {value!r}")
        value = int(value)
    if not isinstance(value, int):
        raise _Bad(f"{name}: not a number: {value!r}")
    if value < least:
        raise _Bad(f"{name}: must be >= {least}, got {value}")
    return value


def _seconds(value: Any, name: str, unit: TimeUnit) -> float:
    if unit == "iso":
        try:
            stamp = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        except ValueError:
            raise _Bad(f"{name}: not a date and time: {value!r}") from None
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=UTC)
        return stamp.timestamp()
    return _number(value, name) / {"s": 1, "ms": 1e3, "us": 1e6, "ns": 1e9}[unit]


def _number(value: Any, name: str) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise _Bad(f"{name}: not a number: {value!r}") from None
    if not math.isfinite(x):
        raise _Bad(f"{name}: not a finite number: {value!r}")
    return x


def _blocks(value: Any, name: str) -> tuple[int, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        text = value.strip()
        try:
            value = json.loads(text) if text.startswith("[") else text.split()
        except json.JSONDecodeError:
            raise _Bad(f"{name}: not a list of block ids: {value!r}") from None
    if not isinstance(value, list | tuple | np.ndarray):
        raise _Bad(f"{name}: not a list of block ids: {value!r}")
    return tuple(_whole(v, name) for v in value)


def _csv_rows(f: IO[str], path: Path) -> Iterator[tuple[int, list[str]]]:
    reader = csv.reader(f)
    for fields in reader:
        if fields:
            yield reader.line_num, fields


def _azure(f: IO[str], path: Path, _: Any) -> Iterator[tuple[int, Callable[[], Row]]]:
    rows = _csv_rows(f, path)
    _, header = next(rows, (1, []))
    if [h.strip() for h in header] != AZURE_HEADER:
        raise InputError(f"expected the header {','.join(AZURE_HEADER)}", path=path, line=1)
    for line, fields in rows:

        def parse(line: int = line, fields: list[str] = fields) -> Row:
            if len(fields) != 3:
                raise _Bad(f"expected 3 fields ({','.join(AZURE_HEADER)}), got {len(fields)}")
            return Row(
                line,
                _seconds(fields[0], "TIMESTAMP", "iso"),
                _whole(fields[1], "ContextTokens", 1),
                _whole(fields[2], "GeneratedTokens", 1),
            )

        yield line, parse


def _burstgpt(f: IO[str], path: Path, _: Any) -> Iterator[tuple[int, Callable[[], Row]]]:
    rows = _csv_rows(f, path)
    _, header = next(rows, (1, []))
    names = [h.strip() for h in header]
    need = ("Timestamp", "Request tokens", "Response tokens")
    if not set(need) <= set(names):
        raise InputError(f"BurstGPT needs the columns {', '.join(need)}", path=path, line=1)
    col = {n: names.index(n) for n in names}
    log = col.get("Log Type")
    for line, fields in rows:

        def parse(line: int = line, fields: list[str] = fields) -> Row:
            if len(fields) != len(names):
                raise _Bad(f"expected {len(names)} fields, got {len(fields)}")
            output = _whole(fields[col["Response tokens"]], "Response tokens")
            if output == 0:
                raise _Drop("failed requests (BurstGPT 'Response tokens' = 0)")
            extra = None
            if log is not None:
                kind = fields[log].strip()
                extra = {"category": BURSTGPT_CATEGORY.get(kind, kind.lower() or "unknown")}
            return Row(
                line,
                _seconds(fields[col["Timestamp"]], "Timestamp", "s"),
                _whole(fields[col["Request tokens"]], "Request tokens", 1),
                output,
                (),
                extra,
            )

        yield line, parse


def _mooncake(f: IO[str], path: Path, _: Any) -> Iterator[tuple[int, Callable[[], Row]]]:
    for line, text in enumerate(f, 1):
        if not text.strip():
            continue

        def parse(line: int = line, text: str = text) -> Row:
            obj = _json_object(text)
            for key in ("timestamp", "input_length", "output_length"):
                if key not in obj:
                    raise _Bad(f"missing {key!r}")
            return Row(
                line,
                _seconds(obj["timestamp"], "timestamp", "ms"),
                _whole(obj["input_length"], "input_length", 1),
                _whole(obj["output_length"], "output_length", 1),
                _blocks(obj.get("hash_ids"), "hash_ids"),
                {"block_tokens": MOONCAKE_BLOCK_TOKENS},
            )

        yield line, parse


def _json_object(text: str) -> dict[str, Any]:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise _Bad(f"not valid JSON ({e.msg}); is the line truncated?") from None
    if not isinstance(obj, dict):
        raise _Bad("expected a JSON object")
    return obj


@dataclass(frozen=True)
class Columns:
    """Which source column holds which request field, for generic traces."""

    mapping: dict[str, str]
    time_unit: TimeUnit = "s"

    def resolve(self, names: Iterable[str], path: Path) -> dict[str, str]:
        names = list(names)
        out = {}
        for name, aliases in COLUMN_ALIASES.items():
            if name in self.mapping:
                if self.mapping[name] not in names:
                    raise InputError(
                        f"column {self.mapping[name]!r} (for {name}) not found; "
                        f"the file has: {', '.join(names)}",
                        path=path,
                        line=1,
                    )
                out[name] = self.mapping[name]
            else:
                found = next((a for a in aliases if a in names), None)
                if found is not None:
                    out[name] = found
        missing = [n for n in REQUIRED if n not in out]
        if missing:
            raise InputError(
                f"no column for {', '.join(missing)}; the file has: {', '.join(names)}. "
                "Map them with 'columns:' (for example columns: {arrival_s: ts})",
                path=path,
                line=1,
            )
        return out

    def row(self, line: int, record: dict[str, Any], cols: dict[str, str]) -> Row:
        get = {name: record.get(src) for name, src in cols.items()}
        extra = {}
        for name in ("session_id", "turn", "follows", "block_tokens", "id"):
            if get.get(name) not in (None, ""):
                extra[name] = _whole(get[name], cols[name])
        for name in ("think_s", "difficulty"):
            if get.get(name) not in (None, ""):
                extra[name] = _number(get[name], cols[name])
        for name in TAGS:
            if get.get(name) not in (None, ""):
                extra[name] = str(get[name])
        if get.get("output_blocks") not in (None, ""):
            extra["output_blocks"] = _blocks(get["output_blocks"], cols["output_blocks"])
        return Row(
            line,
            _seconds(get["arrival_s"], cols["arrival_s"], self.time_unit),
            _whole(get["input_tokens"], cols["input_tokens"], 1),
            _whole(get["output_tokens"], cols["output_tokens"], 1),
            _blocks(get.get("prefix_blocks"), cols.get("prefix_blocks", "prefix_blocks")),
            extra or None,
        )


def _generic_csv(f: IO[str], path: Path, columns: Columns) -> Iterator[tuple[int, Callable]]:
    rows = _csv_rows(f, path)
    _, header = next(rows, (1, []))
    names = [h.strip() for h in header]
    cols = columns.resolve(names, path)
    for line, fields in rows:

        def parse(line: int = line, fields: list[str] = fields) -> Row:
            if len(fields) != len(names):
                raise _Bad(f"expected {len(names)} fields, got {len(fields)}")
            return columns.row(line, dict(zip(names, fields, strict=True)), cols)

        yield line, parse


def _generic_jsonl(f: IO[str], path: Path, columns: Columns) -> Iterator[tuple[int, Callable]]:
    cols: dict[str, str] | None = None
    for line, text in enumerate(f, 1):
        if not text.strip():
            continue
        if cols is None:
            try:
                cols = columns.resolve(_json_object(text).keys(), path)
            except _Bad as e:
                raise InputError(str(e), path=path, line=line) from None

        def parse(line: int = line, text: str = text, cols: dict[str, str] = cols) -> Row:
            return columns.row(line, _json_object(text), cols)

        yield line, parse


def _parquet(path: Path, columns: Columns) -> Iterator[tuple[int, Callable]]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises several types for a bad file
        raise InputError(f"not a readable parquet file: {e}", path=path) from None
    cols = columns.resolve(pf.schema_arrow.names, path)
    number = 0
    for batch in pf.iter_batches(batch_size=65_536, columns=sorted(set(cols.values()))):
        for record in batch.to_pylist():
            number += 1

            def parse(line: int = number, record: dict = record) -> Row:
                return columns.row(line, record, cols)

            yield number, parse


_TEXT_READERS = {
    "azure2023": _azure,
    "azure2024": _azure,
    "burstgpt": _burstgpt,
    "mooncake": _mooncake,
    "csv": _generic_csv,
    "jsonl": _generic_jsonl,
}


def read_rows(
    path: Path,
    format: str = "auto",
    columns: Columns | None = None,
    *,
    skip_bad_lines: bool = False,
    report: ReadReport | None = None,
) -> Iterator[Row]:
    """Checked rows of a trace, in file order, lazily."""
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", path=path)
    fmt = detect_format(path) if format == "auto" else format
    if fmt not in FORMATS:
        raise InputError(f"unknown trace format {fmt!r}; one of {', '.join(FORMATS)}", path=path)
    columns = columns or Columns({})
    report = report if report is not None else ReadReport()
    count = 0
    last_t, last_line = -math.inf, 0
    line = 0
    files = contextlib.ExitStack()
    try:
        if fmt == "parquet":
            parsed = _parquet(path, columns)
        else:
            parsed = _TEXT_READERS[fmt](files.enter_context(_open(path)), path, columns)
        for line, parse in parsed:
            try:
                row = parse()
                if row.t < last_t:
                    raise _Bad(
                        f"timestamps go backwards: {row.t - last_t:+.6g} s after line {last_line}"
                        " (sort the trace by time)"
                    )
            except _Drop as why:
                report.dropped[str(why)] = report.dropped.get(str(why), 0) + 1
                continue
            except _Bad as bad:
                if not skip_bad_lines:
                    raise InputError(str(bad), path=path, line=line) from None
                report.skipped += 1
                if len(report.first_errors) < 3:
                    report.first_errors.append(f"line {line}: {bad}")
                continue
            count += 1
            last_t, last_line = row.t, row.line
            yield row
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise InputError(
            f"file is truncated or corrupt after line {line}: {e}", path=path, line=line + 1
        ) from None
    except UnicodeDecodeError as e:
        raise InputError(f"not a text file: {e.reason}", path=path, line=line + 1) from None
    except csv.Error as e:
        raise InputError(f"bad CSV: {e}", path=path, line=line + 1) from None
    finally:
        files.close()
    if count == 0:
        why = "every line was bad or left out" if (report.skipped or report.dropped) else "empty"
        raise InputError(f"no requests in the trace ({why})", path=path)


# ----------------------------------------------------------------------------- the spec


class TraceWorkload(Spec):
    """Replay a trace file, with optional windowing, time and rate scaling, and sampling.

    The order of operations: ``window_s`` -> ``speedup`` -> ``rate_scale`` -> ``sample``
    -> ``limit``. Offsets in the file (Mooncake, BurstGPT, generic seconds) are kept;
    wall-clock traces (Azure, ISO times) are measured from their first row. The window
    is on that clock, and the replay starts at the window's start.
    """

    kind: Literal["trace"] = "trace"
    name: str = ""
    description: str = ""
    path: ExistingPath
    format: Format = "auto"
    columns: dict[str, str] = Field(
        default_factory=dict, description="generic traces: request field -> source column"
    )
    time_unit: TimeUnit = "s"
    window_s: tuple[float, float] | None = None
    speedup: PositiveFloat = Field(1.0, description="divide every timestamp (2 = twice the rate)")
    rate_scale: PositiveFloat = Field(
        1.0,
        description="<1: keep each request with this probability (thinning); "
        ">1: overlay copies of the trace shifted in time (superposition)",
    )
    sample: float = Field(1.0, gt=0, le=1, description="keep each request with this probability")
    limit: PositiveInt | None = None
    skip_bad_lines: bool = False
    block_tokens: PositiveInt = Field(16, description="tokens per prefix block, generic traces")
    category: str | None = None
    slo_class: str = "standard"
    language: str = "en"
    seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> TraceWorkload:
        unknown = set(self.columns) - set(COLUMN_ALIASES)
        if unknown:
            raise ValueError(
                f"unknown request field(s) in columns: {', '.join(sorted(unknown))}; "
                f"allowed: {', '.join(COLUMN_ALIASES)}"
            )
        if self.window_s is not None and not 0 <= self.window_s[0] < self.window_s[1]:
            raise ValueError("window_s must be [start, end] with 0 <= start < end")
        if not self.name:
            object.__setattr__(self, "name", self.path.name.split(".")[0])
        if self.format == "auto":
            object.__setattr__(self, "format", detect_format(self.path))
        return self

    @property
    def wall_clock(self) -> bool:
        """Timestamps are dates and times (Azure, ISO): measure them from the first row."""
        return self.format in ("azure2023", "azure2024") or self.time_unit == "iso"

    def rows(self, report: ReadReport | None = None) -> Iterator[Row]:
        """Checked rows on the replay clock: offsets as in the file, or seconds since the
        first row for wall-clock traces; from the window's start, if any; sped up."""
        rows = read_rows(
            self.path,
            self.format,
            Columns(self.columns, self.time_unit),
            skip_bad_lines=self.skip_bad_lines,
            report=report,
        )
        first = next(rows)
        origin = first.t if self.wall_clock else 0.0
        start = origin + (self.window_s[0] if self.window_s else 0.0)
        end = origin + self.window_s[1] if self.window_s else math.inf
        for row in itertools.chain([first], rows):
            if row.t >= end:
                break
            if row.t >= start:
                yield dataclasses.replace(row, t=(row.t - start) / self.speedup)

    def requests(
        self, seed: int | None = None, report: ReadReport | None = None
    ) -> Iterator[Request]:
        rng = np.random.default_rng(self.seed if seed is None else seed)
        copies, fraction = divmod(self.rate_scale, 1.0)
        streams = [self._copy(0, 0.0, 0.0, min(self.rate_scale, 1.0), rng, report)]
        if self.rate_scale > 1:
            period = self._period()
            for j in range(1, int(copies) + (fraction > 1e-9)):
                keep = 1.0 if j < copies else fraction
                shift = float(rng.uniform(0, period))
                streams.append(self._copy(j, shift, period, keep, rng, None))
        merged = heapq.merge(*streams, key=lambda item: item[0].t)
        return itertools.islice(self._to_requests(merged), self.limit)

    def _period(self) -> float:
        """Length of the cycle a shifted copy wraps around: span plus one mean gap."""
        n, last = 0, 0.0
        for row in self.rows():
            n, last = n + 1, row.t
        return last * (1 + 1 / max(n - 1, 1)) if last > 0 else 1.0

    def _copy(
        self,
        copy: int,
        shift: float,
        period: float,
        keep: float,
        rng: np.random.Generator,
        report: ReadReport | None,
    ) -> Iterator[tuple[Row, int]]:
        """One copy of the trace, shifted by ``shift`` s around ``period``, thinned to ``keep``."""
        keep *= self.sample
        thin = np.random.default_rng(rng.integers(2**63)) if keep < 1 else None
        if shift == 0:
            segments: Iterable[Row] = self.rows(report)
        else:
            late = ((r, -shift) for r in self.rows() if r.t >= shift)
            early = ((r, period - shift) for r in self.rows() if r.t < shift)
            segments = (_shifted(r, d) for r, d in itertools.chain(late, early))
        for row in segments:
            if thin is None or thin.random() < keep:
                yield row, copy

    def _to_requests(self, rows: Iterator[tuple[Row, int]]) -> Iterator[Request]:
        renumber: dict[int, int] = {}
        for new_id, (row, copy) in enumerate(rows):
            extra = row.extra or {}
            blocks = row.prefix_blocks
            answer = extra.get("output_blocks", ())
            if copy:
                blocks = tuple(b + copy * COPY_ID_STRIDE for b in blocks)  # distinct content
                answer = tuple(b + copy * COPY_ID_STRIDE for b in answer)
            offset = copy * COPY_ID_STRIDE
            follows = None
            session = extra.get("session_id")
            if session is not None:
                session += offset
            if "id" in extra:
                renumber[extra["id"] + offset] = new_id
            if "follows" in extra:
                follows = renumber.get(extra["follows"] + offset)
            yield Request(
                id=new_id,
                arrival_s=row.t,
                input_tokens=row.input_tokens,
                output_tokens=row.output_tokens,
                prefix_blocks=blocks,
                block_tokens=extra.get("block_tokens", self.block_tokens),
                output_blocks=answer,
                session_id=session,
                turn=extra.get("turn", 0),
                follows=follows,
                think_s=extra.get("think_s", 0.0),
                category=extra.get("category", self.category or "unknown"),
                difficulty=extra.get("difficulty", 0.5),
                language=extra.get("language", self.language),
                modality=extra.get("modality", "text"),
                slo_class=extra.get("slo_class", self.slo_class),
                text=extra.get("text", ""),
            )


def _shifted(row: Row, delta: float) -> Row:
    return Row(
        row.line, row.t + delta, row.input_tokens, row.output_tokens, row.prefix_blocks, row.extra
    )


# ----------------------------------------------------------------------------- writing

FIELDS = tuple(COLUMN_ALIASES)


def write_requests(
    requests: Iterable[Request],
    path: Path,
    on_progress: Callable[[float, str], None] | None = None,
    batch: int = 65_536,
) -> int:
    """Write requests as a generic trace (.csv, .jsonl or .parquet; .gz for text),
    with every `Request` field as a column, so reading it back gives the same requests."""
    path = Path(path)
    base = path.name.lower().removesuffix(".gz")
    kind = next((k for k in ("csv", "jsonl", "parquet") if base.endswith("." + k)), None)
    if kind is None or (kind == "parquet" and path.suffix == ".gz"):
        raise InputError("write .csv, .jsonl or .parquet (text formats may end in .gz)", path=path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0

    def records() -> Iterator[dict[str, Any]]:
        nonlocal n
        for r in requests:
            n += 1
            if on_progress is not None and n % 10_000 == 0:
                on_progress(n, "")
            yield {f: getattr(r, f) for f in FIELDS}

    if kind == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        types = {"prefix_blocks": pa.list_(pa.int64()), "output_blocks": pa.list_(pa.int64())}
        types |= {f: pa.float64() for f in ("arrival_s", "think_s", "difficulty")}
        types |= {f: pa.string() for f in TAGS}
        schema = pa.schema([(f, types.get(f, pa.int64())) for f in FIELDS])
        with pq.ParquetWriter(path, schema) as writer:
            rows = records()
            while chunk := list(itertools.islice(rows, batch)):
                table = pa.Table.from_pylist(
                    [
                        {
                            **c,
                            "prefix_blocks": list(c["prefix_blocks"]),
                            "output_blocks": list(c["output_blocks"]),
                        }
                        for c in chunk
                    ],
                    schema,
                )
                writer.write_table(table)
        return n
    gz = path.suffix == ".gz"
    with gzip.open(path, "wt", newline="") if gz else open(path, "w", newline="") as f:
        if kind == "csv":
            w = csv.writer(f)
            w.writerow(FIELDS)
            for c in records():
                c["prefix_blocks"] = " ".join(map(str, c["prefix_blocks"]))
                c["output_blocks"] = " ".join(map(str, c["output_blocks"]))
                w.writerow("" if v is None else v for v in c.values())
        else:
            for c in records():
                f.write(json.dumps(c) + "\n")
    return n

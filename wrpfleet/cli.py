"""The ``wrpfleet`` command. Thin: it parses, calls the library and prints.

Bad input of any kind ends with one ``file:line: field: problem`` line per problem
on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from wrpfleet.errors import InputError
from wrpfleet.types import Request
from wrpfleet.workload import FORMATS, TraceWorkload, is_scenario, load_workload
from wrpfleet.workload.trace import ReadReport, write_requests

app = typer.Typer(
    help="Plan and run LLM inference fleets: workloads, routers and GPU pools (WRP).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
workload_app = typer.Typer(
    help="Inspect, plot and export workloads (synthetic specs and traces).",
    no_args_is_help=True,
)
app.add_typer(workload_app, name="workload")

out = Console()
err = Console(stderr=True)

Source = Annotated[
    Path,
    typer.Argument(
        help="A workload spec (.yaml), a scenario (.yaml: its workload), or a trace file "
        "(Azure .csv, Mooncake .jsonl, BurstGPT .csv, generic .csv/.jsonl/.parquet; .gz too).",
        show_default=False,
    ),
]
FormatOpt = Annotated[
    str,
    typer.Option(
        "--format",
        help=f"Trace format: auto (from extension and first line) or one of {', '.join(FORMATS)}.",
    ),
]
SkipOpt = Annotated[
    bool,
    typer.Option(
        "--skip-bad-lines",
        help="Skip malformed trace lines instead of stopping; report how many were skipped.",
    ),
]
SeedOpt = Annotated[
    int | None, typer.Option("--seed", help="Seed for synthetic workloads and trace sampling.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON to stdout.")]
ScenarioArg = Annotated[Path, typer.Argument(help="Scenario file (.yaml).", show_default=False)]
WorkloadOpt = Annotated[
    Path | None, typer.Option(help="Replace the scenario's workload: a spec or a trace file.")
]
PoolsOpt = Annotated[
    Path | None, typer.Option(help="Replace the scenario's pools: a pool spec file.")
]
RouterOpt = Annotated[
    str | None,
    typer.Option(
        "--router",
        help="Replace the scenario's router by this policy, with its default parameters "
        "(round_robin, least_requests, power_of_two, prefix_affinity, ...).",
    ),
]


@dataclass
class _Source:
    """What a describe/export source resolves to: a workload, or a scenario's workload."""

    name: str
    kind: str
    requests: Iterator[Request]
    horizon: float | None
    report: ReadReport
    format: str | None = None


def _source(source: Path, format: str, skip_bad_lines: bool, seed: int | None) -> _Source:
    if format != "auto" and source.suffix.lower() in (".yaml", ".yml"):
        raise InputError("--format applies to trace files, not YAML specs", path=source)
    report = ReadReport()
    if source.suffix.lower() in (".yaml", ".yml") and is_scenario(source):
        from wrpfleet.config import load_scenario

        scenario = load_scenario(source, seed=seed)
        workload, requests = scenario.workload, scenario.requests()
        horizon = scenario.duration_s or getattr(workload, "duration_s", None)
        return _Source(scenario.workload.name, workload.kind, requests, horizon, report)
    workload = load_workload(source, format=format, skip_bad_lines=skip_bad_lines)
    if isinstance(workload, TraceWorkload):
        if skip_bad_lines:
            workload = workload.model_copy(update={"skip_bad_lines": True})
        requests = workload.requests(seed, report=report)
        return _Source(workload.name, "trace", requests, None, report, workload.format)
    return _Source(workload.name, "synthetic", workload.requests(seed), workload.duration_s, report)


@workload_app.command("describe")
def describe_cmd(
    source: Source,
    format: FormatOpt = "auto",
    skip_bad_lines: SkipOpt = False,
    seed: SeedOpt = None,
    json_out: JsonOpt = False,
    plot: Annotated[
        Path | None,
        typer.Option(help="Write rate-over-time and token-length histograms to this HTML file."),
    ] = None,
) -> None:
    """Count and characterise a workload: requests, span, rate, burstiness (inter-arrival CV),
    prompt and output token percentiles, prefix reuse, sessions and the class mix."""
    from wrpfleet.analysis.describe import describe
    from wrpfleet.progress import progress

    src = _source(source, format, skip_bad_lines, seed)
    total = src.horizon
    with progress(f"reading {source.name}", total=total) as update:
        stats = describe(src.requests, lambda n, t: update(t if total else n, f"{n:,} requests"))
    summary: dict[str, Any] = {"source": str(source), "workload": src.name, "kind": src.kind}
    if src.format:
        summary["format"] = src.format
    summary |= stats.summary()
    summary["notes"] = src.report.notes()
    if plot is not None:
        from wrpfleet.analysis.figures import workload_figure, write_html

        write_html(workload_figure(stats, f"Workload: {src.name}"), plot)
        summary["plot"] = str(plot)
    if json_out:
        print(json.dumps(summary, indent=2))
    else:
        _print_summary(summary)


def _print_summary(s: dict[str, Any]) -> None:
    def num(x: Any, fmt: str = ",.0f") -> str:
        return "-" if x is None else format(x, fmt)

    table = Table(title=f"{s['workload']} ({s['kind']})", show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("requests", num(s["requests"]))
    table.add_row("span", f"{num(s['span_s'], ',.1f')} s")
    table.add_row("mean rate", f"{num(s['mean_rate_per_s'], '.3f')} req/s")
    table.add_row("inter-arrival CV", num(s["interarrival_cv"], ".2f"))
    for key in ("input_tokens", "output_tokens"):
        d = s[key] or {}
        table.add_row(
            key.replace("_", " "),
            "  ".join(f"{k} {num(v)}" for k, v in d.items()),
        )
    reuse = s["prefix_reuse"]
    table.add_row("prefix reuse", "-" if reuse is None else f"{reuse:.1%} of prefix blocks repeat")
    if s["sessions"]:
        table.add_row("sessions", f"{s['sessions']:,} ({s['dependent_requests']:,} follow-ups)")
    for key in ("categories", "slo_classes", "languages"):
        total = sum(s[key].values()) or 1
        table.add_row(
            key.replace("_", " "),
            ", ".join(f"{k} {v / total:.0%}" for k, v in list(s[key].items())[:8]),
        )
    out.print(table)
    for note in s["notes"]:
        err.print(f"[yellow]note:[/] {note}")
    if "plot" in s:
        out.print(f"plot: {s['plot']}")


@workload_app.command("export")
def export_cmd(
    source: Source,
    dest: Annotated[
        Path, typer.Argument(help="Output file: .csv, .jsonl or .parquet (generic trace format).")
    ],
    format: FormatOpt = "auto",
    skip_bad_lines: SkipOpt = False,
    seed: SeedOpt = None,
) -> None:
    """Write a workload's requests as a generic trace that `describe` and scenarios read back."""
    from wrpfleet.progress import progress

    src = _source(source, format, skip_bad_lines, seed)
    with progress(f"writing {dest.name}") as update:
        n = write_requests(src.requests, dest, on_progress=update)
    for note in src.report.notes():
        err.print(f"[yellow]note:[/] {note}")
    out.print(f"wrote {n:,} requests to {dest}")


@app.command("simulate")
def simulate_cmd(
    scenario: ScenarioArg,
    workload: WorkloadOpt = None,
    pools: PoolsOpt = None,
    router: RouterOpt = None,
    seed: SeedOpt = None,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="Output folder (default: the scenario's, runs/<name>)."),
    ] = None,
    reference: Annotated[
        bool,
        typer.Option(
            "--reference", help="Step-by-step reference mode (one event per engine step; slow)."
        ),
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Simulate a scenario; write summary.json, requests.parquet, replicas.parquet,
    timeline.parquet and report.html, and print the summary."""
    from wrpfleet.config import load_scenario
    from wrpfleet.progress import progress
    from wrpfleet.sim import simulate

    s = load_scenario(scenario, workload=workload, pools=pools, router=router, seed=seed)
    horizon = s.duration_s or getattr(s.workload, "duration_s", None)
    with progress(f"simulating {s.name}", total=horizon) as update:
        result = simulate(
            s,
            fast=not reference,
            on_progress=lambda t, n: update(t if horizon else n, f"{n:,} requests"),
        )
    paths = result.write(out_dir or s.out_dir)
    summary = result.summary
    if json_out:
        print(json.dumps({**summary, "outputs": {k: str(v) for k, v in paths.items()}}, indent=2))
        return
    _print_run(summary)
    out.print(f"outputs: {paths['summary'].parent}/ ({', '.join(p.name for p in paths.values())})")


@app.command("compare")
def compare_cmd(
    scenario: ScenarioArg,
    routers: Annotated[
        str | None,
        typer.Option(help="Routers to compare, comma-separated (default: the scenario's)."),
    ] = None,
    autoscalers: Annotated[
        str | None,
        typer.Option(
            help="Autoscalers, comma-separated; 'none' for a fixed fleet (default: the "
            "scenario's). Every router runs with every autoscaler."
        ),
    ] = None,
    loads: Annotated[
        str,
        typer.Option(
            help="Offered load as fractions of the fleet's simulated capacity: a list "
            "(0.5,0.8) or a range (start:stop:step)."
        ),
    ] = "0.5,0.8",
    seeds: Annotated[
        int, typer.Option(min=1, help="Seeds per cell (95% intervals over them).")
    ] = 3,
    workload: WorkloadOpt = None,
    pools: PoolsOpt = None,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="Output folder (default: runs/<name>-compare)."),
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address",
            help="Run the grid on Ray ('local' starts Ray on this machine; needs the serve "
            "extra). Results are identical to an in-process run.",
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Compare routers (and autoscalers) over a grid of loads and seeds with common random
    numbers; write compare.csv, compare.json and compare.html, and print the table."""
    from wrpfleet.analysis.compare import NO_AUTOSCALER, compare, parse_loads, write
    from wrpfleet.config import load_scenario
    from wrpfleet.progress import progress

    s = load_scenario(scenario, workload=workload, pools=pools)
    names = [x.strip() for x in (routers or s.router.policy).split(",") if x.strip()]
    default_scaler = s.autoscaler.policy if s.autoscaler else NO_AUTOSCALER
    scalers = [x.strip() for x in (autoscalers or default_scaler).split(",") if x.strip()]
    from wrpfleet.autoscale import AUTOSCALERS
    from wrpfleet.router import ROUTERS

    for n in names:
        if n not in ROUTERS.classes:
            raise InputError(
                f"unknown router {n!r}; available: {', '.join(sorted(ROUTERS.classes))}",
                field="--routers",
            )
    for a in scalers:
        if a != NO_AUTOSCALER and a not in AUTOSCALERS.classes:
            known = ", ".join(sorted(AUTOSCALERS.classes))
            raise InputError(
                f"unknown autoscaler {a!r}; available: none, {known}", field="--autoscalers"
            )
    grid = parse_loads(loads)
    runner = _ray_map(ray_address) if ray_address else None
    total = len(names) * len(scalers) * len(grid) * seeds
    with progress(f"comparing on {s.name}", total=total) as update:
        records, cap = compare(
            s, names, scalers, grid, seeds, runner, lambda i, n: update(i, f"{i}/{n} runs")
        )
    paths = write(records, out_dir or Path("runs") / f"{s.name}-compare", cap)
    if json_out:
        print(json.dumps(records, indent=2))
        return
    table = Table(title=f"{s.name}: capacity {cap:.1f} req/s, mean ± 95% over {seeds} seed(s)")
    for col in ("policy", "load", "TTFT p99 s", "TPOT p99 ms", "SLO", "GPU-h", "J/tok"):
        table.add_column(col, justify="left" if col == "policy" else "right", no_wrap=True)

    def fmt(rec: dict, key: str, scale: float = 1.0, digits: int = 3) -> str:
        v, (lo, hi) = rec.get(key), rec.get(f"{key}_ci", [None, None])
        if v is None or v != v:
            return "-"
        text = f"{v * scale:.{digits}f}"
        if seeds > 1 and lo is not None and hi is not None and hi > lo:
            text += f"±{(hi - lo) / 2 * scale:.{digits}f}"
        return text

    for rec in records:
        scaler = rec["autoscaler"]
        table.add_row(
            rec["router"] + ("" if scaler == NO_AUTOSCALER else f" + {scaler}"),
            f"{rec['load']:g}",
            fmt(rec, "ttft_p99_s"),
            fmt(rec, "tpot_p99_s", 1e3, 1),
            fmt(rec, "slo_attainment", digits=2),
            fmt(rec, "gpu_hours", digits=2),
            fmt(rec, "j_per_output_token", digits=2),
        )
    out.print(table)
    out.print(f"outputs: {paths[0].parent}/ ({', '.join(p.name for p in paths)})")


def _ray_map(address: str):
    """A map over the grid's runs as Ray tasks, results in grid order."""
    try:
        import ray
    except ImportError:
        raise InputError(
            "--ray-address needs Ray: pip install 'wrpfleet[serve]'", field="--ray-address"
        ) from None

    def run(fn, cells):
        if not ray.is_initialized():
            if address == "local":
                ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
            else:
                ray.init(address=address, log_to_driver=False)
        task = ray.remote(fn)
        return ray.get([task.remote(c) for c in cells])

    return run


@app.command("twin")
def twin_cmd(
    pools: Annotated[Path, typer.Argument(help="A pool spec file (pools: [...]).")],
    pool: Annotated[str | None, typer.Option(help="Which pool (default: the first).")] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    speed: Annotated[
        float, typer.Option(help="Engine seconds per wall second (1: real time).")
    ] = 1.0,
    api_keys_env: Annotated[
        str | None,
        typer.Option(help="Environment variable with comma-separated API keys (bearer)."),
    ] = None,
    api_keys_file: Annotated[
        Path | None, typer.Option(help="File of API keys, one a line.")
    ] = None,
    rate_limit: Annotated[
        float | None, typer.Option(help="Requests/s per key (or client address); 429 above.")
    ] = None,
    burst: Annotated[int, typer.Option(help="Requests a key may send at once.")] = 10,
    max_prompt_tokens: Annotated[
        int | None, typer.Option(help="Refuse prompts longer than this (400).")
    ] = None,
) -> None:
    """Serve one twin replica of a pool over an OpenAI-compatible API: the simulator's
    engine in real time, streaming placeholder tokens at the performance model's
    times (no GPU needed; energy is estimated)."""
    import uvicorn

    from wrpfleet.pool.spec import FleetSpec
    from wrpfleet.schema import load_yaml_spec
    from wrpfleet.serve.http import TwinBackend, create_app
    from wrpfleet.serve.twin import TwinEngine

    fleet = load_yaml_spec(FleetSpec, pools)
    chosen = next((p for p in fleet.pools if pool in (None, p.name)), None)
    if chosen is None:
        names = ", ".join(p.name for p in fleet.pools)
        raise InputError(f"no pool {pool!r}; the file has {names}", path=pools)
    from wrpfleet.serve.guard import Guard, read_keys

    keys = read_keys(api_keys_env, api_keys_file)
    if (api_keys_env or api_keys_file) and not keys:
        raise InputError("API keys were asked for but none were found", field="--api-keys-env")
    guard = Guard(keys, rate_limit, burst, max_prompt_tokens=max_prompt_tokens)
    app = create_app(TwinBackend(TwinEngine(chosen, speed=speed), chosen.model), guard)
    err.print(
        f"twin of pool {chosen.name} ({chosen.model} on {chosen.tp} x {chosen.gpu}) "
        f"on http://{host}:{port}"
    )
    uvicorn.run(app, host=host, port=port, log_level="warning")


@app.command("bench")
def bench_cmd(
    workload_path: Annotated[
        Path, typer.Argument(metavar="WORKLOAD", help="A workload spec, trace or scenario.")
    ],
    endpoint: Annotated[
        str, typer.Option(help="Base URL of an OpenAI-compatible server (no /v1).")
    ] = "http://127.0.0.1:8000",
    model: Annotated[
        str | None, typer.Option(help="Model name to request (default: the endpoint's first).")
    ] = None,
    duration: Annotated[
        float | None, typer.Option(help="Issue no request after this many seconds.")
    ] = None,
    max_requests: Annotated[int | None, typer.Option(help="Issue at most N requests.")] = None,
    seed: SeedOpt = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Output folder (default: runs/<workload>-bench).")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Replay a workload against an endpoint (open loop at its timestamps; sessions and
    closed loops wait for answers), measure TTFT, TPOT and end-to-end from the stream,
    and write requests.parquet and summary.json as `simulate` does."""
    import asyncio

    from wrpfleet.progress import progress
    from wrpfleet.serve.bench import bench

    src = _source(workload_path, "auto", False, seed)
    with progress(f"bench {src.name}", total=None) as update:
        df, summary = asyncio.run(
            bench(
                endpoint,
                src.requests,
                model,
                duration,
                max_requests,
                lambda n, issued: update(n, f"of {issued:,} issued"),
            )
        )
    out_path = out_dir or Path("runs") / f"{src.name}-bench"
    out_path.mkdir(parents=True, exist_ok=True)
    df.to_parquet(out_path / "requests.parquet", index=False)
    (out_path / "summary.json").write_text(json.dumps(summary, indent=2))
    if json_out:
        print(json.dumps({**summary, "outputs": str(out_path)}, indent=2))
        return
    table = Table(title=f"bench {src.name} against {endpoint}", show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    table.add_row(
        "requests",
        f"{summary['requests_in']:,} issued: {summary['completed']:,} "
        f"completed, {summary['rejected']:,} failed",
    )
    for m in ("ttft", "tpot", "e2e"):
        cells = [summary[f"{m}_p{p}_s"] for p in (50, 90, 99)]
        table.add_row(
            m.upper(),
            "  ".join(
                f"p{p} {'-' if v is None else f'{v * 1e3:,.1f} ms'}"
                for p, v in zip((50, 90, 99), cells, strict=True)
            ),
        )
    table.add_row("throughput", f"{summary['throughput_tok_s']:,.0f} output tokens/s")
    out.print(table)
    out.print(f"outputs: {out_path}/ (requests.parquet, summary.json)")


@app.command("report")
def report_cmd(
    runs: Annotated[
        list[Path],
        typer.Argument(help="Run folders (from simulate or bench); the first is the baseline."),
    ],
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Where report.html goes (default: runs/report).")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Simulated and live runs side by side: percentiles, each run relative to the first
    (signed fractions), and overlaid latency CDFs in report.html."""
    from wrpfleet.analysis.figures import write_html
    from wrpfleet.analysis.versus import FIGURES, figure, load_run, relative

    loaded = [load_run(p) for p in runs]
    rel = relative(loaded)
    html = write_html(figure(loaded), (out_dir or Path("runs") / "report") / "report.html")
    if json_out:
        payload: Any = rel[0] if len(rel) == 1 else rel
        print(json.dumps(payload, indent=2))
        return
    table = Table(title="runs side by side (ms; % against the first)")
    table.add_column("figure")
    for run in loaded:
        table.add_column(run.label, justify="right")
    for key in FIGURES:
        cells = []
        for i, run in enumerate(loaded):
            v = run.summary.get(key)
            text = "-" if v is None else f"{v * 1e3:,.1f}"
            r = rel[i - 1].get(key.removesuffix("_s") + "_rel") if i else None
            cells.append(text + (f" ({r:+.1%})" if r is not None else ""))
        table.add_row(key.removesuffix("_s"), *cells)
    out.print(table)
    out.print(f"CDFs: {html}")


def _print_run(s: dict[str, Any]) -> None:
    def ms(x: float | None) -> str:
        return "-" if x is None else f"{x * 1e3:,.1f} ms"

    table = Table(title=f"simulation {s['scenario']}", show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    table.add_row(
        "requests",
        f"{s['requests_in']:,} in: {s['completed']:,} completed, {s['rejected']:,} rejected, "
        f"{s['unfinished']:,} unfinished",
    )
    for m in ("ttft", "tpot", "e2e", "queue"):
        table.add_row(m.upper(), "  ".join(f"p{p} {ms(s[f'{m}_p{p}_s'])}" for p in (50, 90, 99)))
    for t in s["slo_targets"]:
        verdict = "[green]met[/]" if t["met"] else "[red]missed[/]"
        table.add_row(
            f"SLO {t['target']}", f"{ms(t['value_s'])} vs {ms(t['threshold_s'])}: {verdict}"
        )
    if s["slo_attainment"] is not None:
        table.add_row("SLO attainment", f"{s['slo_attainment']:.1%} of requests")
    table.add_row("throughput", f"{s['throughput_tok_s']:,.0f} output tokens/s")
    table.add_row(
        "fleet", f"{s['gpus']} GPUs, {s['gpu_hours']:.2f} GPU-hours, ${s['cost_usd']:.2f}"
    )
    jpt = s["j_per_output_token"]
    table.add_row(
        "energy",
        f"{s['energy_kwh']:.3f} kWh ({s['idle_energy_kwh']:.3f} idle), "
        + ("-" if jpt is None else f"{jpt:.2f} J/output token"),
    )
    table.add_row("prefix cache", f"{s['prefix_hit_rate']:.1%} of prompt tokens hit")
    if s["scale_events"]:
        table.add_row("autoscaling", f"{s['scale_events']} changes of a pool's target")
    table.add_row("simulated", f"{s['duration_s']:,.1f} s in {s['engine_events']:,} engine events")
    out.print(table)


validate_app = typer.Typer(
    help="Check the simulator against measurements: simulate each measured configuration.",
    no_args_is_help=True,
)
app.add_typer(validate_app, name="validate")


def _validation(kind: str, csv_path: Path, json_out: bool, limit: int | None) -> None:
    from wrpfleet.analysis import validate
    from wrpfleet.progress import progress

    if not csv_path.is_file():
        raise InputError("file not found", path=csv_path)
    with progress(f"validating on {csv_path.name}", total=1.0) as update:
        result = getattr(validate, kind)(
            csv_path, on_row=lambda i, n: update(i / n, f"{i}/{n} configurations"), limit=limit
        )
    if json_out:
        print(json.dumps(result, indent=2))
        return
    rows = result["rows"]
    figures = list(result["mape"])
    table = Table(title=f"{kind}: simulated (error against measured)")
    for col in ("model", "gpu", "tp", *figures):
        table.add_column(col, justify="right" if col not in ("model", "gpu") else "left")
    for r in rows:
        cells = [
            f"{r[f + '_sim']:.4g} ({r[f + '_sim'] / r[f + '_measured'] - 1:+.0%})" for f in figures
        ]
        table.add_row(r["model"], r["gpu"], str(r["tp"]), *cells)
    out.print(table)
    out.print("MAPE: " + ", ".join(f"{f} {v:.1%}" for f, v in result["mape"].items()))


@validate_app.command("mlenergy")
def validate_mlenergy(
    csv_path: Annotated[
        Path, typer.Argument(help="CSV with the columns of ML.ENERGY's leaderboard data.")
    ],
    json_out: JsonOpt = False,
    limit: Annotated[int | None, typer.Option(help="Only the first N rows.")] = None,
) -> None:
    """Throughput, power, J/token and median ITL of each configuration, simulated (one
    replica, batch held at max_num_seqs by a closed loop) against measured."""
    _validation("mlenergy", csv_path, json_out, limit)


@validate_app.command("splitwise")
def validate_splitwise(
    csv_path: Annotated[
        Path, typer.Argument(help="CSV with the columns of splitwise-sim's perf_model.csv.")
    ],
    json_out: JsonOpt = False,
    limit: Annotated[int | None, typer.Option(help="Only the first N rows.")] = None,
) -> None:
    """Prompt time and per-token time of each configuration, simulated against measured."""
    _validation("splitwise", csv_path, json_out, limit)


@app.command("check")
def check_cmd(
    scenario: ScenarioArg,
    workload: WorkloadOpt = None,
    pools: PoolsOpt = None,
    router: RouterOpt = None,
    seed: SeedOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Validate a scenario (and the files it names) and show what it resolves to."""
    from wrpfleet.config import load_scenario

    s = load_scenario(scenario, workload=workload, pools=pools, router=router, seed=seed)
    if json_out:
        print(s.model_dump_json(indent=2))
        return
    table = Table(title=f"scenario {s.name}", show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("workload", f"{s.workload.name} ({s.workload.kind})")
    for p in s.pools:
        table.add_row(
            f"pool {p.name}",
            f"{p.replicas} x {p.model} on {p.tp} x {p.gpu} ({p.role})",
        )
    table.add_row("router", s.router.policy)
    table.add_row("autoscaler", s.autoscaler.policy if s.autoscaler else "none")
    table.add_row("SLO", ", ".join(f"{t.key} <= {t.threshold_s:g}" for t in s.slo.targets) or "-")
    table.add_row("duration", f"{s.duration_s:g} s" if s.duration_s else "workload's end")
    table.add_row("seed", str(s.seed))
    out.print(table)
    out.print("[green]ok[/]")


def main() -> None:
    try:
        app()
    except InputError as e:
        for line in str(e).splitlines():
            err.print(f"[red]error:[/] {line}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()

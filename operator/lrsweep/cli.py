"""`lrsweep` command line: run a sweep locally, print the CRD, run the operator."""

from __future__ import annotations

import argparse
import contextlib
import math
import shlex
import signal
import sys
from collections.abc import Iterator, Sequence
from importlib import metadata
from pathlib import Path
from types import FrameType

import yaml
from rich import box
from rich.console import Console
from rich.live import Live
from rich.table import Table

from lrsweep import __version__
from lrsweep.api import (
    LRSweep,
    LRSweepStatus,
    Phase,
    SpecError,
    load_sweep,
    parse_status,
    parse_sweep,
)
from lrsweep.benchmark import DEFAULT_RATIO, GroundTruthError, benchmark, cache_directory
from lrsweep.benchmark.report import summary_table as benchmark_summary_table
from lrsweep.benchmark.report import table as benchmark_table
from lrsweep.benchmark.report import truth_lines
from lrsweep.engine import conditions as cond
from lrsweep.engine.status import summarize
from lrsweep.engine.strategies import Best
from lrsweep.engine.sweep import Decision, Sweep
from lrsweep.engine.trials import records_from_status
from lrsweep.runtime.clock import timestamp
from lrsweep.runtime.jsonsafe import as_reported
from lrsweep.runtime.local import (
    REPORT_FILE,
    LocalBackend,
    Resumed,
    check_runnable,
    discard_checkpoints,
    resume,
    run_sweep,
    saved_sweep,
    start_afresh,
    with_curves,
    write_status,
)

EXIT_OK = 0
EXIT_SWEEP_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
# The extra of pyproject.toml that installs each optional package a command may need.
EXTRAS = {
    "kopf": "operator",
    "kubernetes": "operator",
    "aiohttp": "operator",
    "matplotlib": "local",
}
# Terminals narrower than this show trials without their reasons (result.json has them).
REASON_WIDTH = 110


def say(console: Console, text: str) -> None:
    """`text` as it is: no markup or highlighting, and no newline written inside it, so that
    paths and commands copy whole from any terminal (the terminal wraps them)."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def progress_table(decision: Decision, metric: str, width: int = 120) -> Table:
    """Trials as a table; the reason column only where the terminal has room for it."""
    table = Table(
        title=decision.message,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
    )
    for col in ("trial", "rate", "phase", "step", metric, "rung", "verdict"):
        table.add_column(col, no_wrap=True)
    with_reason = width >= REASON_WIDTH
    if with_reason:
        table.add_column("reason", no_wrap=True, overflow="ellipsis", max_width=width - 72)
    best = decision.best.trial if decision.best else None
    for r in decision.records:
        last = next((p.metrics[metric] for p in reversed(r.points) if metric in p.metrics), None)
        if last is None and r.rungs:  # a status keeps no curves, only the rung values
            last = r.rungs[max(r.rungs)]
        rung = str(max(r.rungs)) if r.rungs else ""
        rate = "range test" if r.mode == "range-test" else f"{r.learning_rate:.4g}"
        table.add_row(
            f"[bold]{r.id}[/]" if r.id == best else r.id,
            rate,
            r.phase.value,
            str(r.step),
            f"{as_reported(last):.4g}" if last is not None else "",
            rung,
            r.verdict.value,
            *([r.reason] if with_reason else []),
        )
    return table


def cmd_run(args: argparse.Namespace, console: Console) -> int:
    sweep_doc = load_sweep(_read_text(Path(args.path)))
    check_runnable(sweep_doc)
    out = Path(args.out or f"lrsweep-out/{sweep_doc.metadata.name}")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SpecError(
            f"--out {out}: cannot create the directory ({err.strerror}); give a directory "
            "this user can write to"
        ) from None
    backend = LocalBackend(sweep_doc, out)  # locks the directory for this sweep
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        if args.resume:
            state = resume(out, sweep_doc)
            say(
                console,
                f"resuming {sweep_doc.metadata.name} from {out}: "
                f"{sum(r.terminal for r in state.records)} trial(s) decided, "
                f"{len(state.relaunched)} relaunched",
            )
        else:
            state = Resumed()
            start_afresh(out, sweep_doc, overwrite=args.overwrite)
        return _run(args, console, sweep_doc, out, backend, state)
    finally:
        backend.shutdown()
        for signum, handler in handlers.items():
            signal.signal(signum, handler)


def _run(
    args: argparse.Namespace,
    console: Console,
    sweep_doc: LRSweep,
    out: Path,
    backend: LocalBackend,
    state: Resumed,
) -> int:
    sweep = Sweep(sweep_doc.spec, key=sweep_doc.metadata.uid or sweep_doc.metadata.name)
    metric = sweep_doc.spec.objective.metric
    # The status as last summarized: conditions move only when they flip, as on a cluster.
    summarized = LRSweepStatus(startTime=state.start_time or timestamp())
    last: list[Decision] = []
    written = ""

    def stamped(decision: Decision) -> LRSweepStatus:
        nonlocal summarized
        summarized = summarize(decision, summarized, now=timestamp())
        return summarized

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    interrupted = False
    live = Live(console=console, refresh_per_second=4, transient=False, auto_refresh=False)
    try:
        with live:

            def show(decision: Decision) -> None:
                nonlocal written
                last[:] = [decision]
                live.update(progress_table(decision, metric, console.width), refresh=True)
                # Kept current on disk, so even a killed sweep can be resumed.
                status = stamped(decision)
                text = status.model_dump_json()
                if text != written:
                    write_status(out, status)
                    written = text

            run_sweep(
                sweep,
                backend,
                on_decision=show,
                interval=args.interval,
                records=state.records,
                known_range=state.range_result,
            )
    except KeyboardInterrupt:
        interrupted = True
    finally:
        backend.shutdown()
    if not interrupted:
        discard_checkpoints(out)  # kept only for `--resume`
    # The trials are stopped: writing the result and the plot takes seconds, and a second
    # Ctrl-C (or SIGTERM) there would only leave them half-written.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    console.line()
    if not last:
        console.print("[red]interrupted before any trial started[/]")
        return EXIT_INTERRUPTED
    decision = last[-1]
    status = stamped(decision)
    status.completionTime = timestamp()
    if interrupted:
        status.phase = Phase.FAILED
        status.message = f"interrupted: partial result. {status.message}"
        for kind, value in ((cond.FAILED, True), (cond.READY, False)):
            status.conditions, _ = cond.set_condition(
                status.conditions,
                kind,
                value,
                cond.INTERRUPTED,
                status.message,
                now=status.completionTime,
                generation=None,
            )
    result = write_status(out, status)
    from lrsweep.plots import plot_report

    plot = out / REPORT_FILE
    plot_report(
        decision.records,
        decision.best,
        metric,
        sweep.spec.budget.steps,
        plot,
        title=f"LRSweep {sweep_doc.metadata.name}: {status.message}",
        range_test=status.rangeTest,
    )
    steps = sum(r.steps_used for r in decision.records)
    compute = steps / sweep.spec.budget.steps
    if status.phase is Phase.SUCCEEDED:
        console.print(
            f"[bold green]best learning rate: {status.bestLearningRate:g}[/] "
            f"(trial {status.bestTrial}, {metric} {status.bestScore:.4g}; "
            f"{len(decision.records)} trials, compute {compute:.2f} full runs)"
        )
        if decision.caveat:
            console.print(f"[bold yellow]note:[/] {decision.caveat}")
    else:
        console.print(f"[bold red]sweep {status.phase.value.lower()}:[/] {status.message}")
    say(console, f"wrote {result} and {plot}")
    if decision.broken:
        # The template cannot run here at all: that is bad input, not a sweep result.
        say(Console(stderr=True), f"lrsweep: error: {decision.message}")
        return EXIT_BAD_INPUT
    if interrupted:
        say(console, f"go on from here with: lrsweep run {args.path} --out {out} --resume")
        return EXIT_INTERRUPTED
    return EXIT_OK if status.phase is Phase.SUCCEEDED else EXIT_SWEEP_FAILED


@contextlib.contextmanager
def _terminated_as_interrupted() -> Iterator[None]:
    """SIGTERM stops the command as Ctrl-C does, trial processes and all."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    before = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def cmd_benchmark(args: argparse.Namespace, console: Console) -> int:
    """Every strategy on the document's trial, against its full runs at dense rates."""
    sweep_doc = load_sweep(_read_text(Path(args.path)))
    check_runnable(sweep_doc)
    jobs = args.jobs or sweep_doc.spec.search.parallelism
    command = shlex.join(
        [
            "lrsweep",
            "benchmark",
            args.path,
            "--seeds",
            str(args.seeds),
            "--ratio",
            f"{args.ratio:g}",
        ]
    )
    try:
        with _terminated_as_interrupted():
            report = benchmark(
                sweep_doc,
                document=args.path,
                seeds=args.seeds,
                ratio=args.ratio,
                jobs=jobs,
                console=console,
                command=command,
            )
    except KeyboardInterrupt:
        say(
            console,
            "interrupted: every trial is stopped; the runs that finished are kept in "
            f"{cache_directory(sweep_doc)}, and the same command goes on from there",
        )
        return EXIT_INTERRUPTED
    except GroundTruthError as err:
        say(Console(stderr=True), f"lrsweep benchmark: {err}")
        return EXIT_SWEEP_FAILED
    console.print(benchmark_table(report))
    if len(report.seeds) > 1:
        console.print(benchmark_summary_table(report))
    for line in truth_lines(report):
        say(console, line)
    out = Path(args.out) if args.out else Path(report.cache)
    try:
        written = report.write(out)
    except OSError as err:
        raise SpecError(f"--out {out}: cannot write the report ({err.strerror})") from None
    say(console, f"wrote {written[0]} and {written[1]}")
    return EXIT_OK


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as err:
        raise SpecError(f"{path}: cannot read: {err.strerror}") from None
    except UnicodeDecodeError:
        raise SpecError(f"{path}: not a text file; give an LRSweep YAML file") from None


def _read_source(source: str) -> str:
    return sys.stdin.read() if source == "-" else _read_text(Path(source))


def _stored_sweep(text: str, source: str) -> tuple[LRSweep, LRSweepStatus]:
    """An LRSweep with its status, as `kubectl get lrs NAME -o yaml` prints it."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise SpecError(f"{source}: invalid YAML: {err}") from None
    if not isinstance(document, dict):
        raise SpecError(f"{source}: expected one LRSweep (kubectl get lrs NAME -o yaml)")
    if "kind" not in document and {"phase", "trials"} & document.keys():
        raise SpecError(
            f"{source} is a sweep's status alone (result.json): give the directory it is in"
        )
    if not document.get("status") and document.get("kind") == "LRSweep":
        raise SpecError(
            f"{source}: an LRSweep without a status has no results to draw; give one that "
            "ran (kubectl get lrs NAME -o yaml) or the --out directory of `lrsweep run`"
        )
    status = parse_status(document.pop("status", None) or {})
    return parse_sweep(document), status


REPORT_FORMATS = (".png", ".svg", ".pdf")


def _report_path(out: Path) -> Path:
    """`report --out`: a directory gets report.png; a file must name an image format."""
    if out.is_dir():
        return out / REPORT_FILE
    if out.suffix.lower() not in REPORT_FORMATS:
        raise SpecError(
            f"--out {out}: give a file ending in {', '.join(REPORT_FORMATS)} (or a directory)"
        )
    return out


def cmd_report(args: argparse.Namespace, console: Console) -> int:
    """Draw a sweep's report from a local sweep's directory or a cluster's LRSweep."""
    source = Path(args.source)
    if args.source != "-" and source.is_dir():
        hint = "give the --out directory of a `lrsweep run`, or an LRSweep file"
        sweep_doc, status = saved_sweep(source, hint)
        records = with_curves(source, records_from_status(status))
        default = source / REPORT_FILE
    else:
        sweep_doc, status = _stored_sweep(_read_source(args.source), args.source)
        records = records_from_status(status)
        default = Path(f"{sweep_doc.metadata.name}-report.png")
    best = None
    if status.bestLearningRate is not None and status.bestScore is not None:
        best = Best(status.bestLearningRate, status.bestScore, status.bestTrial or "")
    metric = sweep_doc.spec.objective.metric
    out = _report_path(Path(args.out)) if args.out else default
    from lrsweep.plots import plot_report

    try:
        plot_report(
            records,
            best,
            metric,
            sweep_doc.spec.budget.steps,
            out,
            title=f"LRSweep {sweep_doc.metadata.name} ({status.phase.value}): {status.message}",
            range_test=status.rangeTest,
        )
    except OSError as err:
        raise SpecError(f"--out {out}: cannot write the report ({err.strerror})") from None
    shown = Decision(
        records=tuple(records),
        launches=(),
        stops=(),
        promotions=(),
        done=status.phase in (Phase.SUCCEEDED, Phase.FAILED),
        best=best,
        range_result=None,
        message=f"{sweep_doc.metadata.name} ({status.phase.value}): {status.message}",
    )
    console.print(progress_table(shown, metric, console.width))
    say(console, f"wrote {out}")
    return EXIT_OK


def cmd_render(args: argparse.Namespace) -> int:
    """Print the pods the operator would create first for a sweep."""
    sweep_doc = load_sweep(_read_source(args.path))
    from lrsweep.runtime.pods import first_pods
    from lrsweep.settings import OperatorSettings

    pods = first_pods(sweep_doc, OperatorSettings().gate_timeout)
    sys.stdout.write(yaml.safe_dump_all(pods, sort_keys=False))
    Console(stderr=True).print(
        f"{len(pods)} pod(s): the first the operator creates for {sweep_doc.metadata.name} "
        f"(parallelism {sweep_doc.spec.search.parallelism}); later trials differ in their "
        "rate, seed and trial id",
        markup=False,
        highlight=False,
    )
    return EXIT_OK


def _seconds(text: str) -> float:
    value = float(text)  # argparse reports a ValueError as "invalid _seconds value"
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text}: give a positive number of seconds")
    return value


def _count(text: str) -> int:
    value = int(text)  # argparse reports a ValueError as "invalid _count value"
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: give a whole number of at least 1")
    return value


def _ratio(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value <= 1:
        raise argparse.ArgumentTypeError(
            f"{text}: give the ratio between neighbouring rates, a number above 1 (1.414: "
            "sqrt(2) apart)"
        )
    return value


def package_version() -> str:
    """The installed package's version; the source's where it runs uninstalled."""
    try:
        return metadata.version("lrsweep")
    except metadata.PackageNotFoundError:
        return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lrsweep", description="Find the learning rate of a training job."
    )
    parser.add_argument("--version", action="version", version=package_version())
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a sweep locally, trials as processes")
    run.add_argument("path", help="an LRSweep YAML file")
    run.add_argument("--out", help="directory for result.json, report.png and trial logs")
    run.add_argument(
        "--interval", type=_seconds, default=0.2, help="seconds between polls of the trials"
    )
    run.add_argument(
        "--resume",
        action="store_true",
        help="go on with the sweep that stopped in --out (Ctrl-C, a crash): decided trials "
        "keep their results, trials that were running start again",
    )
    run.add_argument(
        "--overwrite",
        action="store_true",
        help="start afresh in --out, deleting the results of the sweep that ran there",
    )
    report = sub.add_parser(
        "report",
        help="draw the report of a sweep (a local one, or one from a cluster) and list its trials",
    )
    report.add_argument(
        "source",
        help="the --out directory of `lrsweep run`, or a file (`-`: standard input) holding an "
        "LRSweep with its status, as `kubectl get lrs NAME -o yaml` prints it",
    )
    report.add_argument(
        "--out", help="the PNG to write; default DIR/report.png, or NAME-report.png here"
    )
    bench = sub.add_parser(
        "benchmark",
        help="how well each strategy finds the rate of your trial, against its full runs at "
        "dense rates",
        description="Train the document's trial fully at dense rates over its search range "
        "(the ground truth, cached under .lrsweep-benchmark/ in this directory: a second run, "
        "or one after Ctrl-C, trains only what is missing), then replay every strategy's "
        "sweep of the document on those runs and report each one's rate, score, regret "
        "against the dense best and compute in full runs. Exit codes: 0 the report, 1 no "
        "rate finished its budget, 2 bad input or a trial that cannot run, 130 interrupted.",
    )
    bench.add_argument("path", help="an LRSweep YAML file, as `lrsweep run` takes it")
    bench.add_argument(
        "--seeds",
        type=_count,
        default=1,
        metavar="N",
        help="benchmark at seeds 0..N-1 (the trials' LRSWEEP_SEED), each against its own "
        "ground truth (default 1)",
    )
    bench.add_argument(
        "--ratio",
        type=_ratio,
        default=DEFAULT_RATIO,
        metavar="R",
        help="ratio between neighbouring dense rates (default 1.414: sqrt(2) apart; a larger "
        "one trains fewer runs and measures more coarsely)",
    )
    bench.add_argument(
        "--jobs",
        type=_count,
        default=None,
        metavar="N",
        help="training processes at once (default: the document's search.parallelism)",
    )
    bench.add_argument(
        "--out",
        metavar="DIR",
        help="directory for report.json and report.md (default: the curves' directory)",
    )
    render = sub.add_parser(
        "render", help="print the trial pods the operator creates first for a sweep (YAML)"
    )
    render.add_argument("path", help="an LRSweep YAML file (`-`: standard input)")
    sub.add_parser("crd", help="print the LRSweep CustomResourceDefinition (YAML)")
    sub.add_parser(
        "operator", help="run the Kubernetes operator (settings from LRSWEEP_* variables)"
    )
    sub.add_parser("version", help="print the version")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    console = Console(stderr=False)
    try:
        if args.command == "run":
            return cmd_run(args, console)
        if args.command == "report":
            return cmd_report(args, console)
        if args.command == "benchmark":
            return cmd_benchmark(args, console)
        if args.command == "render":
            return cmd_render(args)
        if args.command == "crd":
            from lrsweep.crd import render_crd

            sys.stdout.write(render_crd())
            return EXIT_OK
        if args.command == "operator":
            from lrsweep.controller import run

            run()
            return EXIT_OK
        if args.command == "version":
            say(console, package_version())
            return EXIT_OK
    except SpecError as err:
        say(Console(stderr=True), f"lrsweep: error: {err}")
        return EXIT_BAD_INPUT
    except ModuleNotFoundError as err:
        extra = EXTRAS.get((err.name or "").split(".")[0])
        if extra is None:
            raise
        say(
            Console(stderr=True),
            f"lrsweep {args.command}: error: needs {err.name}, which this installation lacks: "
            f"pip install 'lrsweep[{extra}]'",
        )
        return EXIT_BAD_INPUT
    parser.error(f"unknown command {args.command}")
    return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())

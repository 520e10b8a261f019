"""``pir bench``: retrieval and speed benchmarks (JSON + markdown reports). Thin: each command calls one library
function of :mod:`pir.bench`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from pir.cli.app import main, options
from pir.cli.app import settings as _settings
from pir.cli.search import build_request, request_options

MODES_HELP = "Query modes, comma-separated: image, text (the query's words), image+text (fused inside Qdrant)."

_COMMON = options(
    click.option(
        "--encoders",
        default=None,
        help="Methods to compare: zero-shot,DIR1,DIR2 (names or encoder directories; zero-shot = the default "
        "built-in backbone). An encoder's split.json restricts its training data to its test patents.",
    ),
    click.option("--modes", default=None, help=MODES_HELP + " Default: image."),
    click.option(
        "--query-text",
        default=None,
        help="The query's words, comma-separated for several rows: auto, title, caption, title+caption, paraphrase "
        "(the title with its object replaced by a WordNet synonym or broader term). Default auto: title; title + "
        "figure caption for patent-level relevance.",
    ),
    click.option(
        "--enrich",
        "enrich_levels",
        multiple=True,
        help="Enrichment ablation: none, aliases, full (repeatable or comma-separated); the gallery is stored once "
        "per level. Default: the settings' enrich.level.",
    ),
    click.option(
        "--no-baselines", is_flag=True, default=None, help="Leave out the title-only rows of the words modes."
    ),
    click.option(
        "--bootstrap",
        "n_bootstrap",
        type=click.IntRange(min=1),
        default=None,
        help="Bootstrap resamples of each 95%% interval (default 1000).",
    ),
    request_options(only=("text_weight", "fusion")),  # the search's own options (SearchRequest): one definition
    click.option("--limit", type=int, default=None, help="Sample about N figures (whole patents, seeded)."),
    click.option(
        "--k",
        "k",
        type=int,
        default=None,
        help="Store search depth per query (default: the whole gallery up to 2000 figures, else 100).",
    ),
    click.option("--seed", type=int, default=None, help="Seed of sampling and splits (default: settings seed)."),
    click.option(
        "--out", type=click.Path(path_type=Path), default=None, help="Report folder (<data-dir>/bench/report)."
    ),
    click.option("--store", "store_kind", type=click.Choice(["edge", "memory"]), default=None, help="Gallery store."),
    click.option("--no-enrich", is_flag=True, default=None, help="Same as --enrich none."),
    click.option("--no-plots", is_flag=True, default=None, help="Skip the PNG plots."),
    click.option(
        "--allow-train-overlap",
        is_flag=True,
        default=None,
        help="Evaluate even when queries include patents an encoder was trained or validated on.",
    ),
)


def _opts(ctx: click.Context, given: dict[str, Any]) -> dict[str, Any]:
    """Subcommand options, falling back to the ones given to the ``bench`` group, then to defaults."""
    from pir.bench.evaluate import ENRICH_LEVELS, QUERY_TEXTS, parse_choices  # lazy: start-up (numpy, PIL)

    s = _settings(ctx)
    group = ctx.obj.get("bench", {})
    pick = {k: (v if v not in (None, ()) else group.get(k)) for k, v in given.items()}
    try:
        query_text = parse_choices(pick.get("query_text") or "auto", QUERY_TEXTS, "--query-text value(s)")
        levels = (
            parse_choices(pick["enrich_levels"], ENRICH_LEVELS, "--enrich level(s)")
            if pick.get("enrich_levels")
            else None
        )
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    if levels and pick.get("no_enrich"):
        raise click.UsageError("--no-enrich and --enrich together: use --enrich none")
    build_request([], {"text_weight": pick.get("text_weight"), "fusion": pick.get("fusion")})  # validated once, here
    return {
        "encoders": pick.get("encoders") or "zero-shot",
        "modes": pick.get("modes") or "image",
        "query_text": list(query_text),
        "enrich_levels": list(levels) if levels else None,
        "baselines": not pick.get("no_baselines"),
        "n_bootstrap": pick.get("n_bootstrap") or 1000,
        "limit": pick.get("limit"),
        "k": pick.get("k"),
        "seed": s.seed if pick.get("seed") is None else pick["seed"],
        "out": pick.get("out") or s.data_dir / "bench" / "report",
        "store_kind": pick.get("store_kind") or "edge",
        "enrich": not pick.get("no_enrich"),
        "plots": not pick.get("no_plots"),
        "allow_train_overlap": bool(pick.get("allow_train_overlap")),
        "text_weight": pick.get("text_weight"),
        "fusion": pick.get("fusion"),
    }


def _done(run: Any) -> None:
    from pir.bench.report import summary_text  # lazy: start-up

    click.echo(summary_text(run))


@main.group(invoke_without_command=True)
@click.option(
    "--data",
    "data",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="Folder any reader understands (repeatable). Default: synthetic corpus + ../shared/data if present.",
)
@click.option("--relevance", type=click.Choice(["class", "patent"]), default=None, help="With --data (default: auto).")
@click.option("--class-column", default=None, help="With --data: sidecar column holding the class label.")
@click.option(
    "--label-from",
    type=click.Choice(["class", "locarno", "uspc"]),
    default="class",
    show_default=True,
    help="With --data and class relevance: the reader's class label, or the main Locarno / USPC class.",
)
@click.option(
    "--synth-patents", type=int, default=120, show_default=True, help="Without --data: synthetic patents (0 = none)."
)
@_COMMON
@click.pass_context
def bench(ctx: click.Context, data: tuple[Path, ...], relevance: str | None, class_column: str | None,
          label_from: str, synth_patents: int, **common: Any) -> None:  # fmt: skip
    """Retrieval benchmarks (mAP, Recall@K, MRR@K; head/tail) per method and query mode, through the real store."""
    ctx.obj["bench"] = common
    if ctx.invoked_subcommand is not None:
        return
    from pir.bench.run import bench_folders  # lazy: start-up

    opts = dict(relevance=relevance, class_column=class_column, label_from=label_from, synth_patents=synth_patents)
    _done(bench_folders(_settings(ctx), list(data), **opts, **_opts(ctx, common)))  # type: ignore[arg-type]  # click options


@bench.command("deeppatent2")
@click.option("--data", "data", multiple=True, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--relevance", type=click.Choice(["class", "patent"]), default="class", show_default=True)
@click.option("--split-file", type=click.Path(path_type=Path), default=None, help="Reuse (or create) this split.json.")
@_COMMON
@click.pass_context
def bench_deeppatent2_cmd(ctx: click.Context, data: tuple[Path, ...], relevance: str, split_file: Path | None,
                          **common: Any) -> None:  # fmt: skip
    """The DeepPatent2 protocol: query/gallery split by patent (seeded, written to OUT/split.json)."""
    from pir.bench.run import bench_deeppatent2  # lazy: start-up

    opts = _opts(ctx, common)
    _done(bench_deeppatent2(_settings(ctx), list(data), relevance=relevance, split_file=split_file, **opts))  # type: ignore[arg-type]


@bench.command("deeppatent")
@click.option("--lists", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--images", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--split", type=click.Choice(["test", "val"]), default="test", show_default=True)
@_COMMON
@click.pass_context
def bench_deeppatent_cmd(ctx: click.Context, lists: Path, images: Path, split: str, **common: Any) -> None:
    """The original DeepPatent query/gallery lists (relevance = same patent); entries without an image are counted."""
    from pir.bench.run import bench_deeppatent  # lazy: start-up

    _done(bench_deeppatent(_settings(ctx), lists, images, split=split, **_opts(ctx, common)))


@bench.command("speed")
@click.option(
    "--data", type=click.Path(exists=True, path_type=Path), default=None, help="Image folder (default: synth)."
)
@click.option("--n-images", type=int, default=200, show_default=True, help="Images for ingest vs forward pass.")
@click.option("--sizes", default="10000,100000", show_default=True, help="Store sizes for search latency/recall.")
@click.option("--dim", type=int, default=None, help="Vector size for the store test (default: the encoder's).")
@click.option("--queries", "n_queries", type=int, default=100, show_default=True, help="Queries per store size.")
@click.option("--vectors", type=click.Choice(["clustered", "random"]), default="clustered", show_default=True)
@click.option("--encoder", default=None, help="Encoder name or directory (default: PIR_ENCODER__NAME).")
@click.option("--cold/--no-cold", default=True, show_default=True, help="Also time cold CLI runs (subprocesses).")
@click.option("--enrich/--no-enrich", default=True, show_default=True, help="Ingest with enrichment (settings' level).")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Report folder (<data-dir>/bench/report).")
@click.pass_context
def bench_speed_cmd(ctx: click.Context, **given: Any) -> None:
    """Cold CLI start-up, ingest images/s vs bare forward pass, query latency, store latency and recall, memory."""
    from pir.bench.speed import bench_speed, speed_markdown  # lazy: start-up

    s = _settings(ctx)
    given["out"] = given["out"] or ctx.obj.get("bench", {}).get("out") or s.data_dir / "bench" / "report"
    click.echo(speed_markdown(bench_speed(s, seed=s.seed, **given)))
    click.echo(f"written to {given['out']}/speed.json")


@bench.command("queue")
@click.option(
    "--data", type=click.Path(exists=True, path_type=Path), default=None, help="Image folder (default: synth)."
)
@click.option("--n-images", type=click.IntRange(min=1), default=2000, show_default=True)
@click.option("--workers", default="0,1,2", show_default=True, help="Configurations: 0 = in-process, N workers, NxT.")
@click.option("--encoder", default=None, help="Encoder name or directory (default: PIR_ENCODER__NAME).")
@click.option("--broker", default=None, help="Redis URL (default: the settings' broker or redis://127.0.0.1:6379).")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Report folder (<data-dir>/bench/queue).")
@click.pass_context
def bench_queue_cmd(ctx: click.Context, **given: Any) -> None:
    """Ingest throughput through Celery workers (real `pir worker` processes) against in-process, same drawings."""
    from pir.workers.bench import bench_queue, queue_markdown  # lazy: start-up (celery, torch)

    s = _settings(ctx)
    given["out"] = given["out"] or ctx.obj.get("bench", {}).get("out") or s.data_dir / "bench" / "queue"
    click.echo(queue_markdown(bench_queue(s, seed=s.seed, **given)))
    click.echo(f"written to {given['out']}/queue.json")


@bench.command("scale")
@click.option(
    "--sizes", default="100000,300000,1000000", show_default=True, help="Collection sizes (figures; 300k, 1M ok)."
)
@click.option(
    "--quantization",
    default="none,int8",
    show_default=True,
    help="Quantization settings to compare: none, int8, binary, auto (comma-separated).",
)
@click.option("--queries", "n_queries", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Report folder (<data-dir>/bench/scale).")
@click.option("--resume", is_flag=True, help="Skip the (size, quantization) cells already in OUT/results.json.")
@click.option("--keep", is_flag=True, help="Keep the collections built (OUT/work); else each is deleted once measured.")
@click.option("--seed", type=int, default=None, help="Seed of the synthetic corpus (default: settings seed).")
@click.option("--no-plots", is_flag=True, help="Skip scale.png.")
@click.option("--dim", type=click.IntRange(min=2), default=None, hidden=True)  # tests: small vectors
@click.option("--text-dim", type=click.IntRange(min=2), default=None, hidden=True)
@click.option("--chunk", type=click.IntRange(min=10), default=4096, hidden=True)
@click.pass_context
def bench_scale_cmd(ctx: click.Context, no_plots: bool, **given: Any) -> None:
    """Edge collections of 100k-1M synthetic figures (image + text + words): build, RAM/disk per figure, reopen,
    p50/p95 and recall@10 of image, hybrid and filtered queries; 10M extrapolated. Resumable, bounded by RAM."""
    from pir.bench import scale  # lazy: start-up (numpy, qdrant_edge)

    s = _settings(ctx)
    given["out"] = given["out"] or ctx.obj.get("bench", {}).get("out") or s.data_dir / "bench" / "scale"
    given["seed"] = s.seed if given["seed"] is None else given["seed"]
    try:
        given["sizes"], given["quantization"] = (
            scale.parse_sizes(given["sizes"]),
            scale.parse_quantizations(given["quantization"]),
        )
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    click.echo(scale.scale_markdown(scale.bench_scale(s, plots=not no_plots, **given)))
    click.echo(f"written to {given['out']}/results.json")


@bench.command("serve")
@click.option("--clients", default=10, show_default=True, type=click.IntRange(min=1))
@click.option("--searches", default=300, show_default=True, type=click.IntRange(min=1))
@request_options(only=("k",))  # hits per search: the request's own option (SearchRequest.k), validated there
@click.option(
    "--query",
    "queries",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Query drawing(s); default: 8 stored figures.",
)
@click.option(
    "--cold-runs",
    default=1,
    show_default=True,
    type=click.IntRange(min=0),
    help="Cold `pir search` processes timed before the server starts.",
)
@click.option("--max-concurrent", default=2, show_default=True, type=click.IntRange(min=1))
@click.option("--encoder", default=None)
@click.option("--collection", default=None)
@click.pass_context
def bench_serve_cmd(ctx: click.Context, encoder: str | None, collection: str | None, **given: Any) -> None:
    """Bounded load against a live `pir serve` on 127.0.0.1: p50/p95 latency, errors, peak RSS, cold CLI beside it."""
    import json

    from pir.bench.serve import bench_serve  # lazy: start-up

    given["k"] = build_request([], {"k": given["k"]}).k  # the request's default and bounds
    click.echo(json.dumps(bench_serve(_settings(ctx, encoder=encoder, collection=collection), **given), indent=2))

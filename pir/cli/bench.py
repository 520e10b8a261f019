"""``pir bench``: retrieval and speed benchmarks (JSON reports)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from pir.cli.app import main
from pir.cli.app import settings as _settings


def _bench_common(f: Any) -> Any:
    """Options shared by ``pir bench`` and its protocol subcommands."""
    opts = [
        click.option(
            "--encoders",
            default=None,
            help="Methods to compare: zero-shot,DIR1,DIR2 (names or encoder "
            "directories; zero-shot = the default built-in backbone). Default: zero-shot.",
        ),
        click.option("--limit", type=int, default=None, help="Sample about N figures (whole patents, seeded)."),
        click.option(
            "--k",
            "k",
            type=int,
            default=None,
            help="Store search depth per query (default: the whole "
            "gallery up to 2000 figures, else 100; mAP then comes from the exact ranking).",
        ),
        click.option("--seed", type=int, default=None, help="Seed of sampling and splits (default: settings seed)."),
        click.option(
            "--out",
            type=click.Path(path_type=Path),
            default=None,
            help="Report folder (default: <data-dir>/bench/report).",
        ),
        click.option(
            "--store",
            "store_kind",
            type=click.Choice(["edge", "memory"]),
            default=None,
            help="Store the gallery is searched in: Qdrant Edge on disk or qdrant-client :memory:.",
        ),
        click.option("--no-plots", is_flag=True, default=None, help="Skip the PNG plots."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _bench_opts(ctx: click.Context, **given: Any) -> dict[str, Any]:
    """Subcommand options, falling back to the ones given to the ``bench`` group, then to defaults."""
    s = _settings(ctx)
    group = ctx.obj.get("bench", {})
    pick = {k: (v if v is not None else group.get(k)) for k, v in given.items()}
    return {
        "encoders": pick.get("encoders") or "zero-shot",
        "limit": pick.get("limit"),
        "k": pick.get("k"),
        "seed": s.seed if pick.get("seed") is None else pick["seed"],
        "out": pick.get("out") or s.data_dir / "bench" / "report",
        "store_kind": pick.get("store_kind") or "edge",
        "plots": not pick.get("no_plots"),
    }


def _bench_done(run: Any) -> None:
    from pir.bench.report import markdown_table

    click.echo(markdown_table(run))
    if run.out is not None:
        click.echo(f"report written to {run.out}")


@main.group(invoke_without_command=True)
@click.option(
    "--data",
    "data",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="Folder any reader understands (repeatable). Default: synthetic corpus + ../shared/data if present.",
)
@click.option(
    "--relevance",
    type=click.Choice(["class", "patent"]),
    default=None,
    help="With --data: same class or same patent (default: class when most figures carry a class).",
)
@click.option("--class-column", default=None, help="With --data: sidecar column holding the class label.")
@_bench_common
@click.pass_context
def bench(
    ctx: click.Context, data: tuple[Path, ...], relevance: str | None, class_column: str | None, **common: Any
) -> None:
    """Retrieval benchmarks (mAP, Recall@K, MRR@K; head/tail) through the vector store, with a report."""
    ctx.obj["bench"] = common
    if ctx.invoked_subcommand is not None:
        return
    from pir.bench.run import bench_folders

    try:
        run = bench_folders(
            _settings(ctx),
            list(data),
            relevance=relevance,
            class_column=class_column,  # type: ignore[arg-type]
            **_bench_opts(ctx, **common),
        )
    except (ValueError, FileNotFoundError) as e:
        raise click.ClickException(str(e)) from e
    _bench_done(run)


@bench.command("deeppatent2")
@click.option(
    "--data",
    "data",
    multiple=True,
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="DeepPatent2 year folder (repeatable).",
)
@click.option(
    "--relevance",
    type=click.Choice(["class", "patent"]),
    default="class",
    show_default=True,
    help="class = same object name; patent = same patent.",
)
@click.option(
    "--split-file",
    type=click.Path(path_type=Path),
    default=None,
    help="Reuse this split.json (created there when missing) so runs are comparable.",
)
@_bench_common
@click.pass_context
def bench_deeppatent2_cmd(
    ctx: click.Context, data: tuple[Path, ...], relevance: str, split_file: Path | None, **common: Any
) -> None:
    """The DeepPatent2 protocol: query/gallery split by patent (seeded, written to OUT/split.json)."""
    from pir.bench.run import bench_deeppatent2

    try:
        run = bench_deeppatent2(
            _settings(ctx),
            list(data),
            relevance=relevance,
            split_file=split_file,  # type: ignore[arg-type]
            **_bench_opts(ctx, **common),
        )
    except (ValueError, FileNotFoundError) as e:
        raise click.ClickException(str(e)) from e
    _bench_done(run)


@bench.command("deeppatent")
@click.option(
    "--lists",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder with the DeepPatent split lists (test_query_patent.txt[.gz], test_db_patent.txt[.gz]).",
)
@click.option(
    "--images",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Root the list paths are relative to.",
)
@click.option("--split", type=click.Choice(["test", "val"]), default="test", show_default=True)
@_bench_common
@click.pass_context
def bench_deeppatent_cmd(ctx: click.Context, lists: Path, images: Path, split: str, **common: Any) -> None:
    """The original DeepPatent query/gallery lists (relevance = same patent); entries without an image are counted."""
    from pir.bench.run import bench_deeppatent

    try:
        run = bench_deeppatent(_settings(ctx), lists, images, split=split, **_bench_opts(ctx, **common))
    except (ValueError, FileNotFoundError) as e:
        raise click.ClickException(str(e)) from e
    _bench_done(run)


@bench.command("speed")
@click.option(
    "--data",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="Image folder (default: a seeded synthetic corpus).",
)
@click.option("--n-images", type=int, default=200, show_default=True, help="Images for ingest vs forward pass.")
@click.option("--sizes", default="10000,100000", show_default=True, help="Store sizes for search latency/recall.")
@click.option("--dim", type=int, default=None, help="Vector size for the store test (default: the encoder's).")
@click.option("--queries", "n_queries", type=int, default=100, show_default=True, help="Queries per store size.")
@click.option(
    "--vectors",
    type=click.Choice(["clustered", "random"]),
    default="clustered",
    show_default=True,
    help="Store-test vectors: embedding-like clusters, or structureless random directions (worst case).",
)
@click.option("--encoder", default=None, help="Encoder name or directory (default: PIR_ENCODER__NAME).")
@click.option(
    "--out", type=click.Path(path_type=Path), default=None, help="Report folder (default: <data-dir>/bench/report)."
)
@click.pass_context
def bench_speed_cmd(
    ctx: click.Context,
    data: Path | None,
    n_images: int,
    sizes: str,
    dim: int | None,
    n_queries: int,
    vectors: str,
    encoder: str | None,
    out: Path | None,
) -> None:
    """Ingest images/s vs bare forward pass, query latency p50/p95, store latency and recall@10 vs exact, memory."""
    from pir.bench.speed import bench_speed, speed_markdown

    s = _settings(ctx)
    try:
        size_list = [int(x) for x in sizes.split(",") if x.strip()]
    except ValueError as e:
        raise click.BadParameter(f"{sizes!r}: expected comma-separated integers", param_hint="--sizes") from e
    out = out or ctx.obj.get("bench", {}).get("out") or s.data_dir / "bench" / "report"
    try:
        result = bench_speed(
            s,
            data=data,
            n_images=n_images,
            sizes=size_list,
            dim=dim,
            n_queries=n_queries,
            encoder=encoder,
            out=out,
            seed=s.seed,
            vectors=vectors,
        )
    except (ValueError, FileNotFoundError) as e:
        raise click.ClickException(str(e)) from e
    click.echo(speed_markdown(result))
    click.echo(f"written to {out}/speed.json")

"""`sessrec data`: turn transactions into sessions, make synthetic sessions, describe datasets."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from sessrec.cli.common import JsonOption, emit, settings
from sessrec.cli.names import DEFAULT_PRODUCT_PATTERN

if TYPE_CHECKING:
    from sessrec import pipeline
else:  # loaded on first use: `sessrec data --help` stays fast
    from sessrec.cli.lazy import lazy_module

    pipeline = lazy_module("sessrec.pipeline")

app = typer.Typer(help="Prepare, generate and describe session datasets.", no_args_is_help=True)


def _describe(manifest: dict) -> str:
    lines = [f"dataset   {manifest.get('name', manifest.get('uri', ''))}"]
    lines.append(f"sessions  {manifest['sessions']:,}")
    lines.append(f"items     {manifest['items']:,}")
    lines.append(f"events    {manifest['events']:,}")
    lines.append(
        f"length    min {manifest['length_min']}, median {manifest['length_median']:g}, "
        f"mean {manifest['length_mean']:.1f}, max {manifest['length_max']}"
    )
    if manifest.get("names"):
        names = manifest["names"]
        lines.append(f"names     {names['items']:,} items, from column {names['column']}")
    lines.append(f"sha256    {manifest['sha256']}")
    return "\n".join(lines)


@app.command()
def prepare(
    ctx: typer.Context,
    source: Annotated[
        str, typer.Argument(help="Transactions CSV/Parquet or sessions JSONL: a local path or s3:// URI.")
    ],
    name: Annotated[str, typer.Option(help="Dataset name under the storage root.")],
    fmt: Annotated[
        str | None, typer.Option("--format", help="csv, parquet or jsonl (default: from the suffix).")
    ] = None,
    encoding: Annotated[str, typer.Option(help="CSV text encoding (the UCI file needs ISO-8859-1).")] = "ISO-8859-1",
    session_col: Annotated[str, typer.Option(help="Column that identifies a session.")] = "CustomerID",
    item_col: Annotated[str, typer.Option(help="Column with the item code.")] = "StockCode",
    time_col: Annotated[str, typer.Option(help="Column with the time of the event.")] = "InvoiceDate",
    time_format: Annotated[
        str | None, typer.Option(help="strftime format of the time column (default: inferred).")
    ] = None,
    min_length: Annotated[int, typer.Option(help="Drop sessions with fewer rows.")] = 3,
    drop_cancellations: Annotated[bool, typer.Option(help="Drop rows whose invoice starts with 'C'.")] = False,
    invoice_col: Annotated[str, typer.Option(help="Invoice column, for --drop-cancellations.")] = "InvoiceNo",
    drop_non_products: Annotated[
        bool, typer.Option(help="Drop item codes that do not match --product-pattern.")
    ] = False,
    product_pattern: Annotated[
        str, typer.Option(help="Regular expression of real product codes.")
    ] = DEFAULT_PRODUCT_PATTERN,
    name_col: Annotated[
        str | None,
        typer.Option(
            help="Column with the item's name, shown beside its id by 'recommend' "
            "(default: Description, when the table has it)."
        ),
    ] = None,
    no_names: Annotated[bool, typer.Option("--no-names", help="Keep no item names.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing dataset of the same name.")] = False,
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """Build sessions from a transactions table with the reference preprocessing."""
    options = {}
    if fmt != "jsonl" and not str(source).endswith(".jsonl"):
        options = {
            "session_col": session_col,
            "item_col": item_col,
            "time_col": time_col,
            "time_format": time_format,
            "drop_cancellations": drop_cancellations,
            "invoice_col": invoice_col,
            "drop_non_products": drop_non_products,
            "product_pattern": product_pattern,
        }
    manifest = pipeline.prepare(
        source,
        name,
        settings(ctx).storage,
        fmt=fmt,
        encoding=encoding,
        min_length=min_length,
        overwrite=overwrite,
        name_col=name_col,
        no_names=no_names,
        **options,
    )
    emit(manifest, as_json, _describe)


@app.command()
def synth(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="Dataset name under the storage root.")] = "demo",
    sessions: Annotated[int, typer.Option(help="Number of sessions.")] = 2000,
    items: Annotated[int, typer.Option(help="Catalogue size.")] = 500,
    clusters: Annotated[int, typer.Option(help="Planted item clusters.")] = 25,
    mean_length: Annotated[float, typer.Option(help="Mean session length.")] = 12.0,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing dataset of the same name.")] = False,
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """Generate seeded sessions with planted item clusters and sequential structure."""
    manifest = pipeline.synth(
        name,
        settings(ctx).storage,
        overwrite=overwrite,
        n_sessions=sessions,
        n_items=items,
        n_clusters=clusters,
        mean_length=mean_length,
        seed=seed,
    )
    emit(manifest, as_json, _describe)


@app.command()
def stats(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Argument(help="Dataset name, or a sessions file (Parquet/JSONL) URI.")],
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """Print a dataset's counts, length quantiles and content hash."""
    emit(pipeline.dataset_manifest(dataset, settings(ctx).storage), as_json, _describe)


@app.command()
def check(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Argument(help="Dataset name, or a sessions file (Parquet/JSONL) URI.")],
) -> None:
    """Check that the storage is reachable with the configured credentials and DATASET is readable
    (manifest and sessions): one line, exit 0; else one error line (`helm test` runs this)."""
    typer.echo(pipeline.check_dataset(dataset, settings(ctx).storage))

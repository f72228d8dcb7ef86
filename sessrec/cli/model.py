"""`sessrec baseline`, `sessrec train`, `sessrec recommend`: single models on one split."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from sessrec import layout, pipeline
from sessrec.cli.common import JsonOption, emit, percent, progress, settings
from sessrec.core.baselines import METHODS
from sessrec.core.word2vec import Word2VecConfig

SeedOption = typer.Option("--seed", help="Split seed.")
NOption = typer.Option("--n", help="Pairs in each of test and validation.")
KOption = typer.Option("-k", "--k", help="Recommendations per query.")
# K of Recall@K and MRR@K, bounded as in a sweep spec.
MetricKOption = typer.Option("-k", "--k", max=1000, help="K of Recall@K and MRR@K: recommendations per query.")


def baseline(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Argument(help="Dataset name or sessions file URI.")],
    method: Annotated[Optional[list[str]], typer.Option(help=f"One of {', '.join(METHODS)}; repeat for several (default: all).")] = None,
    seed: Annotated[int, SeedOption] = 0,
    n: Annotated[int, NOption] = 1000,
    k: Annotated[int, MetricKOption] = 10,
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """Score count-based baselines (popularity, association rules, transitions) on the split."""
    root = settings(ctx).storage
    # A method given twice is scored and listed once, in the order first given.
    results = [pipeline.baseline(dataset, root, m, seed, n, k) for m in dict.fromkeys(method or METHODS)]

    def human(rows: list[dict]) -> str:
        lines = [f"{'method':<12} {'val R@' + str(k):>10} {'val MRR':>9} {'test R@' + str(k):>10} {'test MRR':>9}"]
        for r in rows:
            v, t = r["validation"], r["test"]
            lines.append(
                f"{r['method']:<12} {percent(v['recall_at_k']):>10} {percent(v['mrr_at_k']):>9} "
                f"{percent(t['recall_at_k']):>10} {percent(t['mrr_at_k']):>9}"
            )
        return "\n".join(lines)

    emit(results, as_json, human)


def train(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Argument(help="Dataset name or sessions file URI.")],
    name: Annotated[str, typer.Option(help="Model name under the storage root.")],
    vector_size: Annotated[int, typer.Option(help="Embedding dimensions.")] = 100,
    window: Annotated[int, typer.Option(help="Context window.")] = 5,
    negative: Annotated[int, typer.Option(help="Negative samples.")] = 5,
    ns_exponent: Annotated[float, typer.Option(help="Exponent of the negative-sampling distribution.")] = 0.75,
    alpha: Annotated[float, typer.Option(help="Initial learning rate.")] = 0.025,
    min_alpha: Annotated[float, typer.Option(help="Final learning rate.")] = 0.0001,
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 5,
    min_count: Annotated[int, typer.Option(help="Ignore items seen fewer times.")] = 1,
    sample: Annotated[float, typer.Option(help="Down-sampling threshold of frequent items.")] = 0.001,
    model_seed: Annotated[int, typer.Option(help="Word2vec random seed.")] = 1,
    workers: Annotated[int, typer.Option(help="Training threads.")] = 1,
    seed: Annotated[int, SeedOption] = 0,
    n: Annotated[int, NOption] = 1000,
    k: Annotated[int, MetricKOption] = 10,
    export: Annotated[Optional[str], typer.Option(help="Also write 'word2vec' text format.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing model of the same name.")] = False,
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """Train skip-gram word2vec, with validation metrics after every epoch and test at the end."""
    if export not in (None, "word2vec"):
        raise typer.BadParameter("only 'word2vec' is supported", param_hint="--export")
    config = Word2VecConfig.from_dict(
        dict(vector_size=vector_size, window=window, negative=negative, ns_exponent=ns_exponent, alpha=alpha,
             min_alpha=min_alpha, epochs=epochs, min_count=min_count, sample=sample, seed=model_seed, workers=workers)
    )
    root = settings(ctx).storage
    with progress("training", total=epochs, enabled=not as_json) as advance:
        result = pipeline.train(
            dataset, root, name, config, seed, n, k, overwrite=overwrite,
            on_epoch=lambda epoch, m: advance(status=f"val R@{k} {percent(m['recall_at_k'])}"),
            export_word2vec=export == "word2vec",
        )

    def human(r: dict) -> str:
        v, t = r["validation"], r["test"]
        return (
            f"model {r['model']} trained in {r['train_seconds']:.1f} s\n"
            f"validation  R@{k} {percent(v['recall_at_k'])}  MRR@{k} {percent(v['mrr_at_k'])}\n"
            f"test        R@{k} {percent(t['recall_at_k'])}  MRR@{k} {percent(t['mrr_at_k'])}\n"
            f"saved to {layout.model_dir(root, r['model'])}"
        )

    emit(result, as_json, human)


def recommend(
    ctx: typer.Context,
    items: Annotated[list[str], typer.Argument(help="Query item(s).")],
    embeddings: Annotated[str, typer.Option(help="Model name, or embeddings URI (Parquet or word2vec .txt).")],
    k: Annotated[int, KOption] = 10,
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """The K nearest items by cosine for each query item."""
    model = pipeline.load_embeddings(embeddings, settings(ctx).storage)
    results = {item: [{"item": i, "score": s} for i, s in recs] for item, recs in zip(items, model.recommend(items, k))}

    def human(r: dict) -> str:
        blocks = []
        for query, recs in r.items():
            blocks.append(f"{query}:\n" + "\n".join(f"  {x['item']:<20} {x['score']:.4f}" for x in recs))
        return "\n".join(blocks)

    emit(results, as_json, human)

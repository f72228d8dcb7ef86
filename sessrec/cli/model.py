"""`sessrec baseline`, `sessrec train`, `sessrec fit`, `sessrec recommend`: single models on one split."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from sessrec import layout
from sessrec.cli.common import JsonOption, emit, percent, progress, settings
from sessrec.cli.names import BASELINE_METHODS, DEFAULT_K, DEFAULT_PAIRS, EXCLUDES, MAX_K, MODELS
from sessrec.errors import SessrecError

if TYPE_CHECKING:
    from sessrec import pipeline
else:  # loaded on first use: `sessrec train --help` stays fast
    from sessrec.cli.lazy import lazy_module

    pipeline = lazy_module("sessrec.pipeline")

SeedOption = typer.Option("--seed", help="Split seed.")
NOption = typer.Option("--n", help="Pairs in each of test and validation.")
KOption = typer.Option("-k", "--k", help="Recommendations per query.")
# K of Recall@K and MRR@K, bounded as in a sweep spec.
MetricKOption = typer.Option("-k", "--k", max=MAX_K, help="K of Recall@K and MRR@K: recommendations per query.")


def baseline(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Argument(help="Dataset name or sessions file URI.")],
    method: Annotated[
        list[str] | None,
        typer.Option(help=f"One of {', '.join(BASELINE_METHODS)}; repeat for several (default: those of --mode)."),
    ] = None,
    mode: Annotated[
        str,
        typer.Option(
            help="Which baselines without --method: 'item' (popular, assoc, transitions: the seed-comparable "
            "figures), 'session' (sr, session-transitions, repeat) or 'all'."
        ),
    ] = "item",
    exclude: Annotated[
        str, typer.Option(help="Session mode: never recommend the 'query' (default) or any item of the 'session'.")
    ] = "query",
    seed: Annotated[int, SeedOption] = 0,
    n: Annotated[int, NOption] = DEFAULT_PAIRS,
    k: Annotated[int, MetricKOption] = DEFAULT_K,
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """Score count-based baselines on the split: item mode (popularity, association rules,
    transitions) and session mode (sequential rules, multi-step transitions, repeat)."""
    modes = {"item": ("item",), "session": ("session",), "all": ("item", "session")}
    if mode not in modes:
        raise SessrecError(f"--mode must be item, session or all, got {mode!r}")
    if exclude not in EXCLUDES:
        raise SessrecError(f"--exclude must be one of {', '.join(EXCLUDES)}, got {exclude!r}")
    chosen = method or [m for m in BASELINE_METHODS if pipeline.baseline_mode(m) in modes[mode]]
    root = settings(ctx).storage
    # A method given twice is scored and listed once, in the order first given.
    results = [pipeline.baseline(dataset, root, m, seed, n, k, exclude) for m in dict.fromkeys(chosen)]

    def human(rows: list[dict]) -> str:
        lines = [
            f"{'method':<20} {'mode':<8} {'exclude':<8} {'val R@' + str(k):>10} {'val MRR':>9} "
            f"{'test R@' + str(k):>10} {'test MRR':>9}"
        ]
        for r in rows:
            v, t = r["validation"], r["test"]
            lines.append(
                f"{r['method']:<20} {r['mode']:<8} {r['exclude']:<8} {percent(v['recall_at_k']):>10} "
                f"{percent(v['mrr_at_k']):>9} {percent(t['recall_at_k']):>10} {percent(t['mrr_at_k']):>9}"
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
    n: Annotated[int, NOption] = DEFAULT_PAIRS,
    k: Annotated[int, MetricKOption] = DEFAULT_K,
    export: Annotated[str | None, typer.Option(help="Also write 'word2vec' text format.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing model of the same name.")] = False,
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """Train skip-gram word2vec, with validation metrics after every epoch and test at the end."""
    if export not in (None, "word2vec"):
        raise typer.BadParameter("only 'word2vec' is supported", param_hint="--export")
    from sessrec.core.word2vec import Word2VecConfig  # gensim

    config = Word2VecConfig.from_dict(
        {
            "vector_size": vector_size,
            "window": window,
            "negative": negative,
            "ns_exponent": ns_exponent,
            "alpha": alpha,
            "min_alpha": min_alpha,
            "epochs": epochs,
            "min_count": min_count,
            "sample": sample,
            "seed": model_seed,
            "workers": workers,
        }
    )
    root = settings(ctx).storage
    with progress("training", total=epochs, enabled=not as_json) as advance:
        result = pipeline.train(
            dataset,
            root,
            name,
            config,
            seed,
            n,
            k,
            overwrite=overwrite,
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


def parse_params(pairs: list[str], model: str) -> dict[str, Any]:
    """``--param KEY=VALUE`` pairs as parameters; a value is read as JSON where it is JSON (0.3,
    true, NaN, [..]), as text otherwise. A hybrid takes ``COMPONENT.KEY=VALUE`` (one component per
    model named, in the order first named; ``weight`` and ``normalise`` are the blend's) or
    ``components=JSON``."""
    params: dict[str, Any] = {}
    components: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SessrecError(f"--param {pair!r}: expected KEY=VALUE")
        try:
            value = json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            value = text
        if model == "hybrid" and key != "components":
            part, dot, inner = key.partition(".")
            if not dot or not inner:
                raise SessrecError(
                    f"--param {pair!r}: a hybrid's parameters are COMPONENT.KEY=VALUE (e.g. sr.last_n=3, "
                    "repeat.weight=0.2) or components=JSON"
                )
            if part not in MODELS or part == "hybrid":
                parts = ", ".join(m for m in MODELS if m != "hybrid")
                raise SessrecError(f"--param {pair!r}: unknown component {part!r}; choose one of {parts}")
            components.setdefault(part, {"model": part})[inner] = value
            continue
        if key in params:
            raise SessrecError(f"--param {key} given twice")
        params[key] = value
    if components:
        if "components" in params:
            raise SessrecError(
                "give a hybrid's components either as components=JSON or as COMPONENT.KEY=VALUE, not both"
            )
        params["components"] = list(components.values())
    return params


def _metrics_text(label: str, m: dict) -> str:
    return (
        f"{label:<11} R@{m['k']} {percent(m['recall_at_k'])}  MRR@{m['k']} {percent(m['mrr_at_k'])}"
        f"  ({m['mode']} mode, exclude {m['exclude']})"
    )


def fit(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Argument(help="Dataset name or sessions file URI.")],
    model: Annotated[str, typer.Option(help=f"Recommender: {', '.join(m for m in MODELS if m != 'w2v_item')}.")],
    name: Annotated[str, typer.Option(help="Model name under the storage root.")],
    param: Annotated[
        list[str] | None,
        typer.Option(
            help="KEY=VALUE, repeatable (e.g. last_n=3); a hybrid's: COMPONENT.KEY=VALUE "
            "(sr.decay=0.3, repeat.weight=0.2)."
        ),
    ] = None,
    embeddings: Annotated[
        str | None,
        typer.Option(help="Word2vec model (from 'sessrec train', same split) for w2v_session and hybrid w2v parts."),
    ] = None,
    exclude: Annotated[
        str, typer.Option(help="Evaluation: never recommend the 'query' (default) or any item of the 'session'.")
    ] = "query",
    seed: Annotated[int, SeedOption] = 0,
    n: Annotated[int, NOption] = DEFAULT_PAIRS,
    k: Annotated[int, MetricKOption] = DEFAULT_K,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing model of the same name.")] = False,
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """Fit a session recommender on the training split, evaluate it in session mode, store it."""
    root = settings(ctx).storage
    params = parse_params(param or [], model)
    result = pipeline.fit_recommender(dataset, root, name, model, params, seed, n, k, exclude, embeddings, overwrite)

    def human(r: dict) -> str:
        return (
            f"recommender {r['name']} ({r['model']}, {r['n_items']:,} items) fitted in {r['fit_seconds']:.1f} s\n"
            f"{_metrics_text('validation', r['validation'])}\n{_metrics_text('test', r['test'])}\n"
            f"saved to {layout.model_dir(root, r['name'])}"
        )

    emit(result, as_json, human)


def recommend(
    ctx: typer.Context,
    items: Annotated[
        list[str] | None, typer.Argument(help="Query item(s), or with --session the session's items, oldest first.")
    ] = None,
    embeddings: Annotated[
        str | None, typer.Option(help="Word2vec model name, or embeddings URI (Parquet or word2vec .txt).")
    ] = None,
    model: Annotated[str | None, typer.Option(help="A stored session recommender (from 'sessrec fit').")] = None,
    session: Annotated[
        bool, typer.Option("--session", help="The items are one session: recommend what comes next.")
    ] = False,
    sessions_file: Annotated[
        str | None, typer.Option(help="JSONL file of sessions (one JSON array of items per line); needs --to.")
    ] = None,
    to: Annotated[str | None, typer.Option(help="With --sessions-file: output .jsonl or .parquet.")] = None,
    param: Annotated[
        list[str] | None, typer.Option(help="With --embeddings in session mode: last_n=N, decay=D.")
    ] = None,
    exclude: Annotated[
        str, typer.Option(help="Session mode: never recommend the 'query' (default) or any item of the 'session'.")
    ] = "query",
    k: Annotated[int, KOption] = DEFAULT_K,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --to file.")] = False,
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """The K best next items: for each query item (item mode), for a --session, or for every
    session of a --sessions-file. Unknown items are left out and named on stderr."""
    root = settings(ctx).storage
    if sessions_file is not None:
        if items or session:
            raise SessrecError("give sessions either as --sessions-file or as items, not both")
        if to is None:
            raise SessrecError("--sessions-file needs --to OUT.jsonl or OUT.parquet")
        scorer, source = pipeline.session_scorer(root, model, embeddings, parse_params(param or [], "w2v_session"))
        names = pipeline.model_item_names(root, source)
        summary = {
            "model": source,
            **pipeline.recommend_file(scorer, sessions_file, to, k, exclude, overwrite, names),
        }
        if summary["unknown"]:
            stderr_line(
                f"{summary['sessions_with_unknown_items']} session(s) held unknown items, left out: "
                f"{pipeline.unknown_text(summary['unknown'])}"
                + (
                    f"; lines without any known item: {summary['lines_without_known_items'][:10]}"
                    if summary["lines_without_known_items"]
                    else ""
                )
            )
        emit(
            summary,
            as_json,
            lambda r: (
                f"wrote the top {k} of {r['sessions']:,} sessions to {r['to']} (session mode, exclude {r['exclude']})"
            ),
        )
        return
    if to is not None:
        raise SessrecError("--to is for --sessions-file")
    if session and not items:
        raise SessrecError(
            "--session needs the session's items: sessrec recommend --session ITEM ITEM ... --model NAME"
        )
    if not items:
        raise SessrecError("give query items, --session ITEM ..., or --sessions-file FILE")
    if model is not None and embeddings is None and not session and pipeline.is_word2vec_model(root, model):
        model, embeddings = None, model  # a word2vec model (or a sweep's best): item mode, as --embeddings
    if model is None and not session:
        if param:
            raise SessrecError("--param is for session mode (--session or --sessions-file)")
        _recommend_items(root, items, embeddings, k, as_json)  # word2vec item mode, as ever
        return
    scorer, source = pipeline.session_scorer(root, model, embeddings, parse_params(param or [], "w2v_session"))
    names = pipeline.model_item_names(root, source)
    result = {
        "model": source,
        **pipeline.recommend_session(scorer, items, k, exclude, "session" if session else "item", names),
    }
    if result["unknown"]:
        stderr_line(f"unknown item(s) left out: {pipeline.unknown_text(result['unknown'])}")

    def human(r: dict) -> str:
        if r["mode"] == "session":
            return f"next after {len(r['session'])} item(s) (session mode, exclude {r['exclude']}):\n" + _rec_lines(
                r["recommendations"]
            )
        return "\n".join(
            f"{_named(query, names)} (item mode):\n{_rec_lines(recs)}" for query, recs in r["recommendations"].items()
        )

    emit(result, as_json, human)


def _named(item: str, names: dict[str, str]) -> str:
    """An item id for people: with its name where the dataset keeps one."""
    return f"{item} ({names[item]})" if item in names else item


def _rec_lines(recs: list[dict]) -> str:
    """One line per recommendation: id, score, and its name where known."""
    return "\n".join(f"  {x['item']:<20} {x['score']:.4f}" + (f"  {x['name']}" if x["name"] else "") for x in recs)


def stderr_line(text: str) -> None:
    typer.echo(f"note: {text}", err=True)


def _recommend_items(root: str, items: list[str], embeddings: str | None, k: int, as_json: bool) -> None:
    """The K nearest items by cosine for each query item."""
    if embeddings is None:
        raise SessrecError("name the model: --embeddings NAME (word2vec) or --model NAME (a stored recommender)")
    vectors = pipeline.load_embeddings(embeddings, root)
    names = pipeline.model_item_names(root, embeddings)
    results = {
        item: [{"item": i, "score": s, "name": names.get(i)} for i, s in recs]
        for item, recs in zip(items, vectors.recommend(items, k), strict=True)
    }

    def human(r: dict) -> str:
        return "\n".join(f"{_named(query, names)}:\n{_rec_lines(recs)}" for query, recs in r.items())

    emit(results, as_json, human)

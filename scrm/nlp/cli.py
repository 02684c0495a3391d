"""``scrm nlp`` commands: batch predict, evaluate and train (mounted by the main CLI)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    help="Chinese message understanding: sentiment, emotion and intent (batch predict, evaluate, train).",
    no_args_is_help=True,
)


class InputError(Exception):
    pass


def _fail(msg: str) -> None:
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(code=2)


def _read_jsonl(path: Path, need_label: bool) -> Iterator[dict[str, Any]]:
    """Yield validated rows; raise InputError naming the 1-based line number on bad input."""
    try:
        f = sys.stdin if str(path) == "-" else path.open(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot open {path}: {exc.strerror}") from None
    with f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}: line {lineno}: invalid JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise InputError(f"{path}: line {lineno}: expected a JSON object")
            if "id" not in obj:
                raise InputError(f"{path}: line {lineno}: missing field 'id'")
            text = obj.get("text")
            if text is None:
                text = ""
            if not isinstance(text, str):
                raise InputError(f"{path}: line {lineno}: field 'text' must be a string")
            if need_label and not isinstance(obj.get("label"), str):
                raise InputError(f"{path}: line {lineno}: missing or non-string field 'label'")
            obj["text"] = text
            obj["_line"] = lineno
            yield obj


def _labels_opt(labels: str | None) -> list[str] | None:
    if not labels:
        return None
    out = [x.strip() for x in labels.split(",") if x.strip()]
    return out or None


def _analyzer(workspace: str | None) -> Any:
    from . import service

    if workspace and not service.has_workspace_examples_provider():
        _fail(
            "no workspace examples provider is registered, so --workspace cannot be used here "
            "(the application sets it with scrm.nlp.service.set_workspace_examples_provider)"
        )
    try:
        return service.get_analyzer(workspace)
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))


TaskOpt = Annotated[str, typer.Option("--task", help="sentiment | emotion | intent")]
LabelsOpt = Annotated[
    str | None,
    typer.Option("--labels", help="comma-separated labels the answer is restricted to, e.g. pos,neg"),
]
WorkspaceOpt = Annotated[
    str | None, typer.Option("--workspace", help="workspace slug (uses its active model)")
]


@app.command()
def predict(
    task: TaskOpt,
    input: Annotated[Path, typer.Option("--input", help="JSONL with {id, text} per line ('-' = stdin)")],
    output: Annotated[Path, typer.Option("--output", help="JSONL written with {id, label, score} per line")],
    labels: LabelsOpt = None,
    workspace: WorkspaceOpt = None,
    batch_size: Annotated[int, typer.Option(help="texts per batch")] = 2048,
) -> None:
    """Label every input line; output keeps the input order, one line per input line."""
    from .service import TASKS, UnknownLabelError

    if task not in TASKS:
        _fail(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    try:
        rows = list(_read_jsonl(input, need_label=False))
    except InputError as exc:
        _fail(str(exc))
    analyzer = _analyzer(workspace)
    lab = _labels_opt(labels)
    try:
        analyzer.predict(task, ["x"], lab)
    except UnknownLabelError as exc:
        _fail(str(exc))
    tmp = output.with_name(output.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for i in range(0, len(rows), batch_size):
            chunk = rows[i : i + batch_size]
            preds = analyzer.predict(task, [r["text"] for r in chunk], lab)
            for r, (label, score) in zip(chunk, preds, strict=True):
                f.write(
                    json.dumps({"id": r["id"], "label": label, "score": round(score, 6)}, ensure_ascii=False)
                )
                f.write("\n")
    tmp.replace(output)
    typer.echo(f"wrote {len(rows)} predictions to {output}", err=True)


@app.command()
def evaluate(
    task: TaskOpt,
    input: Annotated[Path, typer.Option("--input", help="JSONL with {id, text, label} per line")],
    labels: LabelsOpt = None,
    workspace: WorkspaceOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the scores as JSON")] = False,
) -> None:
    """Print accuracy, macro-F1 and the confusion matrix on a labelled JSONL file."""
    from .service import TASKS, UnknownLabelError
    from .training import scores

    if task not in TASKS:
        _fail(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    try:
        rows = list(_read_jsonl(input, need_label=True))
    except InputError as exc:
        _fail(str(exc))
    if not rows:
        _fail(f"{input}: no labelled lines")
    analyzer = _analyzer(workspace)
    lab = _labels_opt(labels)
    try:
        preds = analyzer.predict(task, [r["text"] for r in rows], lab)
    except UnknownLabelError as exc:
        _fail(str(exc))
    gold = [r["label"] for r in rows]
    pred = [p for p, _ in preds]
    label_set = lab or sorted(set(gold) | set(pred))
    res = scores(gold, pred, label_set)
    if as_json:
        typer.echo(json.dumps(res, ensure_ascii=False))
        return
    typer.echo(f"task: {task}  model: {analyzer.model_version}  n: {res['n']}")
    typer.echo(f"accuracy: {res['accuracy']:.4f}")
    typer.echo(f"macro-F1: {res['macro_f1']:.4f}")
    typer.echo("per-class F1: " + ", ".join(f"{k} {v:.3f}" for k, v in res["f1"].items()))
    width = max(8, *(len(x) for x in label_set)) + 1
    typer.echo("confusion (rows = gold, columns = predicted):")
    typer.echo(" " * width + "".join(x.rjust(width) for x in label_set))
    for name, row in zip(label_set, res["confusion"], strict=True):
        typer.echo(name.ljust(width) + "".join(str(v).rjust(width) for v in row))


@app.command()
def train(
    workspace: WorkspaceOpt = None,
) -> None:
    """Train (or load from cache) the default models, or retrain a workspace from its corrections."""
    from . import service

    if workspace:
        try:
            examples = service.get_workspace_examples(workspace)
        except LookupError as exc:
            _fail(str(exc))
        try:
            entry = service.train_workspace(workspace, examples)
        except ValueError as exc:
            _fail(str(exc))
        typer.echo(json.dumps(entry.to_dict(), ensure_ascii=False, indent=2))
        return
    try:
        bundle = service.load_default_bundle()
    except FileNotFoundError as exc:
        _fail(str(exc))
    typer.echo(f"default models: {bundle.meta.get('version')} ({service.default_bundle_dir()})")
    for name, res in bundle.meta.get("dev", {}).items():
        typer.echo(
            f"  {name:32s} accuracy {res['accuracy']:.4f}  macro-F1 {res['macro_f1']:.4f}  (n={res['n']})"
        )


if __name__ == "__main__":  # pragma: no cover
    app()

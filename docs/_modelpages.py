"""Write one reStructuredText page per shipped model from its model card."""

import json
from pathlib import Path


def _fmt(value):
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _metrics_table(name, metrics):
    lines = [".. list-table::", "   :header-rows: 1", "", "   * - split", "     - n",
             "     - accuracy", "     - macro precision", "     - macro recall",
             "     - macro F1"]
    for split, m in metrics.items():
        if not isinstance(m, dict) or "accuracy" not in m:
            continue
        lines += [f"   * - {split}", f"     - {m['n']}", f"     - {_fmt(m['accuracy'])}",
                  f"     - {_fmt(m['precision_macro'])}", f"     - {_fmt(m['recall_macro'])}",
                  f"     - {_fmt(m['f1_macro'])}"]
    return lines


def _confusion(m):
    classes = m["classes"]
    lines = [".. list-table:: Confusion matrix on the test split (rows: true, columns: "
             "predicted)", "   :header-rows: 1", "", "   * - "] + \
        [f"     - {c}" for c in classes]
    for c, row in zip(classes, m["confusion_matrix"]):
        lines += [f"   * - {c}"] + [f"     - {v}" for v in row]
    return lines


def write_model_pages(outdir):
    from sourceclf.models.registry import MODEL_DIR, model_names

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    names = model_names()
    for name in names:
        card = json.loads((MODEL_DIR / name / "card.json").read_text())
        title = f"``{name}``"
        inputs = " + ".join(x for x in (card.get("feature_set"),
                                        "5-band cutouts" if card.get("uses_images") else None)
                            if x)
        lines = [title, "=" * len(title), "", card.get("description", ""), "",
                 f":Version: {card['version']}",
                 f":Inputs: {inputs}",
                 f":Classes: {', '.join(card['classes'])}",
                 f":Architecture: ``{card.get('architecture') or card.get('kind')}``",
                 f":Parameters: {card.get('extra', {}).get('n_parameters', 'n/a')}",
                 f":Weights SHA-256: ``{card['weights_sha256']}``", ""]
        if card.get("notes"):
            lines += [".. note::", "", "   " + card["notes"], ""]
        training = card.get("training", {})
        if training:
            lines += ["Training", "--------", ""]
            lines += [f"- **{k}**: {v}" for k, v in training.items()] + [""]
        metrics = card.get("metrics", {})
        if metrics:
            lines += ["Held-out metrics", "----------------", "",
                      f"Test data: {metrics.get('test_data', 'see training')}.", ""]
            lines += _metrics_table(name, metrics) + [""]
            if "test" in metrics:
                lines += _confusion(metrics["test"]) + [""]
        (outdir / f"{name}.rst").write_text("\n".join(lines) + "\n")
    index = ["Shipped models", "==============", "",
             "One page per model, generated from its model card "
             "(``sourceclf/models/data/<name>/card.json``) when the docs are built.", "",
             ".. toctree::", "   :maxdepth: 1", ""] + [f"   {n}" for n in names]
    (outdir / "index.rst").write_text("\n".join(index) + "\n")

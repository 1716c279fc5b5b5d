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
    rows = []
    for split, m in metrics.items():
        if not isinstance(m, dict):
            continue
        if "precision_macro" in m:
            rows.append((split, m))
        elif split != "test_by_data":  # a split's parts (test_by_seeing, ...); per data
            # set, _by_data_and_magnitude gives its own table
            rows += [(f"{split}: {part}", v) for part, v in m.items()
                     if isinstance(v, dict) and "precision_macro" in v]
    for split, m in rows:
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


def _real_checks(metrics):
    """Checks on real images (dict metrics with a fraction, not an accuracy)."""
    lines = []
    for key, m in metrics.items():
        if not isinstance(m, dict) or "accuracy" in m or "n" not in m:
            continue
        fraction = {k: v for k, v in m.items() if k.endswith("_fraction")}
        if not lines:
            lines = ["Checks on real images", "---------------------", ""]
        what = ", ".join(f"{k.replace('_', ' ')} **{v:.3f}**" for k, v in fraction.items())
        predicted = ", ".join(f"{c} {n}" for c, n in m.get("predicted", {}).items())
        lines += [f"- **{key}** ({m.get('data', '')}): n = {m['n']}; {what}; "
                  f"predicted: {predicted}."]
    return lines + ([""] if lines else [])


def _real_fields(metrics):
    """One table per real-field record of the card: balanced accuracy per field and seeing,
    with the shares of point-like sources called STAR or QSO and of extended ones called
    GALAXY."""
    from sourceclf.models.registry import REAL_FIELD_RECORDS, crowded_fields

    lines = []
    for key, what in REAL_FIELD_RECORDS.items():
        rows = metrics.get(key, {}).get("rows", [])
        if not rows:
            continue
        if not lines:
            lines = ["Checks on real fields", "---------------------", "",
                     "Balanced accuracy (point-like as STAR or QSO / extended as GALAXY) on "
                     "the bright sources of real SDSS fields never trained on, at each "
                     "field's own seeing and blurred to an r-band FWHM of 1.6\", 1.9\" and "
                     "2.2\" (``docs/scripts/check_fields.py``; docs: images, \"How they do "
                     "on real fields\"); fields whose rows are flagged ``crowded`` are "
                     "marked.", ""]
        seeings = sorted({row["target_r_fwhm"] for row in rows}, key=lambda s: s or 0.0)
        lines += [f".. list-table:: ``{key}``: {what}", "   :header-rows: 1", "",
                  "   * - field"] + [
            "     - " + ("native" if s is None else f'{s:.1f}"') for s in seeings]
        crowded = crowded_fields(rows)
        by_field = {}
        for row in rows:
            by_field.setdefault(row["field"], {})[row["target_r_fwhm"]] = row
        for field, cells in sorted(by_field.items()):
            lines.append(f"   * - {field}" + (" (crowded)" if field in crowded else ""))
            for s in seeings:
                r = cells.get(s)
                lines.append("     - --" if r is None else
                             f"     - {r['balanced']:.2f} ({r['point_as_star_or_qso']:.2f} / "
                             f"{r['extended_as_galaxy']:.2f})")
        lines.append("")
    return lines


def _speed(name):
    """Sources per second of the forward pass on the machine building the docs."""
    import os
    import time

    import numpy as np

    from sourceclf.models.registry import load_model

    clf = load_model(name)
    n = 2048 if clf.uses_images else 65536
    rng = np.random.default_rng(0)
    features = None
    if clf.feature_set is not None:
        from sourceclf.features import get_feature_set

        width = len(get_feature_set(clf.feature_set).names)
        features = rng.normal(size=(n, width)).astype(np.float32)
    images = (rng.normal(scale=0.05, size=(n, 5, 32, 32)).astype(np.float32)
              if clf.uses_images else None)
    clf.predict_proba(None if features is None else features[:64],
                      None if images is None else images[:64], device="cpu")
    best = float("inf")
    for _ in range(2):
        t0 = time.perf_counter()
        clf.predict_proba(features, images, device="cpu")
        best = min(best, time.perf_counter() - t0)
    return n / best, os.cpu_count()


def _by_data_and_magnitude(metrics):
    """Held-out accuracy per data set and per magnitude bin, when the card has them."""
    lines = []
    by_data = metrics.get("test_by_data", {})
    if by_data:
        lines += [".. list-table:: Test accuracy per data set (held-out rows; recall per "
                  "class)", "   :header-rows: 1", "", "   * - data", "     - n",
                  "     - accuracy", "     - recall per class"]
        for name, m in by_data.items():
            recall = ", ".join(f"{c} {v:.4f}" for c, v in m.get("recall", {}).items()
                               if v is not None)
            lines += [f"   * - {name}", f"     - {m['n']}", f"     - {_fmt(m['accuracy'])}",
                      f"     - {recall}"]
        lines.append("")
    tables = [("all test rows", metrics.get("test_by_magnitude"))] + [
        (name, m.get("by_magnitude")) for name, m in by_data.items()]
    tables = [(k, v) for k, v in tables if v]
    if tables:
        band = tables[0][1]["band"]
        lines += [f".. list-table:: Test accuracy per {band} magnitude (n in brackets)",
                  "   :header-rows: 1", "", f"   * - {band}"] + \
            [f"     - {k}" for k, _ in tables]
        for i, label in enumerate(tables[0][1]["bins"]):
            lines.append(f"   * - {label}")
            for _, t in tables:
                acc = t["accuracy"][i]
                lines.append(f"     - {'-' if acc is None else f'{acc:.4f}'} ({t['n'][i]})")
        lines.append("")
    return lines


def _domain(card):
    domain = card.get("domain") or {}
    if not domain:
        return []
    lines = ["Where to use it", "---------------", "", domain.get("description", ""), ""]
    for band, (bright, faint) in domain.get("magnitudes", {}).items():
        lines.append(f"- trained on {band} magnitudes {bright:g} to {faint:g}")
    check = card.get("metrics", {}).get("domain_check", {})
    for key, value in check.items():
        if key != "n_test":
            lines.append(f"- {key.replace('_', ' ')}: {value}")
    if domain.get("file"):
        lines.append("- rows outside the domain are flagged ``out_of_domain`` in "
                     "``pred_flag``")
    return lines + [""]


def _size_and_speed(name, card, model_dir):
    weights = sum(p.stat().st_size for p in model_dir.rglob("*") if p.is_file()
                  and p.name not in ("card.json", "calibration.ecsv"))
    extra = card.get("extra", {})
    lines = ["Size and speed", "--------------", "",
             f"- weights: {weights / 1e6:.2f} MB on disk"]
    if "n_parameters" in extra:
        lines.append(f"- parameters: {extra['n_parameters']:,d}")
    if "mflop_per_source" in extra:
        lines.append(f"- MFLOP per source (forward pass): {extra['mflop_per_source']}")
    try:
        rate, cores = _speed(name)
    except Exception as exc:  # never break the docs build on a timing
        lines.append(f"- speed: not measured ({type(exc).__name__})")
    else:
        lines.append(f"- speed: {rate:,.0f} sources/s, ``predict_proba`` on the CPU of the "
                     f"machine that built these pages ({cores} cores), measured at build "
                     "time; ``benchmarks/`` has controlled figures")
    return lines + [""]


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
        lines += _domain(card)
        training = card.get("training", {})
        if training:
            lines += ["Training", "--------", ""]
            lines += [f"- **{k}**: {v}" for k, v in training.items()] + [""]
        metrics = card.get("metrics", {})
        if metrics:
            lines += ["Held-out metrics", "----------------", "",
                      f"Test data: {metrics.get('test_data', 'see training')}.", ""]
            lines += _metrics_table(name, metrics) + [""]
            lines += _by_data_and_magnitude(metrics)
            if "test" in metrics:
                lines += _confusion(metrics["test"]) + [""]
            lines += _real_checks(metrics)
            lines += _real_fields(metrics)
        lines += _size_and_speed(name, card, MODEL_DIR / name)
        (outdir / f"{name}.rst").write_text("\n".join(lines) + "\n")
    index = ["Shipped models", "==============", "",
             "One page per model, generated from its model card "
             "(``sourceclf/models/data/<name>/card.json``) when the docs are built.", "",
             ".. toctree::", "   :maxdepth: 1", ""] + [f"   {n}" for n in names]
    (outdir / "index.rst").write_text("\n".join(index) + "\n")

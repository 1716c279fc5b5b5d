"""Classification metrics written into model cards."""

__all__ = ["classification_metrics"]


def classification_metrics(y_true, y_pred, classes):
    """Accuracy, macro precision/recall/F1 and confusion matrix as a JSON-able dict.

    Parameters
    ----------
    y_true, y_pred : array-like of int
        True and predicted class indices.
    classes : sequence of str
        Class names, in index order.

    Returns
    -------
    metrics : dict
        ``n``, ``accuracy``, ``precision_macro``, ``recall_macro``,
        ``f1_macro`` (rounded to 5 decimals), ``confusion_matrix`` (rows:
        true class) and ``classes``.
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    labels = list(range(len(classes)))
    p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels,
                                                 average="macro", zero_division=0)
    return {
        "n": int(len(y_true)),
        "accuracy": round(float(accuracy_score(y_true, y_pred)), 5),
        "precision_macro": round(float(p), 5),
        "recall_macro": round(float(r), 5),
        "f1_macro": round(float(f), 5),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "classes": list(classes),
    }

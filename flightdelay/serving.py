"""What is served: the champion if the registry has one, else the shipped default model
(version ``default``), always with ITS reference data, since the features depend on it.

* ``load_served_model`` (the streaming job): the model, its reference and, with
  FD_PREDICT_ENGINE=compiled, its forest compiled for the job (``compiled_forest``);
* ``ServedReference`` (the web app): the served model's reference data alone, to validate
  requests against what the job will score with;
* ``AliasWatcher``: both follow the registry alias through it, asking every FD_MODEL_POLL_S
  seconds and swapping when it moves;
* ``shadow_choice`` / ``registry_aliases`` / ``ShadowModel``: the model the job scores in
  shadow beside the champion (the ``challenger`` alias, else ``previous``), answering no one.

The registry side (client, lookups, artifacts) is ``flightdelay.registry``. pyspark is imported
lazily: the web app serves the reference without Spark.
"""
from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from flightdelay import registry, schema
from flightdelay.config import Settings
from flightdelay.model_dir import SHIPPED, SHIPPED_VERSION
from flightdelay.reference import Reference, load_reference

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServedModel:
    name: str
    version: str
    pipeline: object  # pyspark.ml.PipelineModel
    reference: Reference
    source: str       # "mlflow" or "shipped"
    forest: object = None  # flightdelay.compiled_forest.CompiledForest, or None: MLlib serves

    @property
    def engine(self) -> str:
        return "compiled" if self.forest is not None else "mllib"

    def predict(self, features):
        """A frame of model inputs (``add_features`` output) + ``prediction`` (double) and
        ``probabilities`` (array<double>), by the compiled forest or by MLlib: the same values."""
        from flightdelay.features import PREDICTION_COLUMN, PROBABILITIES_COLUMN, PROBABILITY_COLUMN

        if self.forest is not None:
            return self.forest.score(features, PREDICTION_COLUMN, PROBABILITIES_COLUMN)
        from pyspark.ml.functions import vector_to_array

        return self.pipeline.transform(features).withColumn(PROBABILITIES_COLUMN,
                                                            vector_to_array(PROBABILITY_COLUMN))


def compiled_forest(s: Settings, pipeline_dir: Path, pipeline):
    """The pipeline's forest compiled for the job (FD_PREDICT_ENGINE=compiled), or None when
    MLlib is asked for or the model cannot be compiled exactly (the reason is logged)."""
    if s.predict_engine != "compiled":
        return None
    from flightdelay.compiled_forest import NotCompilable, compile_saved_pipeline
    from flightdelay.spark import jvm_jar

    if jvm_jar(s) is None:
        return None
    try:
        return compile_saved_pipeline(pipeline_dir, pipeline)
    except NotCompilable as exc:
        log.warning("the model is served by MLlib, not compiled: %s", exc)
        return None


def load_registered(s: Settings, version: str) -> ServedModel:
    mv = registry.client(s).get_model_version(s.model_name, version)
    with tempfile.TemporaryDirectory() as local:
        pipeline = registry.load_pipeline(s, version, local)
        forest = compiled_forest(s, Path(local) / registry.MLFLOW_SPARK_SUBDIR, pipeline)
    reference = registry.reference_from_run(mv.run_id, s.mlflow_uri)
    log.info("loaded %s version %s (run %s) from MLflow", s.model_name, version, mv.run_id)
    return ServedModel(s.model_name, str(version), pipeline, reference, "mlflow", forest)


def load_shipped(s: Settings) -> ServedModel:
    from pyspark.ml import PipelineModel

    pipeline = PipelineModel.load(str(SHIPPED.pipeline))
    log.info("loaded the shipped default model from %s", SHIPPED.pipeline)
    return ServedModel(s.model_name, SHIPPED_VERSION, pipeline, load_reference(SHIPPED.reference), "shipped",
                       compiled_forest(s, SHIPPED.pipeline, pipeline))


def load_served_model(s: Settings) -> ServedModel:
    """The champion, else the shipped default model (also when the champion cannot be loaded:
    a broken registry entry must not keep the job from serving)."""
    version = registry.champion_version(s)
    if version is not None:
        try:
            return load_registered(s, version)
        except Exception:  # any failure to load falls back to the model in the clone
            log.exception("could not load %s version %s; serving the shipped model", s.model_name, version)
    return load_shipped(s)


@dataclass(frozen=True)
class ShadowModel:
    """A registered version scored beside the champion on every valid request; its predictions
    go to the shadow topic only (schema.SHADOW_FIELDS). ``role``: one of schema.SHADOW_ROLES."""
    role: str
    model: ServedModel

    @property
    def key(self) -> tuple[str, str]:
        return self.role, self.model.version


def shadow_choice(s: Settings, aliases: Mapping[str, str], champion_version: str) -> tuple[str, str] | None:
    """(role, version) of the model to score in shadow, given the registry's aliases (alias ->
    version) and the version that answers: the challenger if there is one other than the
    champion, else the previous champion (on probation after a promotion) if other than it,
    else None (no shadow scoring, no cost)."""
    for alias, role in zip((s.challenger_alias, s.previous_alias), schema.SHADOW_ROLES):
        version = aliases.get(alias)
        if version is not None and str(version) != str(champion_version):
            return role, str(version)
    return None


def registry_aliases(s: Settings) -> dict[str, str] | None:
    """Every alias of the model and its version, in one registry call ({} when the model is not
    registered); None when the registry does not answer (the caller keeps what it has)."""
    try:
        model = registry.client(s).get_registered_model(s.model_name)
    except Exception as exc:  # MlflowException or a connection error
        if registry.is_not_found(exc):
            return {}
        log.warning("registry %s not answering (%s: %s)", s.mlflow_uri, type(exc).__name__, exc)
        return None
    return {alias: str(version) for alias, version in (model.aliases or {}).items()}


class AliasWatcher:
    """Follows the registry alias for whoever serves its version (the job's model, the web
    app's reference data): asks the registry which version is the champion and, when it is not
    the one served, calls ``on_move(version)``, which returns True once it serves that version
    (False: not now, the next poll asks again). A registry that does not answer, or an
    ``on_move`` that fails, never stops the watcher: what is served stays until a swap works."""

    def __init__(self, s: Settings, serving: str, on_move: Callable[[str], bool]):
        self.settings = s
        self.serving = serving
        self.on_move = on_move

    def check(self) -> bool:
        """Ask the registry once; True if the alias moved and ``on_move`` took the new version."""
        try:
            version = registry.champion_version(self.settings)
            if version is None or version == self.serving or not self.on_move(version):
                return False
        except Exception:  # a watcher never dies; the next poll tries again
            log.exception("following %s@%s failed; still serving version %s", self.settings.model_name,
                          self.settings.model_alias, self.serving)
            return False
        self.serving = version
        return True

    def follow(self, sleep: Callable[[float], object] = time.sleep) -> None:
        """Check every FD_MODEL_POLL_S seconds, forever; ``sleep(seconds)`` between checks (the
        web app passes socketio.sleep)."""
        while True:
            self.check()
            sleep(self.settings.model_poll_s)


class ServedReference:
    """The reference data of the served model, for the web app: the shipped one until the
    registry names a champion, then the champion's, following the alias when it moves (the
    streaming job validates against the same data). ``watcher.follow`` runs in a background
    task, never on a request's path."""

    def __init__(self, s: Settings):
        self.settings = s
        self.reference = load_reference(SHIPPED.reference)
        self.watcher = AliasWatcher(s, SHIPPED_VERSION, self.load)

    @property
    def version(self) -> str:
        return self.watcher.serving

    def current(self) -> Reference:
        return self.reference

    def load(self, version: str) -> bool:
        """Validate with the reference data of ``version`` from now on; False if it cannot be
        downloaded (the last good one stays)."""
        try:
            reference = registry.reference_of_version(self.settings, version)
        except Exception as exc:  # keep validating with what we have; the next poll retries
            log.warning("reference of %s version %s not loadable (%s); keeping version %s",
                        self.settings.model_name, version, exc, self.version)
            return False
        self.reference = reference  # one assignment: a request reads the old or the new one, whole
        log.info("validating requests with the reference data of %s version %s (%d routes)",
                 self.settings.model_name, version, len(reference.routes))
        return True

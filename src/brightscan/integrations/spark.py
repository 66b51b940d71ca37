"""Score alerts inside a Spark broker (Fink): a ``pandas_udf`` over the columns as Fink stores them.

Fink's science modules are ``pandas_udf`` functions attached with ``withColumn``; this one takes the
alert columns of Fink's Parquet exactly as they are stored — ``objectId``, ``candid``, the
``candidate`` struct, the ``prv_candidates`` list of structs and the three cutout structs
(``fileName``, ``stampData``) — and returns one struct column::

    from brightscan.integrations.spark import FINK_COLUMNS, score_udf

    btsbot = score_udf("/models/btsbot-v1.0.1")
    df = df.withColumn("btsbot", btsbot(*FINK_COLUMNS))
    df.select("objectId", "btsbot.score", "btsbot.model_version")

``score`` is null (never a made-up number) when an alert cannot be scored, and ``rejection`` says
why (``stage: reason``), as the rejection records of ``brightscan score`` do. Each alert is
prepared by the one preparation pipeline and scored by :class:`brightscan.score.Scorer`, from its
packet's own history (``prv_candidates``), as the production BTSbot does.

Rubin: for a model trained on Rubin alerts the UDF takes Fink's Rubin columns instead
(:data:`FINK_RUBIN_COLUMNS`: ``diaSourceId``, the ``diaSource`` struct, the ``prvDiaSources`` list,
``diaObject``, ``ssSource``, ``lsst_schema_version`` and the three cutouts as FITS bytes);
:func:`udf_columns` says which, from the model's card::

    btsbot = score_udf("/models/mm_cnn-rubin")
    df = df.withColumn("btsbot", btsbot(*udf_columns("/models/mm_cnn-rubin")))

The model is loaded once per executor Python process (Spark reuses them between tasks), never
shipped with the task: the UDF carries the model *path*, which every executor must be able to read.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from brightscan.alerts.parquet import RUBIN_COLUMNS

__all__ = ["FINK_COLUMNS", "FINK_RUBIN_COLUMNS", "RESULT_FIELDS", "score_columns", "score_rubin_columns",
           "score_udf", "udf_columns"]

#: The alert columns the UDF takes, in order, named as Fink stores them.
FINK_COLUMNS = ("objectId", "candid", "candidate", "prv_candidates", "cutoutScience", "cutoutTemplate",
                "cutoutDifference")
#: The columns of a Rubin model's UDF, in order: Fink's Rubin layout, as ``brightscan score`` reads it.
FINK_RUBIN_COLUMNS: tuple[str, ...] = RUBIN_COLUMNS
#: Fields of the returned struct (Spark DDL).
RESULT_FIELDS = "score double, model_id string, model_version string, rejection string"

_SCORERS: dict[tuple, Any] = {}  # per executor process: (model_dir, precision, batch_size) -> Scorer


def _scorer(model_dir: str, precision: str, batch_size: int) -> Any:
    """The executor's scorer for a model, loaded on first use and kept for the process's life."""
    key = (model_dir, precision, batch_size)
    if key not in _SCORERS:
        from brightscan.score import Scorer

        _SCORERS[key] = Scorer(model_dir, precision=precision, batch_size=batch_size, device="cpu",
                               num_threads=1)  # Spark runs one task per executor core
    return _SCORERS[key]


def _records(column: Any) -> list[Any]:
    """A column as Python values: a struct column (a DataFrame in a pandas UDF) as dicts, with
    Arrow's nulls (NaN in pandas) back to None, and lists as lists."""
    if isinstance(column, pd.DataFrame):
        return [_clean(row) for row in column.to_dict("records")]
    return [_clean(value) for value in column]


def _clean(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # numpy arrays and scalars
        return _clean(value.tolist())
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def score_columns(scorer: Any, objectId: Any, candid: Any, candidate: Any, prv_candidates: Any,  # noqa: N803
                  cutoutScience: Any, cutoutTemplate: Any, cutoutDifference: Any) -> pd.DataFrame:  # noqa: N803
    """Score one batch of alerts given as Fink's columns; one result row per input row, in order.

    Works on what Spark hands a pandas UDF (structs as DataFrames) and on ``pyarrow``'s
    ``to_pandas()`` of a Fink Parquet file (structs as dicts).
    """
    from brightscan.alerts.records import alert_from_record

    return _score_rows(scorer, FINK_COLUMNS, (objectId, candid, candidate, prv_candidates, cutoutScience,
                                              cutoutTemplate, cutoutDifference), alert_from_record)


def score_rubin_columns(scorer: Any, *columns: Any) -> pd.DataFrame:
    """:func:`score_columns` for Rubin alerts: ``columns`` are Fink's :data:`FINK_RUBIN_COLUMNS`, in order."""
    from brightscan.alerts.rubin import rubin_alert_from_record

    return _score_rows(scorer, FINK_RUBIN_COLUMNS, columns, rubin_alert_from_record)


def _score_rows(scorer: Any, names: tuple[str, ...], columns: tuple[Any, ...], build: Any) -> pd.DataFrame:
    """Each row's packet built from its columns by ``build(record, source)``, scored in order."""
    if len(columns) != len(names):
        raise TypeError(f"expected the {len(names)} columns {', '.join(names)}; got {len(columns)}")
    values = {name: _records(column) for name, column in zip(names, columns)}
    n = len(values[names[0]])
    items = [build({name: values[name][i] for name in names}, f"row {i}") for i in range(n)]
    score: list[float | None] = [None] * n
    rejection: list[str | None] = [None] * n
    for rows, scores, rejections in scorer.iter_scored(items, overlap=False):
        for row, value in zip(rows, scores):
            score[_row(row["source"])] = float(value)
        for rejected in rejections:
            rejection[_row(rejected.source)] = f"{rejected.stage}: {rejected.reason}"
    return pd.DataFrame({"score": pd.Series(score, dtype="float64"),  # None -> NaN -> Arrow null
                         "model_id": scorer.model_id, "model_version": scorer.model_version,
                         "rejection": pd.Series(rejection, dtype=object)}, index=range(n))


def udf_columns(model_dir: str) -> tuple[str, ...]:
    """The columns :func:`score_udf` of ``model_dir`` takes, in order: by the survey its card states.

    Raises
    ------
    ModelFileError
        When ``model_dir`` holds no readable model card.
    """
    from brightscan.model.io import read_card
    from brightscan.preprocess.surveys import feature_set_survey

    survey = feature_set_survey(read_card(model_dir)["features"]["set"])
    return FINK_RUBIN_COLUMNS if survey == "rubin" else FINK_COLUMNS


def _row(source: str) -> int:
    return int(source.split(" ", 1)[1].split("#", 1)[0])


def score_udf(model_dir: str, *, precision: str = "float32", batch_size: int = 64) -> Any:
    """A Spark ``pandas_udf`` scoring Fink's alert columns (:func:`udf_columns`: :data:`FINK_COLUMNS`,
    or :data:`FINK_RUBIN_COLUMNS` for a Rubin model, in that order) with the model in ``model_dir``;
    it returns the struct :data:`RESULT_FIELDS`.

    Parameters
    ----------
    model_dir : str
        Model directory readable by every executor (a shared filesystem, or shipped with
        ``--files``/``SparkFiles``); only the path travels with the task.
    precision : str
        See :class:`brightscan.score.Scorer` (``auto`` chooses per executor's CPU).
    batch_size : int
        Alerts per model call.
    """
    from pyspark.sql.functions import pandas_udf

    model_dir = str(model_dir)
    if udf_columns(model_dir) == FINK_RUBIN_COLUMNS:
        @pandas_udf(RESULT_FIELDS)  # type: ignore[misc]
        def brightscan_score_rubin(diaSourceId: pd.Series, diaSource: pd.DataFrame,  # noqa: N803
                                   prvDiaSources: pd.Series, diaObject: pd.DataFrame,  # noqa: N803
                                   ssSource: pd.DataFrame, lsst_schema_version: pd.Series,  # noqa: N803
                                   cutoutScience: pd.Series, cutoutTemplate: pd.Series,  # noqa: N803
                                   cutoutDifference: pd.Series) -> pd.DataFrame:  # noqa: N803
            return score_rubin_columns(_scorer(model_dir, precision, batch_size), diaSourceId, diaSource,
                                       prvDiaSources, diaObject, ssSource, lsst_schema_version,
                                       cutoutScience, cutoutTemplate, cutoutDifference)

        return brightscan_score_rubin

    @pandas_udf(RESULT_FIELDS)  # type: ignore[misc]
    def brightscan_score(objectId: pd.Series, candid: pd.Series, candidate: pd.DataFrame,  # noqa: N803
                         prv_candidates: pd.Series, cutoutScience: pd.DataFrame,  # noqa: N803
                         cutoutTemplate: pd.DataFrame, cutoutDifference: pd.DataFrame) -> pd.DataFrame:  # noqa: N803
        return score_columns(_scorer(model_dir, precision, batch_size), objectId, candid, candidate,
                             prv_candidates, cutoutScience, cutoutTemplate, cutoutDifference)

    return brightscan_score

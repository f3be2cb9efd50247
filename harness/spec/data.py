"""``dataset:``: the synthetic world, MovieLens folders, the user's interaction files, TREC
qrels; splits, relevance rules and candidate sets."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

from harness.spec.base import Strict as _Strict


class CandidatesSpec(_Strict):
    """What each query's ranking is judged among: the full catalogue (default), sampled
    negatives (seeded; not comparable with full-catalogue metrics, Krichene & Rendle
    2020), or a given table of (user, item) rows in raw ids (file-backed data sets)."""

    kind: Literal["full", "sampled", "given"] = "full"
    n_negatives: int = Field(100, ge=1)
    seed: int = 0
    path: str | None = None
    user: str = "user"
    item: str = "item"

    @model_validator(mode="after")
    def _given(self) -> "CandidatesSpec":
        if (self.kind == "given") != (self.path is not None):
            raise ValueError("candidates: kind 'given' needs a path (and only it takes one)")
        return self


class SyntheticDataset(_Strict):
    """The built-in synthetic world (see ``harness.datasets.make_synthetic``)."""

    kind: Literal["synthetic"] = "synthetic"
    n_users: int = Field(1000, ge=1)
    n_items: int = Field(500, ge=2)
    dim: int = Field(16, ge=1)
    n_train_per_user: int = Field(20, ge=0)
    popularity_strength: float = Field(0.5, ge=0)
    temperature: float = Field(0.5, gt=0)
    candidates: CandidatesSpec | None = None


# --- file-backed data sets (harness.datasets.movielens / .interactions) -------------------
class RandomSplit(_Strict):
    """A seeded uniform sample of interactions is held out."""

    kind: Literal["random"]
    test_fraction: float = Field(0.2, gt=0, lt=1)
    seed: int | None = Field(None, description="default: the config's seed")


class TemporalSplit(_Strict):
    """One global time cut: interactions after it are held out."""

    kind: Literal["temporal"]
    test_fraction: float | None = Field(None, gt=0, lt=1)
    cutoff: float | str | None = Field(None, description="timestamp (number, or ISO date for datetimes)")

    @field_validator("cutoff", mode="before")
    @classmethod
    def _yaml_date(cls, value: Any) -> Any:
        # YAML reads an unquoted 2024-06-15 as a date: keep it as the ISO text it was
        return value.isoformat() if hasattr(value, "isoformat") else value

    @model_validator(mode="after")
    def _one_cut(self) -> "TemporalSplit":
        if self.test_fraction is not None and self.cutoff is not None:
            raise ValueError("split temporal: give test_fraction or cutoff, not both")
        if self.test_fraction is None and self.cutoff is None:
            object.__setattr__(self, "test_fraction", 0.2)
        return self


class LeaveLastOutSplit(_Strict):
    """Each user's last k interactions (by time) are held out."""

    kind: Literal["leave_last_out"]
    k: int = Field(1, ge=1)


class TemporalRatioSplit(_Strict):
    """Each user's last floor(n_u * test_fraction) interactions (by time) are held out."""

    kind: Literal["temporal_ratio"]
    test_fraction: float = Field(0.2, gt=0, lt=1)


DataSplit = Annotated[Union[RandomSplit, TemporalSplit, LeaveLastOutSplit, TemporalRatioSplit],
                      Field(discriminator="kind")]


class RelevanceSpec(_Strict):
    """Relevance of held-out interactions: ``{from: rating, threshold: 4}``, ``{from: rating,
    grades: {4: 1, 5: 2}}``, ``{from: label}`` or ``{from: interaction}`` (every one is 1)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, serialize_by_alias=True)
    source: Literal["rating", "label", "interaction"] = Field("rating", alias="from")
    threshold: float | None = None
    grades: dict[float, int] | None = None

    @model_validator(mode="after")
    def _rule(self) -> "RelevanceSpec":
        if self.source != "rating" and (self.threshold is not None or self.grades is not None):
            raise ValueError(f"relevance: threshold/grades apply to ratings, not to from: {self.source}")
        if self.threshold is not None and self.grades is not None:
            raise ValueError("relevance: give threshold or grades, not both")
        if self.source == "rating" and self.threshold is None and self.grades is None:
            object.__setattr__(self, "threshold", 4.0)
        return self


class _FileDataset(_Strict):
    split: DataSplit = Field(default_factory=lambda: LeaveLastOutSplit(kind="leave_last_out", k=1))
    relevance: RelevanceSpec = Field(default_factory=RelevanceSpec)
    cold_start: Literal["keep", "exclude", "only"] = "keep"
    duplicates: Literal["error", "keep_last"] = "error"
    exclude_seen: bool = True
    candidates: CandidatesSpec | None = None

    @field_validator("exclude_seen")
    @classmethod
    def _seen(cls, value: bool) -> bool:
        if not value:
            raise ValueError("exclude_seen: false is not supported at the data set level by this build; "
                             "set models.<name>.params.exclude_seen: false on the models instead")
        return value


class MovielensDataset(_FileDataset):
    """A MovieLens folder (100K, 1M, 10M, 20M, 25M, latest; see ``harness.datasets.movielens``)."""

    kind: Literal["movielens"]
    path: str = Field(min_length=1)
    format: Literal["auto", "100k", "1m", "10m", "20m", "25m", "latest"] = "auto"


class ColumnMapping(_Strict):
    """Source column of each canonical column; user and item are required."""

    user: str
    item: str
    rating: str | None = None
    label: str | None = None
    timestamp: str | None = None


class FeatureTable(_Strict):
    path: str = Field(min_length=1)
    id_column: str | None = Field(None, description="default: the source column mapped to user/item")
    category_column: str | None = None
    category_separator: str = "|"


class InteractionsDataset(_FileDataset):
    """Interaction logs in Parquet or CSV with a column mapping (``harness.datasets.interactions``)."""

    kind: Literal["interactions"]
    path: str | list[str]
    columns: ColumnMapping
    delimiter: str | None = None
    name: str | None = None
    rating_min: float | None = None
    rating_max: float | None = None
    item_features: FeatureTable | None = None
    user_features: FeatureTable | None = None
    catalogue: Literal["interactions", "item_features"] = Field(
        "interactions", description="the items that can be recommended: those with interactions, or every item "
                                    "the item_features table lists (new items without interactions too)")

    @model_validator(mode="after")
    def _relevance_column(self) -> "InteractionsDataset":
        source = self.relevance.source
        if source in ("rating", "label") and getattr(self.columns, source) is None:
            raise ValueError(f"relevance.from: {source} needs columns.{source} (or use from: interaction)")
        if self.catalogue == "item_features" and self.item_features is None:
            raise ValueError("catalogue: item_features needs an item_features table (the items it lists)")
        return self


class TrecDataset(_Strict):
    """A judged TREC collection: ``qrels`` (``qid iter docid rel``) are the judgments and
    there is no training data, so the models are score files (``precomputed``: TREC runs
    or tables) in the collection's ids; the documents and queries of those files join the
    collection (unjudged documents are not relevant, queries without judgments are not
    evaluated: trec_eval's semantics)."""

    kind: Literal["trec"]
    qrels: str = Field(min_length=1)
    name: str | None = None


def _dataset_kind(value: Any) -> str:
    return value.get("kind", "synthetic") if isinstance(value, dict) else getattr(value, "kind", "synthetic")


DatasetSpec = Annotated[Union[Annotated[SyntheticDataset, Tag("synthetic")],
                              Annotated[MovielensDataset, Tag("movielens")],
                              Annotated[InteractionsDataset, Tag("interactions")],
                              Annotated[TrecDataset, Tag("trec")]],
                        Discriminator(_dataset_kind)]

"""MovieLens in its published formats, read from a folder the user points at (never downloaded).

======================  ===========================================================
format                  files
======================  ===========================================================
``100k``                ``u.data`` (tab: user, item, rating, timestamp), ``u.item``
                        (pipe, latin-1: id|title|release|video release|IMDb URL|19
                        genre flags), optional ``u.genre``, ``u.user``
``1m``, ``10m``         ``ratings.dat`` (``user::item::rating::timestamp``),
                        ``movies.dat`` (``id::title::Genre1|Genre2``), ``users.dat`` (1M)
``20m``, ``25m``,       ``ratings.csv`` (userId,movieId,rating,timestamp), ``movies.csv``
``latest``              (movieId,title,genres)
======================  ===========================================================

All tables are parsed by pyarrow's multi-threaded CSV reader. pyarrow only splits on
one-character delimiters, so a ``.dat`` file is read as bytes and every ``::`` replaced by
the unit separator ``\\x1f`` in one ``bytes.replace`` pass (C speed, one extra copy of the
file in memory) before parsing; a file that already holds ``\\x1f`` is refused rather than
mis-split. Genres become item categories (``"(no genres listed)"`` gives none).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.errors import ConfigError, DataValidationError

from .base import InteractionDataset
from .build import build_dataset, split_categories

FORMATS = {"100k": "100k", "1m": "dat", "10m": "dat", "dat": "dat", "20m": "csv", "25m": "csv",
           "latest": "csv", "csv": "csv"}
MARKERS = {"100k": "u.data", "dat": "ratings.dat", "csv": "ratings.csv"}
RATING_RANGE = (0.5, 5.0)
GENRES_100K = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
               "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
               "Romance", "Sci-Fi", "Thriller", "War", "Western")
NO_GENRES = "(no genres listed)"
_SEP = b"\x1f"


def detect_format(folder: Path) -> str:
    """The format family (``100k``, ``dat`` or ``csv``) of a MovieLens folder, by its ratings file."""
    found = [fam for fam, marker in MARKERS.items() if (folder / marker).is_file()]
    if len(found) != 1:
        what = "none" if not found else ", ".join(MARKERS[f] for f in found)
        raise ConfigError(f"movielens: cannot tell the format of {folder}: expected exactly one of "
                          f"{', '.join(MARKERS.values())}, found {what}; set dataset.format")
    return found[0]


def _read(source: Path | bytes, names: list[str] | None, delimiter: str, *, encoding: str = "utf8",
          what: str) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    data = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        table = pacsv.read_csv(
            data, read_options=pacsv.ReadOptions(column_names=names, encoding=encoding),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, quote_char=False if delimiter != "," else '"'))
    except pa.ArrowInvalid as exc:
        raise DataValidationError(f"movielens: {what} is malformed: {exc}") from None
    return table.to_pandas()


def _read_dat(path: Path, names: list[str], *, text: bool = True) -> pd.DataFrame:
    """Read a ``::``-separated file. Text files (movies, users) are UTF-8, else latin-1 as
    in MovieLens 1M's movies.dat; the all-numeric ratings file skips that check."""
    raw = path.read_bytes()
    if _SEP in raw:
        raise DataValidationError(f"movielens: {path} contains the byte 0x1f, which the '::' reader "
                                  "uses as its separator; the file is not a MovieLens .dat file")
    raw = raw.replace(b"::", _SEP)
    encoding = "utf8"
    if text:
        try:
            raw.decode("utf8")
        except UnicodeDecodeError:
            encoding = "latin1"
    return _read(raw, names, "\x1f", encoding=encoding, what=str(path))


def _require(folder: Path, name: str) -> Path:
    path = folder / name
    if not path.is_file():
        raise ConfigError(f"movielens: {path} not found")
    return path


def _load_100k(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame | None, pd.DataFrame | None]:
    log = _read(_require(folder, "u.data"), ["user", "item", "rating", "timestamp"], "\t", what="u.data")
    items = cats = users = None
    if (folder / "u.item").is_file():
        genres = list(GENRES_100K)
        if (folder / "u.genre").is_file():
            g = _read(folder / "u.genre", ["genre", "index"], "|", encoding="latin1", what="u.genre")
            genres = g.sort_values("index")["genre"].astype(str).tolist()
        raw = _read(folder / "u.item", ["item", "title", "release_date", "video_release_date", "imdb_url", *genres],
                    "|", encoding="latin1", what="u.item")
        flags = raw[genres].to_numpy()
        bad = ~np.isin(flags, (0, 1))
        if bad.any():
            rows, cols = np.nonzero(bad)
            examples = ", ".join(f"movie {raw['item'].iloc[r]} {genres[c]}={flags[r, c].item()!r}"
                                 for r, c in zip(rows[:3], cols[:3]))
            raise DataValidationError(f"movielens: u.item genre flags must be 0 or 1; {int(bad.sum())} cells "
                                      f"are not (e.g. {examples})")
        rows, cols = np.nonzero(flags)
        cats = pd.DataFrame({"item": raw["item"].to_numpy()[rows], "category": np.asarray(genres, dtype=object)[cols]})
        items = raw[["item", "title", "release_date"]]
    if (folder / "u.user").is_file():
        users = _read(folder / "u.user", ["user", "age", "gender", "occupation", "zip_code"], "|",
                      encoding="latin1", what="u.user")
    return log, items, cats, users


def _load_dat(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame | None, pd.DataFrame | None]:
    log = _read_dat(_require(folder, "ratings.dat"), ["user", "item", "rating", "timestamp"], text=False)
    items = cats = users = None
    if (folder / "movies.dat").is_file():
        movies = _read_dat(folder / "movies.dat", ["item", "title", "genres"])
        cats = split_categories(movies["item"], movies["genres"].replace(NO_GENRES, ""), "|")
        items = movies[["item", "title"]]
    if (folder / "users.dat").is_file():
        users = _read_dat(folder / "users.dat", ["user", "gender", "age", "occupation", "zip_code"])
    return log, items, cats, users


def _load_csv(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame | None, None]:
    log = _read(_require(folder, "ratings.csv"), None, ",", what="ratings.csv")
    expected = ["userId", "movieId", "rating", "timestamp"]
    if list(log.columns) != expected:
        raise DataValidationError(f"movielens: ratings.csv header must be {expected}, got {list(log.columns)}")
    log = log.set_axis(["user", "item", "rating", "timestamp"], axis=1)
    items = cats = None
    if (folder / "movies.csv").is_file():
        movies = _read(folder / "movies.csv", None, ",", what="movies.csv")
        if list(movies.columns) != ["movieId", "title", "genres"]:
            raise DataValidationError("movielens: movies.csv header must be ['movieId', 'title', 'genres'], "
                                      f"got {list(movies.columns)}")
        movies = movies.set_axis(["item", "title", "genres"], axis=1)
        cats = split_categories(movies["item"], movies["genres"].replace(NO_GENRES, ""), "|")
        items = movies[["item", "title"]]
    return log, items, cats, None


def read_movielens(path: str | Path, *, fmt: str = "auto") -> dict[str, Any]:
    """Read a MovieLens folder into raw tables.

    Returns
    -------
    dict
        ``format`` (family), ``ratings`` (``user``, ``item``, ``rating``, ``timestamp``;
        raw ids), ``items`` (``item``, ``title``, ...) or None, ``categories`` (``item``,
        ``category``) or None, ``users`` (demographics) or None.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise ConfigError(f"movielens: dataset.path {folder} is not a folder")
    if fmt != "auto" and fmt not in FORMATS:
        raise ConfigError(f"movielens: format {fmt!r} is unknown; known: auto, {', '.join(FORMATS)}")
    family = detect_format(folder) if fmt == "auto" else FORMATS[fmt]
    loader = {"100k": _load_100k, "dat": _load_dat, "csv": _load_csv}[family]
    ratings, items, cats, users = loader(folder)
    return {"format": family, "ratings": ratings, "items": items, "categories": cats, "users": users}


def load_movielens_dataset(path: str | Path, *, fmt: str = "auto", split: dict[str, Any],
                           relevance: dict[str, Any], seed: int = 0, cold_start: str = "keep",
                           duplicates: str = "error") -> InteractionDataset:
    """Read a MovieLens folder and build the evaluation data set (see ``build_dataset``).

    Ratings must lie in [0.5, 5]; every rated movie must be in the movies table when one
    is present; genres become ``item_categories``, titles ``item_features`` and the user
    table (100K, 1M) ``user_features``.
    """
    raw = read_movielens(path, fmt=fmt)
    items = raw["items"]
    return build_dataset(raw["ratings"], name=f"movielens-{raw['format']}:{Path(path).name}", split=split,
                         relevance=relevance, seed=seed, rating_range=RATING_RANGE, item_categories=raw["categories"],
                         known_items=None if items is None else items["item"], item_features=items,
                         known_users=None if raw["users"] is None else raw["users"]["user"], id_kind="integer",
                         user_features=raw["users"], cold_start=cold_start, duplicates=duplicates,
                         settings={"kind": "movielens", "format": raw["format"]})

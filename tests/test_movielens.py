"""MovieLens loaders on small files written here in every published format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.datasets.movielens import GENRES_100K, detect_format, load_movielens_dataset, read_movielens
from harness.errors import ConfigError, DataValidationError

# one small catalogue used by every format: (raw id, title, genres)
MOVIES = [(1, "Toy Story (1995)", ["Animation", "Children's", "Comedy"]),
          (2, "Amélie (2001)", ["Comedy", "Romance"]),
          (5, "Heat (1995)", ["Action", "Crime", "Thriller"]),
          (7, "City of Lost Children, The (1995)", ["Adventure", "Sci-Fi"]),
          (9, "Unrated Film (1999)", ["Drama"]),
          (11, "Shorts (1994)", [])]
# (user, movie, rating, timestamp); movie 9 is never rated
RATINGS = [(1, 1, 5, 100), (1, 2, 3, 110), (1, 5, 4, 120), (1, 7, 1, 130),
           (2, 1, 4, 200), (2, 5, 2, 210), (2, 11, 5, 220),
           (3, 2, 5, 300), (3, 7, 4, 310), (3, 1, 2, 320), (3, 5, 5, 330)]
USERS = [(1, 24, "M", "technician", "85711"), (2, 53, "F", "other", "94043"), (3, 23, "M", "writer", "32067")]
SPLIT = {"kind": "leave_last_out", "k": 1}
REL = {"from": "rating", "threshold": 4}


def write_100k(folder: Path, ratings=RATINGS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "u.data").write_text("".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in ratings))
    (folder / "u.genre").write_text("".join(f"{g}|{n}\n" for n, g in enumerate(GENRES_100K)) + "\n")
    lines = []
    for mid, title, genres in MOVIES:
        flags = "|".join("1" if g in genres else "0" for g in GENRES_100K)
        lines.append(f"{mid}|{title}|01-Jan-1995||http://us.imdb.com/M/title-exact?x|{flags}\n")
    (folder / "u.item").write_bytes("".join(lines).encode("latin-1"))
    (folder / "u.user").write_text("".join(f"{u}|{a}|{g}|{o}|{z}\n" for u, a, g, o, z in USERS))
    return folder


def write_dat(folder: Path, *, encoding: str, ratings=RATINGS, users: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ratings.dat").write_text("".join(f"{u}::{i}::{r}::{t}\n" for u, i, r, t in ratings))
    text = "".join(f"{mid}::{title}::{'|'.join(g) if g else '(no genres listed)'}\n" for mid, title, g in MOVIES)
    (folder / "movies.dat").write_bytes(text.encode(encoding))
    if users:
        (folder / "users.dat").write_text("".join(f"{u}::{g}::{a}::{o}::{z}\n" for u, a, g, o, z in USERS))
    return folder


def write_csv(folder: Path, ratings=RATINGS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ratings.csv").write_text("userId,movieId,rating,timestamp\n" +
                                        "".join(f"{u},{i},{float(r)},{t}\n" for u, i, r, t in ratings))
    rows = "".join(f'{mid},"{title}",{"|".join(g) if g else "(no genres listed)"}\n' for mid, title, g in MOVIES)
    (folder / "movies.csv").write_text("movieId,title,genres\n" + rows, encoding="utf-8")
    return folder


WRITERS = {"100k": write_100k, "1m": lambda p: write_dat(p, encoding="latin-1"),
           "10m": lambda p: write_dat(p, encoding="utf-8", users=False), "25m": write_csv}


@pytest.mark.parametrize("fmt", list(WRITERS))
def test_each_format_reads_the_same_data(tmp_path: Path, fmt: str) -> None:
    folder = WRITERS[fmt](tmp_path / f"ml-{fmt}")
    raw = read_movielens(folder)
    assert raw["format"] == {"100k": "100k", "1m": "dat", "10m": "dat", "25m": "csv"}[fmt]
    r = raw["ratings"]
    assert list(r.columns) == ["user", "item", "rating", "timestamp"]
    got = sorted(zip(r["user"], r["item"], r["rating"].astype(float), r["timestamp"]))
    assert got == sorted((u, i, float(x), t) for u, i, x, t in RATINGS)
    titles = dict(zip(raw["items"]["item"], raw["items"]["title"]))
    assert titles == {mid: title for mid, title, _ in MOVIES}  # latin-1 and utf-8 both decoded: "Amélie"
    cats = raw["categories"].groupby("item")["category"].apply(set).to_dict()
    assert cats == {mid: set(g) for mid, _, g in MOVIES if g}
    if fmt in ("100k", "1m"):
        users = raw["users"].set_index("user")
        assert users.loc[2, "gender"] == "F" and users.loc[3, "occupation"] == "writer"
    else:
        assert raw["users"] is None


@pytest.mark.parametrize("fmt", list(WRITERS))
def test_built_dataset_maps_ids_and_splits(tmp_path: Path, fmt: str) -> None:
    ds = load_movielens_dataset(WRITERS[fmt](tmp_path / fmt), split=SPLIT, relevance=REL)
    rated = sorted({i for _, i, _, _ in RATINGS})
    np.testing.assert_array_equal(ds.item_ids, rated)  # catalogue = rated movies, ids sorted
    np.testing.assert_array_equal(ds.user_ids, [1, 2, 3])
    assert (ds.n_users, ds.n_items) == (3, len(rated))
    assert ds.train["user_id"].dtype == np.int64 and ds.train["item_id"].dtype == np.int64
    # leave-last-one-out by timestamp: (1, 7, 1), (2, 11, 5), (3, 5, 5)
    held = {(int(ds.user_ids[q]), int(ds.item_ids[i]), int(r))
            for q, i, r in ds.qrels[["query_id", "item_id", "relevance"]].itertuples(index=False)}
    assert held == {(1, 7, 0), (2, 11, 1), (3, 5, 1)}
    assert len(ds.train) == len(RATINGS) - 3
    names, matrix = ds.category_matrix()
    toy = int(np.searchsorted(ds.item_ids, 1))
    assert set(names[matrix[toy]]) == {"Animation", "Children's", "Comedy"}
    shorts = int(np.searchsorted(ds.item_ids, 11))
    assert not matrix[shorts].any()  # "(no genres listed)" gives no category
    assert any("item categories: 1 rows" in w or "item features: 1 rows" in w for w in ds.warnings)  # movie 9


def test_formats_give_identical_tables(tmp_path: Path) -> None:
    built = {f: load_movielens_dataset(w(tmp_path / f), split=SPLIT, relevance=REL) for f, w in WRITERS.items()}
    ref = built["100k"]
    for ds in built.values():
        pd.testing.assert_frame_equal(ds.qrels, ref.qrels)
        pd.testing.assert_frame_equal(ds.train[["user_id", "item_id", "timestamp"]],
                                      ref.train[["user_id", "item_id", "timestamp"]])
        np.testing.assert_array_equal(ds.train["rating"].astype(float), ref.train["rating"].astype(float))
        pd.testing.assert_frame_equal(ds.item_categories, ref.item_categories)


def test_detect_and_explicit_format(tmp_path: Path) -> None:
    folder = write_100k(tmp_path / "a")
    assert detect_format(folder) == "100k"
    assert read_movielens(folder, fmt="100k")["format"] == "100k"
    with pytest.raises(ConfigError, match="u.data"):
        read_movielens(write_csv(tmp_path / "b"), fmt="100k")
    write_csv(folder)  # two ratings files: ambiguous
    with pytest.raises(ConfigError, match="cannot tell the format"):
        read_movielens(folder)
    with pytest.raises(ConfigError, match="format 'ml-2m' is unknown"):
        read_movielens(folder, fmt="ml-2m")
    with pytest.raises(ConfigError, match="not a folder"):
        read_movielens(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="found none"):
        read_movielens(tmp_path / "empty")


def test_malformed_dat_line(tmp_path: Path) -> None:
    folder = write_dat(tmp_path / "m", encoding="utf-8")
    with open(folder / "ratings.dat", "a") as f:
        f.write("4::1::5\n")  # three fields
    with pytest.raises(DataValidationError, match="ratings.dat is malformed"):
        read_movielens(folder)


def test_unit_separator_in_dat_is_refused(tmp_path: Path) -> None:
    folder = write_dat(tmp_path / "m", encoding="utf-8")
    (folder / "movies.dat").write_bytes(b"1::Bad\x1fTitle::Comedy\n")
    with pytest.raises(DataValidationError, match="0x1f"):
        read_movielens(folder)


def test_out_of_range_rating_and_unknown_movie(tmp_path: Path) -> None:
    bad = RATINGS + [(4, 1, 6, 400), (4, 2, 0, 410), (4, 99, 3, 420), (4, 98, 3, 430)]
    with pytest.raises(DataValidationError) as info:
        load_movielens_dataset(write_100k(tmp_path / "m", bad), split=SPLIT, relevance=REL)
    text = str(info.value)
    assert "interactions.rating: values outside [0.5, 5.0] (2 rows" in text
    assert "interactions.item: values not found in the item table (2 rows" in text and "99" in text


def test_non_numeric_rating_is_named(tmp_path: Path) -> None:
    folder = write_csv(tmp_path / "c")
    with open(folder / "ratings.csv", "a") as f:
        f.write("4,1,five,500\n")
    with pytest.raises(DataValidationError, match=r"interactions.rating: expected number values.*1 rows.*'five'"):
        load_movielens_dataset(folder, split=SPLIT, relevance=REL)


def test_duplicate_ratings(tmp_path: Path) -> None:
    dup = RATINGS + [(1, 1, 2, 125)]  # user 1 rates movie 1 again, later, lower
    folder = write_dat(tmp_path / "d", encoding="utf-8", ratings=dup)
    with pytest.raises(DataValidationError, match=r"interactions.user\+item: duplicate values.*1 rows.*\(1, 1\)"):
        load_movielens_dataset(folder, split=SPLIT, relevance=REL)
    ds = load_movielens_dataset(folder, split=SPLIT, relevance=REL, duplicates="keep_last")
    assert any("1 repeated (user, item) rows" in w for w in ds.warnings)
    row = ds.train[(ds.train["user_id"] == 0) & (ds.train["item_id"] == 0)]
    assert row["rating"].tolist() == [2] and row["timestamp"].tolist() == [125]


def test_csv_header_checked(tmp_path: Path) -> None:
    folder = write_csv(tmp_path / "h")
    text = (folder / "ratings.csv").read_text().replace("userId,movieId", "user,movie")
    (folder / "ratings.csv").write_text(text)
    with pytest.raises(DataValidationError, match="ratings.csv header"):
        read_movielens(folder)


def test_graded_relevance_from_ratings(tmp_path: Path) -> None:
    ds = load_movielens_dataset(write_100k(tmp_path / "g"), split={"kind": "leave_last_out", "k": 2},
                                relevance={"from": "rating", "grades": {4: 1, 5: 2}})
    held = {(int(ds.user_ids[q]), int(ds.item_ids[i])): int(r)
            for q, i, r in ds.qrels[["query_id", "item_id", "relevance"]].itertuples(index=False)}
    # last two by time: user 1 -> (5: 4, 7: 1); user 2 -> (5: 2, 11: 5); user 3 -> (1: 2, 5: 5)
    assert held == {(1, 5): 1, (1, 7): 0, (2, 5): 0, (2, 11): 2, (3, 1): 0, (3, 5): 2}


def test_users_missing_from_user_table_and_non_integer_ids(tmp_path: Path) -> None:
    bad = RATINGS + [(8, 1, 4, 500)]  # user 8 is not in u.user
    with pytest.raises(DataValidationError, match=r"interactions.user: values not found in the user table \(1 rows"):
        load_movielens_dataset(write_100k(tmp_path / "u", bad), split=SPLIT, relevance=REL)
    folder = write_csv(tmp_path / "s")
    with open(folder / "ratings.csv", "a") as f:
        f.write("u9,1,4.0,600\n")
    with pytest.raises(DataValidationError, match=r"interactions.user: expected integer values.*'u9'"):
        load_movielens_dataset(folder, split=SPLIT, relevance=REL)


def test_bad_genre_flag(tmp_path: Path) -> None:
    folder = write_100k(tmp_path / "g")
    text = (folder / "u.item").read_bytes().decode("latin-1").splitlines()
    text[2] = text[2][:-1] + "2"  # movie 5, last genre (Western) flag = 2
    (folder / "u.item").write_bytes(("\n".join(text) + "\n").encode("latin-1"))
    with pytest.raises(DataValidationError, match=r"1 cells are not \(e.g. movie 5 Western=2\)"):
        read_movielens(folder)

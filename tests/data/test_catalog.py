"""Catalog datasets: loaders on tiny fake copies of each format, name resolution, real-data counts."""

from __future__ import annotations

import logging
import sys
import time
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fusionrec.data import catalog
from fusionrec.data.catalog import CATALOG, describe, list_datasets, load, load_lastfm_2k, resolve_data_dir
from fusionrec.data.io import write_directory
from fusionrec.data.schema import Dataset
from fusionrec.data.side_events import DerivedColumn
from fusionrec.errors import DataError, UnknownNameError

GENRES = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
          "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western"]


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FUSIONREC_DATA", raising=False)


def _flags(*on: str) -> str:
    return "|".join("1" if g in on else "0" for g in GENRES)


def fake_ml_100k(root: Path) -> Path:
    d = root / "ml-100k"
    d.mkdir(parents=True)
    (d / "u.data").write_text("3\t10\t4\t881250949\n1\t20\t5\t891717742\n3\t20\t1\t878887116\n")
    (d / "u.item").write_bytes(
        (f"10|Café Society (1995)|01-Jan-1995||http://x|{_flags('Comedy', 'Drama')}\n"
         f"20|unknown||||{_flags('unknown')}\n"
         f"30|\"Weird\" Film (1977)|14-Mar-1977||http://y|{_flags('Sci-Fi')}\n").encode("latin-1"))
    (d / "u.user").write_text("1|24|M|technician|01002\n3|53|F|other|94043\n7|30|F|writer|T8H1N\n")
    (d / "u.genre").write_text("".join(f"{g}|{i}\n" for i, g in enumerate(GENRES)) + "\n")
    return d


def fake_ml_latest_small(root: Path, posters: bool = True) -> Path:
    d = root / "ml-latest-small"
    d.mkdir(parents=True)
    (d / "ratings.csv").write_text("userId,movieId,rating,timestamp\n2,1,4.0,964982703\n1,50,0.5,964981247\n"
                                   "1,1,3.5,964982224\n")
    (d / "movies.csv").write_text(
        "movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n"
        '50,"American President, The (1995) ",Comedy|Drama\n'
        "60,Babylon 5,(no genres listed)\n70,Death Note: Desu nôto (2006–2007),(no genres listed)\n",
        encoding="utf-8")
    (d / "tags.csv").write_text("userId,movieId,tag,timestamp\n2,1,Pixar,1\n3,1,pixar,2\n3,1,fun|kids,3\n"
                                "2,60,space,4\n")
    if posters:
        img = root / "ml-latest-small-posters" / "images"
        img.mkdir(parents=True)
        (img / "1.jpg").write_bytes(b"\xff\xd8")
        (img / "999.jpg").write_bytes(b"\xff\xd8")
    return d


def fake_lastfm(root: Path, folder: str = "hetrec2011-lastfm-2k") -> Path:
    d = root / folder
    d.mkdir(parents=True)
    (d / "user_artists.dat").write_text("userID\tartistID\tweight\n2\t51\t13883\n2\t52\t11690\n5\t51\t7\n")
    (d / "artists.dat").write_text('id\tname\turl\tpictureURL\n51\t"Weird Al" Yankovic\thttp://a\thttp://b\n'
                                   "52\tNA\thttp://c\t\n53\tMötley Crüe\thttp://d\thttp://e\n", encoding="utf-8")
    tags = [f"tag{i:02d}" for i in range(25)]
    (d / "tags.dat").write_bytes(("tagID\ttagValue\n1\tmétal\n2\tpop|rock\n"
                                  + "".join(f"{i + 10}\t{t}\n" for i, t in enumerate(tags))).encode("latin-1"))
    rows = ["2\t52\t1\t1\t4\t2009", "5\t52\t1\t1\t4\t2009", "2\t52\t2\t1\t4\t2009", "2\t999\t1\t1\t4\t2009"]
    # artist 53: 25 distinct tags; tag i used i+1 times -> the top 20 are tag24..tag05
    rows += [f"{u}\t53\t{i + 10}\t1\t1\t2010" for i in range(25) for u in range(i + 1)]
    (d / "user_taggedartists.dat").write_text("userID\tartistID\ttagID\tday\tmonth\tyear\n" + "\n".join(rows) + "\n")
    (d / "user_friends.dat").write_text("userID\tfriendID\n2\t5\n5\t2\n5\t8\n8\t5\n")
    return d


def fake_kg(root: Path) -> Path:
    d = root / "kg-lastfm-kgcn"
    d.mkdir(parents=True)
    (d / "kg.txt").write_text("0\tmusic.artist.origin\t3\n1\tmusic.artist.genre\t4\n0\tmusic.artist.genre\t4\n")
    (d / "item_index2entity_id.txt").write_text("51\t0\n53\t1\n60\t2\n")
    (d / "user_artists.dat").write_text("userID\tartistID\tweight\n2\t51\t10\n2\t52\t5\n9\t52\t1\n4\t53\t3\n")
    return d


# ---------------------------------------------------------------------------------------- loaders
def test_ml_100k_fake(tmp_path: Path) -> None:
    fake_ml_100k(tmp_path)
    ds = load("ml-100k", data_dir=tmp_path)
    assert ds.name == "ml-100k" and ds.n_interactions == 3 and ds.n_items == 3
    assert ds.user_ids.raw(ds.interactions["user"]).tolist() == ["3", "1", "3"]  # file order
    assert ds.item_ids.raw(ds.interactions["item"]).tolist() == ["10", "20", "20"]
    assert ds.interactions["rating"].tolist() == [4.0, 5.0, 1.0]
    assert ds.interactions["timestamp"].tolist() == [881250949, 891717742, 878887116]
    assert ds.items["title"].tolist() == ["Café Society (1995)", "unknown", '"Weird" Film (1977)']
    assert ds.items["year"].iloc[0] == 1995 and np.isnan(ds.items["year"].iloc[1])
    assert ds.items["genres"].tolist() == ["Comedy|Drama", "unknown", "Sci-Fi"]
    assert ds.item_schema == {"title": "text", "year": "numeric", "genres": "multi"}
    assert ds.user_schema == {"age": "numeric", "gender": "categorical", "occupation": "categorical",
                              "zip": "categorical"}
    u1 = ds.user_ids.index(["1"])[0]
    assert ds.users.loc[u1, "zip"] == "01002" and ds.users.loc[u1, "age"] == 24
    assert ds.n_users == 3 and "7" in ds.user_ids  # a user without ratings stays in the universe


def test_ml_latest_small_fake(tmp_path: Path) -> None:
    fake_ml_latest_small(tmp_path)
    ds = load("ml-latest-small", data_dir=tmp_path)
    assert ds.n_interactions == 3 and ds.n_items == 4 and ds.n_users == 3  # tagger 3 joins the users
    assert ds.interactions["rating"].tolist() == [4.0, 0.5, 3.5]
    assert ds.items["title"].tolist() == ["Toy Story", "American President, The", "Babylon 5", "Death Note: Desu nôto"]
    assert ds.items["year"].tolist()[:2] == [1995, 1995] and np.isnan(ds.items["year"].iloc[2])
    assert ds.items["year"].iloc[3] == 2006
    assert ds.items["genres"].tolist() == ["Adventure|Animation", "Comedy|Drama", "", ""]
    assert ds.items["tags"].tolist() == ["pixar|fun/kids", "", "space", ""]  # by count, then tag
    # every tags.csv row is a timed side event of kind "tag" (lower-cased value); tags is derived from them
    side = ds.side_events
    assert side["kind"].tolist() == ["tag"] * 4 and side["timestamp"].tolist() == [1, 2, 3, 4]
    assert side["value"].tolist() == ["pixar", "pixar", "fun/kids", "space"]
    assert ds.user_ids.raw(side["user"]).tolist() == ["2", "3", "3", "2"]
    assert ds.derived_items == {"tags": DerivedColumn(kind="tag", top=20)}
    poster = ds.items["poster"].tolist()
    assert poster[0] == str((tmp_path / "ml-latest-small-posters" / "images" / "1.jpg").resolve())
    assert poster[1:] == [None, None, None]
    assert ds.item_schema == {"title": "text", "year": "numeric", "genres": "multi", "tags": "multi",
                              "poster": "image"}


def test_ml_latest_small_without_posters(tmp_path: Path) -> None:
    fake_ml_latest_small(tmp_path, posters=False)
    ds = load("ml-latest-small", data_dir=tmp_path)
    assert "poster" not in ds.items.columns and "image" not in ds.modalities()


def test_lastfm_fake(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    fake_lastfm(tmp_path)
    with caplog.at_level(logging.WARNING, logger="fusionrec.data.catalog"):
        ds = load("lastfm-2k", data_dir=tmp_path)
    assert "dropped 1 tag assignments of 1 artist ids missing from artists.dat" in caplog.text
    assert not ds.has_timestamps and "timestamp" not in ds.describe()
    assert ds.interactions["weight"].tolist() == [13883, 11690, 7]
    assert ds.items["name"].tolist() == ['"Weird Al" Yankovic', "NA", "Mötley Crüe"]
    tags = ds.items["tags"].tolist()
    assert tags[0] == ""
    assert tags[1] == "métal|pop/rock"  # by count, then name; '|' inside a tag is replaced
    assert tags[2].split("|") == [f"tag{i:02d}" for i in range(24, 4, -1)]  # top 20 by count
    assert ds.item_schema == {"name": "text", "tags": "multi"}
    assert len(ds.social) == 4 and "8" in ds.user_ids
    # who tagged what with what: one side event per tag assignment (of a known artist), dated;
    # taggers 0..24 join the users; the tags column is derived from these events
    side = ds.side_events
    assert set(side["kind"]) == {"tag"} and len(side) == 3 + sum(range(1, 26))
    pairs = set(zip(ds.user_ids.raw(side["user"].to_numpy()), ds.item_ids.raw(side["item"].to_numpy()), strict=True))
    assert ("2", "52") in pairs and ("5", "52") in pairs and ("24", "53") in pairs
    assert side["value"].tolist()[:3] == ["métal", "métal", "pop/rock"]
    assert side["timestamp"].tolist()[:3] == [1238544000] * 3  # 2009-04-01 00:00 UTC
    assert ds.n_users == 25 and ds.describe()["side_events"] == {"tag": 328}
    assert ds.derived_items == {"tags": DerivedColumn(kind="tag", top=20)}
    assert ds.with_side_events(side.iloc[:3]).items["tags"].tolist() == ["", "métal|pop/rock", ""]


def test_lastfm_crlf_files_load_the_same(tmp_path: Path) -> None:
    lf = load_lastfm_2k(fake_lastfm(tmp_path / "lf"))
    d = fake_lastfm(tmp_path / "crlf")
    for f in d.iterdir():
        f.write_bytes(f.read_bytes().replace(b"\n", b"\r\n"))
    crlf = load_lastfm_2k(d)
    assert crlf.item_ids == lf.item_ids and crlf.user_ids == lf.user_ids
    pd.testing.assert_frame_equal(crlf.items, lf.items)
    pd.testing.assert_frame_equal(crlf.interactions, lf.interactions)


def test_lastfm_alternative_folder(tmp_path: Path) -> None:
    fake_lastfm(tmp_path, folder="lastfm-2k")
    assert load("lastfm-2k", data_dir=tmp_path).n_interactions == 3


def test_kg_lastfm_fake(tmp_path: Path) -> None:
    fake_kg(tmp_path)
    ds = load("kg-lastfm", data_dir=tmp_path)
    assert ds.item_ids.ids.tolist() == ["51", "53", "60"]
    assert ds.item_ids.raw(ds.interactions["item"]).tolist() == ["51", "53"]  # unmapped 52 dropped
    assert ds.user_ids.ids.tolist() == ["2", "4"]
    assert not ds.has_timestamps and ds.interactions["weight"].tolist() == [10.0, 3.0]
    assert len(ds.kg) == 3 and ds.kg["relation"].nunique() == 2
    assert ds.item_ids.raw(ds.item_entities["item"]).tolist() == ["51", "53", "60"]
    assert ds.item_entities["entity"].tolist() == ["0", "1", "2"]
    assert ds.items.shape == (3, 0) and ds.describe()["items_with_entity"] == 3


# ---------------------------------------------------------------------------------------- resolution
def test_resolve_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert resolve_data_dir(None) is None
    monkeypatch.setenv("FUSIONREC_DATA", str(tmp_path))
    assert resolve_data_dir(None) == tmp_path
    assert resolve_data_dir("/elsewhere") == Path("/elsewhere")


def test_load_uses_env_var(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_kg(tmp_path)
    monkeypatch.setenv("FUSIONREC_DATA", str(tmp_path))
    assert load("kg-lastfm").n_items == 3


def test_load_without_data_dir_says_how(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no data directory is set.*--data-dir.*FUSIONREC_DATA.*'ml-100k'.*"
                                        r"fusionrec datasets download ml-100k"):
        load("ml-100k")
    with pytest.raises(DataError, match=r"folder 'hetrec2011-lastfm-2k' or 'lastfm-2k' not found in data directory"):
        load("lastfm-2k", data_dir=tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        load("lastfm-2k", data_dir=tmp_path / "nope")


def test_load_incomplete_folder(tmp_path: Path) -> None:
    (fake_ml_100k(tmp_path) / "u.user").unlink()
    with pytest.raises(DataError, match=r"lacks \['u\.user'\]"):
        load("ml-100k", data_dir=tmp_path)


def test_edited_copy_with_renamed_header(tmp_path: Path) -> None:
    d = fake_ml_latest_small(tmp_path, posters=False)
    (d / "ratings.csv").write_text("user_id,movie_id,rating,timestamp\n1,1,4,1\n")
    with pytest.raises(DataError, match=r"ratings\.csv lacks column\(s\) \['userId', 'movieId'\]; it has \['user_id'"):
        load("ml-latest-small", data_dir=tmp_path)


def test_unknown_name_lists_known() -> None:
    with pytest.raises(UnknownNameError, match=r"unknown dataset 'ml-1m'; known datasets: kg-lastfm, lastfm-2k, "
                                               r"ml-100k, ml-latest-small, synthetic"):
        load("ml-1m")


def test_load_directory_path(tmp_path: Path) -> None:
    d = tmp_path / "mine"
    write_directory(Dataset.from_frames(pd.DataFrame({"user": ["a"], "item": ["b"]})), d)
    assert load(d).n_interactions == 1
    assert load(str(d)).name == "mine"
    with pytest.raises(DataError, match="dataset directory .* not found"):
        load(tmp_path / "missing")


def test_load_catalog_folder_path(tmp_path: Path) -> None:
    folder = fake_ml_100k(tmp_path)
    assert load(folder).name == "ml-100k"


def test_synthetic_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType("fusionrec.data.synthetic")
    made = Dataset.from_frames(pd.DataFrame({"user": ["u"], "item": ["i"]}), name="synthetic")
    fake.generate = lambda: made  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fusionrec.data.synthetic", fake)
    assert load("synthetic") is made
    assert [d["present"] for d in list_datasets() if d["name"] == "synthetic"] == [True]


def test_synthetic_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fusionrec.data.synthetic", None)
    with pytest.raises(DataError, match="needs the module fusionrec.data.synthetic"):
        load("synthetic")


def test_describe_and_list(tmp_path: Path) -> None:
    fake_kg(tmp_path)
    d = describe("kg-lastfm", data_dir=tmp_path)
    assert d["interactions"] == 2 and d["kg_triples"] == 3
    assert d["citation"] == CATALOG["kg-lastfm"].citation and "KGCN" in str(d["description"])
    assert d["folder"] == str(tmp_path / "kg-lastfm-kgcn")
    listed = {x["name"]: x for x in list_datasets(tmp_path)}
    assert set(CATALOG) <= set(listed)
    assert listed["kg-lastfm"]["present"] and not listed["ml-100k"]["present"]
    assert not any(x["present"] for x in list_datasets(None) if x["name"] in CATALOG)


def test_catalog_specs_are_complete() -> None:
    for name, spec in CATALOG.items():
        assert spec.name == name and spec.folders and spec.files and spec.description and spec.citation


# ---------------------------------------------------------------------------------------- real data
def _real(real_data_dir: Path, name: str) -> Dataset:
    if CATALOG[name].find(real_data_dir) is None:
        pytest.skip(f"real datasets not found: set FUSIONREC_DATA to a folder holding {CATALOG[name].folders[0]}")
    return catalog.load(name, data_dir=real_data_dir)


@pytest.mark.integration
def test_real_ml_100k(real_data_dir: Path) -> None:
    ds = _real(real_data_dir, "ml-100k")
    assert (ds.n_interactions, ds.n_users, ds.n_items) == (100_000, 943, 1_682)
    counts = ds.interactions["rating"].value_counts().sort_index().tolist()
    assert counts == [6_110, 11_370, 27_145, 34_174, 21_201]
    assert ds.user_ids.raw(ds.interactions["user"][:3]).tolist() == ["196", "186", "22"]
    assert ds.items["title"].str.contains("é").any()  # latin-1 decoded
    assert ds.items["year"].isna().sum() == 1 and ds.users["occupation"].nunique() == 21


@pytest.mark.integration
def test_real_ml_latest_small(real_data_dir: Path) -> None:
    t0 = time.perf_counter()
    ds = _real(real_data_dir, "ml-latest-small")
    assert time.perf_counter() - t0 < 5.0
    assert (ds.n_interactions, ds.n_users, ds.n_items) == (100_836, 610, 9_742)
    assert ds.describe()["active_items"] == 9_724
    side = ds.side_events
    assert len(side) == 3_683 and side["user"].nunique() == 58 and side["timestamp"].notna().all()
    assert int((ds.items["tags"] != "").sum()) == side["item"].nunique()
    if (real_data_dir / "ml-latest-small-posters").is_dir():
        assert int(ds.items["poster"].notna().sum()) == 1_849
        assert Path(ds.items["poster"].dropna().iloc[0]).is_file()


@pytest.mark.integration
def test_real_lastfm_2k(real_data_dir: Path) -> None:
    ds = _real(real_data_dir, "lastfm-2k")
    assert (ds.n_interactions, ds.n_users, ds.n_items) == (92_834, 1_892, 17_632)
    assert len(ds.social) == 25_434 and not ds.has_timestamps
    assert int((ds.items["tags"] != "").sum()) == 12_523 - 390
    assert ds.items["tags"].str.count(r"\|").max() <= 19
    side = ds.side_events  # every tag assignment of a known artist, dated
    assert len(side) == 186_479 - 1_538 and set(side["kind"]) == {"tag"} and side["timestamp"].notna().all()
    # the derived tags equal the rule the loader applied before tags became side events
    folder = CATALOG["lastfm-2k"].find(real_data_dir)
    names = pd.read_csv(folder / "tags.dat", sep="\t", encoding="latin-1", dtype=str, keep_default_na=False)
    name = dict(zip(names["tagID"], names["tagValue"].str.replace("|", "/", regex=False).str.strip(), strict=True))
    ta = pd.read_csv(folder / "user_taggedartists.dat", sep="\t", dtype=str)
    counts: dict[str, dict[str, int]] = {}
    for a, t in zip(ta["artistID"], ta["tagID"], strict=True):
        if name.get(t):
            counts.setdefault(a, {}).setdefault(name[t], 0)
            counts[a][name[t]] += 1
    old = {a: "|".join(sorted(c, key=lambda v: (-c[v], v))[:20]) for a, c in counts.items()}
    assert ds.items["tags"].tolist() == [old.get(a, "") for a in ds.item_ids.ids]


@pytest.mark.integration
def test_real_kg_lastfm(real_data_dir: Path) -> None:
    ds = _real(real_data_dir, "kg-lastfm")
    d = ds.describe()
    assert (d["kg_triples"], d["kg_relations"], d["items_with_entity"]) == (15_518, 60, 3_846)
    assert (ds.n_interactions, ds.n_users, ds.n_items) == (21_173, 1_872, 3_846)

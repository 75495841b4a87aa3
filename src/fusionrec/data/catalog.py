"""Named public datasets, found by folder name inside a data directory.

The data directory is the ``data_dir`` argument, else the ``FUSIONREC_DATA`` environment
variable (:func:`resolve_data_dir` is the one place the library reads it). Each loader keeps the
raw ids of the files, as strings, and the interaction order of the files.

Examples
--------
>>> ds = load("ml-100k", data_dir="~/data")  # doctest: +SKIP
>>> ds.describe()["interactions"]  # doctest: +SKIP
100000
"""

from __future__ import annotations

import csv
import importlib
import importlib.util
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fusionrec.data import io
from fusionrec.data.schema import MULTI_SEP, Dataset
from fusionrec.data.side_events import DerivedColumn
from fusionrec.errors import DataError, unknown_name

log = logging.getLogger(__name__)

ENV_VAR = "FUSIONREC_DATA"
SYNTHETIC = "synthetic"
MAX_ARTIST_TAGS = 20
MAX_MOVIE_TAGS = 20

_MOVIELENS_CITATION = ("F. M. Harper & J. A. Konstan, 'The MovieLens Datasets: History and Context', ACM TiiS "
                       "5(4), 2015. GroupLens license: research use only, no commercial use, no redistribution.")
_HETREC_CITATION = ("I. Cantador, P. Brusilovsky, T. Kuflik, 'HetRec 2011', RecSys 2011. Data from Last.fm; "
                    "research use under the Last.fm terms.")


def resolve_data_dir(data_dir: str | Path | None) -> Path | None:
    """The data directory: ``data_dir``, else ``$FUSIONREC_DATA``, else None.

    Examples
    --------
    >>> resolve_data_dir("/data")
    PosixPath('/data')
    """
    if data_dir is not None and str(data_dir) != "":
        return Path(data_dir).expanduser()
    env = os.environ.get(ENV_VAR, "").strip()
    return Path(env).expanduser() if env else None


# ---------------------------------------------------------------------------------------- helpers
def _missing_file(path: Path) -> DataError:
    return DataError(f"{path} not found; the folder {path.parent} is incomplete. Re-download it with "
                     f"`fusionrec datasets download NAME --force` or copy the file there.")


def _check_columns(df: pd.DataFrame, cols: tuple[str, ...], path: Path) -> pd.DataFrame:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise DataError(f"{path} lacks column(s) {missing}; it has {list(df.columns)}. The file may be an edited "
                        f"copy: use the original from the publisher.")
    return df


def _read(path: Path, *, names: list[str] | None = None, sep: str = "\t", encoding: str = "utf-8",
          str_cols: tuple[str, ...] = ()) -> pd.DataFrame:
    """Read a raw catalog file verbatim: no quote handling, no NA guessing in ``str_cols``.

    ``names`` means the file has no header; otherwise its header must hold ``str_cols``.
    """
    if not path.is_file():
        raise _missing_file(path)
    try:
        df = pd.read_csv(path, sep=sep, header=None if names else 0, names=names, encoding=encoding,
                         quoting=csv.QUOTE_NONE, dtype={c: str for c in str_cols}, keep_default_na=False,
                         na_values={c: ["", "NA", "NaN", "nan"] for c in (names or []) if c not in str_cols})
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as e:
        raise DataError(f"{path} could not be parsed ({e}); the file may be damaged, re-download it.") from e
    return _check_columns(df, str_cols, path)


def _csv(path: Path, cols: tuple[str, ...], str_cols: tuple[str, ...]) -> pd.DataFrame:
    """Read a MovieLens CSV (header row, RFC-4180 quoting, UTF-8) that must hold ``cols``."""
    if not path.is_file():
        raise _missing_file(path)
    try:
        df = pd.read_csv(path, dtype={c: str for c in str_cols}, keep_default_na=False, encoding="utf-8")
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as e:
        raise DataError(f"{path} could not be parsed ({e}); the file may be damaged, re-download it.") from e
    return _check_columns(df, cols, path)


def _isin(values: pd.Series, allowed: pd.Series) -> np.ndarray:
    """Boolean mask of ``values`` found in ``allowed`` (hash lookup on object arrays)."""
    return pd.Index(allowed.to_numpy(object)).get_indexer(values.to_numpy(object)) >= 0


def _strip_sep(values: pd.Series) -> pd.Series:
    """Make values safe to join with MULTI_SEP."""
    return values.astype(str).str.replace(MULTI_SEP, "/", regex=False).str.strip()


# ---------------------------------------------------------------------------------------- loaders
def load_ml_100k(folder: Path) -> Dataset:
    """MovieLens 100K: ``u.data`` ratings, ``u.item`` titles/years/genres, ``u.user`` demographics."""
    inter = _read(folder / "u.data", names=["user", "item", "rating", "timestamp"], str_cols=("user", "item"))
    genres = _read(folder / "u.genre", names=["name", "index"], sep="|", encoding="latin-1", str_cols=("name",))
    genres = genres.dropna(subset=["index"]).sort_values("index")
    genre_names = genres["name"].tolist()
    base = ["item", "title", "release_date", "video_release_date", "imdb_url"]
    raw = _read(folder / "u.item", names=base + [f"g{i}" for i in range(len(genre_names))], sep="|",
                encoding="latin-1", str_cols=tuple(base))
    flags = raw[[f"g{i}" for i in range(len(genre_names))]].fillna(0).to_numpy(np.int8) == 1
    items = pd.DataFrame({
        "item": raw["item"],
        "title": raw["title"],
        "year": pd.to_numeric(raw["release_date"].str[-4:], errors="coerce").astype(np.float64),
        "genres": [MULTI_SEP.join(g for g, on in zip(genre_names, row, strict=True) if on) for row in flags],
    })
    users = _read(folder / "u.user", names=["user", "age", "gender", "occupation", "zip"], sep="|",
                  str_cols=("user", "gender", "occupation", "zip"))
    users["age"] = users["age"].astype(np.float64)
    return Dataset.from_frames(
        inter, items=items, users=users, name="ml-100k", source=str(folder / "u.data"),
        item_schema={"title": "text", "year": "numeric", "genres": "multi"},
        user_schema={"age": "numeric", "gender": "categorical", "occupation": "categorical", "zip": "categorical"},
    )


def load_ml_latest_small(folder: Path) -> Dataset:
    """MovieLens latest-small, with tags and (when the sibling poster folder exists) poster paths.

    Each row of ``tags.csv`` is a side event ``(user, movie, kind="tag", value=lower-cased tag,
    timestamp)``. The movies' ``tags`` column is derived from those events: each movie's
    ``MAX_MOVIE_TAGS`` (20) most used tags, most used first, ties by tag (this replaced "all distinct
    tags in file order"), so a split rebuilds it from its training view.
    """
    r = _csv(folder / "ratings.csv", ("userId", "movieId", "rating", "timestamp"), ("userId", "movieId"))
    inter = pd.DataFrame({"user": r["userId"], "item": r["movieId"], "rating": r["rating"],
                          "timestamp": r["timestamp"]})
    m = _csv(folder / "movies.csv", ("movieId", "title", "genres"), ("movieId", "title", "genres"))
    parts = m["title"].str.extract(r"^(?P<title>.*?)\s*\((?P<year>\d{4})(?:[\u2013-]\d{4})?\)\s*$")
    has_year = parts["year"].notna()
    items = pd.DataFrame({
        "item": m["movieId"],
        "title": parts["title"].where(has_year, m["title"].str.strip()),
        "year": pd.to_numeric(parts["year"], errors="coerce").astype(np.float64),
        "genres": m["genres"].replace("(no genres listed)", ""),
    })
    t = _csv(folder / "tags.csv", ("userId", "movieId", "tag", "timestamp"), ("userId", "movieId", "tag"))
    known = _isin(t["movieId"], items["item"])
    if not known.all():
        log.warning("ml-latest-small: dropped %d tags of %d movie ids missing from movies.csv",
                    int((~known).sum()), t.loc[~known, "movieId"].nunique())
    t = t.loc[known]
    side = pd.DataFrame({"user": t["userId"].to_numpy(), "item": t["movieId"].to_numpy(), "kind": "tag",
                         "timestamp": t["timestamp"].to_numpy(),
                         "value": _strip_sep(t["tag"]).str.lower().to_numpy()})
    items["tags"] = ""  # derived from the tag events below (keeps the column's place)
    schema = {"title": "text", "year": "numeric", "genres": "multi", "tags": "multi"}
    posters = folder.parent / "ml-latest-small-posters" / "images"
    if posters.is_dir():
        present = {n for n in os.listdir(posters) if n.endswith(".jpg")}
        base = posters.resolve()
        items["poster"] = pd.Series([str(base / f"{i}.jpg") if f"{i}.jpg" in present else None
                                     for i in items["item"]], dtype=object)
        schema["poster"] = "image"
        log.info("ml-latest-small: posters for %d of %d movies", items["poster"].notna().sum(), len(items))
    return Dataset.from_frames(inter, items=items, item_schema=schema, name="ml-latest-small",
                               source=str(folder / "ratings.csv"), side_events=side,
                               derived_items={"tags": DerivedColumn(kind="tag", top=MAX_MOVIE_TAGS)})


def _lastfm_interactions(folder: Path) -> pd.DataFrame:
    ua = _check_columns(_read(folder / "user_artists.dat", str_cols=("userID", "artistID")), ("weight",),
                        folder / "user_artists.dat")
    return pd.DataFrame({"user": ua["userID"], "item": ua["artistID"], "weight": ua["weight"]})


def load_lastfm_2k(folder: Path) -> Dataset:
    """HetRec 2011 Last.fm 2K: listening counts (no timestamps), artist names and tags, friends, and every
    tag assignment as a side event.

    Each row of ``user_taggedartists.dat`` (of an artist in ``artists.dat``) is a side event
    ``(user, artist, kind="tag", value=tag text from tags.dat, timestamp=its day/month/year at
    00:00 UTC)``. The artists' ``tags`` column is derived from those events: each artist's
    ``MAX_ARTIST_TAGS`` (20) most used tags, most used first, ties by tag.
    """
    inter = _lastfm_interactions(folder)
    artists = _read(folder / "artists.dat", str_cols=("id", "name"))
    items = pd.DataFrame({"item": artists["id"], "name": artists["name"]})
    tag_names = _read(folder / "tags.dat", encoding="latin-1", str_cols=("tagID", "tagValue"))
    tagged = _check_columns(_read(folder / "user_taggedartists.dat", str_cols=("userID", "artistID", "tagID")),
                            ("day", "month", "year"), folder / "user_taggedartists.dat")
    known = _isin(tagged["artistID"], items["item"])
    if not known.all():
        log.warning("lastfm-2k: dropped %d tag assignments of %d artist ids missing from artists.dat",
                    int((~known).sum()), tagged.loc[~known, "artistID"].nunique())
    tagged = tagged.loc[known]
    # who tagged which artist with what: a second behaviour (72% of the tagged pairs are artists outside the
    # user's top-50 listening list), an input for models that read side events, never a target
    tag_value = pd.Series(_strip_sep(tag_names["tagValue"]).to_numpy(), index=tag_names["tagID"].to_numpy())
    side = pd.DataFrame({"user": tagged["userID"].to_numpy(), "item": tagged["artistID"].to_numpy(), "kind": "tag",
                         "timestamp": _day_seconds(tagged), "value": tagged["tagID"].map(tag_value).to_numpy()})
    items["tags"] = ""  # derived from the tag events (Dataset.derived_items)
    friends = _read(folder / "user_friends.dat", str_cols=("userID", "friendID"))
    social = pd.DataFrame({"user": friends["userID"], "friend": friends["friendID"]})
    kg, ents = _lastfm_kg(folder.parent / "kg-lastfm-kgcn", items["item"])
    return Dataset.from_frames(inter, items=items, social=social, kg=kg, item_entities=ents, side_events=side,
                               item_schema={"name": "text", "tags": "multi"},
                               derived_items={"tags": DerivedColumn(kind="tag", top=MAX_ARTIST_TAGS)},
                               name="lastfm-2k", source=str(folder / "user_artists.dat"))


def _day_seconds(df: pd.DataFrame) -> np.ndarray:
    """Unix seconds of a ``day, month, year`` table (00:00 UTC); NaN where the date is not a valid one."""
    parts = {k: pd.to_numeric(df[k], errors="coerce") for k in ("day", "month", "year")}
    when = pd.to_datetime(pd.DataFrame(parts), errors="coerce", utc=True)
    secs = (when - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    return secs.astype("float64").to_numpy()


def _lastfm_kg(kg_folder: Path, artists: pd.Series) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """KGCN's Satori KG for the HetRec artists (the same artist ids), when its folder lies beside
    lastfm-2k's: 3,846 of the 17,632 artists have an entity. (None, None) when it is absent."""
    if not ((kg_folder / "kg.txt").is_file() and (kg_folder / "item_index2entity_id.txt").is_file()):
        return None, None
    kg = _read(kg_folder / "kg.txt", names=["head", "relation", "tail"], str_cols=("head", "relation", "tail"))
    ents = _read(kg_folder / "item_index2entity_id.txt", names=["item", "entity"], str_cols=("item", "entity"))
    ents = ents[_isin(ents["item"], artists)].reset_index(drop=True)
    log.info("lastfm-2k: attached the knowledge graph of %s (%d triples, %d artists mapped)", kg_folder,
             len(kg), len(ents))
    return kg, ents


def load_kg_lastfm(folder: Path) -> Dataset:
    """KGCN's Last.fm: the Satori KG, the artist->entity map, and the interactions of mapped artists."""
    kg = _read(folder / "kg.txt", names=["head", "relation", "tail"], str_cols=("head", "relation", "tail"))
    ents = _read(folder / "item_index2entity_id.txt", names=["item", "entity"], str_cols=("item", "entity"))
    inter = _lastfm_interactions(folder)
    inter = inter[_isin(inter["item"], ents["item"])].reset_index(drop=True)
    items = pd.DataFrame({"item": ents["item"]})
    return Dataset.from_frames(inter, items=items, kg=kg, item_entities=ents, name="kg-lastfm",
                               source=str(folder / "user_artists.dat"))


# ---------------------------------------------------------------------------------------- catalog
@dataclass(frozen=True)
class DatasetSpec:
    """A named public dataset: where its folder is looked for, what it holds, how it is loaded."""

    name: str
    folders: tuple[str, ...]  # candidate folder names in the data dir; the first is the canonical one
    description: str
    citation: str
    files: tuple[str, ...]  # files that must be in the folder
    loader: Callable[[Path], Dataset]

    def find(self, data_dir: Path) -> Path | None:
        """The first candidate folder that exists in ``data_dir``."""
        for f in self.folders:
            if (data_dir / f).is_dir():
                return data_dir / f
        return None


CATALOG: dict[str, DatasetSpec] = {
    "ml-100k": DatasetSpec(
        "ml-100k", ("ml-100k",),
        "MovieLens 100K: 100,000 ratings (1-5) of 1,682 movies by 943 users, with timestamps, movie "
        "titles/years/genres and user age/gender/occupation/zip.",
        _MOVIELENS_CITATION, ("u.data", "u.item", "u.user", "u.genre"), load_ml_100k),
    "ml-latest-small": DatasetSpec(
        "ml-latest-small", ("ml-latest-small",),
        "MovieLens latest-small (2018): 100,836 half-star ratings of 9,742 movies by 610 users, with titles, "
        "years, genres, user tags and, when ml-latest-small-posters/ is present, poster images.",
        _MOVIELENS_CITATION, ("ratings.csv", "movies.csv", "tags.csv"), load_ml_latest_small),
    "lastfm-2k": DatasetSpec(
        "lastfm-2k", ("hetrec2011-lastfm-2k", "lastfm-2k"),
        "HetRec 2011 Last.fm 2K: 92,834 user-artist listening counts (no timestamps), 17,632 artists with "
        "names and tags, and a 25,434-edge friend graph.",
        _HETREC_CITATION,
        ("user_artists.dat", "artists.dat", "tags.dat", "user_taggedartists.dat", "user_friends.dat"),
        load_lastfm_2k),
    "kg-lastfm": DatasetSpec(
        "kg-lastfm", ("kg-lastfm-kgcn",),
        "KGCN Last.fm music: 21,173 listening pairs of 1,872 users on 3,846 artists linked to a Satori "
        "knowledge graph of 15,518 triples and 60 relations.",
        "H. Wang et al., 'Knowledge Graph Convolutional Networks for Recommender Systems', WWW 2019 (MIT); "
        "interactions under the HetRec 2011 / Last.fm terms.",
        ("kg.txt", "item_index2entity_id.txt", "user_artists.dat"), load_kg_lastfm),
}


def _known() -> list[str]:
    return [*CATALOG, SYNTHETIC]


def _missing_folder(spec: DatasetSpec, data_dir: Path | None) -> DataError:
    looked = " or ".join(repr(f) for f in spec.folders)
    where = ("no data directory is set" if data_dir is None
             else f"folder {looked} not found in data directory {data_dir}")
    return DataError(f"dataset {spec.name!r}: {where}. Pass --data-dir DIR (data_dir=...) or set {ENV_VAR} to a "
                     f"directory holding a folder named {looked}; `fusionrec datasets download {spec.name}` "
                     f"fetches it there.")


def dataset_folder(name: str, data_dir: str | Path | None = None) -> Path:
    """The folder of catalog dataset ``name`` in the data directory, checked for its required files."""
    if name not in CATALOG:
        raise unknown_name("dataset", name, _known())
    spec = CATALOG[name]
    root = resolve_data_dir(data_dir)
    if root is not None and not root.is_dir():
        raise DataError(f"data directory {root} does not exist; pass an existing --data-dir or fix {ENV_VAR}.")
    folder = spec.find(root) if root is not None else None
    if folder is None:
        raise _missing_folder(spec, root)
    missing = [f for f in spec.files if not (folder / f).is_file()]
    if missing:
        raise DataError(f"dataset {name!r}: {folder} lacks {missing}; copy them there or re-download with "
                        f"`fusionrec datasets download {name} --force`.")
    return folder


_SYNTHETIC_MODULE = "fusionrec.data.synthetic"


def _load_synthetic() -> Dataset:
    try:
        synthetic = importlib.import_module(_SYNTHETIC_MODULE)
    except ModuleNotFoundError as e:
        if e.name != _SYNTHETIC_MODULE:
            raise
        raise DataError(f"the {SYNTHETIC!r} dataset needs the module {_SYNTHETIC_MODULE}, which this "
                        f"installation lacks; reinstall fusionrec or load a named dataset instead.") from e
    return synthetic.generate()


def _synthetic_available() -> bool:
    if _SYNTHETIC_MODULE in sys.modules:
        return sys.modules[_SYNTHETIC_MODULE] is not None
    return importlib.util.find_spec(_SYNTHETIC_MODULE) is not None


def load(name_or_dir: str | Path, data_dir: str | Path | None = None) -> Dataset:
    """Load a catalog dataset by name, ``"synthetic"``, or a dataset directory.

    Parameters
    ----------
    name_or_dir
        A name in :data:`CATALOG`, ``"synthetic"``, or the path of a directory in the generic
        format (see :mod:`fusionrec.data.io`) or of a catalog folder (e.g. ``/data/ml-100k``).
    data_dir
        Where catalog folders live; defaults to ``$FUSIONREC_DATA``.

    Returns
    -------
    Dataset

    Raises
    ------
    UnknownNameError
        An unknown name that is not a directory either.
    DataError
        The data directory or the dataset's folder or files are missing or malformed.

    Examples
    --------
    >>> ds = load("ml-100k", data_dir="/data")  # doctest: +SKIP
    """
    if isinstance(name_or_dir, str) and name_or_dir in CATALOG:
        return CATALOG[name_or_dir].loader(dataset_folder(name_or_dir, data_dir))
    if isinstance(name_or_dir, str) and name_or_dir == SYNTHETIC:
        return _load_synthetic()
    path = Path(name_or_dir).expanduser()
    if path.is_dir():
        if io.find_table(path, "interactions") is None:
            for spec in CATALOG.values():
                if path.name in spec.folders and all((path / f).is_file() for f in spec.files):
                    return spec.loader(path)
        return io.load_directory(path)
    if isinstance(name_or_dir, Path) or os.sep in str(name_or_dir) or str(name_or_dir).startswith("."):
        raise DataError(f"dataset directory {path} not found; pass an existing directory or one of the "
                        f"dataset names: {', '.join(_known())}.")
    raise unknown_name("dataset", str(name_or_dir), _known())


def describe(name_or_dir: str | Path, data_dir: str | Path | None = None) -> dict[str, object]:
    """:meth:`Dataset.describe` of :func:`load`, plus the catalog entry (description, citation, folder)."""
    d = load(name_or_dir, data_dir).describe()
    if isinstance(name_or_dir, str) and name_or_dir in CATALOG:
        spec = CATALOG[name_or_dir]
        d.update(description=spec.description, citation=spec.citation,
                 folder=str(dataset_folder(name_or_dir, data_dir)))
    elif name_or_dir != SYNTHETIC:
        d["folder"] = str(Path(name_or_dir).expanduser().resolve())
    return d


def list_datasets(data_dir: str | Path | None = None) -> list[dict[str, object]]:
    """Every catalog dataset with its description and whether its folder is in the data directory."""
    root = resolve_data_dir(data_dir)
    out: list[dict[str, object]] = []
    for spec in CATALOG.values():
        folder = spec.find(root) if root is not None and root.is_dir() else None
        present = folder is not None and all((folder / f).is_file() for f in spec.files)
        out.append({"name": spec.name, "description": spec.description, "citation": spec.citation,
                    "folder": spec.folders[0], "present": present,
                    "path": str(folder) if folder is not None else None})
    out.append({"name": SYNTHETIC, "description": "A generated world with every side source (no files needed).",
                "citation": "", "folder": None,
                "present": _synthetic_available(), "path": None})
    return out


__all__ = ["CATALOG", "DatasetSpec", "dataset_folder", "describe", "list_datasets", "load",
           "load_kg_lastfm", "load_lastfm_2k", "load_ml_100k", "load_ml_latest_small", "resolve_data_dir"]

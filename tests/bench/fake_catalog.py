"""Tiny copies of catalog datasets in their publishers' formats, big enough for a suite to run in seconds."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _listening(n_users: int, n_artists: int, per_user: int, seed: int) -> list[tuple[int, int, int]]:
    """(user, artist, count): users of cluster c mostly listen to artists of cluster c."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        c = u % 3
        pool = [a for a in range(n_artists) if a % 3 == c]
        rest = [a for a in range(n_artists) if a % 3 != c]
        picks = list(rng.choice(pool, size=per_user - 2, replace=False)) + list(rng.choice(rest, 2, replace=False))
        rows += [(u + 1, int(a) + 100, int(rng.integers(1, 500))) for a in picks]
    return rows


def fake_kg_lastfm(root: Path, n_users: int = 36, n_artists: int = 30, seed: int = 0) -> Path:
    """``kg-lastfm-kgcn/``: a KG of artists (entity i) with genre and origin entities."""
    d = root / "kg-lastfm-kgcn"
    d.mkdir(parents=True, exist_ok=True)
    kg = []
    for a in range(n_artists):
        kg.append(f"{a}\tmusic.artist.genre\t{1000 + a % 3}")
        kg.append(f"{a}\tmusic.artist.origin\t{2000 + a % 4}")
    kg += [f"{1000 + g}\tmusic.genre.parent\t{3000}" for g in range(3)]
    (d / "kg.txt").write_text("\n".join(kg) + "\n")
    (d / "item_index2entity_id.txt").write_text("".join(f"{a + 100}\t{a}\n" for a in range(n_artists)))
    rows = _listening(n_users, n_artists, 8, seed)
    (d / "user_artists.dat").write_text("userID\tartistID\tweight\n" + "".join(f"{u}\t{a}\t{w}\n" for u, a, w in rows))
    return d


def fake_lastfm_2k(root: Path, n_users: int = 36, n_artists: int = 30, seed: int = 0) -> Path:
    """``hetrec2011-lastfm-2k/``: listening counts, artists, tags, tag assignments and friends."""
    d = root / "hetrec2011-lastfm-2k"
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = _listening(n_users, n_artists, 8, seed)
    (d / "user_artists.dat").write_text("userID\tartistID\tweight\n" + "".join(f"{u}\t{a}\t{w}\n" for u, a, w in rows))
    (d / "artists.dat").write_text("id\tname\turl\tpictureURL\n"
                                   + "".join(f"{a + 100}\tartist {a}\thttp://a\thttp://b\n" for a in range(n_artists)))
    (d / "tags.dat").write_bytes(("tagID\ttagValue\n" + "".join(f"{t + 1}\tstyle{t}\n" for t in range(6)))
                                 .encode("latin-1"))
    tagged = []
    for u, a, _ in rows[::3]:
        tagged.append(f"{u}\t{a}\t{(a - 100) % 3 + 1}\t1\t1\t2009")
        tagged.append(f"{u}\t{a}\t{(a - 100) % 2 + 4}\t1\t1\t2009")
    (d / "user_taggedartists.dat").write_text("userID\tartistID\ttagID\tday\tmonth\tyear\n" + "\n".join(tagged) + "\n")
    pairs = set()
    for u in range(1, n_users + 1):  # friends mostly within the same cluster
        for f in rng.choice([v for v in range(1, n_users + 1) if v != u and (v - u) % 3 == 0], 2, replace=False):
            pairs |= {(u, int(f)), (int(f), u)}
    (d / "user_friends.dat").write_text("userID\tfriendID\n" + "".join(f"{u}\t{f}\n" for u, f in sorted(pairs)))
    return d

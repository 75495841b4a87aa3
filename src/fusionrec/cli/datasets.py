"""``fusionrec datasets list|describe|synth|download``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fusionrec.cli.common import console, friendly_errors, metrics_table, out, print_json, progress_bar, step

app = typer.Typer(help="List, describe, generate and download datasets.", no_args_is_help=True)

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="Folder holding the datasets (or $FUSIONREC_DATA).")]


@app.command("list")
@friendly_errors
def list_(data_dir: DataDir = None, json_: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Known datasets and whether each is present in the data directory."""
    from fusionrec.data import catalog

    rows = catalog.list_datasets(data_dir)
    if json_:
        print_json(rows)
        return
    for r in rows:
        r["present"] = "yes" if r["present"] else "no"
    out.print(metrics_table("datasets", rows, ["name", "present", "folder", "description"]))


@app.command("describe")
@friendly_errors
def describe(
    name: Annotated[str, typer.Argument(help="Catalog name, 'synthetic', or a dataset directory.")],
    data_dir: DataDir = None,
    json_: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Users, items, interactions, density, and which modalities and sources are present."""
    from fusionrec.data import catalog

    with step(f"loading {name}"):
        d = catalog.describe(name, data_dir)
    if json_:
        print_json(d)
        return
    rows = []
    for key in ("users", "items", "interactions", "active_users", "active_items", "density", "social_edges",
                "kg_triples", "kg_relations", "items_with_entity", "time_range", "rating_range"):
        if key in d:
            rows.append({"metric": key, "value": str(d[key])})
    srcs = d["sources"]
    rows.append({"metric": "sources", "value": ", ".join(k for k, v in srcs.items() if v)})  # type: ignore[union-attr]
    for kind, cols in d["modalities"].items():  # type: ignore[union-attr]
        rows.append({"metric": f"modality: {kind}", "value": ", ".join(cols)})
    if d.get("user_fields"):
        rows.append({"metric": "user fields", "value": ", ".join(f"{k} ({v})" for k, v in d["user_fields"].items())})  # type: ignore[union-attr]
    out.print(metrics_table(str(d["name"]), rows, ["metric", "value"]))
    if d.get("citation"):
        out.print(f"cite: {d['citation']}", highlight=False)


@app.command("synth")
@friendly_errors
def synth(
    out_dir: Annotated[Path, typer.Option("--out", help="Directory to write the dataset into.")],
    users: Annotated[int, typer.Option("--users", min=1)] = 500,
    items: Annotated[int, typer.Option("--items", min=1)] = 300,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    media: Annotated[bool, typer.Option("--media/--no-media", help="Write item images and audio clips.")] = True,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing directory.")] = False,
) -> None:
    """Write a synthetic multimodal world as a dataset directory (generic format)."""
    from fusionrec.data import synthetic

    cfg = synthetic.SyntheticConfig(n_users=users, n_items=items, seed=seed, media=media)
    with progress_bar("generating", total=None) as _:
        path = synthetic.write(cfg, out_dir, overwrite=overwrite)
    console.print(f"[green]✓[/] wrote {path}", highlight=False)


@app.command("download")
@friendly_errors
def download(
    name: Annotated[str, typer.Argument(help="Catalog name.")],
    data_dir: DataDir = None,
    mirror: Annotated[str | None, typer.Option("--mirror", help="Base URL replacing the official hosts.")] = None,
    force: Annotated[bool, typer.Option("--force")] = False,
) -> None:
    """Fetch a public dataset archive into the data directory (needs internet or a --mirror)."""
    from fusionrec.data import catalog
    from fusionrec.data import download as dl
    from fusionrec.errors import DataError

    root = catalog.resolve_data_dir(data_dir)
    if root is None:
        raise DataError("no data directory: pass --data-dir DIR or set FUSIONREC_DATA")
    with step(f"downloading {name}"):
        path = dl.download(name, root, mirror=mirror, force=force)
    console.print(f"[green]✓[/] {name} is in {path}", highlight=False)

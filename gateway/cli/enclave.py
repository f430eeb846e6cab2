"""``veilbox ingest`` and ``veilbox catalog …``: providers load data; everyone browses schemas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from sandbox.catalog import Column, Tag
from sandbox.city import CITY_COLUMNS, CITY_LEVELS, CITY_PROVIDERS
from sandbox.errors import IngestError

if TYPE_CHECKING:
    from deid.anonymize import Operator

Workdir = Annotated[Path, typer.Option(help="The platform's working directory.")]
DEFAULT_WORKDIR = Path("veilbox-data")

catalog_app = typer.Typer(
    no_args_is_help=True, help="Browse the resource catalog: schemas and tags, never values."
)


def ingest_command(
    files: Annotated[
        list[Path], typer.Argument(help="CSV or Parquet files with one schema.", show_default=False)
    ],
    dataset: Annotated[str, typer.Option(help="The dataset's catalog name.")],
    provider: Annotated[str, typer.Option(help="The providing department.")] = "",
    level: Annotated[
        int | None, typer.Option(min=1, max=4, help="Classification level (分类分级), 1 to 4.")
    ] = None,
    workdir: Workdir = DEFAULT_WORKDIR,
    declare: Annotated[
        list[str] | None,
        typer.Option(help="COLUMN=TAG, COLUMN=measure:LOWER:UPPER or COLUMN=identifier:DOMAIN; repeatable."),
    ] = None,
    schema: Annotated[
        str | None, typer.Option(help="Use built-in declarations: 'city' for the synthetic city.")
    ] = None,
    anonymize: Annotated[
        list[str] | None,
        typer.Option(
            help="COLUMN=OPERATOR (replace, mask, redact, hash, encrypt) for free text; repeatable."
        ),
    ] = None,
    description: Annotated[str, typer.Option(help="What the data is.")] = "",
    json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Load files, detect PII, pseudonymize identifiers, store in the enclave and register the dataset."""
    from sandbox.enclave import Enclave
    from sandbox.ingest import IngestRequest, ingest

    declared = _city_declarations(dataset) if schema == "city" else {}
    if schema not in (None, "city"):
        raise IngestError(f"unknown schema {schema!r}; the built-in one is 'city'")
    declared.update(_parse_declarations(declare or []))
    request = IngestRequest(
        dataset=dataset,
        files=tuple(files),
        provider=provider or (CITY_PROVIDERS.get(dataset, "") if schema == "city" else ""),
        level=level or (CITY_LEVELS.get(dataset, 0) if schema == "city" else 0),
        description=description,
        declared=declared,
        anonymize=_parse_anonymize(anonymize or []),
    )
    console = Console(highlight=False)
    with Enclave.open(workdir) as enclave, console.status(f"ingesting {dataset}…"):
        report = ingest(enclave, request)
    if json_output:
        typer.echo(
            json.dumps(
                {"dataset": report.dataset.schema(), "pseudonymized": dict(report.pseudonymized)},
                ensure_ascii=False,
            )
        )
        return
    table = Table("column", "detected", "tag", "pseudonymized in")
    detected = {r.column: r for r in report.classification}
    for column in report.dataset.columns:
        found = detected[column.name].dominant
        share = detected[column.name].entities.get(found, 0.0) if found else 0.0
        table.add_row(
            column.name,
            f"{found} {share:.0%}" if found else "",
            str(column.tag),
            report.pseudonymized.get(column.name, ""),
        )
    console.print(table)
    console.print(
        f"{report.dataset.name}: {report.dataset.row_count:,} rows registered as "
        f"{report.dataset.registration_code}, "
        f"{report.vault_added:,} identifiers sealed in the vault"
    )


Url = Annotated[str | None, typer.Option(help="Browse a running 'veilbox serve' instead of WORKDIR.")]
Token = Annotated[str | None, typer.Option(help="Your API token, with --url.")]


@catalog_app.command("list")
def catalog_list(
    workdir: Workdir = DEFAULT_WORKDIR,
    url: Url = None,
    token: Token = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List registered datasets (through the API with --url, else from WORKDIR)."""
    datasets = _remote(url, token, "/v1/catalog") if url else _local(workdir, None)
    if json_output:
        typer.echo(json.dumps(datasets, ensure_ascii=False))
        return
    table = Table("dataset", "provider", "level", "rows", "registration code")
    for d in datasets:
        table.add_row(
            d["name"], d["provider"], str(d["level"]), f"{d['row_count']:,}", d["registration_code"]
        )
    Console().print(table)


@catalog_app.command("show")
def catalog_show(
    name: Annotated[str, typer.Argument(help="The dataset.")],
    workdir: Workdir = DEFAULT_WORKDIR,
    url: Url = None,
    token: Token = None,
) -> None:
    """Print one dataset's schema and tags as JSON (never values)."""
    schema = _remote(url, token, f"/v1/catalog/{name}") if url else _local(workdir, name)
    typer.echo(json.dumps(schema, ensure_ascii=False, indent=2))


def _local(workdir: Path, name: str | None) -> Any:
    """From a local working directory: every dataset's schema, or the one named."""
    from sandbox.enclave import Enclave

    with Enclave.open(workdir) as enclave:
        if name is not None:
            return enclave.catalog.get(name).schema()
        return [d.schema() for d in enclave.catalog.list()]


def _remote(url: str, token: str | None, path: str) -> Any:
    from gateway.cli.client import Target, connect

    with connect(Target(url=url, token=token)) as api:
        return api.request("GET", path)


def _city_declarations(dataset: str) -> dict[str, Column]:
    if dataset not in CITY_COLUMNS:
        raise IngestError(f"the city schema has no table {dataset!r}; it has {', '.join(CITY_COLUMNS)}")
    return {c.name: c for c in CITY_COLUMNS[dataset]}


def _parse_anonymize(items: list[str]) -> dict[str, Operator]:
    """Turn ``COLUMN=OPERATOR`` options into a column → operator map."""
    from deid.anonymize import OPERATORS

    chosen: dict[str, Operator] = {}
    for item in items:
        name, _, operator = item.partition("=")
        if operator not in OPERATORS:
            raise IngestError(f"--anonymize {item!r}: the operator must be one of {', '.join(OPERATORS)}")
        chosen[name] = operator
    return chosen


def _parse_declarations(items: list[str]) -> dict[str, Column]:
    """Turn ``COLUMN=TAG[:…]`` options into column declarations (types come from the files)."""
    declared: dict[str, Column] = {}
    for item in items:
        name, _, spec = item.partition("=")
        tag, *args = spec.split(":")
        try:
            kind = Tag(tag)
        except ValueError:
            raise IngestError(
                f"--declare {item!r}: tag must be one of {', '.join(t.value for t in Tag)}"
            ) from None
        try:
            if kind in (Tag.MEASURE, Tag.SENSITIVE):
                lower, upper = (float(a) for a in args)
                declared[name] = Column(name, "DOUBLE", kind, lower=lower, upper=upper)
            elif kind is Tag.IDENTIFIER:
                (domain,) = args
                declared[name] = Column(name, "VARCHAR", kind, join_domain=domain)
            else:
                declared[name] = Column(name, "VARCHAR", kind)
        except ValueError:
            raise IngestError(
                f"--declare {item!r}: expected {name}=measure:LOWER:UPPER or {name}=identifier:DOMAIN"
            ) from None
    return declared

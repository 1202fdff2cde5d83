"""Tables written to files: ``diag pcap --export DIR`` (Parquet, or CSV), chunk by chunk.

Contract: ``with TableWriter(directory, fmt) as w: w.write(tables)`` for each chunk's
:class:`diag.decode.Tables` (any object with ``items()`` of name -> DataFrame and an
``interfaces`` frame). Each table becomes ``DIR/<table>/part-NNNNN.<ext>``, one part per chunk,
each file written under a temporary name and renamed, so memory stays flat and a reader never
sees half a part; the capture's interfaces go to ``DIR/interfaces.csv`` once. The directory
must be new or empty (:class:`diag.errors.UsageError` otherwise); Parquet needs pyarrow
(:class:`diag.errors.EnvironmentProblem` with a hint otherwise). :func:`write_part` writes one
chunk's part alone and :class:`PartWriter` carries it to the processes of a Dask cluster, which
write the parts of one export side by side (the same files as one ``TableWriter``).
"""
from __future__ import annotations

import os
from pathlib import Path

from diag.errors import EnvironmentProblem, UsageError

EXPORT_FORMATS = ("parquet", "csv")


class TableWriter:
    def __init__(self, directory: Path, fmt: str) -> None:
        if fmt not in EXPORT_FORMATS:
            raise UsageError(f"unknown --export-format {fmt!r}", hint="use parquet or csv")
        from diag.report.output import check_directory_target

        directory = Path(directory)
        self.dir, self.fmt, self.part = directory, fmt, 0
        check_directory_target(directory)
        try:
            directory.mkdir(exist_ok=True)
        except OSError as err:
            raise UsageError(f"--export {directory}: {err.strerror}") from None
        if fmt == "parquet":
            try:
                import pyarrow  # noqa: F401
            except ImportError:
                raise EnvironmentProblem("Parquet export needs pyarrow",
                                         hint="pip install pyarrow, or --export-format csv") from None

    def __enter__(self) -> "TableWriter":
        return self

    def __exit__(self, *exc) -> None:
        pass

    def write(self, tables) -> None:
        write_part(self.dir, self.fmt, self.part, tables)
        self.part += 1


def write_part(directory: Path, fmt: str, part: int, tables, names=None) -> None:
    """Part ``part`` of each table of one chunk (``names``: only those tables) as
    ``TableWriter`` writes it: an empty table only in part 0, ``interfaces.csv`` with part 0.
    Several processes may write the parts of one export at once (``diag pcap --scheduler``)."""
    directory = Path(directory)
    for name, df in tables.items():
        if name == "interfaces" or (names is not None and name not in names) \
                or (not len(df) and part):
            continue
        out = directory / name
        out.mkdir(exist_ok=True)
        target = out / f"part-{part:05d}.{fmt}"
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        if fmt == "csv":
            df.to_csv(tmp, index=False)
        else:
            _to_parquet(df, tmp)
        tmp.replace(target)
    if part == 0 and (names is None or "interfaces" in names):
        tmp = directory / f".interfaces.csv.{os.getpid()}.tmp"
        tables.interfaces.to_csv(tmp, index=False)
        tmp.replace(directory / "interfaces.csv")


class PartWriter:
    """``write_part`` into one directory, as a picklable callable (sent to Dask workers)."""

    def __init__(self, directory: Path, fmt: str) -> None:
        self.directory, self.fmt = str(directory), fmt

    def __call__(self, part: int, tables, names=None) -> None:
        write_part(Path(self.directory), self.fmt, part, tables, names)


def prepare_directory(directory: Path, fmt: str) -> Path:
    """Check (new or empty; pyarrow for Parquet) and create an export directory."""
    TableWriter(directory, fmt)
    return Path(directory)


def _to_parquet(df, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pa.Table.from_pandas(df, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # mixed types in an object column: keep the values, as text
        fixed = df.copy()
        for col in fixed.columns:
            if fixed[col].dtype == object:
                fixed[col] = fixed[col].map(lambda v: v if v is None else str(v))
        table = pa.Table.from_pandas(fixed, preserve_index=False)
    pq.write_table(table, path)

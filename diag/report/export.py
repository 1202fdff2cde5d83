"""Tables written to files: ``diag pcap --export DIR`` (Parquet, or CSV), chunk by chunk.

Contract: ``with TableWriter(directory, fmt) as w: w.write(tables)`` for each chunk's
:class:`diag.decode.Tables` (any object with ``items()`` of name -> DataFrame and an
``interfaces`` frame). Each table becomes ``DIR/<table>/part-NNNNN.<ext>``, one part per chunk,
each file written under a temporary name and renamed, so memory stays flat and a reader never
sees half a part; the capture's interfaces go to ``DIR/interfaces.csv`` once. The directory
must be new or empty (:class:`diag.errors.UsageError` otherwise); Parquet needs pyarrow
(:class:`diag.errors.EnvironmentProblem` with a hint otherwise).
"""
from __future__ import annotations

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
        for name, df in tables.items():
            if name == "interfaces" or (not len(df) and self.part):
                continue
            out = self.dir / name
            out.mkdir(exist_ok=True)
            target = out / f"part-{self.part:05d}.{self.fmt}"
            tmp = target.with_suffix(target.suffix + ".tmp")
            if self.fmt == "csv":
                df.to_csv(tmp, index=False)
            else:
                _to_parquet(df, tmp)
            tmp.replace(target)
        if self.part == 0:
            tables.interfaces.to_csv(self.dir / "interfaces.csv", index=False)
        self.part += 1


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

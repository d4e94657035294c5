"""Copy a running benchmark's finished results into a committed record and the results page.

A long grid runs in the background, in its own folder (run folders with checkpoints: never
committed). This script rebuilds that folder's report (:func:`write_report`), copies the small
files a record holds (CSV tables, summaries, figures, and each finished run's ``config.json``
and per-epoch ``history.jsonl`` under ``runs/``: no checkpoints, no embeddings) into
``--dst``, and replaces the block between ``<!-- grid results -->`` and
``<!-- /grid results -->`` of ``--doc`` with the main tables of ``summary.md`` (per data set,
the paper's rows and the references beside ours) and the number of finished runs.

    .venv/bin/python scripts/sync_record.py --src /work/grid/results/cpu \\
        --dst docs/results/cpu --doc docs/results.md --include docs/results/cpu

``--include`` (as ``gdml benchmark --include``) reports earlier records together with the grid's
own runs: name the committed record itself when a session's grid folder started empty, or its
runs would drop out of the record.

The figures drawn from run folders (2-D maps, training and validation curves) are replaced
only for data sets whose runs are all in ``--src``: a grid folder that resumed from the record
holds only some of them, and its figures would lack the other methods.

Safe to rerun at any time: every file is replaced whole (written to a temporary name, then
renamed), and a run still training is simply not in the report yet.
"""

from __future__ import annotations

import argparse
import csv
import re
from collections import defaultdict
from pathlib import Path

from guided_dml.experiments.report import write_report
from guided_dml.training.checkpoint import save_bytes

#: What a committed record holds (the files :func:`write_report` writes, minus report.html,
#: whose inlined figures would double the record's size).
RECORD_FILES = ("runs.csv", "shift_runs.csv", "summary.csv", "summary.md", "summary.tex",
                "paired.csv", "shift.csv", "references.csv")
#: Figures drawn from the run folders themselves (embeddings.npz, history.jsonl), not from the
#: CSV tables: a grid folder that holds only some of a data set's runs (the rest included from
#: the record) would draw them with those methods missing.
FOLDER_FIGURES = ("embeddings_{}.png", "curves_{}.png", "validation_{}.png")
BLOCK = re.compile(r"(<!-- grid results -->\n).*?(<!-- /grid results -->)", re.S)


def main_tables(summary_md: str) -> str:
    """The ``## data set`` sections of ``summary.md`` with their first table and the paired
    comparisons, without the covariate-shift detail (it stays in the record's summary.md)."""
    out = []
    for block in summary_md.split("\n## ")[1:]:
        title, _, body = block.partition("\n")
        chunks = [c for c in body.strip().split("\n\n") if c]
        table = next((c for c in chunks if c.startswith("|")), "")
        out += [f"### {title.strip()}", "", table, ""]
        for i, c in enumerate(chunks):
            if c.startswith("### ") and "paired" in c:
                rest = [x for x in chunks[i + 1 :] if x.startswith("|")]
                if rest:
                    out += [f"#### {c[4:].strip()}", "", rest[0], ""]
    return "\n".join(out)


def partial_figures(src: Path) -> set[str]:
    """The folder-drawn figures of every data set some of whose runs in ``src/runs.csv`` have no
    finished folder under ``src`` (included from a record): the record keeps its own of them."""
    complete: dict[str, bool] = defaultdict(lambda: True)
    with (src / "runs.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            here = (src / row["run_dir"] / "metrics.json").is_file()
            complete[row["dataset"]] &= here
    return {name.format(ds) for ds, ok in complete.items() if not ok for name in FOLDER_FIGURES}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--src", required=True, help="the benchmark's output folder")
    ap.add_argument("--dst", required=True, help="the committed record folder")
    ap.add_argument("--doc", help="a Markdown page with a <!-- grid results --> block")
    ap.add_argument("--include", nargs="*", default=[],
                    help="earlier records reported with the grid's runs (e.g. --dst itself)")
    ap.add_argument("--note", default="", help="a line put above the tables (e.g. the status)")
    args = ap.parse_args()
    src, dst = Path(args.src), Path(args.dst)
    written = write_report(src, include=args.include)
    dst.mkdir(parents=True, exist_ok=True)
    for name in RECORD_FILES:
        if (src / name).is_file():
            save_bytes((src / name).read_bytes(), dst / name)
    partial = partial_figures(src)
    for png in sorted(p for p in written.values() if p.suffix == ".png"):
        if png.name in partial and (dst / png.name).exists():
            print(f"kept {dst / png.name}: {src} lacks some of its runs")
            continue
        save_bytes(png.read_bytes(), dst / png.name)  # the one atomic writer
    # The validation curves behind the figures, as numbers (a few KB a run): finished runs only.
    for done in sorted((src / "runs").glob("*/*/seed-*/metrics.json")):
        run = done.parent
        for name in ("config.json", "history.jsonl"):
            if (run / name).is_file():
                save_bytes((run / name).read_bytes(), dst / run.relative_to(src) / name)
    n_runs = max(0, len((src / "runs.csv").read_text().splitlines()) - 1)
    if args.doc:
        doc = Path(args.doc)
        text = doc.read_text()
        if not BLOCK.search(text):
            raise SystemExit(f"{doc} has no <!-- grid results --> block")
        body = (f"{args.note}\n\n" if args.note else "") + (
            f"{n_runs} finished runs (record: `{dst.as_posix()}/`; every table and figure "
            "there). Mean ± 95 % CI over the seeds finished so far.\n\n"
            + main_tables((src / "summary.md").read_text()))
        save_bytes(BLOCK.sub(lambda m: m.group(1) + body.rstrip() + "\n" + m.group(2), text)
                   .encode(), doc)
    print(f"{n_runs} runs -> {dst}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

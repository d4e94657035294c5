"""The benchmark report: statistics against scipy, tables against the runs they summarise, files."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import stats

from guided_dml.errors import DataError
from guided_dml.experiments.report import (
    FIGURES,
    METRICS,
    PAPER_CI,
    PAPER_RESULTS,
    TABLE_HEADERS,
    TABLE_METRICS,
    collect_runs,
    comparison_pairs,
    mean_ci,
    method_name,
    paired_comparisons,
    read_included,
    summarize,
    write_report,
)
from guided_dml.experiments.report import figures as report_figures
from guided_dml.experiments.report import tables as report_tables
from guided_dml.experiments.report.figures import Figure

METHODS_MD = Path(__file__).resolve().parents[2].parent / "shared" / "spec" / "METHODS.md"
CLASSES = ("zero", "one", "two")
# Recall@1 levels of the fake methods, so the expected best is known.
BASE = {"triplet": 0.80, "gdml": 0.90, "triplet+mdr": 0.85, "siamese": 0.70}
CORRUPTIONS = ("gaussian_noise", "rotation")


def make_run(out: Path, dataset: str, method: str, seed: int, *, n_per_class: int = 20,
             shift: bool = True) -> Path:
    """A finished run folder with synthetic metrics, 2-D embeddings, history and shift rows."""
    rng = np.random.default_rng([seed, len(method), len(dataset)])
    run = out / "runs" / dataset / method / f"seed-{seed}"
    run.mkdir(parents=True)
    level = BASE.get(method, 0.6) + (0.05 if dataset == "mnist" else 0.0)
    metrics = {m: float(np.clip(level + rng.normal(0, 0.02) - 0.01 * i, 0, 1))
               for i, m in enumerate(METRICS)}
    metrics.update(method=method, dataset=dataset, seed=seed, config_hash=f"h{seed}{method}",
                   wall_seconds=100.0 + seed, train_seconds=90.0, eval_seconds=5.0,
                   best_epoch=3, epochs_run=4)
    (run / "metrics.json").write_text(json.dumps(metrics))
    labels = np.repeat(np.arange(len(CLASSES)), n_per_class)
    centres = np.stack([np.cos(2 * np.pi * labels / 3), np.sin(2 * np.pi * labels / 3)], 1) * 3
    emb = centres + rng.normal(0, 1.0 - level, (len(labels), 2))
    np.savez(run / "embeddings.npz", test_embeddings=emb.astype(np.float32),
             test_labels=labels, classes=np.array(CLASSES))
    lines = []
    if method.startswith("gdml"):
        lines += [{"phase": "teacher", "epoch": e, "train_loss": 3.0 / e, "val_loss": 3.2 / e,
                   "lr": 0.01, "seconds": 1.0} for e in range(1, 4)]
    lines += [{"phase": "student", "epoch": e, "train_loss": 1.0 / e + rng.random() * 0.05,
               "val_loss": 1.1 / e + rng.random() * 0.05, "val_score": level - 0.1 / e,
               "lr": 0.1, "seconds": 2.0}
              for e in range(1, 5)]
    (run / "history.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    if shift:
        rows = [{"corruption": "clean", "severity": 0, "recall@1": metrics["recall@1"],
                 "precision@1": metrics["precision@1"], "n_test": 60}]
        drop = 0.02 if method.startswith("gdml") else 0.05
        rows += [{"corruption": c, "severity": s, "n_test": 60,
                  "recall@1": max(0.0, metrics["recall@1"] - drop * s * (k + 1)),
                  "precision@1": max(0.0, metrics["precision@1"] - drop * s)}
                 for k, c in enumerate(CORRUPTIONS) for s in range(1, 6)]
        (run / "shift.json").write_text(json.dumps({"rows": rows}))
    return run


def make_benchmark(out: Path, datasets=("mnist", "toyset"), methods=("triplet", "gdml", "triplet+mdr"),
                   seeds=(0, 1, 2), **kw) -> Path:
    for ds in datasets:
        for m in methods:
            for s in seeds:
                make_run(out, ds, m, s, **kw)
    return out


def read_csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    out = make_benchmark(tmp_path_factory.mktemp("bench"))
    # An unfinished run: folder, history, no metrics.json.
    (out / "runs" / "mnist" / "siamese" / "seed-0").mkdir(parents=True)
    (out / "runs" / "mnist" / "siamese" / "seed-0" / "history.jsonl").write_text("")
    return out, write_report(out)


# ---------------------------------------------------------------------------- statistics


@pytest.mark.parametrize("n", [2, 3, 5, 10])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_mean_ci_matches_scipy_t_interval(n: int, confidence: float) -> None:
    x = np.random.default_rng(n).normal(50, 3, n)
    lo, hi = stats.t.interval(confidence, n - 1, loc=x.mean(), scale=stats.sem(x))
    mean, half = mean_ci(x, confidence)
    assert mean == pytest.approx(x.mean())
    assert half == pytest.approx((hi - lo) / 2, rel=1e-12)


def test_mean_ci_degenerate_inputs() -> None:
    assert mean_ci([0.7])[0] == 0.7 and math.isnan(mean_ci([0.7])[1])
    assert all(math.isnan(v) for v in mean_ci([]))
    assert mean_ci([1.0, 1.0, 1.0]) == (1.0, 0.0)
    assert mean_ci([1.0, float("nan"), 3.0]) == mean_ci([1.0, 3.0])  # NaN runs left out


# ---------------------------------------------------------------------------- collecting


def test_collect_runs_order_and_unfinished_folders(tmp_path: Path) -> None:
    methods = ("gdml+mdr", "gdml", "multisim", "triplet+mdr", "siamese", "margin", "triplet")
    make_benchmark(tmp_path, datasets=("toyset", "mnist"), methods=methods, seeds=(1, 0),
                   shift=False)
    (tmp_path / "runs" / "mnist" / "gdml" / "seed-7").mkdir()  # started, never finished
    rows = collect_runs(tmp_path)
    assert len(rows) == 2 * len(methods) * 2
    assert [r["dataset"] for r in rows[:14]] == ["mnist"] * 14  # the paper's data sets first
    order = ["siamese", "margin", "gdml", "triplet", "triplet+mdr"]
    seen = [r["method"] for r in rows if r["dataset"] == "mnist" and r["seed"] == 0]
    assert seen == ["siamese", "triplet", "margin", "multisim", "gdml", "triplet+mdr", "gdml+mdr"]
    assert [r["seed"] for r in rows[:2]] == [0, 1]
    assert all(r["method"] in order or r["method"] == "multisim" or "+" in r["method"] for r in rows)
    assert "robustness_auc" not in rows[0]
    # The selected epoch's validation score (best_epoch 3 of make_run: level - 0.1 / 3), read
    # from the student records of history.jsonl, the teacher's skipped.
    for r in rows:
        level = BASE.get(r["method"], 0.6) + (0.05 if r["dataset"] == "mnist" else 0.0)
        assert r["val_score"] == pytest.approx(level - 0.1 / 3)


def test_summarize_percent_and_seed_count(tmp_path: Path) -> None:
    make_benchmark(tmp_path, datasets=("mnist",), methods=("gdml",), seeds=(0, 1, 2, 3))
    rows = collect_runs(tmp_path)
    (s,) = summarize(rows)
    assert s["n"] == 4 and s["seeds"] == "0 1 2 3"
    for m in METRICS:
        mean, ci = mean_ci([100 * r[m] for r in rows])
        assert s[f"{m}_mean"] == pytest.approx(mean) and s[f"{m}_ci"] == pytest.approx(ci)
    assert s["wall_seconds_mean"] == pytest.approx(101.5)
    assert 0 < s["robustness_auc_mean"] <= 100


# ---------------------------------------------------------------------------- the files


def test_every_file_is_written(report: tuple[Path, dict[str, Path]]) -> None:
    out, paths = report
    expected = {"runs_csv", "summary_csv", "summary_md", "summary_tex", "report_html",
                "recall_at_1_png", "shift_csv", "shift_runs_csv", "paired_csv"}
    for ds in ("mnist", "toyset"):
        expected |= {f"embeddings_{ds}_png", f"curves_{ds}_png", f"shift_{ds}_png",
                     f"validation_{ds}_png"}
    assert set(paths) == expected
    assert all(p.parent == out and p.is_file() and p.stat().st_size > 0 for p in paths.values())
    assert not list(out.glob(".*.tmp")), "temporary files left behind"
    for key, path in paths.items():
        if key.endswith("_png"):
            with Image.open(path) as img:
                assert img.format == "PNG" and min(img.size) > 300


def test_runs_csv_one_row_per_finished_run(report: tuple[Path, dict[str, Path]]) -> None:
    out, paths = report
    rows = read_csv(paths["runs_csv"])
    assert len(rows) == 2 * 3 * 3  # the unfinished siamese folder is not a run
    assert {r["method"] for r in rows} == {"triplet", "gdml", "triplet+mdr"}
    first = rows[0]
    metrics = json.loads((out / first["run_dir"] / "metrics.json").read_text())
    for m in METRICS:
        assert float(first[m]) == pytest.approx(metrics[m])
    assert first["config_hash"] == metrics["config_hash"]
    assert float(first["wall_seconds"]) == metrics["wall_seconds"]
    assert 0 < float(first["robustness_auc"]) <= 1


def test_summary_csv_ci_equals_scipy(report: tuple[Path, dict[str, Path]]) -> None:
    out, paths = report
    rows = read_csv(paths["summary_csv"])
    assert len(rows) == 2 * 3
    for s in rows:
        runs = sorted((out / "runs" / s["dataset"] / s["method"]).glob("seed-*/metrics.json"))
        vals = np.array([100 * json.loads(p.read_text())["recall@1"] for p in runs])
        lo, hi = stats.t.interval(0.95, len(vals) - 1, loc=vals.mean(), scale=stats.sem(vals))
        assert int(s["n"]) == 3
        assert float(s["recall@1_mean"]) == pytest.approx(vals.mean())
        assert float(s["recall@1_ci"]) == pytest.approx((hi - lo) / 2)


def _md_sections(text: str) -> dict[str, list[list[str]]]:
    """Rows of the first table under each ``## `` heading, as cell lists."""
    out: dict[str, list[list[str]]] = {}
    for block in text.split("\n## ")[1:]:
        title, _, body = block.partition("\n")
        table = next(c for c in body.strip().split("\n\n") if c.startswith("|")).splitlines()
        out[title.strip()] = [[c.strip() for c in line.strip("|").split("|")] for line in table[2:]]
    return out


def test_markdown_bold_is_the_true_best(report: tuple[Path, dict[str, Path]]) -> None:
    _, paths = report
    summary = read_csv(paths["summary_csv"])
    sections = _md_sections(paths["summary_md"].read_text())
    assert set(sections) == {"MNIST", "toyset"}
    for title, ds in (("MNIST", "mnist"), ("toyset", "toyset")):
        rows = sections[title]
        ours = [r for r in rows if "(paper)" not in r[0]]
        assert [r[0] for r in ours] == [method_name(m) for m in ("triplet", "gdml", "triplet+mdr")]
        for j, metric in enumerate(TABLE_METRICS):
            means = {s["method"]: float(s[f"{metric}_mean"]) for s in summary if s["dataset"] == ds}
            best = max(means, key=means.get)
            bold = [r[0] for r in ours if r[2 + j].startswith("**")]
            assert bold == [method_name(best)], (ds, metric)
            assert f"{means[best]:.2f} ±" in next(r[2 + j] for r in ours if r[0] == bold[0])
        paper = [r for r in rows if "(paper)" in r[0]]
        if ds == "mnist":  # the published rows for every paper method, none in bold
            assert len(paper) == 5 and not any("**" in c for r in paper for c in r)
            gdml = next(r for r in paper if r[0] == "G-DML (paper)")
            assert gdml[2] == "99.00 ± 0.18"
        else:
            assert paper == []


def test_markdown_has_shift_tables(report: tuple[Path, dict[str, Path]]) -> None:
    _, paths = report
    text = paths["summary_md"].read_text()
    assert "### MNIST under covariate shift" in text
    assert "| gaussian noise | 5 |" in text and "Robustness AUC" in text
    shift = read_csv(paths["shift_csv"])
    # 2 data sets × 3 methods × (clean + 2 corruptions × 5 severities)
    assert len(shift) == 2 * 3 * 11
    assert all(int(r["n"]) == 3 for r in shift)


def test_latex_is_booktabs_with_bold_best(report: tuple[Path, dict[str, Path]]) -> None:
    _, paths = report
    tex = paths["summary_tex"].read_text()
    assert tex.count(r"\begin{tabular}") == tex.count(r"\end{tabular}") == 4  # main + shift × 2
    for cmd in (r"\toprule", r"\midrule", r"\bottomrule", r"$\pm$", r"\textbf{"):
        assert cmd in tex
    header = " & ".join(["Method", "Seeds", *TABLE_HEADERS, "Time / run", "Converged"]) + r" \\"
    assert header in tex
    assert r"\textit{G-DML (paper)}" in tex
    assert r"\_" not in tex.split(r"\begin{tabular}")[1].split(r"\end{tabular}")[0]  # no raw labels


def test_html_is_self_contained(report: tuple[Path, dict[str, Path]]) -> None:
    _, paths = report
    page = paths["report_html"].read_text()
    assert page.count("data:image/png;base64,") == 9  # bars + 4 figures per data set
    assert not re.search(r'(src|href)="(?!data:)', page), "external resource in the page"
    assert "<table>" in page and "G-DML (paper)" in page and "under covariate shift" in page


def test_single_seed_gives_na_not_a_crash(tmp_path: Path) -> None:
    make_benchmark(tmp_path, datasets=("cifar10",), methods=("gdml", "triplet"), seeds=(0,),
                   shift=False)
    paths = write_report(tmp_path)
    summary = read_csv(paths["summary_csv"])
    assert all(s["recall@1_ci"] == "" and s["n"] == "1" for s in summary)
    rows = _md_sections(paths["summary_md"].read_text())["CIFAR-10"]
    ours = [r for r in rows if "(paper)" not in r[0]]
    assert all(c.strip("*").endswith("± n/a") for r in ours for c in r[2:7])
    assert "shift_cifar10_png" not in paths and "shift_csv" not in paths


def test_no_finished_runs_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "runs" / "mnist" / "gdml" / "seed-0").mkdir(parents=True)
    with pytest.raises(DataError, match="no finished runs"):
        write_report(tmp_path)


@pytest.mark.skipif(not METHODS_MD.is_file(), reason="../shared/spec/METHODS.md is not present")
def test_paper_table_matches_the_spec() -> None:
    names = {"MNIST": "mnist", "Fashion-MNIST": "fashion-mnist", "CIFAR-10": "cifar10"}
    methods = {"Siamese": "siamese", "Triplet": "triplet", "Margin": "margin",
               "MultiSim": "multisim", "G-DML": "gdml"}
    seen = 0
    for line in METHODS_MD.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 7 or cells[0] not in names or cells[1] not in methods:
            continue
        pairs = [tuple(map(float, c.split("±"))) for c in cells[2:]]
        ds, m = names[cells[0]], methods[cells[1]]
        assert [PAPER_RESULTS[ds][m][k] for k in TABLE_METRICS] == pytest.approx([p[0] for p in pairs])
        assert [PAPER_CI[ds][m][k] for k in TABLE_METRICS] == pytest.approx([p[1] for p in pairs])
        seen += 1
    assert seen == 15


def test_a_paper_cell_can_be_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A published row with only some metrics (or no CI) shows "–" in the others, in every
    format, and a table column the paper has no number for is no error either."""
    monkeypatch.setitem(PAPER_RESULTS["mnist"], "triplet", {"recall@1": 97.71, "nmi": 90.98})
    monkeypatch.setitem(PAPER_CI["mnist"], "triplet", {"recall@1": 0.10})  # no CI for NMI
    monkeypatch.setitem(PAPER_RESULTS, "toyset", {"gdml": {"map@r": 50.0}})  # no CI at all
    monkeypatch.setattr(report_tables, "TABLE_METRICS", (*TABLE_METRICS, "recall@2"))
    monkeypatch.setattr(report_tables, "TABLE_HEADERS", (*TABLE_HEADERS, "R@2"))
    make_benchmark(tmp_path, datasets=("mnist", "toyset"), methods=("triplet", "gdml"),
                   seeds=(0, 1), shift=False)
    paths = write_report(tmp_path)
    sections = _md_sections(paths["summary_md"].read_text())
    rows = {r[0]: r for r in sections["MNIST"]}
    # Method, Seeds, R@1, F1, NMI, RP, MAP@R, R@2, Time, Converged
    assert rows["Triplet (paper)"][2:8] == ["97.71 ± 0.10", "–", "90.98", "–", "–", "–"]
    assert rows["G-DML (paper)"][2:8] == ["99.00 ± 0.18", "99.00 ± 0.18", "92.08 ± 1.80",
                                          "98.56 ± 0.80", "98.38 ± 1.00", "–"]
    assert " ± " in rows["G-DML"][7]  # our own R@2 in the new column
    toy = {r[0]: r for r in sections["toyset"]}
    assert toy["G-DML (paper)"][2:8] == ["–", "–", "–", "–", "50.00", "–"]
    tex = paths["summary_tex"].read_text()
    assert r"\textit{Triplet (paper)} & \textit{10} & \textit{97.71 $\pm$ 0.10} & \textit{--}" in tex
    page = paths["report_html"].read_text()
    assert "<td>Triplet (paper)</td><td>10</td><td>97.71 ± 0.10</td><td>–</td>" in page
    assert "recall_at_1_png" in paths  # the paper's marker is drawn only where it has R@1


def _tiny_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), "white").save(buf, format="PNG")
    return buf.getvalue()


def test_the_figure_list_drives_the_files_and_the_page(report: tuple[Path, dict[str, Path]]) -> None:
    """Every entry of FIGURES is a written file and an image on the page, in its place."""
    _, paths = report
    page = paths["report_html"].read_text()
    pngs = {k for k in paths if k.endswith("_png")}
    listed = set()
    for fig in FIGURES:
        for ds in ("mnist", "toyset") if fig.per_dataset else (None,):
            key = fig.file(ds).replace(".", "_")
            listed.add(key)
            assert key in paths, key
            assert f'<img alt="{fig.alt_text(ds)}" src="data:image/png;base64,' in page, key
    assert listed == pngs  # nothing is drawn that the list does not name
    assert page.count("data:image/png;base64,") == len(pngs)
    # In the page's order: the top figure before the first table, a data set's after its table.
    first_table = page.index("<table>")
    top = next(f for f in FIGURES if f.place == "top")
    assert page.index(f'alt="{top.alt_text()}"') < first_table
    per_ds = [f for f in FIGURES if f.place == "dataset"]
    at = [page.index(f'alt="{f.alt_text("mnist")}"') for f in per_ds]
    assert at == sorted(at) and at[0] > page.index("<h2>MNIST</h2>")


def test_a_new_figure_is_one_list_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    png = _tiny_png()
    extra = (Figure("extra_{dataset}.png", "{name} extra figure", lambda data, ds: png),
             Figure("overview.png", "an overview", lambda data, ds: png, place="top"),
             Figure("never_{dataset}.png", "{name} nothing", lambda data, ds: None))
    monkeypatch.setattr(report_figures, "FIGURES", (*FIGURES, *extra))
    make_benchmark(tmp_path, datasets=("mnist",), methods=("gdml",), seeds=(0,), shift=False)
    paths = write_report(tmp_path)
    assert paths["extra_mnist_png"].read_bytes() == png and paths["overview_png"].is_file()
    assert "never_mnist_png" not in paths and not (tmp_path / "never_mnist.png").exists()
    page = paths["report_html"].read_text()
    assert 'alt="MNIST extra figure"' in page and 'alt="an overview"' in page
    assert 'alt="MNIST nothing"' not in page


def test_long_tailed_variants_get_a_sub_population_table(tmp_path: Path) -> None:
    make_benchmark(tmp_path, datasets=("mnist-imb10", "toyset", "mnist"), methods=("triplet", "gdml"),
                   seeds=(0, 1), shift=False)
    assert [r["dataset"] for r in collect_runs(tmp_path)][::4] == ["mnist", "mnist-imb10", "toyset"]
    paths = write_report(tmp_path)
    md = paths["summary_md"].read_text()
    sections = _md_sections(md)
    assert list(sections) == ["MNIST", "MNIST, long-tailed ×10", "toyset", "MNIST: sub-population shift"]
    assert not any("(paper)" in r[0] for r in sections["MNIST, long-tailed ×10"])
    summary = {(s["dataset"], s["method"]): float(s["recall@1_mean"])
               for s in read_csv(paths["summary_csv"])}
    table = sections["MNIST: sub-population shift"]
    assert [r[0] for r in table] == ["Triplet", "G-DML"]
    for row, m in zip(table, ("triplet", "gdml"), strict=True):
        delta = summary[("mnist-imb10", m)] - summary[("mnist", m)]
        assert row[3].strip("*") == f"{delta:.2f}"
    assert "sub-population shift" in paths["report_html"].read_text()
    assert r"\label{tab:mnist-imbalance}" in paths["summary_tex"].read_text()


def test_error_extent_clips_to_the_scale_and_skips_single_seeds():
    from guided_dml.experiments.report import error_extent

    assert error_extent(50.0, 3.0) == (3.0, 3.0)
    assert error_extent(95.0, 12.0) == (12.0, 5.0)  # two seeds: t = 12.7 overshoots 100
    assert error_extent(4.0, 12.0) == (4.0, 12.0)
    down, up = error_extent(40.0, math.nan)  # one seed: no interval, no bar
    assert math.isnan(down) and math.isnan(up)


# ---------------------------------------------------------------------------- paired comparisons


def test_comparison_pairs_mdr_against_its_base_then_gdml_against_each_baseline() -> None:
    methods = ["margin+mdr", "gdml", "triplet+mdr", "siamese", "gdml+mdr", "triplet"]
    assert comparison_pairs(methods) == [
        ("triplet+mdr", "triplet"), ("gdml+mdr", "gdml"),  # margin+mdr: no margin to compare with
        ("gdml", "siamese"), ("gdml", "triplet"),
    ]
    assert comparison_pairs(["triplet", "siamese"]) == []


def test_paired_differences_equal_scipy_paired_t_on_the_shared_seeds(tmp_path: Path) -> None:
    make_benchmark(tmp_path, datasets=("mnist",), methods=("triplet", "gdml"), seeds=(0, 1, 2, 3))
    make_benchmark(tmp_path, datasets=("mnist",), methods=("triplet+mdr",), seeds=(1, 2, 4))
    runs = collect_runs(tmp_path)
    rows = {(r["method"], r["reference"]): r for r in paired_comparisons(runs)}
    assert set(rows) == {("triplet+mdr", "triplet"), ("gdml", "triplet")}

    def metric(method: str, seed: int, name: str) -> float:
        path = tmp_path / "runs" / "mnist" / method / f"seed-{seed}" / "metrics.json"
        return 100 * json.loads(path.read_text())[name]

    for (method, ref), seeds in ((("triplet+mdr", "triplet"), [1, 2]), (("gdml", "triplet"), [0, 1, 2, 3])):
        row = rows[(method, ref)]
        assert row["seeds"] == " ".join(map(str, seeds)) and row["n"] == len(seeds)
        for name in ("recall@1", "map@r"):
            a = np.array([metric(method, s, name) for s in seeds])
            b = np.array([metric(ref, s, name) for s in seeds])
            test = stats.ttest_rel(a, b)
            lo, hi = test.confidence_interval(0.95)
            assert row[f"{name}_diff_mean"] == pytest.approx((a - b).mean())
            assert row[f"{name}_diff_ci"] == pytest.approx((hi - lo) / 2)
            assert [float(x) for x in row[f"{name}_per_seed"].split()] == pytest.approx(a - b, abs=0.006)
        diffs = [metric(method, s, "recall@1") - metric(ref, s, "recall@1") for s in seeds]
        assert row["wins"] == sum(d > 0 for d in diffs)
        assert "robustness_auc_diff_mean" in row  # the fake runs have shift.json


def test_paired_table_in_summary_html_and_csv(report: tuple[Path, dict[str, Path]]) -> None:
    out, paths = report
    expected = paired_comparisons(collect_runs(out))
    csv_rows = read_csv(paths["paired_csv"])
    assert [(r["dataset"], r["method"], r["reference"]) for r in csv_rows] == [
        (r["dataset"], r["method"], r["reference"]) for r in expected]
    for got, want in zip(csv_rows, expected, strict=True):
        assert float(got["recall@1_diff_mean"]) == pytest.approx(want["recall@1_diff_mean"])
        assert float(got["recall@1_diff_ci"]) == pytest.approx(want["recall@1_diff_ci"])
    md = paths["summary_md"].read_text()
    block = md.split("### MNIST: paired comparisons (same seeds)")[1].split("\n## ")[0]
    table = [line for line in block.splitlines() if line.startswith("| ")][1:]
    assert [line.split("|")[1].strip() for line in table] == ["Triplet + MDR vs Triplet", "G-DML vs Triplet"]
    want = next(r for r in expected if r["dataset"] == "mnist" and r["method"] == "gdml")
    cells = [c.strip() for c in table[1].strip("|").split("|")]
    sign = "+" if want["recall@1_diff_mean"] > 0 else ""
    assert cells[3] == f"{sign}{want['recall@1_diff_mean']:.2f} ± {want['recall@1_diff_ci']:.2f}"
    assert cells[2] == f"{want['wins']}/3" and cells[-1] == want["recall@1_per_seed"]
    assert "MNIST: paired comparisons (same seeds)" in paths["report_html"].read_text()


# ---------------------------------------------------------------------------- included results


def _csv_by_key(path: Path, key: tuple[str, ...]) -> dict[tuple, dict[str, str]]:
    return {tuple(r[k] for k in key): r for r in read_csv(path)}


def test_a_grid_split_in_two_reports_exactly_like_one_folder(tmp_path: Path) -> None:
    """Seeds 0-1 run here, seed 2 elsewhere (only its CSVs left): the same tables as one grid."""
    methods = ("triplet", "gdml", "triplet+mdr")
    whole = make_benchmark(tmp_path / "whole", datasets=("mnist",), methods=methods)
    elsewhere = make_benchmark(tmp_path / "elsewhere", datasets=("mnist",), methods=methods,
                               seeds=(2,))
    write_report(whole)
    write_report(elsewhere)
    for f in (elsewhere / "runs").rglob("*"):  # the folders are gone, the record stays
        if f.is_file():
            f.unlink()
    here = make_benchmark(tmp_path / "here", datasets=("mnist",), methods=methods, seeds=(0, 1))
    paths = write_report(here, include=[elsewhere])

    key = ("dataset", "method")
    got, want = _csv_by_key(paths["summary_csv"], key), _csv_by_key(whole / "summary.csv", key)
    assert got.keys() == want.keys()
    for k, row in want.items():
        for col, value in row.items():
            if col in ("dataset", "method", "seeds"):
                continue
            assert float(got[k][col]) == pytest.approx(float(value), rel=1e-12, abs=1e-12), (k, col)
        assert got[k]["seeds"] == "0 1 2"
    skey = ("dataset", "method", "corruption", "severity")
    got_s, want_s = _csv_by_key(here / "shift.csv", skey), _csv_by_key(whole / "shift.csv", skey)
    assert got_s.keys() == want_s.keys()
    for k, row in want_s.items():
        assert float(got_s[k]["recall@1_mean"]) == pytest.approx(float(row["recall@1_mean"]))
        assert float(got_s[k]["recall@1_ci"]) == pytest.approx(float(row["recall@1_ci"]))
    pkey = ("dataset", "method", "reference")
    got_p, want_p = _csv_by_key(here / "paired.csv", pkey), _csv_by_key(whole / "paired.csv", pkey)
    assert {k: r["recall@1_per_seed"] for k, r in got_p.items()} == \
        {k: r["recall@1_per_seed"] for k, r in want_p.items()}

    runs = read_csv(here / "runs.csv")
    assert len(runs) == 9 and len(read_csv(here / "shift_runs.csv")) == 9 * 11
    imported = [r for r in runs if r["seed"] == "2"]
    assert all(r["source"] == str(elsewhere / "runs.csv") for r in imported)
    assert all(r["source"] == "" for r in runs if r["seed"] != "2")
    assert "3 of them included from" in paths["report_html"].read_text()
    assert "embeddings_mnist_png" in paths  # drawn from the runs that are here

    # The merged folder is itself a complete record: including it again changes nothing.
    again = tmp_path / "again"
    again.mkdir()
    write_report(again, include=[here])
    assert _csv_by_key(again / "summary.csv", key).keys() == want.keys()
    assert read_csv(again / "runs.csv") == [
        {**r, "source": r["source"] or str(here / "runs.csv")} for r in runs]


def test_a_local_run_wins_over_an_included_copy_of_it(tmp_path: Path) -> None:
    other = make_benchmark(tmp_path / "other", datasets=("mnist",), methods=("gdml",), seeds=(0,))
    write_report(other)
    with (other / "runs.csv").open() as f:
        rows = list(csv.DictReader(f))
    rows[0]["recall@1"] = "0.123"  # a different result for the same (data set, method, seed)
    with (other / "runs.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    here = make_benchmark(tmp_path / "here", datasets=("mnist",), methods=("gdml",), seeds=(0,))
    write_report(here, include=[other])
    (row,) = read_csv(here / "runs.csv")
    assert "source" not in row and float(row["recall@1"]) != 0.123  # nothing was included


def test_included_shift_summary_is_the_fallback_for_runs_without_shift_rows(tmp_path: Path) -> None:
    """Results written before shift_runs.csv existed keep their shift table."""
    old = make_benchmark(tmp_path / "old", datasets=("mnist",), methods=("gdml", "triplet"))
    write_report(old)
    (old / "shift_runs.csv").unlink()
    want = read_csv(old / "shift.csv")
    here = make_benchmark(tmp_path / "here", datasets=("toyset",), methods=("gdml",), seeds=(0,))
    write_report(here, include=[old / "runs.csv", old])  # twice: its rows count once
    got = read_csv(here / "shift.csv")
    assert [r for r in got if r["dataset"] == "mnist"] == want
    assert {r["dataset"] for r in got} == {"mnist", "toyset"}
    assert "mnist" in (here / "summary.md").read_text().lower()


@pytest.mark.parametrize("content", [None, "", "a,b\n1,2\n"])
def test_a_bad_include_is_a_clear_error(tmp_path: Path, content: str | None) -> None:
    bad = tmp_path / "runs.csv"
    if content is not None:
        bad.write_text(content)
    with pytest.raises(DataError, match="cannot include"):
        read_included(bad)


def test_gdml_report_rebuilds_a_folder_with_included_results(tmp_path: Path, capsys) -> None:
    from guided_dml.cli import main

    here = make_benchmark(tmp_path / "here", datasets=("mnist",), methods=("gdml",), seeds=(0,))
    other = make_benchmark(tmp_path / "other", datasets=("mnist",), methods=("gdml",), seeds=(1,))
    write_report(other)
    assert main(["report", str(here), "--include", str(other)]) == 0
    assert "| G-DML | 2 |" in capsys.readouterr().out  # two seeds in the printed table
    assert [r["seed"] for r in read_csv(here / "runs.csv")] == ["0", "1"]

    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert not (tmp_path / "nowhere").exists()
    assert main(["report", str(here), "--include", str(tmp_path / "nowhere")]) == 2
    assert "cannot include" in capsys.readouterr().err


def test_runs_csv_records_the_thread_count(tmp_path: Path) -> None:
    """Threads change a run's numbers: runs.csv says how many, from metrics.json or config.json."""
    out = make_benchmark(tmp_path, datasets=("mnist",), methods=("gdml",), seeds=(0, 1, 2))
    (out / "runs/mnist/gdml/seed-0/config.json").write_text(json.dumps({"threads": 2}))
    m1 = out / "runs/mnist/gdml/seed-1/metrics.json"
    m1.write_text(json.dumps({**json.loads(m1.read_text()), "threads": 1}))
    write_report(out)
    assert [r["threads"] for r in read_csv(out / "runs.csv")] == ["2", "1", ""]


# ---------------------------------------------------------------------------- references, convergence


def _with_convergence(out: Path, flags: dict[tuple[str, int], bool]) -> None:
    """Mark runs as converged or not in their metrics.json, as the runner records it."""
    for (method, seed), flag in flags.items():
        path = out / "runs" / "mnist" / method / f"seed-{seed}" / "metrics.json"
        m = json.loads(path.read_text())
        m.update(converged=flag, val_gain_last_third=0.001 if flag else 0.02)
        path.write_text(json.dumps(m))


def test_converged_column_counts_the_runs_that_converged(tmp_path: Path) -> None:
    out = make_benchmark(tmp_path, datasets=("mnist",), methods=("triplet", "gdml"))
    _with_convergence(out, {("gdml", 0): True, ("gdml", 1): False, ("gdml", 2): True,
                            ("triplet", 0): True})  # triplet 1, 2: recorded nothing
    paths = write_report(out)
    summary = {s["method"]: s for s in read_csv(paths["summary_csv"])}
    assert (summary["gdml"]["converged"], summary["gdml"]["n_convergence"]) == ("2", "3")
    assert (summary["triplet"]["converged"], summary["triplet"]["n_convergence"]) == ("1", "1")
    rows = {r[0]: r for r in _md_sections(paths["summary_md"].read_text())["MNIST"]}
    assert rows["G-DML"][-1] == "2/3" and rows["Triplet"][-1] == "1/1"
    assert rows["G-DML (paper)"][-1] == "–"
    # runs.csv keeps the flag, and an included copy of it counts the same.
    again = write_report(tmp_path / "other", include=[out])
    assert {s["method"]: s["converged"] for s in read_csv(again["summary_csv"])} == \
        {"triplet": "1", "gdml": "2"}


def test_references_end_each_table_with_their_own_numbers(tmp_path: Path) -> None:
    out = make_benchmark(tmp_path / "bench", datasets=("mnist", "toyset"), methods=("gdml",))
    refs = [{"dataset": "mnist", "method": "umap-2d", "seed": 0, "recall@1": 0.9575,
             "f1": 0.9578, "precision@1": 0.9578, "r_precision": 0.9563, "map@r": 0.9541,
             "nmi": 0.9004, "wall_seconds": 173.1, "n_train": 60000, "n_test": 10000},
            {"dataset": "mnist", "method": "raw-1nn", "seed": 0, "recall@1": 0.9688,
             "f1": 0.9689, "precision@1": 0.9691, "r_precision": 0.4095, "map@r": 0.3012,
             "nmi": 0.4997, "wall_seconds": 25.8, "n_train": 60000, "n_test": 10000}]
    cols = list(refs[0])
    (out / "references.csv").write_text(
        ",".join(cols) + "\n" + "\n".join(",".join(str(r[c]) for c in cols) for r in refs) + "\n")
    paths = write_report(out)
    sections = _md_sections(paths["summary_md"].read_text())
    mnist = sections["MNIST"]
    # After ours and the paper's, raw pixels first, then UMAP; cells are the CSV's values in %.
    assert [r[0] for r in mnist[-2:]] == ["1-NN on raw pixels (reference)",
                                          "Supervised UMAP 2-D (reference)"]
    raw = mnist[-2]
    assert raw[1] == "1" and raw[2:7] == ["96.88", "96.89", "49.97", "40.95", "30.12"]
    assert "**" not in "".join(raw)  # bold is the best of *our* runs only
    assert not any("reference" in r[0] for r in sections["toyset"])  # no rows for that data set
    assert "(reference)" in paths["summary_tex"].read_text()
    page = paths["report_html"].read_text()
    assert '<tr class="reference">' in page and "Supervised UMAP 2-D (reference)" in page
    # A report that includes this folder carries its references along.
    again = write_report(tmp_path / "merged", include=[out])
    assert read_csv(again["references_csv"]) == read_csv(out / "references.csv")


def test_the_curves_show_the_teacher_the_student_learnt_from() -> None:
    from guided_dml.experiments.report.figures import _kept_teacher

    first = [{"phase": "teacher", "epoch": e, "train_loss": 0.2} for e in (1, 2)]
    restart = [{"phase": "teacher-restart-1", "epoch": e, "train_loss": 0.03} for e in (1, 2)]
    student = [{"phase": "student", "epoch": 1, "train_loss": 1.0}]
    assert _kept_teacher([*first, *student]) == first  # no restarts
    first[-1]["kept"], restart[-1]["kept"] = False, True
    assert _kept_teacher([*first, *restart, *student]) == restart
    first[-1]["kept"], restart[-1]["kept"] = True, False
    assert _kept_teacher([*first, *restart, *student]) == first
    assert _kept_teacher(student) == []  # a baseline

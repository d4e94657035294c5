"""``gdml``: the command line. Argument parsing only; every command is one library call."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .errors import ConfigError, DataError, GdmlError
from .methods import method_names
from .validation import Rule, arg_type

# Idle OpenMP threads sleep instead of spinning. Set before torch loads its OpenMP runtime (this
# module imports no torch; commands import it lazily). Measured on 2 cores shared with another
# job: a GEMINI epoch on digits took 19.7 s with the default (spinning) policy and 5.3 s with
# PASSIVE. A user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# The flags shared by `train` and `benchmark` are generated from the RunConfig fields made with
# `config.setting` (name, type, help): a new setting is one line in config.py. The default of
# every such flag is None = "not given": the preset decides.
_SKIP_BAD_HELP = "leave out unreadable images (with a note)"
_SWITCHES = ("skip_bad",)  # bool settings given as a bare switch (--skip-bad), not true/false


# Flags parse their text strictly (validation.arg_type: "2.5" is not an integer); the ranges of
# the RunConfig settings are checked by resolve_config, with the same rules as config files.
_bool_flag = arg_type(Rule(bool))
_int = arg_type(Rule(int))
_float = arg_type(Rule(float))
_count = arg_type(Rule(int, low=1))  # flags of the commands themselves: --workers, --k, ...


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line: what is wrong, and where the help is.

    argparse prints the whole usage (~20 lines for ``train``) before the one line that matters.
    """

    def error(self, message: str) -> Any:
        command = self.prog.partition(" ")[2]  # "gdml train" -> "train"
        where = f"{command}: " if command else ""
        raise _UsageError(f"gdml: error: {where}{_one_line(message)} (see {self.prog} --help)")


class _UsageError(Exception):
    """A command line argparse cannot parse; main() prints it and returns 2 (no SystemExit)."""


def _add_common(p: argparse.ArgumentParser) -> None:
    """The RunConfig settings as flags (config.flag_settings), then --config."""
    from .experiments.config import flag_name, flag_settings, setting_types

    rules = setting_types()
    for name, help_ in flag_settings().items():
        rule = rules[name]
        if name in _SWITCHES:
            p.add_argument(flag_name(name), action="store_true", default=None, help=help_)
            continue
        # Only the type is parsed here; ranges and choices are checked by resolve_config, with
        # the same rules (and messages) as config files and estimator parameters.
        p.add_argument(flag_name(name), type=arg_type(Rule(rule.kind, item=rule.item)), help=help_)
    p.add_argument("--config", help="JSON or TOML file of settings (between preset and flags)")


def _overrides(args: argparse.Namespace, skip: Sequence[str] = ()) -> dict[str, Any]:
    """The RunConfig settings given as flags (None: not given)."""
    from .experiments.config import flag_settings

    return {n: getattr(args, n) for n in flag_settings() if n not in skip}


def _add_cache_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cache-dir", metavar="DIR",
                   help="where decoded image folders are cached (default: $GDML_CACHE, else "
                        "~/.cache/guided-dml/decoded); 'off' disables the cache")


def _add_verbosity(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("-q", "--quiet", action="store_true",
                   help="only errors on stderr: no progress, notes or status lines")
    g.add_argument("-v", "--verbose", action="store_true",
                   help="more on stderr: the library's log messages")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="gdml",
        description="Guided Deep Metric Learning: GEMINI teacher, guided student, DML baselines, MDR.",
    )
    parser.add_argument("--version", action="version", version=f"gdml (guided-dml) {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train one method on one data set and evaluate it")
    t.add_argument("--method", default="gdml",
                   help=f"{' | '.join(method_names())} (default: gdml)")
    t.add_argument("--dataset", default="digits",
                   help="digits | mnist | fashion-mnist | cifar10 | path of an image folder/archive")
    t.add_argument("--mdr", type=_float, help="add MDR with this λ (e.g. 0.2)")
    t.add_argument("--seed", type=_int, default=0)
    t.add_argument("--out", help="run folder (default: runs/DATASET/METHOD/seed-N)")
    t.add_argument("--resume", action="store_true", help="continue an interrupted run")
    t.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    t.add_argument("--progress", type=_bool_flag, help="progress bars (default: on a terminal)")
    t.add_argument("--nproc", type=_int,
                   help="data-parallel processes on this machine: starts torchrun for you "
                        "(--batch-size stays the global batch)")
    _add_common(t)
    t.set_defaults(func=cmd_train)

    b = sub.add_parser(
        "benchmark",
        help="every (data set, method, seed): the paper's tables and figures (resumable)",
        description="With no arguments: the bundled digits, every method, 3 seeds, offline.",
    )
    b.add_argument("--datasets", nargs="+", default=["digits"], metavar="NAME",
                   help="data sets (default: digits)")
    b.add_argument("--methods", nargs="+", default=None, metavar="METHOD",
                   help=f"methods (default: all of {' '.join(method_names())})")
    b.add_argument("--mdr", type=_float, help="also run METHOD+mdr with this λ")
    b.add_argument("--mdr-methods", nargs="+", default=["triplet", "gdml"], metavar="METHOD",
                   help="methods that get an +mdr variant (default: triplet gdml)")
    b.add_argument("--seeds", default="3",
                   help="a count N for seeds 0..N-1 (default: 3), or the seeds themselves: "
                        "1,2 or 3-9 (to continue a grid begun elsewhere)")
    b.add_argument("--out", default="results/benchmark", help="output folder")
    b.add_argument("--include", nargs="+", default=[], metavar="RESULTS",
                   help="earlier results (the folder or runs.csv of another benchmark, e.g. "
                        "seeds run on another machine): runs they hold with the same settings "
                        "are not run again, and the report covers both")
    b.add_argument("--method-settings", metavar="FILE",
                   help="JSON {method: {setting: value}}: per-method settings over the preset's "
                        "(e.g. a tuning study's winners: scripts/tune_preset.py --winners); "
                        "flags still win")
    b.add_argument("--workers", type=_count, default=1, help="runs in parallel processes")
    b.add_argument("--shift", action="store_true", help="also evaluate under covariate shift")
    b.add_argument("--references", action="store_true",
                   help="also score 1-NN on raw pixels and supervised UMAP 2-D (umap-learn) "
                        "into OUT/references.csv")
    b.add_argument("--shift-max-test", type=_count, default=2000,
                   help="test images per corruption and severity (default: 2000)")
    b.add_argument("--imbalance-variants", nargs="+", type=arg_type(Rule(float, low=1.0)), default=[],
                   metavar="RATIO",
                   help="also train on long-tailed copies of each data set (sub-population shift)")
    b.add_argument("--progress", type=_bool_flag, help="progress bars (default: on a terminal)")
    _add_common(b)
    b.set_defaults(func=cmd_benchmark)

    r = sub.add_parser(
        "report", help="rebuild a benchmark's tables and figures (no training)",
        description="Rewrite the report of a benchmark output folder from its finished runs, "
                    "with --include adding the results of other benchmark folders (seeds run on "
                    "another machine or in another session). Nothing is trained.",
    )
    r.add_argument("out", metavar="OUT", help="the benchmark's output folder (written into)")
    r.add_argument("--include", nargs="+", default=[], metavar="RESULTS",
                   help="other benchmarks' folders (or runs.csv) to report with OUT's runs")
    r.set_defaults(func=cmd_report)
    _add_practitioner_commands(sub)
    for name, command in sub.choices.items():
        _add_verbosity(command)
        if name in ("train", "benchmark", "search", "index", "plot"):
            _add_cache_dir(command)
    return parser


# ---------------------------------------------------------------- using a trained model
_MODEL_HELP = "a run folder, its model.pt, or a file saved by GuidedEmbedder.save"


def _add_practitioner_commands(sub: Any) -> None:
    """``embed``, ``search``, ``plot`` and ``export``: what a practitioner does with a model."""
    e = sub.add_parser(
        "embed", help="embeddings of images or a .npy array, to .npy or .csv",
        description="Embed image files, folders (recursively) and .tar/.tar.gz/.zip archives, or "
                    "one .npy array, with a trained model. Images are resized and converted to "
                    "the model's input like the training images were.",
    )
    e.add_argument("model", metavar="MODEL", help=_MODEL_HELP)
    e.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders, archives, or a .npy")
    e.add_argument("--out", required=True,
                   help="FILE.npy (N×d float32) or FILE.csv (file, label = folder, e0, e1, ...)")
    e.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    e.add_argument("--skip-bad", action="store_true", help=_SKIP_BAD_HELP)
    e.set_defaults(func=cmd_embed)

    s = sub.add_parser(
        "search", help="the nearest training (or gallery) images of query images",
        description="The k nearest training samples (or --gallery items) of each query in the "
                    "embedding, with their Euclidean distances, labels and files.",
    )
    s.add_argument("model", metavar="MODEL", help=_MODEL_HELP)
    s.add_argument("queries", nargs="+", metavar="QUERY",
                   help="query images (files, folders, archives) or a .npy array")
    s.add_argument("--k", type=_count, default=10, help="neighbours per query (default: 10)")
    s.add_argument("--json", action="store_true", help="print JSON for machines")
    s.add_argument("--skip-bad", action="store_true", help=_SKIP_BAD_HELP)
    s.add_argument("--gallery", nargs="+", metavar="GALLERY",
                   help="search these instead of the training set: image folders, archives or "
                        "files (labels = their folders; embedded once, then cached), or a CSV "
                        "from `gdml embed`")
    s.add_argument("--vote", action="store_true",
                   help="also the label most of the k neighbours have, with its share")
    s.set_defaults(func=cmd_search)

    ix = sub.add_parser(
        "index", help="export a searchable index (faiss or .npz) with labels and files",
        description="Write the training set's (or a --gallery's) embeddings as an index that "
                    "another service loads without guided-dml: FILE.npz (numpy: embeddings, "
                    "labels, files) or a faiss IndexFlatL2 FILE with FILE.json (labels, files) "
                    "beside it. Queries are embedded with the exported model (gdml export).",
    )
    ix.add_argument("model", metavar="MODEL", help=_MODEL_HELP)
    ix.add_argument("--out", required=True, help="FILE.npz, or a faiss index file (e.g. FILE.faiss)")
    ix.add_argument("--gallery", nargs="+", metavar="GALLERY",
                    help="index these instead of the training set (as for search)")
    ix.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    ix.add_argument("--skip-bad", action="store_true", help=_SKIP_BAD_HELP)
    ix.set_defaults(func=cmd_index)

    pl = sub.add_parser(
        "plot", help="the 2-D map as PNG and as an interactive HTML page",
        description="Draw a run folder's test embeddings, or an embeddings file (.csv from gdml "
                    "embed, .npz, .npy), as OUT.png and a self-contained OUT.html that shows each "
                    "point's thumbnail and label on hover.",
    )
    pl.add_argument("source", metavar="RUN_OR_EMBEDDINGS", help="run folder, or .csv/.npz/.npy file")
    pl.add_argument("--out", help="output path without suffix (default: RUN/map, or beside the file)")
    pl.add_argument("--max-points", type=_count, default=3000,
                    help="points in the HTML page, a random subsample (default: 3000)")
    pl.add_argument("--data-dir", help="where a run's data set is, for its thumbnails")
    pl.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    pl.set_defaults(func=cmd_plot)

    x = sub.add_parser(
        "export", help="the student as TorchScript or ONNX, checked against the model",
        description="Export the student network (input standardisation included: it takes float "
                    "pixels / 255) and check that the exported file gives the same embeddings.",
    )
    x.add_argument("model", metavar="MODEL", help=_MODEL_HELP)
    x.add_argument("--format", choices=("torchscript", "onnx"), default="torchscript",
                   help="torchscript (default) or onnx (needs: pip install 'guided-dml[export]')")
    x.add_argument("--out", help="output file (default: model.torchscript.pt / model.onnx beside MODEL)")
    x.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    x.set_defaults(func=cmd_export)


# -q: only errors on stderr; -v: library log messages too (set by main()).
_VERBOSITY = {"level": 0}


def _info(message: str) -> None:
    """A status line on stderr (results go to stdout), unless -q."""
    if _VERBOSITY["level"] >= 0:
        print(message, file=sys.stderr)


def _notes(notes: Sequence[str]) -> None:
    for note in notes:
        _info(f"gdml: note: {note}")


def _progress() -> bool | None:
    """embed, search, index, plot: progress on large inputs (a bar on a terminal, lines off
    one; guided_dml.progress), none with -q."""
    return False if _VERBOSITY["level"] < 0 else None


def cmd_embed(args: argparse.Namespace) -> int:
    from .commands.inference import embed_to_file

    res = embed_to_file(args.model, args.inputs, args.out, overwrite=args.overwrite,
                        skip_bad=args.skip_bad, progress=_progress())
    _notes(res["notes"])
    _info(f"wrote {res['count']} embeddings (d = {res['dim']}) to {res['out']}")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from .commands.inference import format_search, search

    res = search(args.model, args.queries, k=args.k, skip_bad=args.skip_bad,
                 gallery=args.gallery, vote=args.vote, progress=_progress())
    _notes(res["notes"])
    print(json.dumps(res["results"], indent=2) if args.json else format_search(res))
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    from .commands.gallery import export_index

    res = export_index(args.model, args.out, gallery=args.gallery, overwrite=args.overwrite,
                       skip_bad=args.skip_bad, progress=_progress())
    _notes(res["notes"])
    _info(f"wrote {' and '.join(res['out'])} ({res['format']}: {res['count']} items, d = {res['dim']})")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from .commands.maps import plot_map

    res = plot_map(args.source, args.out, overwrite=args.overwrite, max_points=args.max_points,
                   data_dir=args.data_dir, progress=_progress())
    _notes(res["notes"])
    _info(f"wrote {res['png']} ({res['points']} points) and {res['html']} ({res['html_points']} "
          f"points, {res['thumbnails']} thumbnails)")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .commands.export import export_model

    res = export_model(args.model, args.format, args.out, overwrite=args.overwrite)
    _info(f"wrote {res['out']} ({res['format']}; embeddings match the model to "
          f"{res['max_abs_diff']:.1e} on batches of {' and '.join(map(str, res['checked_batches']))})")
    return 0


def _one_line(exc: BaseException | str) -> str:
    """An error message on one line, whatever the library under it put in it."""
    return " ".join(str(exc).split()) or type(exc).__name__


def cmd_train(args: argparse.Namespace) -> int:
    from .experiments.config import resolve_config
    from .experiments.plan import planned_config
    from .experiments.run import COMPLETE_MARKER, run_experiment
    from .training import distributed

    overrides = _overrides(args)
    overrides.update(method=args.method, dataset=args.dataset, seed=args.seed, mdr=args.mdr,
                     progress=args.progress, nproc=args.nproc)
    cfg = resolve_config(overrides, args.config)
    if cfg.nproc > 1 and not distributed.launched_by_torchrun():
        # Run this same command line in nproc processes under torchrun.
        return distributed.launch(cfg.nproc, args.argv)
    # Image folders: the fit plan sizes what the flags leave unset (and loads the data now).
    cfg, splits, plan_note = planned_config(overrides, args.config)
    if plan_note and distributed.is_main():
        _info(f"gdml: note: {plan_note}")
    default_out = Path("runs") / cfg.dataset_label / cfg.method_label / f"seed-{cfg.seed}"
    out = Path(args.out) if args.out else default_out
    finished_before = (out / COMPLETE_MARKER).is_file() and not args.overwrite
    metrics = run_experiment(cfg, out, resume=args.resume, overwrite=args.overwrite, splits=splits)
    if not distributed.is_main():
        return 0  # rank 0 reports
    if finished_before:
        _info(f"gdml: note: {out} holds a finished run of these settings: nothing was trained, "
              "these are its metrics (--overwrite trains again)")
    keys = ("recall@1", "f1", "nmi", "r_precision", "map@r")
    print(json.dumps({k: round(metrics[k], 4) for k in keys if k in metrics}))
    _info(f"run folder: {out}")
    return 0


def _method_settings(path: str | None) -> dict[str, dict[str, Any]]:
    """``--method-settings FILE``: a JSON object of method -> settings object (checked here for
    its shape; the settings themselves are checked with every run's config)."""
    if path is None:
        return {}
    try:
        value = json.loads(Path(path).expanduser().read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"--method-settings {path}: cannot read it as JSON ({exc})") from exc
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise ConfigError(f"--method-settings {path}: expected {{method: {{setting: value}}}}, "
                          'e.g. {"triplet": {"lr": 0.02, "margin": 0.2}}')
    return value


def cmd_benchmark(args: argparse.Namespace) -> int:
    from .experiments.benchmark import BenchmarkSpec, parse_seeds, plan, run_benchmark

    spec = BenchmarkSpec(
        datasets=args.datasets,
        methods=args.methods or list(method_names()),
        seeds=parse_seeds(args.seeds),
        preset=args.preset or "cpu",
        out=args.out,
        mdr=args.mdr,
        mdr_methods=args.mdr_methods,
        workers=args.workers,
        shift=args.shift,
        shift_max_test=args.shift_max_test,
        imbalance=args.imbalance_variants,
        overrides=_overrides(args, skip=("preset",)),
        method_settings=_method_settings(args.method_settings),
        config_file=args.config,
        progress=args.progress,
        include=args.include,
    )
    runs = plan(spec)  # every setting of every run checked before anything is computed or written
    if args.references:
        from .experiments.references import run_references

        path = run_references(list(args.datasets), args.out, data_dir=args.data_dir,
                              split=args.split or "closed", train_classes=args.train_classes)
        _info(f"references: {path}")
    res = run_benchmark(spec, runs)
    _info(f"{res['runs']} runs: {res['skipped']} already done, {res['ran']} run now, "
          f"{len(res['failed'])} failed")
    _print_report(res["report"])
    for f in res["failed"]:
        print(f"gdml: error: run {f['run_dir']} failed: {f['error']} (see error.txt there)",
              file=sys.stderr)
    return 1 if res["failed"] else 0


def cmd_report(args: argparse.Namespace) -> int:
    from .experiments.report import write_report

    out = Path(args.out)
    if not out.is_dir() and not args.include:
        raise DataError(f"{out} is not a benchmark output folder (no such folder)")
    out.mkdir(parents=True, exist_ok=True)
    _print_report(write_report(out, include=args.include))
    return 0


def _print_report(paths: dict[str, Any]) -> None:
    """Where the report is (stderr) and its tables (stdout), after a benchmark or a report."""
    for name in ("summary_md", "report_html"):
        if name in paths:
            _info(f"{name.replace('_', '.')}: {paths[name]}")
    summary = Path(paths.get("summary_md", ""))
    if summary.is_file():
        print(summary.read_text())


def main(argv: Sequence[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # file names that are not UTF-8 print escaped
        if hasattr(stream, "reconfigure"):
            try:
                stream.reconfigure(errors="backslashreplace")
            except (ValueError, OSError):  # pragma: no cover - a closed or foreign stream
                pass
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as e:
        print(e, file=sys.stderr)
        return 2
    args.argv = list(sys.argv[1:] if argv is None else argv)  # `train --nproc` relaunches them
    _VERBOSITY["level"] = -1 if args.quiet else (1 if args.verbose else 0)
    if args.quiet and hasattr(args, "progress"):
        args.progress = False  # no bars, no per-epoch lines
    previous_cache = os.environ.get("GDML_CACHE")
    if getattr(args, "cache_dir", None):
        # The loaders read it (data/paths.py); benchmark workers and torchrun ranks inherit it.
        os.environ["GDML_CACHE"] = args.cache_dir
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="gdml: %(name)s: %(message)s")
    # SIGTERM (kill, job schedulers) stops like Ctrl-C: runs keep their finished epochs and a
    # parallel benchmark takes its worker processes down with it.
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main else None
    try:
        with warnings.catch_warnings():
            # The library warns (skipped images, per-process BatchNorm, ...); a command-line user
            # wants one readable line, not a source location.
            warnings.showwarning = _show_note
            return _run(args)
    finally:
        if in_main:  # main() called from Python (tests, notebooks) leaves the handler as it was
            signal.signal(signal.SIGTERM, previous)
        if previous_cache is None:  # ... and the environment
            os.environ.pop("GDML_CACHE", None)
        else:
            os.environ["GDML_CACHE"] = previous_cache


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so that it unwinds like a Ctrl-C."""


def _terminate(signum: int, frame: Any) -> None:
    raise _Terminated(f"signal {signum}")


def _show_note(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
    if int(os.environ.get("RANK", "0")) == 0:
        _info(f"gdml: note: {_one_line(message)}")


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args.func(args) or 0)
    except GdmlError as e:
        if args.debug:
            raise
        if int(os.environ.get("RANK", "0")) == 0:  # under torchrun every process has the error
            print(f"gdml: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except OSError as e:  # a file the commands did not expect to fail (disk, permissions)
        if args.debug:
            raise
        print(f"gdml: error: {_one_line(e)} (--debug shows where)", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        again = ("run the same command again to continue" if args.command == "benchmark"
                 else "use --resume to continue")
        print(f"gdml: interrupted; finished epochs are saved ({again})", file=sys.stderr)
        return 128 + (signal.SIGTERM if isinstance(e, _Terminated) else signal.SIGINT)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

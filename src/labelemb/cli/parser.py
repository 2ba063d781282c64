"""The `labelemb` command's parser: every command, its options and its help."""

from __future__ import annotations

import argparse
import difflib
import re
import typing
from pathlib import Path

from ..arguments import parse_names, parse_seeds, positive_int
from ..version import __version__
from .cache import add_cache
from .index import read_index
from .inspect_options import add_inspect_commands, add_set_options
from .judging_options import add_evaluate, add_shift
from .label_issues import add_label_issues


class _Parser(argparse.ArgumentParser):
    """argparse's parser, with a mistake reported in one line (and where to read the usage); a
    command or choice that is nearly one it knows gets a "did you mean"."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message}{_did_you_mean(message)} (see {self.prog} --help)\n")


def _did_you_mean(message: str) -> str:
    """``; did you mean 'train'?`` for argparse's "invalid choice: 'trian' (choose from ...)"."""
    found = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
    if found is None:
        return ""
    choices = re.findall(r"'([^']*)'", found.group(2)) or [c.strip() for c in found.group(2).split(",")]
    close = difflib.get_close_matches(found.group(1), choices, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


OVERRIDES_HELP = (
    "config overrides: train.epochs=3, model.hidden=[100], train.device=cpu; a bare key is a method "
    "option (tau=4)"
)
DEFAULT_SETTING = "(default: the digits demo setting)"  # without --config: labelemb.demo_config
NO_PROGRESS_HELP = "no progress bar (a bar is drawn only on a terminal; a log gets a line per evaluation)"
#: predict's: it evaluates nothing, it reads and classifies rows.
PREDICT_NO_PROGRESS_HELP = "no progress bar (a bar is drawn only on a terminal)"


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    """The options train and compare share."""
    parser.add_argument(
        "--data-dir",
        help="folder searched first for the dataset files (default $LABELEMB_DATA, then the cache "
        "~/.cache/labelemb, downloading there)",
    )
    parser.add_argument("--output-dir", help="root of the run folders (default runs/)")
    parser.add_argument("--device", help="auto (CUDA if there is one, the default), cpu, cuda or cuda:N, mps")
    parser.add_argument("--no-progress", action="store_true", help=NO_PROGRESS_HELP)


def _add_tracker_option(parser: argparse.ArgumentParser) -> None:
    """train's, compare's and tune's --log-to (train.log_to)."""
    parser.add_argument(
        "--log-to",
        type=parse_names,
        metavar="TRACKERS",
        help="also log every run to these experiment trackers: tensorboard,mlflow,trackio,wandb (each an "
        'extra: pip install "labelemb[tensorboard]"); sets train.log_to',
    )


def _add_executor_options(parser: argparse.ArgumentParser) -> None:
    """Where runs train: the options compare and tune share."""
    parser.add_argument(
        "--jobs",
        type=positive_int,
        default=1,
        help="runs at once on the CPU, in parallel processes (default 1; the local executor's workers)",
    )
    parser.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="where runs train: this machine's processes and devices (local, default) or a Ray cluster "
        '(ray: pip install "labelemb[ray]")',
    )
    parser.add_argument(
        "--devices",
        type=parse_names,
        help="local: the CUDA devices runs are spread over, e.g. cuda:0,cuda:1 (default: every visible one)",
    )
    parser.add_argument(
        "--runs-per-device",
        type=positive_int,
        default=1,
        help="runs at once on each device (local), or each run's share of a GPU: 1/K (ray); default 1",
    )
    parser.add_argument(
        "--ray-address",
        metavar="ADDRESS",
        help="ray: the cluster to use (auto, ray://host:10001); default: a local Ray for this command",
    )


def _add_methods_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--methods",
        type=parse_names,
        help="comma-separated method names, e.g. onehot,label_embedding,ols (onehot is the baseline)",
    )


def _space_argument(text: str) -> tuple[str, object]:
    from ..search_spaces import SpaceError, parse_space  # lazy: loaded when this command runs

    try:
        return parse_space(text)
    except SpaceError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="labelemb",
        description="Train networks with learned label representations (Label Embedding Network).",
    )
    parser.add_argument("--version", action="version", version=f"labelemb {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    _add_train(commands)
    _add_compare(commands)
    _add_tune(commands)
    _add_demo(commands)
    add_inspect_commands(commands)
    _add_predict_commands(commands)
    add_evaluate(commands)
    add_shift(commands)
    add_cache(commands)
    add_label_issues(commands, OVERRIDES_HELP, DEFAULT_SETTING)
    return parser


def _add_train(commands: typing.Any) -> None:
    """labelemb train."""
    train = commands.add_parser(
        "train",
        help="train one method over one or more seeds from a config",
        description="Train from a YAML config; extra key=value arguments override it "
        "(train.epochs=3, model.hidden=[100], tau=4 for a method option).",
    )
    train.add_argument("--config", help=f"YAML config, e.g. configs/mnist-mlp.yaml {DEFAULT_SETTING}")
    train.add_argument("--method", help="method name, e.g. onehot, label_embedding, label_smoothing")
    seeds = train.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, dest="single_seed", help="one seed (default: the config's, 0)")
    seeds.add_argument(
        "--seeds", type=parse_seeds, help="several seeds, trained in turn: 0-19, 0,2,5 or 0-4,9"
    )
    _add_run_options(train)
    _add_tracker_option(train)
    train.add_argument(
        "--batched", action="store_true", help="train the seeds side by side in one process (stacked models)"
    )
    train.add_argument("overrides", nargs="*", metavar="key=value", help=OVERRIDES_HELP)
    train.set_defaults(func="run:cmd_train")


def _add_compare(commands: typing.Any) -> None:
    """labelemb compare."""
    compare = commands.add_parser(
        "compare",
        help="train several methods over seeds and write a comparison table and error curves",
        description="Runs every (method, seed) without a finished run (so an interrupted comparison "
        "resumes), then writes comparison.md, comparison.csv, curves.png and ranks.png in "
        "OUTPUT_DIR/EXPERIMENT.",
    )
    compare.add_argument(
        "--config", help=f"YAML config, e.g. configs/fashion-mnist-mlp.yaml {DEFAULT_SETTING}"
    )
    _add_methods_option(compare)
    compare.add_argument(
        "--seeds", type=parse_seeds, default=[0], help="seeds of every method: 0-19, 0,2,5 (default 0)"
    )
    _add_executor_options(compare)
    compare.add_argument(
        "--summarize", metavar="DIR", help="train nothing: rebuild the table and figure from DIR's runs"
    )
    _add_run_options(compare)
    _add_tracker_option(compare)
    compare.add_argument(
        "--batched",
        action="store_true",
        help="train each method's seeds side by side in one process (one unit of work per method)",
    )
    compare.add_argument(
        "--no-reference",
        action="store_true",
        help="on texts or tag sets, leave out the linear reference rows (scikit-learn's linear SVM and "
        "logistic regression on TF-IDF, fitted on the same splits)",
    )
    compare.add_argument("overrides", nargs="*", metavar="key=value", help=OVERRIDES_HELP)
    compare.set_defaults(func="run:cmd_compare")


def _add_tune(commands: typing.Any) -> None:
    """labelemb tune."""
    tune = commands.add_parser(
        "tune",
        help="tune every method with the same number of Optuna trials, then train the best settings "
        "on fresh seeds",
        description="Each method gets --trials trials (Optuna, seeded TPE) on the tuning seed, judged by "
        "the task's dev score; its search space is declared beside it, --space adds shared keys. The "
        "study is kept in OUTPUT_DIR/EXPERIMENT/tuning/ (or --storage), so a killed tune resumes. Then "
        "the default and the best setting of every method train on --seeds, and tuning.md compares "
        'them. Needs Optuna: pip install "labelemb[tune]".',
    )
    tune.add_argument("--config", help=f"YAML config {DEFAULT_SETTING}")
    _add_methods_option(tune)
    tune.add_argument("--trials", type=positive_int, default=20, help="trials of every method (default 20)")
    tune.add_argument(
        "--space",
        action="append",
        type=_space_argument,
        metavar="KEY=RANGE",
        help="a key searched besides each method's own: train.lr=1e-4:1e-2:log (every method), "
        "tau=1:8 (the methods with that option), train.batch_size=64|128; repeat for more",
    )
    tune.add_argument(
        "--tune-seed", type=int, default=0, help="seed of every trial run, and of the sampler (default 0)"
    )
    tune.add_argument(
        "--seeds",
        type=parse_seeds,
        default=[1, 2, 3, 4, 5],
        help="fresh seeds the default and the best settings train on, never the tuning seed (default 1-5)",
    )
    tune.add_argument(
        "--objective",
        choices=read_index()["objectives"],
        default="metric",
        help="what a trial is judged on at its selected check: metric, the task's dev score (default); "
        "nll, the dev NLL; ece, the dev ECE after temperature scaling; ece_<map>, after that post-hoc "
        "map (cross-fitted on dev); aurc, the dev AURC of the max-softmax confidence (classification)",
    )
    tune.add_argument(
        "--prune",
        action="store_true",
        help="stop a trial whose dev score at a check is worse than the median of earlier trials there",
    )
    tune.add_argument(
        "--storage",
        metavar="URL",
        help="a database URL that many machines share (sqlite:///tune.db, postgresql://user@host/db); "
        "default: a journal file in the experiment's tuning/ folder",
    )
    tune.add_argument(
        "--batched-trials",
        type=positive_int,
        default=1,
        metavar="K",
        help="train K trials of a method side by side in one process, their settings stacked as seeds "
        "are (where only the method's own options and train.lr differ; else one after another "
        "there); default 1",
    )
    tune.add_argument(
        "--retry-running",
        action="store_true",
        help="the trials other tunes left running are dead (their machine gone, or the study copied "
        "from another machine): close them and train them again here. Only when no other tune works "
        "on these studies; without it a tune retries only the trials of dead processes of its machine",
    )
    _add_executor_options(tune)
    _add_run_options(tune)
    _add_tracker_option(tune)
    tune.add_argument(
        "--batched", action="store_true", help="train the fresh seeds of each setting side by side"
    )
    tune.add_argument("overrides", nargs="*", metavar="key=value", help=OVERRIDES_HELP)
    tune.set_defaults(func="tune:cmd_tune")


def _add_demo(commands: typing.Any) -> None:
    """labelemb demo."""
    demo = commands.add_parser(
        "demo",
        help="offline demo: onehot vs label_embedding on the bundled digits, with a heatmap",
        description="Trains onehot and label_embedding on scikit-learn's bundled 8x8 digits (no "
        "download), prints a comparison table and the most similar labels, and writes a heatmap.",
    )
    demo.add_argument("--output-dir", default="runs", help="root of the run folders (default runs/)")
    demo.add_argument(
        "--seeds",
        type=parse_seeds,
        default=list(range(5)),
        help="seeds of each method, as everywhere: 0-4, 0,2 (default 0-4)",
    )
    demo.add_argument("--epochs", type=positive_int, default=None, help="epochs per run (default 30)")
    demo.add_argument("--no-progress", action="store_true", help=NO_PROGRESS_HELP)
    demo.set_defaults(func="demo:cmd_demo")


def _add_predict_commands(commands: typing.Any) -> None:
    """predict and export: using a trained run."""
    checkpoint = {
        "choices": ("selected", "last"),
        "default": "selected",
        "help": "the weights of the check the run's summary selected (default), or its last ones "
        "(last: also a run still training)",
    }
    trust = {
        "metavar": "MODULE:FUNCTION",
        "help": "run the custom backbone factory a bundle names, this one only (a bundle whose "
        "backbone is custom is refused without it): only for code you know",
    }
    predict = commands.add_parser(
        "predict",
        help="classify new data with a trained run or bundle: one output row per input",
        description="Writes one row per input, in input order: its row or file name, the predicted "
        "class and its probability (softmax with the run's fitted temperature where it has one); a "
        "multi-label run: the predicted tags and their probabilities (sigmoid).",
    )
    predict.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run folder or an exported bundle")
    predict.add_argument(
        "--input",
        type=Path,
        help="a table (.csv, .jsonl, .parquet) with the run's input column, an image folder, an .npz "
        "(x or x_test), a .txt of texts (one a line) or an image file; a sequence run: source lines",
    )
    predict.add_argument(
        "--split", choices=("train", "dev", "test"), help="instead: a split of the run's own data"
    )
    predict.add_argument("--data-dir", help="with --split (or --sets): the data's folder (default the run's)")
    predict.add_argument("--output", type=Path, required=True, help="the CSV (or .jsonl) file written")
    predict.add_argument(
        "--top-k",
        type=positive_int,
        help="also the K best classes and probabilities (a multi-label run: its K most probable tags)",
    )
    predict.add_argument(
        "--threshold",
        type=float,
        metavar="P",
        help="a multi-label run: its tags whose probability reaches P (default: the run's own threshold, "
        "selected_tag_threshold)",
    )
    add_set_options(predict)
    predict.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    predict.add_argument("--checkpoint", **checkpoint)
    predict.add_argument("--device", help="cpu (default), cuda, cuda:N or mps")
    predict.add_argument("--trust-factory", **trust)
    predict.add_argument("--no-progress", action="store_true", help=PREDICT_NO_PROGRESS_HELP)
    predict.set_defaults(func="predict:cmd_predict")

    export = commands.add_parser(
        "export",
        help="write a trained run as a bundle (safetensors + JSON/YAML), TorchScript or ONNX",
        description="bundle: a folder labelemb.load reads without the run folder; torchscript and "
        "onnx: the network from its input tensor to class scores, with preprocessing.json beside it.",
    )
    export.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a finished run folder (or a bundle)")
    export.add_argument(
        "--format",
        choices=("bundle", "torchscript", "onnx"),
        default="bundle",
        help="bundle: safetensors weights and the run's config, read by labelemb.load (default); "
        "torchscript, onnx: the network from its input tensor to class scores, preprocessing beside it",
    )
    export.add_argument("--output", type=Path, required=True, metavar="DIR", help="the folder written")
    export.add_argument("--overwrite", action="store_true", help="write into --output even if it holds files")
    export.add_argument("--checkpoint", **checkpoint)
    export.add_argument("--trust-factory", **trust)
    export.set_defaults(func="predict:cmd_export")

"""The ``esl-hw`` command line: one subcommand per pipeline stage, plus ``demo`` running them all.

Bad input (a missing or malformed file, an unknown config key, an option out of range) ends with
one line ``esl-hw: error: ...`` on stderr and exit status 2, and leaves no partial output behind.
Results go to stdout; progress of long steps goes to stderr (:mod:`esl_hw.progress`; ``-q``
silences it) and, for a command with ``--out``, into ``esl-hw.log`` in that folder. The global
options ``-v`` and ``-q`` are accepted before or after the subcommand.
The module of :mod:`esl_hw.app` that runs a subcommand (:data:`HANDLERS`) is imported only when it
runs, and it imports the stages it needs lazily, so that ``esl-hw --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from esl_hw import progress
from esl_hw.errors import EslError
from esl_hw.sim.build import SIMULATORS
from esl_hw.sim.build_cache import DEFAULT_CACHE_MAX_MB

EXIT_USAGE = 2
LANES_HELP = "lanes per layer core, a power of two (default: the lanes the model was trained for, else 1)"
BAUD_HELP = "UART baud rate (default 115200)"
SIMULATOR_HELP = f"co-simulator (default {SIMULATORS[0]})"
STREAMING_HELP = (
    "build the core with streamed inferences (the next image's events right after the last marker "
    "of the one before) or, with --no-streaming, one inference at a time with one set of counters "
    "(about 840 fewer iCE40 logic cells; the same results and cycles per inference)"
)
FORCE_HELP = "replace a folder esl-hw wrote before at --out (never a folder of other files)"
VERBOSE_HELP = "log progress details"
QUIET_HELP = "no progress lines on stderr (errors still print; the log in --out keeps them)"
CACHE_HELP = (
    "$ESL_HW_CACHE, else $XDG_CACHE_HOME/esl-hw, else ~/.cache/esl-hw; after each new build the least "
    "recently used builds are deleted until they take at most $ESL_HW_CACHE_MAX_MB MB (default "
    f"{DEFAULT_CACHE_MAX_MB}); builds in use and files esl-hw did not write are never deleted"
)
#: subcommand -> the module of :mod:`esl_hw.app` whose ``run_<subcommand>(args)`` runs it (a ``-`` in
#: the subcommand is ``_`` in the function's name: ``import-nir`` -> ``run_import_nir``)
HANDLERS = {
    "train": "stages",
    "export": "stages",
    "eval": "stages",
    "rtl": "stages",
    "sim": "stages",
    "compare": "stages",
    "synth": "fpga",
    "bitstream": "fpga",
    "run": "fpga",
    "demo": "demo",
    "explore": "explore",
    "cache": "cache",
    "import-nir": "nir_commands",
    "export-nir": "nir_commands",
}


def handler_name(command: str) -> str:
    """The function of :data:`HANDLERS`' module that runs ``command``: ``run_<command>``, ``-`` as ``_``."""
    return f"run_{command.replace('-', '_')}"


def _integer_at_least(minimum: int, what: str):
    """An argparse type: an integer ``>= minimum`` (``what`` names it in the error)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
        return value

    return parse


_positive_int = _integer_at_least(1, "a positive integer")
_non_negative_int = _integer_at_least(0, "a non-negative integer")


def _positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite, positive number, got {text}")
    return value


def _picojoules(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an energy in pJ, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite, non-negative energy in pJ, got {text}")
    return value


def _add_energy_options(command: argparse.ArgumentParser) -> None:
    """``--e-sop`` and ``--e-mem``: the energy constants (docs/metrics.md), in picojoules."""
    command.add_argument(
        "--e-sop", type=_picojoules, default=0.9, help="energy per synaptic operation, pJ (default 0.9)"
    )
    command.add_argument(
        "--e-mem", type=_picojoules, default=10.0, help="energy per memory word access, pJ (default 10)"
    )


def _add_nir_commands(add_command) -> None:
    """``import-nir`` and ``export-nir`` (docs/nir.md): NIR graphs in and out."""
    nir = add_command(
        "import-nir",
        help="import a feed-forward NIR graph (snnTorch, Norse, ...) as a quantised model artifact",
        description="Reads Input, Affine/Linear, LIF, IF, CubaLIF and Output nodes (docs/nir.md); needs "
        "the nir extra: pip install 'esl-hw[nir]'.",
    )
    nir.add_argument("graph", type=Path, help="NIR graph file (HDF5, written by nir.write)")
    nir.add_argument("--out", type=Path, required=True, help="model artifact folder to create")
    nir.add_argument(
        "--data",
        type=Path,
        help="IDX or NPZ dataset folder: calibrate on its training images, report float and integer "
        "accuracy on its test images (default: none, no calibration)",
    )
    nir.add_argument("--w-bits", type=_positive_int, default=8, help="weight width in bits (default 8)")
    nir.add_argument("--v-bits", type=_positive_int, default=16, help="potential width in bits (default 16)")
    nir.add_argument(
        "--timesteps",
        type=_positive_int,
        help="time steps per inference (default: the graph's esl-hw metadata, else 8)",
    )
    nir.add_argument(
        "--dt",
        type=_positive_number,
        help="simulation step in seconds for the continuous-time parameters (default: the graph's "
        "esl-hw metadata, else 1e-4, snnTorch's)",
    )
    nir.add_argument(
        "--reset",
        choices=("auto", "zero", "subtract"),
        default="auto",
        help="reset of the neurons (default auto: the reset esl-hw's export recorded, else zero when the "
        "file gives v_reset = 0 (nir >= 1.0.5), else subtract, as nir 1.0.4's equations and snnTorch's "
        "Leaky do)",
    )
    nir.add_argument(
        "--calibration-images",
        type=_positive_int,
        default=1000,
        help="training images of --data the float network runs for calibration (default 1000)",
    )
    nir.add_argument("--force", action="store_true", help=FORCE_HELP)

    out = add_command(
        "export-nir",
        help="write a model artifact as a NIR graph (snnTorch imports it with import_from_nir)",
        description="Needs the nir extra: pip install 'esl-hw[nir]'. The mapping and what NIR cannot "
        "express: docs/nir.md.",
    )
    out.add_argument("model", type=Path, help="model artifact folder")
    out.add_argument("--out", type=Path, required=True, help="NIR graph file to create (e.g. model.nir)")
    out.add_argument(
        "--dt",
        type=_positive_number,
        default=1e-4,
        help="simulation step in seconds the time constants assume (default 1e-4)",
    )
    out.add_argument(
        "--data",
        type=Path,
        help="IDX or NPZ dataset folder: run the written graph in snnTorch on its test images beside the "
        "integer reference (default: none)",
    )
    out.add_argument("--force", action="store_true", help="replace a NIR file esl-hw wrote before at --out")


def _add_explore_command(add_command) -> None:
    """``explore`` (docs/explore.md): the accuracy / latency / resources front of a space, on Ray."""
    import os

    explore = add_command(
        "explore",
        help="co-design exploration: train, co-simulate and synthesise the points of a space on Ray",
        description="Evaluates the points of SPACE.yaml (docs/explore.md) through the real pipeline, each "
        "stage cached by its inputs, and writes front.json, front.md and front.png to --out; needs the "
        "explore extra: pip install 'esl-hw[explore]'.",
    )
    explore.add_argument("space", type=Path, help="space file (YAML), e.g. configs/explore_mnist_ecp5.yaml")
    explore.add_argument("--out", type=Path, required=True, help="exploration folder to create (or resume)")
    explore.add_argument(
        "--data",
        type=Path,
        help="IDX or NPZ dataset folder (default: the space's dataset, else embedded MNIST)",
    )
    explore.add_argument(
        "--workers",
        type=_positive_int,
        help=f"CPUs of the local Ray cluster (default: this machine's cores, {os.cpu_count()} here)",
    )
    explore.add_argument(
        "--address",
        help="join the Ray cluster at this address (e.g. auto or HOST:6379) instead of starting a local "
        "one (default: a local cluster)",
    )
    explore.add_argument(
        "--cache",
        type=Path,
        help="stage cache folder, shared by explorations (default: explore/ in the build cache, "
        "$ESL_HW_CACHE or ~/.cache/esl-hw)",
    )
    explore.add_argument(
        "--resume", action="store_true", help="continue the exploration in --out: finished points are kept"
    )


def _add_streaming_option(command: argparse.ArgumentParser, default: str = "; default: on") -> None:
    """``--streaming`` / ``--no-streaming`` (``args.streaming``: True, False or None, not given)."""
    command.add_argument(
        "--streaming", action=argparse.BooleanOptionalAction, default=None, help=STREAMING_HELP + default
    )


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise EslError(f"{self.prog}: {message}")


class _VersionAction(argparse.Action):
    def __init__(self, option_strings: list[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the versions of esl-hw and its tools")

    def __call__(self, parser, namespace, values, option_string=None) -> None:  # type: ignore[override]
        from esl_hw.app.provenance import version_text

        print(version_text())
        parser.exit(0)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="esl-hw",
        description="Sparse SNNs from ESL training to a bit-exact, co-simulated FPGA core.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)
    parser.add_argument("-q", "--quiet", action="store_true", help=QUIET_HELP)
    parser.add_argument("--version", action=_VersionAction)
    # -v and -q are accepted after the subcommand too; SUPPRESS keeps a value given before it
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP)
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help=QUIET_HELP)
    commands = parser.add_subparsers(dest="command", parser_class=_Parser)

    def add_command(name: str, **kwargs: object) -> argparse.ArgumentParser:
        return commands.add_parser(name, parents=[common], **kwargs)

    train = add_command("train", help="train a sparse SNN with ESL from a YAML config")
    train.add_argument("config", type=Path, help="training config (YAML), e.g. configs/demo.yaml")
    train.add_argument("--out", type=Path, required=True, help="run folder to create")
    train.add_argument("--data", type=Path, help="IDX or NPZ dataset folder (default: embedded MNIST)")
    train.add_argument("--force", action="store_true", help=FORCE_HELP)
    train.add_argument("--resume", action="store_true", help="continue an interrupted run of --out")
    train.add_argument(
        "--device", choices=("cpu", "cuda", "auto"), help="override the config's train.device (default cpu)"
    )

    export = add_command("export", help="export a trained run as a quantised model artifact")
    export.add_argument("run", type=Path, help="run folder written by 'esl-hw train'")
    export.add_argument("--out", type=Path, required=True, help="model artifact folder to create")
    export.add_argument(
        "--w-bits",
        type=int,
        help="re-quantise the weights to this many bits (post-training; default: the trained width)",
    )
    export.add_argument("--force", action="store_true", help=FORCE_HELP)

    evaluate = add_command("eval", help="accuracy of the integer reference on a test set")
    evaluate.add_argument("model", type=Path, help="model artifact folder")
    evaluate.add_argument("--data", type=Path, help="IDX or NPZ dataset folder (default: embedded MNIST)")
    evaluate.add_argument("--out", type=Path, help="folder for eval.json (default: print only)")
    evaluate.add_argument("--force", action="store_true", help=FORCE_HELP)

    rtl = add_command("rtl", help="generate Verilog for the event-driven LIF core")
    rtl.add_argument("model", type=Path, help="model artifact folder")
    rtl.add_argument("--out", type=Path, required=True, help="folder for the Verilog")
    rtl.add_argument("--lanes", type=_positive_int, help=LANES_HELP)
    _add_streaming_option(rtl)
    rtl.add_argument("--force", action="store_true", help=FORCE_HELP)

    sim = add_command("sim", help="co-simulate the RTL against the reference, bit for bit")
    sim.add_argument("model", type=Path, help="model artifact folder")
    sim.add_argument("--samples", type=_positive_int, default=20, help="test images (default 20)")
    sim.add_argument("--simulator", choices=SIMULATORS, default=SIMULATORS[0], help=SIMULATOR_HELP)
    sim.add_argument("--data", type=Path, help="IDX or NPZ dataset folder (default: embedded MNIST)")
    sim.add_argument("--out", type=Path, help="folder for sim.json and the run (default: temporary)")
    sim.add_argument("--lanes", type=_positive_int, help=LANES_HELP)
    _add_streaming_option(sim)
    sim.add_argument(
        "--stream",
        action="store_true",
        help="stream the images back to back (inferences overlap; report the cycles between results); "
        "needs a core with streaming",
    )
    sim.add_argument("--force", action="store_true", help=FORCE_HELP)
    _add_energy_options(sim)

    compare = add_command("compare", help="float, integer and RTL accuracy side by side")
    compare.add_argument("model", type=Path, help="model artifact folder")
    compare.add_argument("--out", type=Path, required=True, help="folder for compare.json and compare.md")
    compare.add_argument("--data", type=Path, help="IDX or NPZ dataset folder (default: embedded MNIST)")
    compare.add_argument(
        "--run", type=Path, help="training run of the float model (default: the run the artifact names)"
    )
    compare.add_argument("--samples", type=_positive_int, help="RTL test images (default: all)")
    compare.add_argument("--simulator", choices=SIMULATORS, default=SIMULATORS[0], help=SIMULATOR_HELP)
    compare.add_argument("--lanes", type=_positive_int, help=LANES_HELP)
    _add_streaming_option(compare)
    _add_energy_options(compare)
    compare.add_argument("--force", action="store_true", help=FORCE_HELP)

    synth = add_command("synth", help="synthesise and place-and-route: resources, Fmax, latency")
    synth.add_argument("model", type=Path, help="model artifact folder")
    synth.add_argument("--target", required=True, help="ecp5-85k, ecp5-25k or ice40-up5k")
    synth.add_argument("--lanes", type=_positive_int, help=LANES_HELP)
    synth.add_argument(
        "--freq", type=_positive_number, help="clock constraint in MHz (default 100 on ECP5, 24 on iCE40)"
    )
    synth.add_argument("--out", type=Path, required=True, help="folder for the build and the reports")
    synth.add_argument("--allow-timing-failure", action="store_true", help="exit 0 although Fmax < --freq")
    synth.add_argument(
        "--no-rewiring", action="store_true", help="leave the on-chip rewiring unit out (inference only)"
    )
    _add_streaming_option(
        synth, "; default: on, except where the iCE40 autofit drops it to fit (before the rewiring unit)"
    )
    synth.add_argument(
        "--synapses",
        choices=("auto", "block", "spram"),
        default="auto",
        help="synapse memories: block RAM, or iCE40 SPRAM loaded by the host (default auto: SPRAM "
        "only where block RAM is too small). Options left out are chosen for the target and printed",
    )
    synth.add_argument(
        "--lane-fifo-depth",
        type=int,
        help="depth of each lane's event FIFO (default 32; 4 on the iCE40, where it is flip-flops)",
    )
    synth.add_argument(
        "--fifo-depth", type=int, help="depth of the spike FIFOs between layers (default 16; 4 on the iCE40)"
    )
    synth.add_argument(
        "--spike-fifo-depth",
        type=int,
        help="depth of each LIF layer's spike-mask FIFO (default: one step in block RAM; on the iCE40 "
        "4 when block RAM is short)",
    )
    synth.add_argument(
        "--samples",
        type=_non_negative_int,
        default=4,
        help="images co-simulated for cycles per inference (default 4; 0: none)",
    )
    synth.add_argument("--simulator", choices=SIMULATORS, default=SIMULATORS[0], help=SIMULATOR_HELP)
    synth.add_argument("--data", type=Path, help="IDX or NPZ dataset folder (default: embedded MNIST)")
    synth.add_argument("--force", action="store_true", help=FORCE_HELP)

    bitstream = add_command("bitstream", help="build a board bitstream with the UART host link")
    bitstream.add_argument("model", type=Path, help="model artifact folder")
    bitstream.add_argument("--board", required=True, help="ulx3s-85f, ulx3s-25f or icebreaker")
    bitstream.add_argument("--baud", type=_positive_int, default=115200, help=BAUD_HELP)
    bitstream.add_argument("--lanes", type=_positive_int, help=LANES_HELP)
    bitstream.add_argument(
        "--no-rewiring", action="store_true", help="leave the rewiring unit out (smaller; REWIRE is refused)"
    )
    bitstream.add_argument(
        "--freq",
        type=_positive_number,
        help="clock of the top in MHz, made by the board's PLL (default: the core's post-route Fmax, "
        "from --core-report or from a synthesis of the core run first)",
    )
    bitstream.add_argument(
        "--core-report",
        type=Path,
        help="the core's 'esl-hw synth' folder (or report.json): its Fmax is the clock (default: none; "
        "the core is synthesised first unless --freq is given)",
    )
    bitstream.add_argument(
        "--allow-timing-failure", action="store_true", help="exit 0 although the top misses its clock"
    )
    bitstream.add_argument("--out", type=Path, required=True, help="folder for the build and bitstream")
    bitstream.add_argument("--force", action="store_true", help=FORCE_HELP)

    board = add_command("run", help="run test images on a board over UART, checked bit for bit")
    board.add_argument("model", type=Path, help="model artifact folder the board was built from")
    board.add_argument("--port", required=True, help="serial port, e.g. /dev/ttyUSB0")
    board.add_argument("--baud", type=_positive_int, default=115200, help=BAUD_HELP)
    board.add_argument("--samples", type=_positive_int, default=20, help="test images (default 20)")
    board.add_argument(
        "--load-synapses",
        action="store_true",
        help="write the model's synapses first (a core built with its synapses in SPRAM)",
    )
    board.add_argument("--data", type=Path, help="IDX or NPZ dataset folder (default: embedded MNIST)")
    board.add_argument(
        "--timeout", type=_positive_number, default=5.0, help="seconds to wait for each reply (default 5)"
    )
    board.add_argument("--out", type=Path, help="folder for run.json (default: print only)")
    board.add_argument("--force", action="store_true", help=FORCE_HELP)

    demo = add_command("demo", help="train, export, check, generate and co-simulate")
    demo.add_argument("--out", type=Path, required=True, help="folder for every stage's output")
    demo.add_argument("--data", type=Path, help="IDX or NPZ dataset folder (default: embedded MNIST)")
    demo.add_argument("--config", type=Path, help="training config (default: the built-in demo)")
    demo.add_argument(
        "--hidden", type=_positive_int, help="hidden LIF neurons H of the n_in-H-classes MLP (default 128)"
    )
    demo.add_argument("--samples", type=_positive_int, default=20, help="RTL test images (default 20)")
    demo.add_argument("--simulator", choices=SIMULATORS, default=SIMULATORS[0], help=SIMULATOR_HELP)
    demo.add_argument("--lanes", type=_positive_int, help=LANES_HELP)
    _add_energy_options(demo)
    demo.add_argument("--force", action="store_true", help=FORCE_HELP)

    _add_explore_command(add_command)
    _add_nir_commands(add_command)

    cache = add_command(
        "cache",
        help="list the simulator builds in the build cache, or clear them",
        description=f"The build cache: {CACHE_HELP}.",
    )
    cache.add_argument(
        "action",
        nargs="?",
        choices=("list", "clear"),
        default="list",
        help="list: the cache folder, each build (key, simulator, size, last use) and the total "
        "(default); clear: delete every build no running esl-hw uses",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit status."""
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        args.argv = list(sys.argv[1:] if argv is None else argv)
        if args.command is None:
            parser.print_help()
            return 0
        handler = logging.StreamHandler()
        # Libraries (cocotb's runner) raise their own loggers to INFO: filter at the handler.
        handler.setLevel(logging.INFO if args.verbose else logging.WARNING)
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", handlers=[handler])
        module = importlib.import_module(f"esl_hw.app.{HANDLERS[args.command]}")
        quiet = progress.set_quiet(args.quiet)
        try:
            # the log esl_hw.outputs.publish writes into --out (commands without one keep none)
            with progress.command_log(["esl-hw", *args.argv], getattr(args, "out", None)):
                return getattr(module, handler_name(args.command))(args)
        finally:
            progress.set_quiet(quiet)
    except EslError as error:
        message = str(error).splitlines()[0] if str(error) else error.__class__.__name__
        print(f"esl-hw: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("esl-hw: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

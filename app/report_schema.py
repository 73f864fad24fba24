"""What every key of every JSON report means, and in which unit: the schema of docs/reports.md.

The reports keep their established key names (scripts and tests read them); instead of a unit
suffix on each key, each key is documented here once, with its unit, and :func:`schema_markdown`
renders the tables of docs/reports.md (a test checks that the page carries exactly them, and that
every key a command writes is listed). :mod:`esl_hw.app.reports` reads the units from here for the
Markdown report beside each JSON file.

A unit ``-`` means a name, a flag or a list of messages; ``fraction`` a number in 0..1.
"""

from __future__ import annotations

from dataclasses import dataclass

#: key -> (unit, meaning)
Keys = dict[str, tuple[str, str]]


@dataclass(frozen=True)
class ReportSchema:
    """One report: the command that writes it, its file stem (``<file>.json``, ``<file>.md``), where
    it is written, and its keys."""

    command: str
    file: str
    where: str
    keys: Keys


PROVENANCE: Keys = {
    "provenance": (
        "-",
        "where the results come from: `command_line` (the arguments, `esl-hw` first) and `versions` "
        "(installed version of esl-hw and each tool; `iverilog`: its path)",
    ),
}
TRAINING: Keys = {
    "seed": ("-", "random seed of training (config key `seed`)"),
    "config": ("-", "the resolved training config, every key (train/config.py)"),
}
FIGURES: Keys = {"figures": ("file names", "PNG figures written beside the report")}


def neurobench_key(images: str) -> tuple[str, str]:
    """The ``neurobench`` object of a report whose workload metrics count ``images``."""
    return (
        "-",
        f"NeuroBench 2.3.0's metrics under its names, over {images} (docs/metrics.md "
        '"NeuroBench metrics"): `Footprint` (bytes), `ConnectionSparsity` and `ActivationSparsity` '
        "(fractions), `SynapticOperations` (`Effective_MACs`, `Effective_ACs`, `Dense`: operations "
        "per image, mean); beside them esl-hw's own `csr_bits` (bits of the CSR connectivity), "
        "`samples` (images counted) and `neurobench_version`",
    )


CONFUSION: Keys = {
    "classes": ("classes", "number of output classes"),
    "confusion_rtl": ("images", "`[true][predicted]` counts of the RTL on the co-simulated images"),
    "confusion_reference": (
        "images",
        "`[true][predicted]` counts of the reference, same images",
    ),
}
SIM: Keys = {
    "simulator": ("-", "`verilator` or `icarus`"),
    "lanes": ("lanes", "lanes per layer core of the simulated core"),
    "rtl_samples": ("images", "test images co-simulated (the first N of the test set)"),
    "rtl_mismatches": (
        "images",
        "co-simulated images whose spikes, potentials (when checked), outputs or prediction differ "
        "from the reference in any bit",
    ),
    "rtl_problems": ("-", "problems of the trace (records missing or repeated, watchdog expired)"),
    "potentials_checked": (
        "-",
        "every membrane potential traced and checked (up to 1000 images)",
    ),
    "rtl_accuracy": ("fraction", "accuracy of the RTL's predictions on the co-simulated images"),
    "reference_accuracy_rtl_samples": ("fraction", "accuracy of the integer reference on the same images"),
    "cycles_per_inference": ("cycles", "clock cycles per image, mean (core counter `cycles`)"),
    "cycles_p99": ("cycles", "clock cycles per image, 99th percentile"),
    "streaming": (
        "-",
        "whether the core is built with streamed inferences (`--streaming`, the default; "
        "`--no-streaming`: one at a time, `--stream` refused)",
    ),
    "streamed": ("-", "the images were streamed back to back (`esl-hw sim --stream`): inferences overlap"),
    "cycles_between_results": (
        "cycles",
        "mean cycles from one image's `done` to the next (streamed: the steady-state cost per image; "
        "null for one image)",
    ),
    "cycle_floor": ("cycles", "`max_l (SOPs_l + T·N_l) / L` per image, mean (docs/metrics.md)"),
    "cycles_over_floor": ("ratio", "`cycles_per_inference / cycle_floor`"),
    "cycle_floor_serial": ("cycles", "`(SOPs + T·ΣN) / L` per image, mean: one core running every layer"),
    "sops_per_inference": ("SOPs", "synaptic operations per image, mean (core counter `sops`)"),
    "sops_per_layer": ("SOPs", "synaptic operations per image and layer, mean (reference)"),
    "sops_counter_matches_reference": (
        "-",
        "the core's SOP counter equals the reference's on every image",
    ),
    "spikes_per_inference": ("spikes", "spikes per image of each LIF layer, mean (core counters)"),
    "memory_reads_per_inference": ("words", "memory words read per image, mean, per memory kind"),
    "memory_writes_per_inference": ("words", "memory words written per image, mean, per memory kind"),
    "memory_bits": ("bits", "size of each memory of this core, and `total`"),
    "memory_bits_dense": ("bits", "size of each memory of a dense design of the same network, and `total`"),
    "energy_per_inference_j": ("J", "estimated energy per image: SOPs·e_sop + memory accesses·e_mem"),
    "energy_breakdown": (
        "J",
        "`total_j`, `synaptic_j`, `memory_j`, and the constants `constant_e_sop`, "
        "`constant_e_mem_access` (J per event)",
    ),
    "sim_build_seconds": ("s", "wall-clock time to build the simulation (short when a build is reused)"),
    "sim_run_seconds": ("s", "wall-clock time to run the simulation and the check"),
    "lane_busy_cycles_per_step": (
        "cycles",
        "`[layer][step][lane]`: cycles each lane is busy in each time step (synapses streamed plus "
        "neurons swept), mean over the images, from the reference's events "
        "(`esl_hw.metrics.lane_busy_cycles`; the core's counters give totals per image only)",
    ),
    "neurobench": neurobench_key("the co-simulated images, from the reference"),
    **CONFUSION,
}
MODEL_SIZE: Keys = {
    "synapses": ("synapses", "connections of the model"),
    "density": ("fraction", "synapses / connections of the dense network"),
    "layer_density": ("fraction", "density of each layer"),
}

REPORTS: dict[str, ReportSchema] = {
    "train": ReportSchema(
        "train",
        "train",
        "the run folder",
        {
            "epochs": ("epochs", "epochs trained"),
            "best_epoch": (
                "epoch",
                "epoch kept in `checkpoint.pt` (highest validation accuracy)",
            ),
            "val_accuracy": ("fraction", "validation accuracy of the best epoch, integer (QAT) mode"),
            "float_val_accuracy": ("fraction", "validation accuracy of the best epoch, float mode"),
            "train_accuracy": ("fraction", "training accuracy of the best epoch"),
            "final_loss": ("loss", "training loss of the last epoch (mean cross-entropy)"),
            "layer_density": ("fraction", "density of each sparse layer at the end"),
            "overall_density": ("fraction", "active / possible connections over all sparse layers"),
            "esl_updates": ("updates", "prune-and-regrow updates made"),
            "connections_rewired": (
                "connections",
                "connections pruned (as many regrown), all updates",
            ),
            "epoch_seconds": ("s", "wall-clock time of the epochs, summed (`metrics.jsonl` `seconds`)"),
            **FIGURES,
            **TRAINING,
            **PROVENANCE,
        },
    ),
    "export": ReportSchema(
        "export",
        "export",
        "the model artifact folder",
        {
            "sizes": ("neurons", "inputs, then the neurons of each layer"),
            "timesteps": ("steps", "time steps T per inference"),
            **MODEL_SIZE,
            "w_bits": ("bits", "weight width of each layer"),
            "run_dir": ("path", "the training run exported"),
            **PROVENANCE,
        },
    ),
    "eval": ReportSchema(
        "eval",
        "eval",
        "`--out`",
        {
            "dataset": ("-", "where the test images come from"),
            "test_images": ("images", "test images scored"),
            "int_accuracy": ("fraction", "accuracy of the integer reference"),
            "neurobench": neurobench_key("the test images scored"),
            **PROVENANCE,
        },
    ),
    "rtl": ReportSchema(
        "rtl",
        "rtl",
        "`--out`, beside the Verilog and `memory_bits.json` (the same `memory_bits`, for scripts)",
        {
            "verilog": ("file", "the Verilog file of the core"),
            "lanes": ("lanes", "lanes per layer core"),
            "streaming": SIM["streaming"],
            "memory_bits": SIM["memory_bits"],
            "memory_bits_dense": SIM["memory_bits_dense"],
            **PROVENANCE,
        },
    ),
    "sim": ReportSchema("sim", "sim", "`--out`", {**SIM, **FIGURES, **PROVENANCE}),
    "compare": ReportSchema(
        "compare",
        "compare",
        "`--out`",
        {
            "dataset": ("-", "where the test images come from"),
            "float_accuracy": (
                "fraction",
                "float model's accuracy, whole test set (null: no run)",
            ),
            "float_source": ("-", "the training run of the float model, or why there is none"),
            "int_accuracy": ("fraction", "accuracy of the integer reference on the whole test set"),
            "int_samples": ("images", "test images the integer reference scored"),
            "int_accuracy_rtl_samples": ("fraction", "accuracy of the integer reference on the RTL's images"),
            **SIM,
            **FIGURES,
            **PROVENANCE,
        },
    ),
    "synth": ReportSchema(
        "synth",
        "report",
        "`--out`, beside the build",
        {
            "target": ("-", "target name (`esl-hw synth --target`)"),
            "device": ("-", "FPGA device"),
            "model": (
                "-",
                "`sizes` (neurons), `synapses`, `density`, `w_bits` (bits), `timesteps`",
            ),
            "lanes": ("lanes", "lanes per layer core"),
            "rewiring": ("-", "whether the rewiring unit is built"),
            "streaming": (
                "-",
                "whether the core streams inferences (`--streaming`; the iCE40 autofit may drop it, "
                "see `settings`)",
            ),
            "synapse_memory": ("-", "`block` (block RAM) or `spram` (loaded by the host)"),
            "lane_fifo_depth": ("words", "depth of each lane's event FIFO"),
            "fifo_depth": ("words", "depth of the spike FIFOs between layers"),
            "spike_fifo_depth": (
                "words",
                "depth of each spike-mask FIFO (null: one step, `max(groups, 6) + 2`)",
            ),
            "settings": (
                "-",
                "how the configuration was chosen: `auto` (chosen for the target, options left out), "
                "`chosen` (in words), `dropped` and `tried` (candidates passed over by the block-memory "
                "estimate and by synthesis: `settings`, `reason`), `streaming_dropped` (auto only: "
                "streaming was turned off to fit)",
            ),
            "freq_mhz": ("MHz", "requested clock"),
            "fmax_mhz": ("MHz", "post-route maximum clock (null: not measured)"),
            "timing_met": ("-", "`fmax_mhz >= freq_mhz` (null: not measured)"),
            "utilisation": ("cells", "per resource: `used`, `available` (cells or blocks), `percent` (%)"),
            "memories": (
                "-",
                "each memory: `name`, `role`, `depth` (words), `width` (bits), `mapped`, `cells`, `ok`",
            ),
            "memories_in_block_ram": ("-", "every large memory maps to block RAM or SPRAM"),
            "overflow": ("cells", "resources over capacity: `used`, `available`, `excess`"),
            "fit_advice": (
                "blocks",
                "block-RAM estimate: `bram_needed`, `spram_needed`, `fits`, and the largest density or "
                "weight width that fits",
            ),
            "cycles_per_inference": ("cycles", "cycles per image from co-simulation (null: none run)"),
            "cycles_source": ("-", "where `cycles_per_inference` comes from"),
            "latency_us": ("µs", "`cycles_per_inference / fmax_mhz`: time per image at Fmax"),
            "critical_path": ("ns", "the longest clock-to-clock path: `ns` and its `cells`"),
            "shim": ("cells", "the two-pin synthesis shim included in the figures: `ffs`, `luts_approx`"),
            "seconds": ("s", "wall-clock time of each tool"),
            "capacity_source": ("-", "where the device capacities come from"),
            "out_dir": ("path", "the folder of the build and the reports"),
            **PROVENANCE,
        },
    ),
    "bitstream": ReportSchema(
        "bitstream",
        "board",
        "`--out`, beside the build and the bitstream",
        {
            "board": ("-", "board name"),
            "device": ("-", "FPGA device"),
            "oscillator_mhz": ("MHz", "the board's oscillator, the PLL's input"),
            "requested_mhz": ("MHz", "the clock asked for: `--freq`, else the core's post-route Fmax"),
            "clock_source": ("-", "where `requested_mhz` comes from"),
            "clock_mhz": (
                "MHz",
                "the top's clock, the PLL's actual output: the closest to `requested_mhz` not above it",
            ),
            "pll": (
                "-",
                "the PLL: `primitive`, `requested_mhz`, `f_in_mhz`, `f_out_mhz`, `f_pfd_mhz`, "
                "`f_vco_mhz` and its `params` (dividers)",
            ),
            "baud": ("bit/s", "UART baud rate"),
            "rewiring": ("-", "whether the rewiring unit is built"),
            "utilisation": ("cells", "per resource: `used`, `available`, `percent` (%)"),
            "overflow": ("cells", "resources over capacity (only when the design does not fit)"),
            "fmax_mhz": ("MHz", "post-route maximum clock of the whole top"),
            "timing_met": ("-", "`fmax_mhz >= clock_mhz`"),
            "bitstream": ("path", "the bitstream file"),
            "bitstream_bytes": ("bytes", "size of the bitstream"),
            **PROVENANCE,
        },
    ),
    "run": ReportSchema(
        "run",
        "run",
        "`--out`",
        {
            "port": ("-", "serial port of the board"),
            "images": ("-", "where the images come from"),
            "samples": ("images", "images run on the board"),
            "mismatches": ("images", "images whose outputs or prediction differ from the reference"),
            "predictions": ("class", "the board's prediction for each image"),
            "expected_predictions": ("class", "the reference's prediction for each image"),
            "outputs": ("-", "the board's output accumulators for each image (integers)"),
            "cycles": ("cycles", "the core's cycle counter for each image"),
            "clock_mhz": ("MHz", "the board's clock as its INFO reply reports it (null: not reported)"),
            "latency_us": ("µs", "`cycles / clock_mhz` for each image (null: clock not reported)"),
            "details": ("-", "the first differences found"),
            **PROVENANCE,
        },
    ),
    "demo": ReportSchema(
        "demo",
        "summary",
        "`--out` (the run, model and Verilog in folders beside it)",
        {
            "dataset": ("-", "where the images come from"),
            "test_samples": ("images", "test images scored by the float model and the integer reference"),
            "float_accuracy": ("fraction", "accuracy of the float model"),
            "int_accuracy": ("fraction", "accuracy of the integer reference"),
            "torch_int_accuracy": ("fraction", "accuracy of the torch integer mode"),
            "torch_reference_mismatches": (
                "images",
                "test images on which the torch integer mode and the reference differ in any bit",
            ),
            **SIM,
            **MODEL_SIZE,
            "seconds": ("s", "wall-clock time of each stage"),
            **FIGURES,
            **TRAINING,
            **PROVENANCE,
        },
    ),
    "import-nir": ReportSchema(
        "import-nir",
        "import_nir",
        "the model artifact folder",
        {
            "graph": ("path", "the NIR graph file imported"),
            "nir_version": ("-", "the nir version that wrote the file (null: none recorded)"),
            "sizes": ("neurons", "inputs, then the neurons of each layer of the artifact"),
            "timesteps": ("steps", "time steps T per inference"),
            "dt": ("s", "simulation step the continuous-time parameters were discretised with"),
            "readout": (
                "-",
                "`current`: the last Affine is the output layer; `spikes`: an identity output layer "
                "counts the last neuron layer's spikes",
            ),
            **MODEL_SIZE,
            "calibration_images": ("images", "training images the float network ran for calibration"),
            "layers": (
                "-",
                "per layer: `scale` (integer units per threshold), `limited_by`, `threshold`, "
                "`leak_shift`, `beta`, `beta_int`, `leak_error` (fraction), `weight_error`, "
                "`current_error_bound`, `bias_error` (thresholds), `headroom` (thresholds), ... "
                "(docs/nir.md)",
            ),
            "warnings": ("-", "approximations worth a look (a leak far from 1 − 2^−k)"),
            "dataset": ("-", "where the test images come from (with `--data`)"),
            "test_images": ("images", "test images scored"),
            "float_accuracy": ("fraction", "accuracy of the NIR graph as a float network, same input spikes"),
            "int_accuracy": ("fraction", "accuracy of the integer reference"),
            "agreement": (
                "fraction",
                "test images on which the float network and the reference predict alike",
            ),
            **PROVENANCE,
        },
    ),
}

START = "<!-- report keys: generated by esl_hw.app.report_schema.schema_markdown -->"
END = "<!-- end of report keys -->"


def unit(report: str, key: str) -> str:
    """The unit of ``key`` in ``report`` (``?`` for a key not documented)."""
    return REPORTS[report].keys.get(key, ("?", ""))[0]


def undocumented(report: str, payload: dict) -> list[str]:
    """Top-level keys of ``payload`` that the schema of ``report`` does not list."""
    return [key for key in payload if key not in REPORTS[report].keys]


def schema_markdown() -> str:
    """The tables of docs/reports.md: one section per report, one row per key."""
    lines = [START]
    for schema in REPORTS.values():
        lines += [
            "",
            f"### `{schema.file}.json` (`esl-hw {schema.command}`)",
            "",
            f"Written into {schema.where}, with `{schema.file}.md`.",
            "",
            "| key | unit | meaning |",
            "| --- | --- | --- |",
        ]
        lines += [f"| `{key}` | {unit_} | {meaning} |" for key, (unit_, meaning) in schema.keys.items()]
    return "\n".join([*lines, "", END]) + "\n"

"""Quality against speed at x3: srx's models and the classic LR-space networks, timed together.

    python scripts/speed_quality.py                       # prints a Markdown table, draws docs/speed-quality-x3.png
    python scripts/speed_quality.py --reps 30 --png ''    # the table only
    python scripts/speed_quality.py --json sq.json        # ... and keep the timings; --from-json sq.json redraws

What is timed: the ONNX graph of each network (model only, no colour work), ONNX Runtime on the CPU,
one thread per physical core, at 720p-out x3 (426x240 -> 1278x720). srx's models are exported by
`onnx_from_checkpoint` from freshly initialised weights of each architecture (speed does not depend
on their values), so the graphs are the ones `srx export` writes, bicubic skip included. FSRCNN
(56, 12, 4: PReLU, 9x9 transposed convolution) and ESPCN (64-32, 5-3-3, tanh, pixel shuffle), the
networks OpenCV's dnn_superres ships, are built here as their papers describe them, with random
weights and exported with PyTorch's ONNX exporter (they have no bicubic skip).

The rows take turns (every session is up at once; each block runs a few repetitions of each
graph in a rotating order, with a pause so the previous one's thread pool stops spinning), so a drift
of this shared machine reaches every row alike; `--runs` such runs (3) are made, and each graph is
shown at SRCNN's median time times the median of its ratio to SRCNN over the runs: compare the
ratios, not the milliseconds across days.

The Set5 x3 PSNRs are not measured by this script. srx's are the best each architecture reached in
this project (the README's candidate table; `srcnn` and `fast` are the shipped weights, which
`tests/test_shipped_models.py` re-measures); FSRCNN's and ESPCN's are their papers' (trained on other
data), marked as such in the picture.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SCALE = 3
LR_HW = (240, 426)  # 720p-out x3
SETTLE_S = 0.05


@dataclass
class Candidate:
    label: str
    psnr: float | None  # Set5 x3 dB (None: not trained to the end)
    source: str  # "srx" (measured in this project) or "paper"
    preset: str | None = None  # srx --model name; None for the classic networks built here


CANDIDATES = [
    Candidate("srcnn (SRCNN 9-1-5)", 32.41, "srx", "srcnn-915"),
    Candidate("lrnet-24x5", 33.00, "srx", "lrnet-24x5"),
    Candidate("lrnet-32x4", 33.04, "srx", "lrnet-32x4"),
    Candidate("lrnet-32x4-pw", 33.11, "srx", "lrnet-32x4-pw"),
    Candidate("lrnet-32x4-pw2", 33.14, "srx", "lrnet-32x4-pw2"),
    Candidate("fast (lrnet-32x4-pw3)", 33.25, "srx", "lrnet-32x4-pw3"),
    Candidate("lrnet-32x5", None, "srx", "lrnet-32x5"),
    Candidate("FSRCNN (56,12,4)", 33.16, "paper"),
    Candidate("ESPCN (64-32)", 32.55, "paper"),
]
BICUBIC_SET5_X3 = 30.39


def fsrcnn(scale: int, d: int = 56, s: int = 12, m: int = 4):
    import torch.nn as nn

    layers = [nn.Conv2d(1, d, 5, padding=2), nn.PReLU(d), nn.Conv2d(d, s, 1), nn.PReLU(s)]
    for _ in range(m):
        layers += [nn.Conv2d(s, s, 3, padding=1), nn.PReLU(s)]
    layers += [nn.Conv2d(s, d, 1), nn.PReLU(d),
               nn.ConvTranspose2d(d, 1, 9, stride=scale, padding=4, output_padding=scale - 1)]
    return nn.Sequential(*layers)


def espcn(scale: int):
    import torch.nn as nn

    return nn.Sequential(nn.Conv2d(1, 64, 5, padding=2), nn.Tanh(), nn.Conv2d(64, 32, 3, padding=1), nn.Tanh(),
                         nn.Conv2d(32, scale * scale, 3, padding=1), nn.PixelShuffle(scale))


def export_all(folder: Path) -> dict[str, Path]:
    import torch

    from srx.checkpoint import save_checkpoint
    from srx.export.onnx import onnx_from_checkpoint
    from srx.models import build_model, config_from_preset

    torch.manual_seed(0)
    paths = {}
    for c in CANDIDATES:
        if c.preset is not None:
            cfg = config_from_preset(c.preset, SCALE)
            ckpt = folder / f"{c.preset}.pt"
            save_checkpoint(ckpt, build_model(cfg), cfg)
            sub = folder / c.preset
            sub.mkdir()
            paths[c.label] = onnx_from_checkpoint(ckpt, sub, scale=SCALE)
        else:
            net = (fsrcnn if c.label.startswith("FSRCNN") else espcn)(SCALE).eval()
            out = folder / f"{c.label.split()[0].lower()}.onnx"
            x = torch.zeros(1, 1, *LR_HW)
            with warnings.catch_warnings():  # the TorchScript exporter's deprecation notice, as in srx.export
                warnings.simplefilter("ignore")
                torch.onnx.export(net, x, str(out), input_names=["lr_y"], output_names=["hr_y"], opset_version=17,
                                  dynamic_axes={"lr_y": {2: "h", 3: "w"}, "hr_y": {2: "H", 3: "W"}}, dynamo=False)
            paths[c.label] = out
    return paths


def time_in_turns(paths: dict[str, Path], reps: int, block: int = 3) -> dict[str, float]:
    """Median seconds per call of each graph, the graphs taking turns block by block."""
    import onnxruntime as ort

    from srx.runtime.onnxruntime_runner import session_options

    def session(path: Path):  # the options srx's own runner uses, so the graphs run as `srx` runs them
        return ort.InferenceSession(str(path), sess_options=session_options(), providers=["CPUExecutionProvider"])

    lr = np.random.default_rng(0).random((1, 1, *LR_HW), dtype=np.float32)
    sessions = {label: session(p) for label, p in paths.items()}
    names = {label: s.get_inputs()[0].name for label, s in sessions.items()}
    times: dict[str, list[float]] = {label: [] for label in sessions}
    labels = list(sessions)
    for turn, start in enumerate(range(0, reps, block)):
        order = labels[turn % len(labels):] + labels[:turn % len(labels)]
        for label in order:
            time.sleep(SETTLE_S)
            sess, feed = sessions[label], {names[label]: lr}
            sess.run(None, feed)  # untimed: wakes the pool after the pause
            for _ in range(start, min(reps, start + block)):
                t0 = time.perf_counter()
                sess.run(None, feed)
                times[label].append(time.perf_counter() - t0)
    return {label: float(np.median(t)) for label, t in times.items()}


#: where each label sits against its point (points, x right / y up): the lrnet cluster is tight
LABEL_AT = {"lrnet-24x5": (-8, -14, "right"), "lrnet-32x4": (4, -14, "left"), "lrnet-32x4-pw": (-8, 2, "right"),
            "lrnet-32x4-pw2": (-8, 10, "right"), "fast (lrnet-32x4-pw3)": (6, 6, "left")}


def draw(rows: list[tuple[Candidate, float]], png: Path, stamp: str, runs: int) -> None:
    """Set5 x3 dB against time as a fraction of SRCNN 9-1-5's, measured in the same run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    srcnn_ms = next(ms for c, ms in rows if c.preset == "srcnn-915")
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    ax.axvline(0.40, color="tab:green", lw=1, ls="--")
    ax.text(0.41, 32.32, "fast's target: 0.40x\nSRCNN's time (end to end)", color="tab:green", fontsize=8)
    for c, ms in rows:
        if c.psnr is None:
            continue
        x, paper = ms / srcnn_ms, c.source == "paper"
        colour = "tab:red" if c.label.startswith("fast") else "tab:blue"
        ax.scatter(x, c.psnr, s=45, marker="s" if paper else "o", facecolors="none" if paper else colour,
                   edgecolors="tab:orange" if paper else colour, linewidths=1.5, zorder=3)
        dx, dy, ha = LABEL_AT.get(c.label, (7, -3, "left"))
        ax.annotate(c.label + (" (paper's dB)" if paper else ""), (x, c.psnr), textcoords="offset points",
                    xytext=(dx, dy), fontsize=8, ha=ha)
    ax.set_xlim(0, 1.25)
    ax.set_ylim(32.25, 33.4)
    from srx.runtime.onnxruntime_runner import physical_cores

    ax.set_xlabel(f"model time per 720p-out x3 frame, x SRCNN 9-1-5's ({srcnn_ms:.0f} ms, median of the runs); "
                  f"ONNX Runtime, CPU, {physical_cores()} threads")
    ax.set_ylabel("Set5 x3 PSNR on Y, dB (bicubic: 30.39)")
    ax.set_title(f"Quality against time on this project's 2-core CPU ({stamp}; the graphs timed in turns, {runs} runs)\n"
                 "filled: srx, dB measured here; hollow: the network as its paper describes it, the paper's dB",
                 fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=24, help="timed calls per graph and run")
    ap.add_argument("--runs", type=int, default=3, help="runs; each graph's time is SRCNN's median time x the "
                    "median over the runs of its time / SRCNN's in that run")
    ap.add_argument("--png", default=str(REPO / "docs/speed-quality-x3.png"), help="picture to draw ('' for none)")
    ap.add_argument("--json", type=Path, help="also write the measured medians (ms) and the date here")
    ap.add_argument("--from-json", type=Path, help="draw and print from a --json file instead of timing")
    args = ap.parse_args()
    if args.runs < 1 or args.reps < 1:
        ap.error(f"--runs and --reps must be at least 1, got {args.runs} and {args.reps}")
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        medians, stamp = {k: v / 1e3 for k, v in saved["model_ms"].items()}, saved["date"]
        n_runs = len(saved.get("runs", [None]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            paths = export_all(Path(tmp))
            runs = [time_in_turns(paths, args.reps) for _ in range(args.runs)]
        # each run's times over its own SRCNN time, then the median over the runs: this machine's
        # speed drifts between runs far more than within one
        base = CANDIDATES[0].label
        medians = {k: float(np.median([r[k] / r[base] for r in runs])) * float(np.median([r[base] for r in runs]))
                   for k in runs[0]}
        stamp, n_runs = time.strftime("%Y-%m-%d"), len(runs)
        for i, r in enumerate(runs):
            print(f"run {i + 1}: SRCNN {1e3 * r[base]:.1f} ms; " +
                  ", ".join(f"{k.split()[0]} {r[k] / r[base]:.3f}" for k in r if k != base))
        if args.json:
            args.json.write_text(json.dumps({"date": stamp, "reps": args.reps, "runs": [
                {k: 1e3 * v for k, v in r.items()} for r in runs], "model_ms": {k: 1e3 * v for k, v in medians.items()}},
                indent=1))
    rows = [(c, 1e3 * medians[c.label]) for c in CANDIDATES]
    srcnn_ms = next(ms for c, ms in rows if c.preset == "srcnn-915")
    print("| network | Set5 x3 dB | model ms, 720p-out x3 | vs SRCNN 9-1-5 |")
    print("|---|---|---|---|")
    for c, ms in rows:
        db = "—" if c.psnr is None else f"{c.psnr:.2f}" + (" (paper)" if c.source == "paper" else "")
        print(f"| {c.label} | {db} | {ms:.1f} | {ms / srcnn_ms:.3f} |")
    if args.png:
        draw(rows, Path(args.png), stamp, n_runs)
        print(f"wrote {args.png}")


if __name__ == "__main__":
    main()

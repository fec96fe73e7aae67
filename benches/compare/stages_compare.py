#!/usr/bin/env python3
"""Side by side on the RIDER Lung CT grid (236 x 512 x 512, 0.576 x 0.576 x 1.25 mm), same
machine, one script run:

(a) Postprocessing of a body-sized mask: the largest 6-connected component of CT > -500 HU,
    then holes filled per axial slice. autocontour `postprocess_label` (criterion median of
    `cargo bench --bench stages -- postprocess_body_mask`, read from target/criterion) vs
    scipy.ndimage (`label` + `bincount` + `binary_fill_holes` per slice) and cc3d
    (`largest_k(k=1, connectivity=6)` + scipy's per-slice fill), in-process, best of --runs.
    The voxel counts are compared (the bench prints its count).
(b) `autocontour evaluate` on the body-outline pair, whole process (load the CT, read both RT
    Structure Sets, rasterise, Dice/HD95/ASSD/surface Dice; GNU time for the peak RSS) vs
    DeepMind surface-distance on the same two masks (compute_surface_distances + robust
    Hausdorff 95 + average surface distance + surface Dice at 2 mm + Dice; the masks are given
    in memory, the CT is not read). The pair: CT > -500 HU vs CT > -300 HU, written as RT
    Structure Sets by `autocontour mask-to-rtstruct` (not timed; voxel-edge contours rasterise
    back to the same masks).

    cargo build --release
    target/pyenv/bin/pip install -r benches/compare/requirements.txt   # cc3d
    target/pyenv/bin/python benches/compare/stages_compare.py [--runs 3] [--no-cargo]
        [--part all|postprocess|evaluate]

The CLI binary is taken from $AUTOCONTOUR_BIN or target/release/autocontour; work files go to
target/tmp/stages_compare/.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time

import numpy as np
from scipy import ndimage

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests/python"))
from rtstruct_compare import CT, load_ct, measure  # noqa: E402
from metrics_reference import sd  # noqa: E402  (surface_distance, shimmed for numpy 2)


def best(f, runs):
    times, out = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        out = f()
        times.append(time.perf_counter() - t0)
    return min(times), out


def fill_per_slice(m):
    for k in range(m.shape[0]):
        m[k] = ndimage.binary_fill_holes(m[k])
    return m


def scipy_post(mask):
    lab, _ = ndimage.label(mask)
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    return fill_per_slice(lab == sizes.argmax())


def cc3d_post(mask):
    import cc3d

    return fill_per_slice(cc3d.largest_k(mask, k=1, connectivity=6) != 0)


def surface_distance(ref, test, spacing):
    s = sd.compute_surface_distances(ref, test, spacing)
    return (sd.compute_robust_hausdorff(s, 95), sd.compute_average_surface_distance(s),
            sd.compute_surface_dice_at_tolerance(s, 2.0), sd.compute_dice_coefficient(ref, test))


def criterion_median(name):
    base = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    path = os.path.join(base, "criterion", "rider_stages", name, "new", "estimates.json")
    with open(path) as f:
        return json.load(f)["median"]["point_estimate"] / 1e9


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-cargo", action="store_true",
                    help="use the criterion estimate already in target/criterion")
    ap.add_argument("--part", choices=["all", "postprocess", "evaluate"], default="all",
                    help="run only (a) postprocessing or (b) evaluate")
    args = ap.parse_args()
    exe = os.environ.get("AUTOCONTOUR_BIN", os.path.join(ROOT, "target/release/autocontour"))
    work = os.path.join(ROOT, "target/tmp/stages_compare")
    os.makedirs(work, exist_ok=True)
    hu, grid = load_ct()
    spacing = (grid["spacing"][2], grid["spacing"][1], grid["spacing"][0])  # (k, j, i)
    rows = []

    t_scipy = ours = t_ev = t_sd = None
    if args.part in ("all", "postprocess"):
        t_scipy, ours = part_postprocess(args, hu, rows)
    if args.part in ("all", "evaluate"):
        t_ev, t_sd = part_evaluate(args, exe, work, hu, grid, spacing, rows)

    print("\nwhat | seconds | peak RSS MiB")
    for what, t, rss in rows:
        print(f"{what} | {t:.3f} | {'' if rss is None else f'{rss:.0f}'}")
    if t_scipy is not None:
        print(f"\npostprocess: scipy / autocontour = {t_scipy / ours:.1f}x")
    if t_ev is not None:
        print(f"evaluate: surface-distance / autocontour evaluate = {t_sd / t_ev:.1f}x")
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")


def part_postprocess(args, hu, rows):
    """(a) postprocessing of the body mask; returns (scipy seconds, ours seconds)."""
    ours_count = None
    if not args.no_cargo:
        p = subprocess.run(["cargo", "bench", "--bench", "stages", "--", "postprocess_body_mask"],
                           cwd=ROOT, capture_output=True, text=True)
        if p.returncode != 0:
            raise SystemExit(f"cargo bench failed:\n{p.stderr[-3000:]}")
        m = re.search(r"body mask postprocessed: (\d+) voxels", p.stderr + p.stdout)
        ours_count = int(m.group(1)) if m else None
    ours = criterion_median("postprocess_body_mask")
    mask = hu > -500
    t_scipy, out_scipy = best(lambda: scipy_post(mask), args.runs)
    rows.append(("postprocess: autocontour postprocess_label (criterion median)", ours, None))
    rows.append(("postprocess: scipy.ndimage label + fill per slice", t_scipy, None))
    try:
        t_cc3d, out_cc3d = best(lambda: cc3d_post(mask), args.runs)
        rows.append(("postprocess: cc3d largest_k + scipy fill per slice", t_cc3d, None))
        assert int(out_cc3d.sum()) == int(out_scipy.sum())
    except ImportError:
        print("cc3d not installed (pip install -r benches/compare/requirements.txt); skipped")
    if ours_count is not None:
        print(f"body voxels: autocontour {ours_count}, scipy {int(out_scipy.sum())}"
              f" ({'equal' if ours_count == int(out_scipy.sum()) else 'DIFFERENT'})")
    return t_scipy, ours


def part_evaluate(args, exe, work, hu, grid, spacing, rows):
    """(b) evaluate on the body-outline pair; returns (ours seconds, surface-distance seconds)."""
    pair = {}
    for name, thr in (("ref", -500), ("test", -300)):
        m = (hu > thr).astype(np.uint8)
        raw = os.path.join(work, f"{name}.raw")
        m.tofile(raw)
        meta = dict(grid)
        meta["labels"] = [{"label": 1, "name": "Body", "color": [0, 255, 0]}]
        with open(raw[:-4] + ".json", "w") as f:
            json.dump(meta, f)
        rs = os.path.join(work, f"{name}.dcm")
        subprocess.run([exe, "mask-to-rtstruct", raw, "--ct", CT, "--out", rs], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        pair[name] = (m != 0, rs)
    ev = []
    for _ in range(args.runs):
        ev.append(measure([exe, "evaluate", CT, "--ref", pair["ref"][1], "--test", pair["test"][1],
                           "--json", os.path.join(work, "evaluate.json")], work))
    t_ev, rss_ev = min(ev)
    rows.append(("evaluate, body-outline pair: autocontour evaluate (whole process)", t_ev, rss_ev))
    t_sd, res = best(lambda: surface_distance(pair["ref"][0], pair["test"][0], spacing),
                     min(args.runs, 2))
    rows.append(("evaluate, body-outline pair: surface-distance (masks in memory)", t_sd, None))
    with open(os.path.join(work, "evaluate.json")) as f:
        ours_rows = json.load(f)
    print(f"surface-distance: HD95 {res[0]:.3f} mm, ASSD {res[1]}, surface Dice {res[2]:.4f},"
          f" Dice {res[3]:.5f}")
    print("autocontour evaluate:", json.dumps(ours_rows.get("rows", ours_rows))[:600])
    return t_ev, t_sd


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Side-by-side timing: nnU-Net v2's own predictor against `autocontour segment` on the same
imported nnU-Net model (tests/nnunet/, issue 14).

Each run is a fresh process, timed from process start until it has exited with the label map on
disk, with a fixed thread budget (default 2: OMP/MKL threads, nnUNet_def_n_proc, torch threads,
one preprocessing and one export worker). Memory: `max_rss` is the largest resident set of any
single process of the run (getrusage RUSAGE_CHILDREN of a fresh measuring process, i.e. what
/usr/bin/time -v calls "Maximum resident set size"); `tree PSS` is the peak of the summed
proportional set size over the whole process tree (nnU-Net spawns worker processes that each
load torch; PSS counts their shared libraries once), sampled every 50 ms from
/proc/<pid>/smaps_rollup (the measuring process itself, ~10 MB, is included).

    python3 benches/compare/nnunet_compare.py                       # nnU-Net half, mirroring off and on
    python3 benches/compare/nnunet_compare.py --repeats 3 --folds 0 1
    target/pyenv/bin/python benches/compare/nnunet_compare.py --autocontour target/release/autocontour

Only the standard library is needed to run it (SimpleITK, if importable, adds a voxel agreement
column between the label maps: run it with target/pyenv/bin/python, which has SimpleITK).
nnU-Net comes from the fixture's venv (target/nnunet/venv, see
tests/nnunet/make_fixture.sh); the model is the fixture's trained folder, or any
<Trainer>__<Plans>__<configuration> folder with --model.

Recorded 2026-11-30 (nnunetv2 2.8.1, torch 2.8.0 CPU), 2-core dev VM (AMD EPYC, 2 vCPUs, 24 GiB),
load average 2.0-2.7 during the runs (other developers' builds), fixture model (folds 0 + 1) on
tests/nnunet/heldout_ct.nii.gz (15 x 197 x 197 at 6 x 1.5 x 1.5 mm; 24 x 96 x 73 voxels at model
spacing, 12 tiles per fold), 2 runs each:

| tool | mirroring | wall s (min of 2) | max RSS MB | tree PSS MB |
|---|---|---|---|---|
| nnUNetPredictor | off | 27.1 (28.0) | 1131 | 2044 |
| nnUNetPredictor | on (2 axes: 4 evaluations per tile) | 53.6 (56.6) | 1126 | 1967 |

(importing torch + nnunetv2 alone takes 5.7 s per process there; nnU-Net starts three: the main
process and a preprocessing and an export worker, spawned.)
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = ROOT / "target/nnunet/results/Dataset901_Thorax/nnUNetTrainer_AcTiny__nnUNetPlans__3d_fullres"
DEFAULT_VENV = ROOT / "target/nnunet/venv"


# ============================================================================ measuring a command
# run_and_measure() is the one function that times any CLI. The lead plugs `autocontour segment`
# in through autocontour_command() below; nothing else needs to change.

def _tree_pids(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return [pid]
    for d in names:
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
            ppid = int(st[st.rindex(")") + 2:].split()[1])
            children.setdefault(ppid, []).append(int(d))
        except (OSError, ValueError):
            continue
    out, stack = [], [pid]
    while stack:
        p = stack.pop()
        out.append(p)
        stack.extend(children.get(p, []))
    return out


def _tree_memory_bytes(pid: int) -> tuple[int, int]:
    """(sum of PSS, sum of RSS) over pid and its descendants (Linux /proc). PSS splits shared pages
    (torch's libraries, mapped by every worker) between the processes, so the PSS sum is the
    tree's real footprint; the RSS sum counts shared pages once per process."""
    pss = rss = 0
    for p in _tree_pids(pid):
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1]) * 1024
                    elif line.startswith("Rss:"):
                        rss += int(line.split()[1]) * 1024
        except OSError:
            continue
    return pss, rss


def run_and_measure(cmd: list[str], env: dict | None = None, cwd: str | None = None,
                    expect_file: str | None = None, log_file: str | None = None) -> dict:
    """Run `cmd` in a fresh measuring process; return wall time, peak RSS, exit status.

    The measuring process (this file with --_measure) starts the command, waits for it and
    reports getrusage(RUSAGE_CHILDREN).ru_maxrss, so the figure belongs to this command alone.
    Wall time runs from just before the measuring process starts the command until it exits.
    """
    with tempfile.NamedTemporaryFile("r", suffix=".json", delete=False) as tf:
        report = tf.name
    full = [sys.executable, os.path.abspath(__file__), "--_measure", report, "--", *cmd]
    out = open(log_file, "w") if log_file else subprocess.DEVNULL
    peak = [0, 0]
    t0 = time.perf_counter()
    proc = subprocess.Popen(full, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            pss, rss = _tree_memory_bytes(proc.pid)
            peak[0] = max(peak[0], pss)
            peak[1] = max(peak[1], rss)
            stop.wait(0.05)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    proc.wait()
    stop.set()
    th.join()
    wall = time.perf_counter() - t0
    if log_file:
        out.close()
    try:
        with open(report) as f:
            r = json.load(f)
    except (OSError, ValueError):
        r = {"rc": proc.returncode, "max_rss_bytes": None, "wall_s": None}
    os.unlink(report)
    return {"rc": r["rc"], "wall_s": r.get("wall_s") or wall, "max_rss_mb": (r["max_rss_bytes"] or 0) / 2**20,
            "tree_pss_mb": peak[0] / 2**20, "tree_rss_mb": peak[1] / 2**20,
            "output_present": (os.path.exists(expect_file) if expect_file else None)}


def _measure_main(report: str, cmd: list[str]) -> int:
    import resource

    t0 = time.perf_counter()
    rc = subprocess.call(cmd)
    wall = time.perf_counter() - t0
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(report, "w") as f:
        json.dump({"rc": rc, "wall_s": wall, "max_rss_bytes": ru.ru_maxrss * 1024,
                   "user_s": ru.ru_utime, "sys_s": ru.ru_stime}, f)
    return rc


# ============================================================================ the two tools

def thread_env(threads: int) -> dict:
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
                "OPENBLAS_NUM_THREADS": str(threads), "nnUNet_def_n_proc": str(threads),
                "nnUNet_n_proc_DA": "1", "nnUNet_compile": "f", "RAYON_NUM_THREADS": str(threads)})
    # nnU-Net warns without these; prediction from a model folder does not use them
    for k in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        env.setdefault(k, str(ROOT / "target/nnunet" / k.split("_")[1]))
    env.setdefault("nnUNet_extTrainer", str(ROOT / "tests/nnunet/trainers"))
    return env


def nnunet_command(venv: Path, model: Path, in_dir: Path, out_dir: Path, folds, mirror: bool) -> list[str]:
    cmd = [str(venv / "bin" / "nnUNetv2_predict_from_modelfolder"), "-i", str(in_dir), "-o", str(out_dir),
           "-m", str(model), "-f", *[str(f) for f in folds], "-step_size", "0.5", "-device", "cpu",
           "-npp", "1", "-nps", "1", "--disable_progress_bar"]
    if not mirror:
        cmd.append("--disable_tta")
    return cmd


def autocontour_command(args, package: Path, ct: Path, outdir: Path, mirror: bool) -> list[str] | None:
    """The `autocontour` command line, or None to skip.

    --autocontour-args is a template; {package}, {ct}, {ct_dicom}, {outdir}, {threads},
    {folds} and {mirror_flag} ("--no-mirroring" or nothing) are substituted. The default runs
    `autocontour predict <CT.nii.gz> --model DIR --out DIR/labels.nii.gz --threads N --folds …`:
    NIfTI in, NIfTI label map out, as nnU-Net. The label map must end up in
    {outdir}/labels.nii.gz (same grid as the CT) for the agreement column.
    """
    if not args.autocontour:
        return None
    outdir.mkdir(parents=True, exist_ok=True)
    fmt = dict(package=package, ct=ct, ct_dicom=args.ct_dicom or ct, outdir=outdir, threads=args.threads,
               folds=" ".join(args.folds), mirror_flag="" if mirror else "--no-mirroring")
    return [args.autocontour, *shlex.split(args.autocontour_args.format(**fmt))]


def agreement(a: Path, b: Path):
    try:
        import SimpleITK as sitk  # noqa: F401
    except ImportError:
        return None
    import numpy as np

    x = sitk.GetArrayFromImage(sitk.ReadImage(str(a)))
    y = sitk.GetArrayFromImage(sitk.ReadImage(str(b)))
    if x.shape != y.shape:
        return f"shape {x.shape} vs {y.shape}"
    return float(np.mean(x == y))


def machine_line() -> str:
    try:
        la = os.getloadavg()
    except OSError:
        la = (float("nan"),) * 3
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (f"{os.cpu_count()} CPUs ({cpu}), load average {la[0]:.2f} {la[1]:.2f} {la[2]:.2f}, "
            f"Python {platform.python_version()}, {platform.system()} {platform.release()}")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--_measure"]:
        return _measure_main(argv[1], argv[3:])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="nnU-Net trained model folder")
    ap.add_argument("--package", type=Path, default=ROOT / "tests/nnunet/package", help="imported package")
    ap.add_argument("--ct", type=Path, default=ROOT / "tests/nnunet/heldout_ct.nii.gz")
    ap.add_argument("--folds", nargs="+", default=["0", "1"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--mirror", choices=["off", "on", "both"], default="both")
    ap.add_argument("--venv", type=Path, default=DEFAULT_VENV, help="venv holding nnunetv2")
    ap.add_argument("--autocontour", help="path of the autocontour CLI (omit to time nnU-Net alone)")
    ap.add_argument("--autocontour-args",
                    default="predict {ct} --model {package} --out {outdir}/labels.nii.gz --threads {threads} "
                            "--folds {folds} {mirror_flag}",
                    help="argument template for the autocontour CLI (see autocontour_command)")
    ap.add_argument("--ct-dicom", type=Path, help="DICOM folder of the same CT, for the autocontour CLI")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="nnunet_compare_"))
    in_dir = work / "in"
    in_dir.mkdir()
    shutil.copy(args.ct, in_dir / "case_0000.nii.gz")
    env = thread_env(args.threads)
    mirrors = {"off": [False], "on": [True], "both": [False, True]}[args.mirror]
    rows = []
    print(f"machine: {machine_line()}")
    print(f"input: {args.ct} ; folds {' '.join(args.folds)} ; {args.threads} threads ; tile step 0.5")
    for mirror in mirrors:
        for rep in range(args.repeats):
            out_dir = work / f"nnunet_{'tta' if mirror else 'notta'}_{rep}"
            cmd = nnunet_command(args.venv, args.model, in_dir, out_dir, args.folds, mirror)
            r = run_and_measure(cmd, env=env, expect_file=str(out_dir / "case.nii.gz"),
                                log_file=str(work / f"{out_dir.name}.log"))
            r.update(tool="nnUNetPredictor", mirror=mirror, rep=rep, out=str(out_dir / "case.nii.gz"))
            rows.append(r)
            print(f"  nnU-Net mirror={'on ' if mirror else 'off'} rep {rep}: {r['wall_s']:.2f} s, "
                  f"max RSS {r['max_rss_mb']:.0f} MB, tree PSS {r['tree_pss_mb']:.0f} MB, rc {r['rc']}", flush=True)
            ac_dir = work / f"autocontour_{'tta' if mirror else 'notta'}_{rep}"
            ac_out = ac_dir / "labels.nii.gz"
            ac = autocontour_command(args, args.package, args.ct, ac_dir, mirror)
            if ac:
                r2 = run_and_measure(ac, env=env, expect_file=str(ac_out), log_file=str(work / f"{ac_dir.name}.log"))
                r2.update(tool="autocontour", mirror=mirror, rep=rep, out=str(ac_out))
                if r2["output_present"] and r["output_present"]:
                    r2["agreement"] = agreement(Path(r["out"]), ac_out)
                rows.append(r2)
                print(f"  autocontour mirror={'on ' if mirror else 'off'} rep {rep}: {r2['wall_s']:.2f} s, "
                      f"max RSS {r2['max_rss_mb']:.0f} MB, rc {r2['rc']}", flush=True)

    print()
    print("| tool | mirroring | wall s (min of runs) | max RSS MB | tree PSS MB | agreement |")
    print("|---|---|---|---|---|---|")
    for tool in ("nnUNetPredictor", "autocontour"):
        for mirror in mirrors:
            sel = [r for r in rows if r["tool"] == tool and r["mirror"] == mirror]
            if not sel:
                continue
            best = min(sel, key=lambda r: r["wall_s"])
            ag = best.get("agreement")
            print(f"| {tool} | {'on' if mirror else 'off'} | {best['wall_s']:.2f} | {max(r['max_rss_mb'] for r in sel):.0f} "
                  f"| {max(r['tree_pss_mb'] for r in sel):.0f} | {'' if ag is None else ag} |")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine_line(), "rows": rows}, indent=1))
    if args.keep:
        print(f"work folder: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if all(r["rc"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

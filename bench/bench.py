"""Benchmarks, reported as ratios measured in one run (machines here are shared and noisy).

- start-up: `mlconvert --help` against `python -c "import sklearn"` (what --help must not pay)
- sniffing: the slowest sniffer call per format on 4 KiB heads built to be slow to scan
- batch: models per second at -j1 and -j2 over the same tree of medium-sized models
"""
from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(cmd: list[str], repeat: int = 1, **kw) -> float:
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
        runs.append(time.perf_counter() - started)
        if proc.returncode != 0:  # a figure for a failing command means nothing
            sys.exit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    return statistics.median(runs)


def make_models(root: Path, copies: int) -> int:
    import pickle

    import lightgbm
    import numpy as np
    import xgboost
    from sklearn.datasets import make_classification, make_regression
    from sklearn.ensemble import RandomForestClassifier

    X, y = make_classification(n_samples=2000, n_features=20, n_informative=10, n_classes=3, random_state=0)
    Xr, yr = make_regression(n_samples=2000, n_features=20, random_state=0)
    models = {
        "rf.pkl": RandomForestClassifier(n_estimators=60, max_depth=8, random_state=0).fit(X, y),
        "xgb.pkl": xgboost.XGBRegressor(n_estimators=150, max_depth=5, random_state=0).fit(Xr, yr),
        "lgbm.pkl": lightgbm.LGBMClassifier(n_estimators=100, random_state=0, verbose=-1).fit(X, y),
    }
    for i in range(copies):
        folder = root / f"set{i}"
        folder.mkdir(parents=True)
        for name, model in models.items():
            with open(folder / name, "wb") as fh:
                pickle.dump(model, fh)
    return copies * len(models)


def sniff_figures(calls: int = 200) -> None:
    """Sniffers run on every file a batch walks: none may be slow on any 4 KiB head."""
    import random

    from mlconvert import formats

    heads = {
        "blank": b" " * 4096,
        "comments": b"<!---->" * 500 + b"<PMML>",
        "xml declaration": b"<?xml " + b"?" * 4000,
        "varints": b"\x08\xff" * 2048,
        "random": random.Random(0).randbytes(4096),
    }
    print(f"sniffing (slowest head of {len(heads)}, {calls} calls each)")
    for fmt in formats.all_formats():
        worst = ("", 0.0)
        for label, head in heads.items():
            for name in ("model.xml", "model" + (fmt.extensions[0] if fmt.extensions else ".bin")):
                started = time.perf_counter()
                for _ in range(calls):
                    fmt.sniff(head, Path(name))
                per_call = (time.perf_counter() - started) / calls
                if per_call > worst[1]:
                    worst = (f"{label}, {name}", per_call)
        print(f"  {fmt.id:<11} {worst[1] * 1e6:8.1f} µs  ({worst[0]})")


def main() -> None:
    exe = [sys.executable, "-m", "mlconvert"]
    print("start-up (median of 5)")
    help_s = timed(exe + ["--help"], repeat=5)
    sklearn_s = timed([sys.executable, "-c", "import sklearn"], repeat=5)
    print(f"  mlconvert --help {help_s:.3f} s; import sklearn {sklearn_s:.3f} s; ratio {sklearn_s / help_s:.1f}x")

    sniff_figures()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "models"
        n = make_models(root, copies=8)
        print(f"batch over {n} medium models (RandomForest 60 trees, XGBoost 150 rounds, LightGBM 100 rounds)")
        seconds = {}
        for jobs in (1, 2):
            out = Path(tmp) / f"out{jobs}"
            seconds[jobs] = timed(exe + ["batch", str(root), "--to", "onnx", "--out", str(out), "-j", str(jobs), "-q"])
            shutil.rmtree(out)
            print(f"  -j{jobs}: {seconds[jobs]:.1f} s, {n / seconds[jobs]:.2f} models/s")
        print(f"  -j2 / -j1 speed-up: {seconds[1] / seconds[2]:.2f}x")


if __name__ == "__main__":
    main()

"""A/B of TensorFlow thread-pool settings, interleaved: run by hand.

  python benchmarks/threads.py --presets o55 --settings 0:0,1:1,2:1,1:2 --rounds 3

Each setting is `intra:inter` (0 = TensorFlow's default). Thread pools are
fixed when TensorFlow starts, so every setting runs in its own `bench.py`
worker process; the settings alternate round by round (A B C A B C ...), so
load from other processes affects them alike. Prints, per preset and
setting, the minimum over rounds of each measurement's minimum ms.
"""

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--presets", default="o55")
    p.add_argument("--settings", default="0:0,1:1,2:1,1:2", help="intra:inter pairs")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--modes", default="parallel,many")
    p.add_argument("--json", help="write all rows here")
    args = p.parse_args(argv)
    best, rows = {}, []
    for r in range(args.rounds):
        for preset in args.presets.split(","):
            for setting in args.settings.split(","):
                intra, inter = setting.split(":")
                cmd = [sys.executable, os.path.join(HERE, "bench.py"), "--worker", preset,
                       "--intra-op", intra, "--inter-op", inter, "--iters", str(args.iters),
                       "--modes", args.modes]
                proc = subprocess.run(cmd, capture_output=True, text=True)
                if proc.returncode:
                    raise RuntimeError(f"{preset} {setting} failed:\n{proc.stderr[-3000:]}")
                out = proc.stdout
                row = json.loads([l for l in out.splitlines() if l.startswith("ROW ")][-1][4:])
                row.update(round=r, setting=setting)
                rows.append(row)
                cell = best.setdefault((preset, setting), {})
                for name, t in row["timing"].items():
                    cell[name] = min(cell.get(name, float("inf")), t["min_ms"])
                print(f"round {r} {preset} {setting}: "
                      + " ".join(f"{k}={v['min_ms']}" for k, v in row["timing"].items()),
                      flush=True)
    names = sorted({n for cell in best.values() for n in cell})
    print("| preset | intra:inter | " + " | ".join(names) + " |")
    for (preset, setting), cell in best.items():
        print(f"| {preset} | {setting} | " + " | ".join(str(cell.get(n, "-")) for n in names) + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env bash
# The four ablation arms of the paper (baseline / +DyGA / +SD / +both) and +DyGA in the released code's alignment
# mode, on cpu-quick with the same seed and budget. They share the first stage of runs/cpu-quick (train it first
# with `./dydis train --config cpu-quick`) or, failing that, of runs/quickstart (what `./dydis quickstart` trains,
# also cpu-quick). Then each arm is evaluated (`dydis eval --preset quick`).
# Usage: scripts/ablation-cpu-quick.sh [steps]   (default 800 = 5 epochs)
set -euo pipefail
steps="${1:-800}"
bin=./target/debug/dydis
first=runs/cpu-quick/ae
[ -d "$first" ] || first=runs/quickstart/ae
[ -d "$first" ] || { echo "run ./dydis train --config cpu-quick first (its first stage is shared)"; exit 2; }
arm() {
  local name="$1"; shift
  local dir="runs/ablation/$name"
  mkdir -p "$dir"
  [ -d "$dir/ae" ] || cp -r "$first" "$dir/ae"
  "$bin" train --config cpu-quick --out "$dir" --resume --set "train.steps=$steps" --set train.checkpoint_every=100000 "$@" | grep -E "^\[ldm\] step|^\[dyga\]|^ldm:" || true
}
arm baseline          --set model.unet.skip_dropout.enabled=false --set dyga.enabled=false
arm dyga              --set model.unet.skip_dropout.enabled=false --set dyga.enabled=true
arm sd                --set model.unet.skip_dropout.enabled=true  --set dyga.enabled=false
arm both              --set model.unet.skip_dropout.enabled=true  --set dyga.enabled=true
arm dyga-released     --set model.unet.skip_dropout.enabled=false --set dyga.enabled=true --set 'dyga.align="released-code"'
for a in baseline dyga sd both dyga-released; do
  "$bin" eval "runs/ablation/$a" --preset quick | tail -n 3
done

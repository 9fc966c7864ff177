#!/usr/bin/env bash
# The six VAE baselines on the real dSprites sub-grid (46,080 images, 64 px, 1 channel; $DYDIS_REFERENCE_DATA) at a
# CPU budget: the study's networks, losses and optimisers, the cpu-* presets' hyper-parameters (the third value of
# each sweep), the same seed, STEPS steps each (FactorVAE: half as many updates, disentanglement_lib's count). Each
# run is evaluated like the LDM (`dydis eval --preset quick`, the posterior mean) and its traversal drawn.
# Usage: scripts/vae-dsprites-cpu.sh [steps]   (default 1500); runs in runs/vae-dsprites/<model>
set -euo pipefail
steps="${1:-1500}"
bin=./target/debug/dydis
for m in beta-vae annealed-vae factor-vae dip-vae-i dip-vae-ii beta-tcvae; do
  dir="runs/vae-dsprites/$m"
  "$bin" train --config "cpu-$m" --out "$dir" --resume --set 'data="dsprites-real:subgrid"' \
    --set vae.image_size=64 --set vae.channels=1 --set "vae.steps=$steps" --set vae.log_every=250 \
    --set vae.checkpoint_every=100000 | grep -E "^\[vae\] step|^vae:" || true
  "$bin" eval "$dir" --preset quick > "$dir/eval.txt"
  "$bin" traverse "$dir" --images 0,20000 --values=-2,-1,0,1,2 > /dev/null
done
"$bin" eval-compare runs/vae-dsprites/*/eval/report.json

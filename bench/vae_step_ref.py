#!/usr/bin/env python3
"""PyTorch eager reference for one training step of a disentanglement_lib VAE baseline, as `dydis bench vae-step`
times it: conv_encoder -> sampled code -> deconv_decoder -> Bernoulli loss + the objective -> backward -> Adam, and
for FactorVAE the discriminator's loss on the detached codes and their column-wise permutation, its backward and its
own Adam (beta 0.5, 0.9), from the same forward pass.

Usage: python bench/vae_step_ref.py --objective beta-vae|factor-vae [--image-size 64] [--channels 1] [--batch 64]
       [--latent 10] [--steps 10] [--warmup 3] [--threads 2] --out result.json
Prints and writes parameter counts (equal to dydis's: checked by the bench) and per-step milliseconds.
"""
import argparse, json, statistics, time
import torch
import torch.nn as nn
import torch.nn.functional as F


def glorot_(m):
    for mod in m.modules():
        if isinstance(mod, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.xavier_uniform_(mod.weight)
            nn.init.zeros_(mod.bias)
    return m


class Encoder(nn.Module):
    def __init__(self, c, latent, size):
        super().__init__()
        s = size // 16
        self.convs = nn.ModuleList([nn.Conv2d(c, 32, 4, 2, 1), nn.Conv2d(32, 32, 4, 2, 1),
                                    nn.Conv2d(32, 64, 2, 2, 0), nn.Conv2d(64, 64, 2, 2, 0)])
        self.fc = nn.Linear(64 * s * s, 256)
        self.means, self.log_var = nn.Linear(256, latent), nn.Linear(256, latent)

    def forward(self, x):
        for c in self.convs:
            x = F.relu(c(x))
        h = F.relu(self.fc(x.flatten(1)))
        return self.means(h), self.log_var(h)


class Decoder(nn.Module):
    def __init__(self, c, latent, size):
        super().__init__()
        self.s = size // 16
        self.fc1, self.fc2 = nn.Linear(latent, 256), nn.Linear(256, 64 * self.s * self.s)
        self.deconvs = nn.ModuleList([nn.ConvTranspose2d(64, 64, 4, 2, 1), nn.ConvTranspose2d(64, 32, 4, 2, 1),
                                      nn.ConvTranspose2d(32, 32, 4, 2, 1), nn.ConvTranspose2d(32, c, 4, 2, 1)])

    def forward(self, z):
        h = F.relu(self.fc2(F.relu(self.fc1(z)))).view(-1, 64, self.s, self.s)
        for i, d in enumerate(self.deconvs):
            h = d(h)
            if i < 3:
                h = F.relu(h)
        return h


class Discriminator(nn.Module):
    def __init__(self, latent):
        super().__init__()
        self.hidden = nn.ModuleList([nn.Linear(latent if i == 0 else 1000, 1000) for i in range(6)])
        self.out = nn.Linear(1000, 2)

    def forward(self, z):
        for l in self.hidden:
            z = F.leaky_relu(l(z), 0.2)
        return self.out(z)


def count(m):
    return sum(p.numel() for p in m.parameters())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--objective", choices=["beta-vae", "factor-vae"], required=True)
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--latent", type=int, default=10)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    enc = glorot_(Encoder(a.channels, a.latent, a.image_size))
    dec = glorot_(Decoder(a.channels, a.latent, a.image_size))
    disc = glorot_(Discriminator(a.latent)) if a.objective == "factor-vae" else None
    opt = torch.optim.Adam(list(enc.parameters()) + list(dec.parameters()), lr=1e-4, betas=(0.9, 0.999), eps=1e-8)
    opt_d = torch.optim.Adam(disc.parameters(), lr=1e-4, betas=(0.5, 0.9), eps=1e-8) if disc else None
    batches = [torch.rand(a.batch, a.channels, a.image_size, a.image_size) for _ in range(4)]
    times = []
    for i in range(a.warmup + a.steps):
        x = batches[i % len(batches)]
        t0 = time.perf_counter()
        mu, lv = enc(x)
        z = mu + (0.5 * lv).exp() * torch.randn_like(mu)
        rec = F.binary_cross_entropy_with_logits(dec(z), x, reduction="none").flatten(1).sum(1).mean()
        kl = (0.5 * (mu ** 2 + lv.exp() - lv - 1)).sum(1).mean()
        if disc is None:
            loss = rec + 4.0 * kl
        else:
            logits = disc(z)
            loss = rec + kl + 30.0 * (logits[:, 0] - logits[:, 1]).mean()
        opt.zero_grad()
        loss.backward()
        if disc is not None:
            zd = z.detach()
            zp = torch.stack([zd[torch.randperm(zd.shape[0]), j] for j in range(zd.shape[1])], 1)
            p_real = disc(zd).softmax(-1).clamp(1e-6, 1 - 1e-6)
            p_perm = disc(zp).softmax(-1).clamp(1e-6, 1 - 1e-6)
            d_loss = -(0.5 * p_real[:, 0].log().mean() + 0.5 * p_perm[:, 1].log().mean())
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
        opt.step()
        if i >= a.warmup:
            times.append((time.perf_counter() - t0) * 1e3)
    res = {
        "implementation": "PyTorch eager", "torch": torch.__version__, "threads": a.threads,
        "objective": a.objective, "batch": a.batch, "image_size": a.image_size, "channels": a.channels,
        "params": {"encoder": count(enc), "decoder": count(dec), "discriminator": count(disc) if disc else 0},
        "step_ms": {"median": statistics.median(times), "min": min(times), "max": max(times), "runs": times},
    }
    json.dump(res, open(a.out, "w"), indent=1)
    print(f"PyTorch eager {a.objective}: {res['step_ms']['median']:.1f} ms/step (median of {len(times)})")


if __name__ == "__main__":
    main()

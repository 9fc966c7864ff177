#!/usr/bin/env python3
"""PyTorch eager reference for one dydis LDM training step (VQ encode -> extractor -> U-Net -> L1 -> AdamW -> EMA).

Builds the networks of docs/architecture.md from the dydis JSON config and times a step.
Usage: python bench/train_step_ref.py --config cfg.json [--steps 10] [--warmup 3] [--threads 2]
       [--device cpu|cuda] [--attn matmul|sdpa] [--foreach] [--out result.json] [--count-only]
"""
import argparse, json, math, resource, statistics, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F


def zero_(m):
    for p in m.parameters():
        nn.init.zeros_(p)
    return m


# ---------------- first stage: LDM/taming VQ autoencoder (spec 2.1) ----------------
def vq_norm(c):
    return nn.GroupNorm(32, c, eps=1e-6)


class VQResBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.norm1, self.conv1 = vq_norm(cin), nn.Conv2d(cin, cout, 3, 1, 1)
        self.norm2, self.conv2 = vq_norm(cout), nn.Conv2d(cout, cout, 3, 1, 1)
        self.nin_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))  # dropout 0.0 omitted
        return self.nin_shortcut(x) + h


class VQAttn(nn.Module):  # single-head vanilla self-attention over pixels
    def __init__(self, c):
        super().__init__()
        self.norm = vq_norm(c)
        self.q, self.k, self.v, self.proj_out = (nn.Conv2d(c, c, 1) for _ in range(4))

    def forward(self, x):
        b, c, hh, ww = x.shape
        h = self.norm(x)
        q = self.q(h).flatten(2).transpose(1, 2)            # b, hw, c
        k = self.k(h).flatten(2)                            # b, c, hw
        v = self.v(h).flatten(2)                            # b, c, hw
        w = torch.softmax(torch.bmm(q, k) * c ** -0.5, dim=2)
        o = torch.bmm(v, w.transpose(1, 2)).reshape(b, c, hh, ww)
        return x + self.proj_out(o)


class Downsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 2, 0)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 1, 1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class VQEncoder(nn.Module):
    def __init__(self, ch, ch_mult, nrb, zc):
        super().__init__()
        layers, cin = [nn.Conv2d(3, ch, 3, 1, 1)], ch
        for l, m in enumerate(ch_mult):
            for _ in range(nrb):
                layers.append(VQResBlock(cin, ch * m)); cin = ch * m
            if l != len(ch_mult) - 1:
                layers.append(Downsample(cin))
        layers += [VQResBlock(cin, cin), VQAttn(cin), VQResBlock(cin, cin), vq_norm(cin), nn.SiLU(),
                   nn.Conv2d(cin, zc, 3, 1, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class VQDecoder(nn.Module):  # built for parameter counts only; not run in the LDM step
    def __init__(self, ch, ch_mult, nrb, zc):
        super().__init__()
        cin = ch * ch_mult[-1]
        layers = [nn.Conv2d(zc, cin, 3, 1, 1), VQResBlock(cin, cin), VQAttn(cin), VQResBlock(cin, cin)]
        for l in reversed(range(len(ch_mult))):
            for _ in range(nrb + 1):
                layers.append(VQResBlock(cin, ch * ch_mult[l])); cin = ch * ch_mult[l]
            if l != 0:
                layers.append(Upsample(cin))
        layers += [vq_norm(cin), nn.SiLU(), nn.Conv2d(cin, 3, 3, 1, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z):
        return self.net(z)


class VQModel(nn.Module):
    def __init__(self, ch, ch_mult, num_res_blocks, n_embed, embed_dim):
        super().__init__()
        self.encoder = VQEncoder(ch, ch_mult, num_res_blocks, embed_dim)  # z_channels = embed_dim
        self.quant_conv = nn.Conv2d(embed_dim, embed_dim, 1)
        self.codebook = nn.Embedding(n_embed, embed_dim)
        self.post_quant_conv = nn.Conv2d(embed_dim, embed_dim, 1)
        self.decoder = VQDecoder(ch, ch_mult, num_res_blocks, embed_dim)

    def encode(self, x):  # pre-quantisation latent (what the LDM sees)
        return self.quant_conv(self.encoder(x))


# ---------------- feature extractor (spec 3.1) ----------------
class Extractor(nn.Module):
    def __init__(self, image_size, width, fc, mlp, units, unit_dim):
        super().__init__()
        w = width
        def cbr(cin, cout, k, s, p):
            return [nn.Conv2d(cin, cout, k, s, p), nn.BatchNorm2d(cout), nn.ReLU()]
        self.cnn = nn.Sequential(*cbr(3, w, 7, 1, 3), *cbr(w, 2 * w, 4, 2, 1), *cbr(2 * w, 4 * w, 4, 2, 1),
                                 *cbr(4 * w, 4 * w, 4, 2, 1), *cbr(4 * w, 4 * w, 4, 2, 1))
        flat = 4 * w * (image_size // 16) ** 2
        self.fc = nn.Sequential(nn.Linear(flat, fc[0]), nn.ReLU(), nn.Linear(fc[0], fc[1]), nn.ReLU(),
                                nn.Linear(fc[1], units))
        self.mlps = nn.ModuleList(
            nn.Sequential(nn.Linear(1, mlp[0]), nn.ReLU(), nn.Linear(mlp[0], mlp[1]), nn.ReLU(),
                          nn.Linear(mlp[1], unit_dim), nn.ReLU()) for _ in range(units))

    def forward(self, x):
        s = self.fc(self.cnn(x).flatten(1))                                     # B, units
        return torch.stack([m(s[:, i:i + 1]) for i, m in enumerate(self.mlps)], dim=1)  # B, units, unit_dim


# ---------------- U-Net (spec 4.1) + skip dropout (spec 5) ----------------
def gn32(c):
    return nn.GroupNorm(32, c, eps=1e-5)


class ResBlock(nn.Module):
    def __init__(self, cin, cout, emb_dim, dropout, updown=None):
        super().__init__()
        self.updown = updown
        self.norm1, self.conv1 = gn32(cin), nn.Conv2d(cin, cout, 3, 1, 1)
        self.emb = nn.Linear(emb_dim, 2 * cout)
        self.norm2, self.drop = gn32(cout), nn.Dropout(dropout)
        self.conv2 = zero_(nn.Conv2d(cout, cout, 3, 1, 1))
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def resample(self, t):
        if self.updown == "down":
            return F.avg_pool2d(t, 2)
        if self.updown == "up":
            return F.interpolate(t, scale_factor=2.0, mode="nearest")
        return t

    def forward(self, x, emb):
        h = self.resample(F.silu(self.norm1(x)))
        x = self.resample(x)
        h = self.conv1(h)
        scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.drop(F.silu(h)))
        return self.skip(x) + h


class Attention(nn.Module):
    def __init__(self, qdim, kvdim, heads, sdpa):
        super().__init__()
        self.heads, self.dh, self.sdpa = heads, qdim // heads, sdpa
        inner = self.dh * heads
        self.to_q = nn.Linear(qdim, inner, bias=False)
        self.to_k = nn.Linear(kvdim, inner, bias=False)
        self.to_v = nn.Linear(kvdim, inner, bias=False)
        self.to_out = nn.Linear(inner, qdim)

    def forward(self, x, ctx):
        b, n, _ = x.shape
        split = lambda t: t.reshape(b, t.shape[1], self.heads, self.dh).transpose(1, 2)  # b, h, n, dh
        q, k, v = split(self.to_q(x)), split(self.to_k(ctx)), split(self.to_v(ctx))
        if self.sdpa:
            o = F.scaled_dot_product_attention(q, k, v)
        else:
            o = torch.softmax(q @ k.transpose(-1, -2) * self.dh ** -0.5, dim=-1) @ v
        return self.to_out(o.transpose(1, 2).reshape(b, n, -1))


class SpatialTransformer(nn.Module):
    def __init__(self, c, heads, ctx_dim, depth, sdpa):
        super().__init__()
        self.norm, self.proj_in = nn.GroupNorm(32, c, eps=1e-6), nn.Conv2d(c, c, 1)
        self.blocks = nn.ModuleList(nn.ModuleDict(dict(
            ln1=nn.LayerNorm(c), attn1=Attention(c, c, heads, sdpa),
            ln2=nn.LayerNorm(c), attn2=Attention(c, ctx_dim, heads, sdpa),
            ln3=nn.LayerNorm(c), ff_in=nn.Linear(c, 8 * c), ff_out=nn.Linear(4 * c, c))) for _ in range(depth))
        self.proj_out = zero_(nn.Conv2d(c, c, 1))

    def forward(self, x, ctx):
        b, c, hh, ww = x.shape
        h = self.proj_in(self.norm(x)).flatten(2).transpose(1, 2)  # b, hw, c
        for blk in self.blocks:
            y = blk["ln1"](h); h = h + blk["attn1"](y, y)
            h = h + blk["attn2"](blk["ln2"](h), ctx)
            val, gate = blk["ff_in"](blk["ln3"](h)).chunk(2, dim=-1)   # GEGLU
            h = h + blk["ff_out"](val * F.gelu(gate))
        h = h.transpose(1, 2).reshape(b, c, hh, ww)
        return x + self.proj_out(h)


class Step(nn.Module):  # one openaimodel TimestepEmbedSequential: ResBlock/conv + optional ST (+ optional up ResBlock)
    def __init__(self, *layers):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, h, emb, ctx):
        for m in self.layers:
            if isinstance(m, ResBlock): h = m(h, emb)
            elif isinstance(m, SpatialTransformer): h = m(h, ctx)
            else: h = m(h)
        return h


class UNet(nn.Module):
    def __init__(self, cin, model_channels, channel_mult, num_res_blocks, attention_ds, num_heads, dropout,
                 transformer_depth, skip_dropout, skip_levels, ctx_dim, sdpa=False):
        super().__init__()
        mc, E = model_channels, 4 * model_channels
        st = lambda c: SpatialTransformer(c, num_heads, ctx_dim, transformer_depth, sdpa)
        rb = lambda a, b, ud=None: ResBlock(a, b, E, dropout, ud)
        self.mc, self.p, self.skip_levels = mc, skip_dropout, set(skip_levels)
        self.time_embed = nn.Sequential(nn.Linear(mc, E), nn.SiLU(), nn.Linear(E, E))
        self.inp = nn.ModuleList([Step(nn.Conv2d(cin, mc, 3, 1, 1))])
        chans, ch, ds = [mc], mc, 1
        for l, m in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                layers = [rb(ch, mc * m)]; ch = mc * m
                if ds in attention_ds: layers.append(st(ch))
                self.inp.append(Step(*layers)); chans.append(ch)
            if l != len(channel_mult) - 1:
                self.inp.append(Step(rb(ch, ch, "down"))); chans.append(ch); ds *= 2
        self.mid = Step(rb(ch, ch), st(ch), rb(ch, ch))
        self.out, self.out_level = nn.ModuleList(), []
        for l in reversed(range(len(channel_mult))):
            for i in range(num_res_blocks + 1):
                layers = [rb(ch + chans.pop(), mc * channel_mult[l])]; ch = mc * channel_mult[l]
                if ds in attention_ds: layers.append(st(ch))
                if l and i == num_res_blocks:
                    layers.append(rb(ch, ch, "up")); ds //= 2
                self.out.append(Step(*layers)); self.out_level.append(l)
        self.final = nn.Sequential(gn32(ch), nn.SiLU(), zero_(nn.Conv2d(ch, cin, 3, 1, 1)))

    def forward(self, x, t, ctx):
        half = self.mc // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=x.device, dtype=torch.float32) / half)
        args = t.float()[:, None] * freqs[None]
        emb = self.time_embed(torch.cat([torch.cos(args), torch.sin(args)], dim=-1))
        hs, h = [], x
        for blk in self.inp:
            h = blk(h, emb, ctx); hs.append(h)
        h = self.mid(h, emb, ctx)
        for blk, l in zip(self.out, self.out_level):
            s = hs.pop()
            if self.training and self.p > 0 and l in self.skip_levels:  # channel-wise skip dropout
                keep = (torch.rand(s.shape[0], s.shape[1], 1, 1, device=s.device) > self.p).to(s.dtype)
                s = s * keep / (1 - self.p)
            h = blk(torch.cat([h, s], dim=1), emb, ctx)
        return self.final(h)


# ---------------- build / step / timing ----------------
def nparams(m):
    return sum(p.numel() for p in m.parameters())


def build(cfg, sdpa):
    S, fs, ex, un = cfg["image_size"], cfg["first_stage"], cfg["extractor"], cfg["unet"]
    first = None
    if fs["kind"] == "vq":
        first = VQModel(fs["ch"], fs["ch_mult"], fs["num_res_blocks"], fs["n_embed"], fs["embed_dim"])
        zc = fs["embed_dim"]
    elif fs["kind"] == "identity":
        zc = 3
    else:
        raise ValueError(f"unknown first_stage kind {fs['kind']}")
    extractor = Extractor(S, ex["width"], ex["fc"], ex["mlp"], ex["units"], ex["unit_dim"])
    unet = UNet(zc, un["model_channels"], un["channel_mult"], un["num_res_blocks"], un["attention_ds"],
                un["num_heads"], un["dropout"], un["transformer_depth"], un["skip_dropout"], un["skip_levels"],
                ex["unit_dim"], sdpa)
    return first, extractor, unet


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--attn", default="matmul", choices=["matmul", "sdpa"])
    ap.add_argument("--foreach", action="store_true", help="AdamW foreach=True (default False)")
    ap.add_argument("--out")
    ap.add_argument("--count-only", action="store_true")
    a = ap.parse_args()
    cfg = json.load(open(a.config))
    torch.manual_seed(0)
    torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    first, extractor, unet = build(cfg, a.attn == "sdpa")
    params = {"first_stage": nparams(first) if first else 0, "extractor": nparams(extractor), "unet": nparams(unet)}
    if first:
        params.update(vq_encoder=nparams(first.encoder), vq_quant_conv=nparams(first.quant_conv),
                      vq_codebook=nparams(first.codebook), vq_post_quant_conv=nparams(first.post_quant_conv),
                      vq_decoder=nparams(first.decoder))
    res = {"framework": "pytorch-eager", "torch_version": torch.__version__, "device": a.device,
           "threads": torch.get_num_threads(), "attn": a.attn, "adamw_foreach": a.foreach, "params": params}
    if not a.count_only:
        res.update(run(cfg, a, dev, first, extractor, unet))
    txt = json.dumps(res, indent=1)
    print(txt)
    if a.out:
        open(a.out, "w").write(txt + "\n")


def run(cfg, a, dev, first, extractor, unet):
    B, S = cfg["batch_size"], cfg["image_size"]
    extractor.to(dev).train(); unet.to(dev).train()
    if first:
        first.to(dev).eval().requires_grad_(False)
    n_batches = max(1, min(a.steps + a.warmup, 8))  # pre-made random batches in [-1, 1], cycled
    batches = [torch.rand(B, 3, S, S, device=dev) * 2 - 1 for _ in range(n_batches)]
    T = 1000
    betas = torch.linspace(0.0015 ** 0.5, 0.0155 ** 0.5, T, dtype=torch.float64) ** 2
    abar = torch.cumprod(1 - betas, 0)
    sqrt_ab, sqrt_1mab = abar.sqrt().float().to(dev), (1 - abar).sqrt().float().to(dev)
    scale = 1.0
    if first:  # scale_by_std on the first batch (unbiased std)
        with torch.no_grad():
            scale = 1.0 / first.encode(batches[0]).flatten().std().item()
    trainable = list(unet.parameters()) + list(extractor.parameters())
    opt = torch.optim.AdamW(trainable, lr=1e-4, weight_decay=0.01, foreach=a.foreach)
    ema_src = [p for p in unet.parameters() if p.requires_grad]
    shadow = [p.detach().clone() for p in ema_src]
    n_upd = [0]

    def step(x):
        with torch.no_grad():
            z0 = first.encode(x) * scale if first else x
        ctx = extractor(x)
        t = torch.randint(0, T, (B,), device=dev)
        eps = torch.randn_like(z0)
        zt = sqrt_ab[t][:, None, None, None] * z0 + sqrt_1mab[t][:, None, None, None] * eps
        loss = (unet(zt, t, ctx) - eps).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():  # LitEma
            n_upd[0] += 1
            n = n_upd[0]
            d = min(0.9999, (1 + n) / (10 + n))
            for s, p in zip(shadow, ema_src):
                s.sub_((1 - d) * (s - p))
        return loss

    sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times, loss = [], None
    for i in range(a.warmup + a.steps):
        sync(); t0 = time.perf_counter()
        loss = step(batches[i % n_batches])
        sync(); dt = (time.perf_counter() - t0) * 1e3
        if i >= a.warmup:
            times.append(dt)
    out = {"step_ms": {"mean": statistics.mean(times) if times else None,
                       "median": statistics.median(times) if times else None,
                       "min": min(times) if times else None},
           "steps": len(times), "warmup": a.warmup, "batch_size": B, "image_size": S,
           "scale_factor": scale, "last_loss": float(loss.item()) if loss is not None else None,
           "peak_memory_bytes": torch.cuda.max_memory_allocated() if dev.type == "cuda" else None}
    if dev.type == "cpu":
        out["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    return out


if __name__ == "__main__":
    main()

"""The released DyGA anchor selection (youngjun-jun/dis-dis, code/ldm/modules/gaussian/DyGA.py with the driver in
ddpm_dyga.py:61-75), re-expressed from docs/architecture.md for timing and log-likelihood comparison with
`dydis bench anchors`: same phases, same constants, same quirks (full-covariance E-step through torch's
MultivariateNormal, 30 fixed EM iterations, densities by one E-step per cluster, splits counted per split, children
weighted pi_child / 2, soft-count filter, final EM).

Usage: python dyga_released_ref.py --features F.f32 --shape n,N,D [--heldout H.f32 --heldout-rows m]
       --threads 2 --seed S --out R.json
F.f32 holds [n, N, D] little-endian float32 features (what `dydis bench anchors` writes), H.f32 optional held-out
rows [m, N, D] of the same units; every unit is fitted in turn; per unit the fit time, K, the mean log-likelihood of
the full-covariance mixture (+1e-6 I) on the unit's normalised training rows and on its held-out rows (normalised
with the training statistics), and BIC on the training rows are reported. Needs only torch.
"""
import argparse
import json
import math
import time

import torch


class ReleasedDyGA:
    def __init__(self, n_clusters=8, max_clusters=32, max_iter=30, threshold_density=0.5, min_cluster_size=10, seed=0):
        self.k = n_clusters
        self.max_clusters = max_clusters
        self.max_iter = max_iter
        self.psi = threshold_density
        self.min_size = min_cluster_size
        self.gen = torch.Generator().manual_seed(seed)

    def _log_prob(self, x, means, covs):
        d = x.shape[1]
        out = []
        for k in range(means.shape[0]):
            try:
                mvn = torch.distributions.MultivariateNormal(means[k], covariance_matrix=covs[k] + 1e-6 * torch.eye(d, dtype=x.dtype))
                out.append(mvn.log_prob(x))
            except RuntimeError:
                out.append(torch.full((x.shape[0],), float("-inf"), dtype=x.dtype))
        return torch.stack(out, 1)

    def e_step(self, x, means, covs, weights):
        lp = self._log_prob(x, means, covs) + torch.log(weights)
        return torch.exp(lp - torch.logsumexp(lp, 1, keepdim=True))

    def m_step(self, x, r):
        nk = r.sum(0)
        means = (r.T @ x) / nk[:, None]
        covs = []
        for k in range(r.shape[1]):
            dx = x - means[k]
            covs.append((r[:, k, None] * dx).T @ dx / nk[k])
        covs = torch.stack(covs)
        # the "subspace update": computed, never used by the E-step (docs/architecture.md)
        for k in range(covs.shape[0]):
            c = covs[k] / torch.linalg.norm(covs[k]) + 1e-6 * torch.eye(x.shape[1], dtype=x.dtype)
            torch.linalg.eigh(c)
        return means, covs, nk / x.shape[0]

    def em(self, x, means, covs, weights):
        for _ in range(self.max_iter):
            r = self.e_step(x, means, covs, weights)
            means, covs, weights = self.m_step(x, r)
        return means, covs, weights

    def init(self, x, k):
        idx = torch.randperm(x.shape[0], generator=self.gen)[:k]
        d = x.shape[1]
        return x[idx].clone(), torch.eye(d, dtype=x.dtype).repeat(k, 1, 1), torch.full((k,), 1.0 / k, dtype=x.dtype)

    def densities(self, x, means, covs, weights):
        dens = []
        for k in range(means.shape[0]):  # one full E-step per cluster, as released
            r = self.e_step(x, means, covs, weights)
            s = x[r[:, k] > 0.5]
            dens.append(float("nan") if s.shape[0] == 0 else torch.linalg.norm(s - s.mean(0), dim=1).mean().item())
        return dens

    def fit(self, x):
        means, covs, weights = self.init(x, self.k)
        means, covs, weights = self.em(x, means, covs, weights)
        split_iter = 0
        while split_iter < 3:
            if means.shape[0] >= self.max_clusters:
                break
            dens = self.densities(x, means, covs, weights)
            coins = torch.rand(len(dens), generator=self.gen)
            selected = [k for k, dk in enumerate(dens) if dk > self.psi or coins[k].item() < 0.5]
            if not selected:
                break
            for k in selected:
                if k >= means.shape[0]:
                    continue
                r = self.e_step(x, means, covs, weights)
                s = x[r[:, k] > 0.5]
                if s.shape[0] < 2:
                    continue
                cm, cc, cw = self.init(s, 2)
                cm, cc, cw = self.em(s, cm, cc, cw)
                keep = [j for j in range(means.shape[0]) if j != k]
                means = torch.cat([means[keep], cm])
                covs = torch.cat([covs[keep], cc])
                weights = torch.cat([weights[keep], cw / 2])
                weights = weights / weights.sum()
                dens = self.densities(x, means, covs, weights)
                if all(not (dk > self.psi) for dk in dens):
                    break
                split_iter += 1
        r = self.e_step(x, means, covs, weights)
        keep = (r.sum(0) >= self.min_size).nonzero().flatten()
        means, covs, weights = means[keep], covs[keep], weights[keep]
        weights = weights / weights.sum()
        means, covs, weights = self.em(x, means, covs, weights)
        return means, covs, weights


def mean_log_likelihood(x, means, covs, weights):
    d = x.shape[1]
    lp = []
    for k in range(means.shape[0]):
        mvn = torch.distributions.MultivariateNormal(means[k].double(), covariance_matrix=covs[k].double() + 1e-6 * torch.eye(d, dtype=torch.float64))
        lp.append(mvn.log_prob(x.double()))
    return (torch.logsumexp(torch.stack(lp, 1) + torch.log(weights.double()), 1)).mean().item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--features", required=True)
    ap.add_argument("--shape", required=True, help="n,N,D")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--heldout")
    ap.add_argument("--heldout-rows", type=int, default=0)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    shape = [int(v) for v in a.shape.split(",")]

    def read(path, rows):
        with open(path, "rb") as f:
            return torch.frombuffer(bytearray(f.read()), dtype=torch.float32).reshape([rows] + shape[1:])

    feats = read(a.features, shape[0])
    held = read(a.heldout, a.heldout_rows) if a.heldout else None
    units = []
    for i in range(feats.shape[1]):
        x = feats[:, i, :]
        hi, lo = x.max(), x.min()
        x = (x - hi) / (hi - lo + 1e-6)  # the released normalisation (max subtracted)
        h = None if held is None else (held[:, i, :] - hi) / (hi - lo + 1e-6)
        t0 = time.perf_counter()
        for attempt in range(20):
            try:
                means, covs, weights = ReleasedDyGA(seed=a.seed + attempt).fit(x)
                break
            except ValueError:
                continue
        else:
            units.append({"unit": i, "error": "20 attempts failed"})
            continue
        secs = time.perf_counter() - t0
        k, n, d = int(means.shape[0]), x.shape[0], x.shape[1]
        ll = mean_log_likelihood(x, means, covs, weights)
        params = k * (d + d * (d + 1) / 2) + k - 1
        u = {"unit": i, "seconds": secs, "k": k, "mean_log_likelihood": ll, "attempts": attempt + 1,
             "bic": -2.0 * n * ll + params * math.log(n)}
        if h is not None:
            u["heldout_mean_log_likelihood"] = mean_log_likelihood(h, means, covs, weights)
        units.append(u)
    json.dump({"implementation": "released DyGA (re-expressed)", "threads": a.threads, "torch": torch.__version__, "units": units}, open(a.out, "w"), indent=1)


if __name__ == "__main__":
    main()

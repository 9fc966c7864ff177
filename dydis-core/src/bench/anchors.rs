//! `dydis bench anchors`: DyGA anchor selection on synthetic extractor-like features, against the released
//! implementation (`bench/dyga_released_ref.py`) on the same units in the same run, over several seeds.
use super::Reference;
use crate::display::Show;
use crate::dyga::gmm::component_params;
use crate::dyga::{fit_units, CovModel, DygaConfig, Mixture, UnitAnchors};
use crate::Result;
use std::path::PathBuf;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// Synthetic unit features like an extractor's: a ReLU of a mixture of `k` anisotropic Gaussians in D = 32.
fn synthetic_features(n: i64, units: i64, k: i64, seed: i64) -> Tensor {
    tch::manual_seed(seed);
    let opts = (Kind::Float, Device::Cpu);
    let per_unit: Vec<Tensor> = (0..units)
        .map(|_| {
            let means = Tensor::rand([k, 32], opts) * 2.0 - 0.5;
            let comp = Tensor::randint(k, [n], (Kind::Int64, Device::Cpu));
            let a = Tensor::randn([k, 4, 32], opts) * 0.15;
            let z = Tensor::randn([n, 1, 4], opts).bmm(&a.index_select(0, &comp)).squeeze_dim(1);
            (z + means.index_select(0, &comp) + Tensor::randn([n, 32], opts) * 0.05).relu()
        })
        .collect();
    Tensor::stack(&per_unit, 1)
}

/// Mean log-likelihood (f64) of a unit's fitted mixture on all of the unit's raw features (normalised as at fit time).
fn unit_log_likelihood(u: &UnitAnchors, raw: &Tensor) -> Result<f64> {
    let m = &u.mixture;
    let m64 = Mixture {
        weights: m.weights.to_kind(Kind::Double),
        means: m.means.to_kind(Kind::Double),
        covs: m.covs.to_kind(Kind::Double),
        dims: m.dims.clone(),
    };
    Ok(m64.e_step(&u.norm.apply(&raw.to_kind(Kind::Double)))?.1)
}

/// Free parameters of a unit's fitted mixture (its covariance model per component, and the weights).
fn parameters(u: &UnitAnchors, model: &CovModel) -> f64 {
    let d = u.mixture.dim();
    u.mixture.dims.iter().map(|&dk| component_params(model, d, dk)).sum::<f64>() + u.k() as f64 - 1.0
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct Options {
    pub units: i64,
    pub features: i64,
    /// Seeds of the one-unit comparison (features and fits); the released code's runaway splits make one seed
    /// unrepresentative.
    pub seeds: Vec<u64>,
    /// The released implementation (`dyga_released_ref.py`), run on the same 10,000-feature units.
    pub reference: Option<Reference>,
    /// Where the results will be written: the features handed to the reference (removed once it has run) and its
    /// results (`<results>.reference-<seed>.json`) go next to it.
    pub results: PathBuf,
}

fn write_f32(path: &std::path::Path, t: &Tensor) -> Result<()> {
    let v: Vec<f32> = Vec::try_from(t.contiguous().flatten(0, -1))?;
    crate::fs::write_atomic(path, &v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>())
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => 0.5 * (s[n / 2 - 1] + s[n / 2]),
    }
}

/// Median and range of a measure over seeds.
fn spread(v: &[f64]) -> serde_json::Value {
    let lo = v.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    serde_json::json!({"median": median(v), "min": lo, "max": hi, "values": v})
}

/// One fit of one unit: seconds, K, training BIC, held-out mean log-likelihood.
fn one_fit(train: &Tensor, held: &Tensor, cfg: &DygaConfig, seed: u64) -> Result<[f64; 4]> {
    let t = Instant::now();
    let a = fit_units(train, cfg, seed, 0)?;
    let secs = t.elapsed().as_secs_f64();
    let u = &a.units[0];
    let n = train.size()[0] as f64;
    let ll = unit_log_likelihood(u, &train.select(1, 0))?;
    let bic = -2.0 * n * ll + parameters(u, &cfg.model) * n.ln();
    Ok([secs, u.k() as f64, bic, unit_log_likelihood(u, &held.select(1, 0))?])
}

/// One unit of 10,000 features (and 10,000 held-out rows of the same distribution) per seed: dydis's default (HDDC)
/// and full-covariance fits and, with the reference, the released implementation on the same features, compared by
/// time, K, BIC on the training rows and mean log-likelihood on the held-out rows (median and range over seeds).
fn one_unit(opts: &Options, cfg: &DygaConfig) -> Result<serde_json::Value> {
    let arms = [("dydis_hddc", CovModel::default()), ("dydis_full", CovModel::Full)];
    let mut ours: Vec<Vec<[f64; 4]>> = vec![Vec::new(); arms.len()];
    let mut released: Vec<[f64; 4]> = Vec::new();
    for &seed in &opts.seeds {
        let both = synthetic_features(20_000, 1, 10, 1 + seed as i64);
        let (train, held) = (both.narrow(0, 0, 10_000), both.narrow(0, 10_000, 10_000));
        for (i, (_, model)) in arms.iter().enumerate() {
            ours[i].push(one_fit(&train, &held, &DygaConfig { model: model.clone(), ..cfg.clone() }, seed)?);
        }
        if let Some(r) = &opts.reference {
            let (tp, hp) = (opts.results.with_extension("train.f32"), opts.results.with_extension("heldout.f32"));
            write_f32(&tp, &train)?;
            write_f32(&hp, &held)?;
            let res = opts.results.with_extension(format!("reference-{seed}.json"));
            let args: Vec<String> = vec![
                "--features".into(),
                tp.display().to_string(),
                "--shape".into(),
                "10000,1,32".into(),
                "--heldout".into(),
                hp.display().to_string(),
                "--heldout-rows".into(),
                "10000".into(),
                "--threads".into(),
                tch::get_num_threads().to_string(),
                "--seed".into(),
                seed.to_string(),
                "--out".into(),
                res.display().to_string(),
            ];
            let result = r.run("dyga_released_ref.py", &args, &res, true);
            let _ = std::fs::remove_file(&tp);
            let _ = std::fs::remove_file(&hp);
            let u = &result?["units"][0];
            let f = |k: &str| u[k].as_f64().unwrap_or(f64::NAN);
            released.push([f("seconds"), f("k"), f("bic"), f("heldout_mean_log_likelihood")]);
        }
        println!("seed {seed}: dydis (HDDC) {:?}, released {:?}", ours[0].last(), released.last());
    }
    let column = |rows: &[[f64; 4]], j: usize| -> Vec<f64> { rows.iter().map(|r| r[j]).collect() };
    let summary = |rows: &[[f64; 4]]| {
        serde_json::json!({
            "seconds": spread(&column(rows, 0)), "k": spread(&column(rows, 1)),
            "bic": spread(&column(rows, 2)), "heldout_mean_log_likelihood": spread(&column(rows, 3))
        })
    };
    let mut out = serde_json::json!({"seeds": opts.seeds, "train_rows": 10_000, "heldout_rows": 10_000});
    for (i, (name, _)) in arms.iter().enumerate() {
        out[*name] = summary(&ours[i]);
    }
    if !released.is_empty() {
        out["released"] = summary(&released);
        let ref_median = median(&column(&released, 0));
        for (i, (name, _)) in arms.iter().enumerate() {
            let speedup = ref_median / median(&column(&ours[i], 0));
            // Per seed, on the same features: ours minus released.
            let dll: Vec<f64> = ours[i].iter().zip(&released).map(|(a, b)| a[3] - b[3]).collect();
            let dbic: Vec<f64> = ours[i].iter().zip(&released).map(|(a, b)| a[2] - b[2]).collect();
            println!(
                "{name}: {speedup:.1}x the released median time; held-out log-likelihood {:+.3} (median over seeds), \
                 BIC {:+.0}",
                median(&dll),
                median(&dbic)
            );
            out[*name]["speedup_vs_released_median"] = serde_json::json!(speedup);
            out[*name]["heldout_ll_minus_released"] = spread(&dll);
            out[*name]["bic_minus_released"] = spread(&dbic);
        }
    }
    Ok(out)
}

/// Anchor selection: the one-unit comparison over seeds, then N units × n features × D = 32 with the default
/// configuration (every row up to 100,000 enters each unit's fit), in total and per unit.
pub fn run(opts: &Options) -> Result<serde_json::Value> {
    let (units, features) = (opts.units, opts.features);
    let cfg = DygaConfig { enabled: true, ..Default::default() };
    let threads = tch::get_num_threads();
    let mut report = serde_json::json!({"benchmark": "dyga-anchor-selection", "threads": threads, "config": cfg});
    report["one_unit_10k"] = one_unit(opts, &cfg)?;
    let feats = synthetic_features(features, units, 10, 2);
    println!("{units} units x {features} features x 32: fitting ...");
    let t = Instant::now();
    let a = fit_units(&feats, &cfg, 0, 0)?;
    let total = t.elapsed().as_secs_f64();
    let mut per = Vec::new();
    for u in &a.units {
        let ll = unit_log_likelihood(u, &feats.select(1, u.unit as i64))?;
        per.push(serde_json::json!({
            "unit": u.unit, "seconds": u.seconds, "k": u.k(), "n_fit": u.n_fit, "splits": u.splits(),
            "filtered": u.filtered(), "mean_log_likelihood_all_features": ll
        }));
    }
    println!("{}", a.table().to_text());
    println!("total {total:.1} s for {units} units x {features} rows, each fitted on {} rows (target: under 60 s on 2 CPU cores)", cfg.fit_rows(features as usize));
    report["all_units"] = serde_json::json!({
        "units": units, "features": features, "rows_per_fit": cfg.fit_rows(features as usize),
        "seconds": total, "per_unit": per
    });
    Ok(report)
}

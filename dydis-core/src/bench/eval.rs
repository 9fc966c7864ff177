//! `dydis bench eval`: the metric suite at the paper's sample counts on a Shapes3D-sized grid and the downstream
//! task on an MPI3D-sized grid, with synthetic 20-unit codes.
use crate::data::{Factor, FactorSpace};
use crate::display::Show;
use crate::eval::{self, Codes, EvalConfig};
use crate::Result;
use std::time::Instant;

/// A synthetic `units`-dimensional code over a grid: a noisy copy of each factor's class (scaled) in the first
/// units, noise in the rest, the two mixed a little (a stand-in for a trained model's representation).
fn synthetic_codes(space: &FactorSpace, units: usize, seed: u64) -> Codes {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let nf = space.num_factors();
    let mut values = Vec::with_capacity(space.len() * units);
    let mut cls = vec![0; nf];
    for i in 0..space.len() {
        space.classes_into(i, &mut cls).expect("in range");
        for j in 0..units {
            let f = if j < nf { cls[j] as f64 / space.factor(j).size().max(2) as f64 } else { 0.0 };
            let g = cls[(j + 1) % nf] as f64 / space.factor((j + 1) % nf).size().max(2) as f64;
            values.push(f + 0.1 * g + 0.05 * rng.random::<f64>());
        }
    }
    Codes { values, dims: units }
}

/// `dydis bench eval`: the metric suite at the paper's sample counts on a Shapes3D-sized grid, and the downstream
/// task on an MPI3D-sized grid (two 40-class factors), both with 20-unit codes; JSON with seconds per part.
pub fn run(quick: bool) -> Result<serde_json::Value> {
    let threads = tch::get_num_threads();
    let shapes = FactorSpace::new(
        [("floor_hue", 10), ("wall_hue", 10), ("object_hue", 10), ("scale", 8), ("shape", 4), ("orientation", 15)]
            .iter()
            .map(|(n, k)| Factor::categorical(*n, *k))
            .collect(),
    )?;
    let mpi = FactorSpace::new(
        [
            ("color", 6),
            ("shape", 6),
            ("size", 2),
            ("camera", 3),
            ("background", 3),
            ("horizontal", 40),
            ("vertical", 40),
        ]
        .iter()
        .map(|(n, k)| Factor::categorical(*n, *k))
        .collect(),
    )?;
    let mut cfg = if quick { EvalConfig::quick() } else { EvalConfig::paper() };
    cfg.metrics = EvalConfig::PAPER_METRICS[..7].iter().map(|s| s.to_string()).collect();
    let codes = synthetic_codes(&shapes, 20, 0);
    let t = Instant::now();
    let r =
        eval::evaluate(&codes, &shapes, &cfg, "synthetic 20-unit code", "Shapes3D-sized grid (480,000)", "20 scalars")?;
    let suite = t.elapsed().as_secs_f64();
    println!("{}", r.to_text());
    let mcodes = synthetic_codes(&mpi, 20, 1);
    let t = Instant::now();
    let d = eval::downstream(&mcodes, &mpi, &cfg.downstream_sizes, cfg.num_test, &cfg.gbt, 0)?;
    let down = t.elapsed().as_secs_f64();
    println!("{}", d.to_text());
    let json = serde_json::json!({
        "threads": threads, "rayon_threads": rayon::current_num_threads(),
        "preset": if quick { "quick" } else { "paper" },
        "suite_seconds": suite, "suite_seconds_per_metric": r.seconds, "suite_scores": r.scores,
        "downstream_seconds": down,
        "downstream_seconds_per_size": d.sizes.iter().map(|s| (s.num_train, s.seconds)).collect::<Vec<_>>(),
        "downstream_mean_accuracy": d.sizes.iter().map(|s| (s.num_train, s.mean_test_accuracy)).collect::<Vec<_>>(),
        "reference": "scikit-learn GradientBoostingClassifier(): about 240 s for ONE 40-class fit on 10,000 x 20 \
                      on 2 cores (docs/results.md); the downstream task fits 7 factors x 3 sizes",
    });
    println!("suite {suite:.1} s, downstream {down:.1} s");
    Ok(json)
}

//! Calibration of the Shapes3D-like scene's lighting against the real reference images (coordinate descent on
//! the mean absolute pixel error, each image's scale class fixed by a first full search). Prints the constants
//! to put in `SceneParams::default()` and writes a side-by-side picture (real above rendered).
//! Run from the repository root: `cargo run --release --example shapes3d_calibrate -- [rounds] [out.png]`
use dydis_core::data::shapes3d::{compare_at_scales, compare_with_reference, reference_panel, Reference, SceneParams};

fn get(p: &SceneParams, k: usize) -> f64 {
    match k {
        0 => p.light[0],
        1 => p.light[1],
        2 => p.light[2],
        3 => p.light_radius,
        4 => p.ambient,
        5 => p.diffuse,
        6 => p.wall_gain,
        7 => p.specular,
        _ => p.shininess,
    }
}

fn set(p: &mut SceneParams, k: usize, v: f64) {
    match k {
        0 => p.light[0] = v,
        1 => p.light[1] = v,
        2 => p.light[2] = v,
        3 => p.light_radius = v.max(0.0),
        4 => p.ambient = v.max(0.0),
        5 => p.diffuse = v.max(0.0),
        6 => p.wall_gain = v.max(0.0),
        7 => p.specular = v.max(0.0),
        _ => p.shininess = v.max(1.0),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(3);
    let out = args.get(2).cloned().unwrap_or_else(|| "runs/data/shapes3d-vs-real.png".into());
    let reference = Reference::open(
        Reference::find().expect("shapes3d/shapes3d_reference_samples.npz under $DYDIS_REFERENCE_DATA"),
    )
    .unwrap();
    let mut p = SceneParams::default();
    let first = compare_with_reference(&p, &reference);
    println!("start: mean abs error {:.3}", first.mean_abs_error);
    for sign in [1.0, -1.0] {
        let mut q = p.clone();
        q.azimuth_sign = sign;
        println!("azimuth sign {sign:+}: {:.3}", compare_with_reference(&q, &reference).mean_abs_error);
    }
    for (ss, nl) in [(3, 8), (2, 8), (2, 4), (3, 4), (1, 4)] {
        let mut q = p.clone();
        q.supersample = ss;
        q.light_samples = nl;
        let t = std::time::Instant::now();
        let e = compare_at_scales(&q, &reference, Some(&first.scale_class)).mean_abs_error;
        println!("supersample {ss}, light samples {nl}: error {e:.3} ({:.2} s)", t.elapsed().as_secs_f64());
    }
    let mut scales = first.scale_class.clone();
    let mut best = first.mean_abs_error;
    let steps = [0.5, 0.5, 0.5, 0.2, 0.05, 0.1, 0.05, 0.1, 5.0];
    for round in 0..rounds {
        for (k, &step0) in steps.iter().enumerate() {
            let mut step = step0 / (1 << round) as f64;
            for _ in 0..4 {
                let mut improved = false;
                for dir in [1.0, -1.0] {
                    let mut q = p.clone();
                    set(&mut q, k, get(&p, k) + dir * step);
                    let e = compare_at_scales(&q, &reference, Some(&scales)).mean_abs_error;
                    if e < best - 1e-4 {
                        best = e;
                        p = q;
                        improved = true;
                        break;
                    }
                }
                if !improved {
                    step /= 2.0;
                }
            }
        }
        let full = compare_with_reference(&p, &reference);
        scales = full.scale_class.clone();
        best = full.mean_abs_error;
        println!("round {round}: mean abs error {best:.3}, close pixels {:.3}", full.close_pixels);
    }
    println!("{p:#?}");
    let r = compare_with_reference(&p, &reference);
    reference_panel(&p, &reference, &r, 10).unwrap().save_png(&out).unwrap();
    println!("{out}");
}

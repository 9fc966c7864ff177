//! Shapes3D look-alike: a small ray caster of the 3dshapes scene (a square room, an object at its centre, a
//! camera orbiting on a ring and looking at the object), with the camera, room and object sizes fitted to the real
//! images (docs/datasets.md) and the lighting calibrated against the 50 real reference images.
//!
//! Factors in the h5 order and value conventions: floor_hue, wall_hue, object_hue (0.0..0.9), scale
//! (linspace 0.75..1.25, 8), shape (0 cube, 1 cylinder, 2 sphere, 3 capsule), orientation (camera azimuth,
//! linspace -30..30 degrees, 15). Any resolution; images are RGB in [-1, 1].
use super::{Factor, FactorSpace, GroundTruth, ImageShape};
use crate::error::{Error, Result};

type V3 = [f64; 3];
fn add(a: V3, b: V3) -> V3 {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}
fn sub(a: V3, b: V3) -> V3 {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}
fn mul(a: V3, s: f64) -> V3 {
    [a[0] * s, a[1] * s, a[2] * s]
}
fn dot(a: V3, b: V3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}
fn cross(a: V3, b: V3) -> V3 {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}
fn norm(a: V3) -> V3 {
    mul(a, 1.0 / dot(a, a).sqrt())
}

/// The scene's constants. `Default` holds the values fitted and calibrated against the real images.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SceneParams {
    /// Camera ring radius and height; look-at height; field of view (degrees, square image).
    pub cam_radius: f64,
    pub cam_height: f64,
    pub look_at_height: f64,
    pub fov_deg: f64,
    /// Half the room's width (walls at ±) and the walls' height.
    pub room_half: f64,
    pub wall_height: f64,
    /// Object sizes per unit of scale: cube edge, sphere radius, cylinder radius and height, capsule radius and
    /// total height.
    pub cube_edge: f64,
    pub sphere_radius: f64,
    pub cylinder_radius: f64,
    pub cylinder_height: f64,
    pub capsule_radius: f64,
    pub capsule_height: f64,
    /// Flat sky colour (RGB 0-255).
    pub sky: [u8; 3],
    /// Point light position (world), radius of the light (soft shadows), and shading: factor =
    /// ambient + diffuse · max(0, n·l) · visibility, applied to the surface's HSV(h, 1, 1) colour and clipped.
    pub light: V3,
    pub light_radius: f64,
    pub ambient: f64,
    pub diffuse: f64,
    /// Extra factor for the walls (the real side walls are darker than the lit back wall).
    pub wall_gain: f64,
    /// White Phong highlight on the object: strength and exponent.
    pub specular: f64,
    pub shininess: f64,
    /// Rays per pixel side (supersampling), and light samples per shaded point (soft shadows).
    pub supersample: usize,
    pub light_samples: usize,
    /// Sign of the azimuth: camera azimuth = sign · orientation label.
    pub azimuth_sign: f64,
}

impl Default for SceneParams {
    fn default() -> Self {
        SceneParams {
            cam_radius: 2.4,
            cam_height: 0.72,
            look_at_height: 0.70,
            fov_deg: 49.5,
            room_half: 3.5,
            wall_height: 2.1,
            cube_edge: 0.66,
            sphere_radius: 0.40,
            cylinder_radius: 0.37,
            cylinder_height: 0.67,
            capsule_radius: 0.31,
            capsule_height: 1.24,
            sky: [153, 226, 249],
            // Calibrated: `cargo run --release --example shapes3d_calibrate -- 3` (docs/datasets.md).
            light: [0.94, 2.69, -2.56],
            light_radius: 0.3,
            ambient: 0.403,
            diffuse: 0.8125,
            wall_gain: 0.866,
            specular: 0.175,
            shininess: 17.5,
            // 2x2 rays and 4 light samples: error 11.63 instead of 11.56 with 3x3 and 8, three times faster.
            supersample: 2,
            light_samples: 4,
            // Measured: camera azimuth = -label fits the real images better (mean abs error 15.0 vs 18.6 with
            // the first, uncalibrated lighting).
            azimuth_sign: -1.0,
        }
    }
}

/// Shape classes of the 3dshapes dataset.
pub const SHAPES: [&str; 4] = ["cube", "cylinder", "sphere", "capsule"];

/// The six factors, full size (480,000 combinations).
pub fn full_factors() -> FactorSpace {
    FactorSpace::new(vec![
        Factor::linspace("floor_hue", 0.0, 0.9, 10),
        Factor::linspace("wall_hue", 0.0, 0.9, 10),
        Factor::linspace("object_hue", 0.0, 0.9, 10),
        Factor::linspace("scale", 0.75, 1.25, 8),
        Factor::categorical("shape", 4),
        Factor::linspace("orientation", -30.0, 30.0, 15),
    ])
    .expect("valid grid")
}

/// `n` classes of `f` spread evenly over its range (both ends kept).
fn pick(f: &Factor, n: usize) -> Result<Factor> {
    if n == 0 || n > f.size() {
        return Err(Error::config(f.name.clone(), format!("cannot keep {n} of its {} values", f.size())));
    }
    // Nearest class to k·(size−1)/(n−1), ties broken toward the middle so that the pick is symmetric.
    let idx = (0..n).map(|k| {
        if n == 1 {
            return 0;
        }
        let x = (k * (f.size() - 1)) as f64 / (n - 1) as f64;
        (if 2 * k < n - 1 { (x - 0.5).ceil() } else { (x + 0.5).floor() }) as usize
    });
    Ok(Factor::new(f.name.clone(), idx.map(|i| f.values[i]).collect()))
}

/// HSV(h, 1, 1) as RGB in [0, 1].
fn hue_rgb(h: f64) -> V3 {
    let h6 = (h.rem_euclid(1.0)) * 6.0;
    let x = 1.0 - ((h6 % 2.0) - 1.0).abs();
    match h6 as usize {
        0 => [1.0, x, 0.0],
        1 => [x, 1.0, 0.0],
        2 => [0.0, 1.0, x],
        3 => [0.0, x, 1.0],
        4 => [x, 0.0, 1.0],
        _ => [1.0, 0.0, x],
    }
}

#[derive(Clone, Copy)]
enum Surface {
    Floor,
    Wall,
    Object,
}

struct Hit {
    t: f64,
    normal: V3,
    surface: Surface,
}

/// The object (at the origin, standing on the floor) of one shape and size.
#[derive(Clone, Copy)]
struct Object {
    shape: usize,
    scale: f64,
}

impl Object {
    /// A sphere around the object, for a cheap rejection before the exact test.
    fn bounds(&self, p: &SceneParams) -> (V3, f64) {
        let s = self.scale;
        let (half_w, h) = match self.shape {
            0 => (p.cube_edge * s / 2.0 * std::f64::consts::SQRT_2, p.cube_edge * s),
            1 => (p.cylinder_radius * s, p.cylinder_height * s),
            2 => (p.sphere_radius * s, 2.0 * p.sphere_radius * s),
            _ => (p.capsule_radius * s, p.capsule_height * s),
        };
        ([0.0, h / 2.0, 0.0], (half_w * half_w + h * h / 4.0).sqrt() * 1.001)
    }

    fn intersect(&self, p: &SceneParams, o: V3, d: V3) -> Option<(f64, V3)> {
        let (c, r) = self.bounds(p);
        let oc = sub(o, c);
        let b = dot(oc, d);
        let far = dot(oc, oc) - r * r;
        if b * b < far || (b > 0.0 && far > 0.0) {
            return None; // misses the bounding sphere, or it lies behind the ray
        }
        let s = self.scale;
        match self.shape {
            0 => {
                let h = p.cube_edge * s / 2.0;
                box_hit(o, d, [-h, 0.0, -h], [h, 2.0 * h, h])
            }
            1 => {
                let (r, ht) = (p.cylinder_radius * s, p.cylinder_height * s);
                let mut best = cylinder_side(o, d, r, 0.0, ht);
                if d[1].abs() > 1e-12 {
                    let t = (ht - o[1]) / d[1];
                    let q = add(o, mul(d, t));
                    if t > 1e-9 && q[0] * q[0] + q[2] * q[2] <= r * r && best.is_none_or(|b| t < b.0) {
                        best = Some((t, [0.0, 1.0, 0.0]));
                    }
                }
                best
            }
            2 => {
                let r = p.sphere_radius * s;
                sphere_hit(o, d, [0.0, r, 0.0], r)
            }
            _ => {
                let r = p.capsule_radius * s;
                let (y0, y1) = (r, (p.capsule_height * s - r).max(r));
                let mut best = cylinder_side(o, d, r, y0, y1);
                for c in [[0.0, y0, 0.0], [0.0, y1, 0.0]] {
                    if let Some(h) = sphere_hit(o, d, c, r) {
                        if best.is_none_or(|b| h.0 < b.0) {
                            best = Some(h);
                        }
                    }
                }
                best
            }
        }
    }
}

fn sphere_hit(o: V3, d: V3, c: V3, r: f64) -> Option<(f64, V3)> {
    let oc = sub(o, c);
    let b = dot(oc, d);
    let disc = b * b - (dot(oc, oc) - r * r);
    if disc < 0.0 {
        return None;
    }
    let sq = disc.sqrt();
    let t = if -b - sq > 1e-9 { -b - sq } else { -b + sq };
    (t > 1e-9).then(|| (t, norm(sub(add(o, mul(d, t)), c))))
}

fn cylinder_side(o: V3, d: V3, r: f64, y0: f64, y1: f64) -> Option<(f64, V3)> {
    let a = d[0] * d[0] + d[2] * d[2];
    if a < 1e-12 {
        return None;
    }
    let b = o[0] * d[0] + o[2] * d[2];
    let c = o[0] * o[0] + o[2] * o[2] - r * r;
    let disc = b * b - a * c;
    if disc < 0.0 {
        return None;
    }
    let sq = disc.sqrt();
    for t in [(-b - sq) / a, (-b + sq) / a] {
        let y = o[1] + t * d[1];
        if t > 1e-9 && (y0..=y1).contains(&y) {
            let q = add(o, mul(d, t));
            return Some((t, norm([q[0], 0.0, q[2]])));
        }
    }
    None
}

fn box_hit(o: V3, d: V3, lo: V3, hi: V3) -> Option<(f64, V3)> {
    let (mut tmin, mut tmax) = (f64::NEG_INFINITY, f64::INFINITY);
    let mut axis = 0;
    for k in 0..3 {
        if d[k].abs() < 1e-12 {
            if o[k] < lo[k] || o[k] > hi[k] {
                return None;
            }
            continue;
        }
        let (t1, t2) = ((lo[k] - o[k]) / d[k], (hi[k] - o[k]) / d[k]);
        let (a, b) = if t1 < t2 { (t1, t2) } else { (t2, t1) };
        if a > tmin {
            tmin = a;
            axis = k;
        }
        tmax = tmax.min(b);
    }
    if tmin > tmax || tmin <= 1e-9 {
        return None;
    }
    let mut n = [0.0; 3];
    n[axis] = -d[axis].signum();
    Some((tmin, n))
}

/// Renders Shapes3D-like images over a (possibly sub-sampled) factor grid at any resolution.
#[derive(Debug, Clone)]
pub struct Shapes3DRenderer {
    factors: FactorSpace,
    resolution: usize,
    pub params: SceneParams,
    memo: GeometryMemo,
}

impl Shapes3DRenderer {
    /// The full 480,000-image grid at `resolution` pixels.
    pub fn new(resolution: usize) -> Result<Self> {
        Self::with_factors(full_factors(), resolution)
    }

    /// A grid keeping `counts[f]` evenly spread classes of each factor (e.g. `[5, 5, 5, 4, 4, 5]`).
    pub fn subsampled(counts: [usize; 6], resolution: usize) -> Result<Self> {
        let full = full_factors();
        let factors = full.factors().iter().zip(counts).map(|(f, n)| pick(f, n)).collect::<Result<Vec<_>>>()?;
        Self::with_factors(FactorSpace::new(factors)?, resolution)
    }

    /// Any grid with the six Shapes3D factors (in h5 order) and values in their ranges.
    pub fn with_factors(factors: FactorSpace, resolution: usize) -> Result<Self> {
        let names = ["floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation"];
        if factors.names() != names {
            return Err(Error::config(
                "factors",
                format!("Shapes3D factors must be {names:?}, got {:?}", factors.names()),
            ));
        }
        if !(8..=1024).contains(&resolution) {
            return Err(Error::config("resolution", format!("{resolution} is outside 8..=1024 pixels")));
        }
        if let Some(v) = factors.factor(4).values.iter().find(|v| !(0.0..=3.0).contains(*v) || v.fract() != 0.0) {
            return Err(Error::config(
                "shape",
                format!("{v} is not a shape class (0 cube, 1 cylinder, 2 sphere, 3 capsule)"),
            ));
        }
        if let Some(v) = factors.factor(3).values.iter().find(|v| !(**v > 0.0 && v.is_finite())) {
            return Err(Error::config("scale", format!("{v} is not a positive scale")));
        }
        Ok(Shapes3DRenderer { factors, resolution, params: SceneParams::default(), memo: GeometryMemo::default() })
    }

    pub fn resolution(&self) -> usize {
        self.resolution
    }

    /// Render from factor values into an RGB byte buffer (`resolution² · 3`, row-major, interleaved).
    /// Geometries (what each ray hits, and its shading) are ray-cast once per scale, shape and orientation and
    /// reused for every hue combination (`GeometryMemo`); the bytes are those of [`render`].
    pub fn render_rgb(&self, values: &[f64], out: &mut [u8]) {
        let g = self.memo.get(&self.params, self.resolution, values);
        compose(&self.params, self.resolution, &g, values, out)
    }
}

/// Render one image from the six factor values with the given scene constants.
pub fn render(p: &SceneParams, res: usize, v: &[f64], out: &mut [u8]) {
    compose(p, res, &geometry(p, res, v), v, out)
}

/// What one primary ray sees, whatever the three hues: the sky, or a surface with its shading factor and specular
/// term (its colour is then `(hue · factor + spec)` clamped to [0, 1], per channel).
#[derive(Clone, Copy)]
enum RayShade {
    Sky,
    Lit { surface: Surface, factor: f64, spec: f64 },
}

/// Every primary ray of one image (pixels row-major, `supersample²` rays each). Depends on scale, shape and
/// orientation only (`v[3..6]`): the grid's 1,000 hue combinations share it.
fn geometry(p: &SceneParams, res: usize, v: &[f64]) -> Vec<RayShade> {
    let object = Object { shape: v[4].round() as usize, scale: v[3] };
    let az = (p.azimuth_sign * v[5]).to_radians();
    let cam = [p.cam_radius * az.sin(), p.cam_height, -p.cam_radius * az.cos()];
    let fwd = norm(sub([0.0, p.look_at_height, 0.0], cam));
    let right = norm(cross(fwd, [0.0, 1.0, 0.0]));
    let up = cross(right, fwd);
    let half = (p.fov_deg.to_radians() / 2.0).tan();
    let ss = p.supersample.max(1);
    // Light samples on a small disc facing the scene (soft shadows), fixed pattern.
    let nl = p.light_samples.max(1);
    let light_samples: Vec<V3> = (0..nl)
        .map(|k| {
            let a = k as f64 * std::f64::consts::TAU / nl as f64;
            let rr = if k % 2 == 0 { p.light_radius } else { p.light_radius * 0.5 };
            add(p.light, [rr * a.cos(), rr * a.sin(), 0.0])
        })
        .collect();
    let mut rays = Vec::with_capacity(res * res * ss * ss);
    for y in 0..res {
        for x in 0..res {
            for sy in 0..ss {
                for sx in 0..ss {
                    let u = ((x as f64 + (sx as f64 + 0.5) / ss as f64) / res as f64 * 2.0 - 1.0) * half;
                    let w = (1.0 - (y as f64 + (sy as f64 + 0.5) / ss as f64) / res as f64 * 2.0) * half;
                    let d = norm(add(fwd, add(mul(right, u), mul(up, w))));
                    rays.push(shade(p, &object, cam, d, &light_samples));
                }
            }
        }
    }
    rays
}

/// Colour the rays of `geometry` with the hues `v[0..3]` and average each pixel's rays into RGB bytes.
fn compose(p: &SceneParams, res: usize, rays: &[RayShade], v: &[f64], out: &mut [u8]) {
    let (floor_c, wall_c, obj_c) = (hue_rgb(v[0]), hue_rgb(v[1]), hue_rgb(v[2]));
    let sky = p.sky.map(|c| c as f64 / 255.0);
    let per = p.supersample.max(1).pow(2);
    for (px, pixel) in rays.chunks(per).enumerate() {
        let mut acc = [0.0; 3];
        for r in pixel {
            let c = match *r {
                RayShade::Sky => sky,
                RayShade::Lit { surface, factor, spec } => {
                    let base = match surface {
                        Surface::Floor => floor_c,
                        Surface::Wall => wall_c,
                        Surface::Object => obj_c,
                    };
                    base.map(|c| (c * factor + spec).clamp(0.0, 1.0))
                }
            };
            acc = add(acc, c);
        }
        let n = per as f64;
        for k in 0..3 {
            out[px * 3 + k] = (acc[k] / n * 255.0).round().clamp(0.0, 255.0) as u8;
        }
    }
    debug_assert_eq!(rays.len(), res * res * per);
}

/// Geometries kept for reuse, keyed by (scale, shape, orientation), up to `GEOMETRY_MEMO_BYTES`: rendering the
/// grid then costs one ray-cast per geometry (480 in the full grid) and a colouring pass per image. Cleared when the
/// scene constants change (they are a public field, changed by calibration).
#[derive(Clone, Default)]
struct GeometryMemo(std::sync::Arc<std::sync::Mutex<MemoInner>>);

#[derive(Default)]
struct MemoInner {
    params: Option<SceneParams>,
    resolution: usize,
    map: std::collections::HashMap<[u64; 3], std::sync::Arc<Vec<RayShade>>>,
    bytes: usize,
}

const GEOMETRY_MEMO_BYTES: usize = 256 << 20;

impl std::fmt::Debug for GeometryMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.lock().map(|m| m.map.len()).unwrap_or(0);
        write!(f, "GeometryMemo({n} geometries)")
    }
}

impl GeometryMemo {
    fn get(&self, p: &SceneParams, res: usize, v: &[f64]) -> std::sync::Arc<Vec<RayShade>> {
        let key = [v[3].to_bits(), v[4].to_bits(), v[5].to_bits()];
        {
            let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
            if m.params.as_ref() != Some(p) || m.resolution != res {
                *m = MemoInner { params: Some(p.clone()), resolution: res, ..Default::default() };
            }
            if let Some(g) = m.map.get(&key) {
                return g.clone();
            }
        }
        // Cast outside the lock (two threads may cast the same geometry once each; the result is identical).
        let g = std::sync::Arc::new(geometry(p, res, v));
        let size = g.len() * std::mem::size_of::<RayShade>();
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if m.params.as_ref() == Some(p)
            && m.resolution == res
            && m.bytes + size <= GEOMETRY_MEMO_BYTES
            && !m.map.contains_key(&key)
        {
            m.bytes += size;
            m.map.insert(key, g.clone());
        }
        g
    }
}

fn room_hit(p: &SceneParams, o: V3, d: V3) -> Option<Hit> {
    let l = p.room_half;
    let mut best: Option<Hit> = None;
    let mut consider = |t: f64, normal: V3, surface: Surface| {
        if t > 1e-9 && best.as_ref().is_none_or(|b| t < b.t) {
            best = Some(Hit { t, normal, surface });
        }
    };
    if d[1] < 0.0 {
        let t = -o[1] / d[1];
        let q = add(o, mul(d, t));
        if q[0].abs() <= l && q[2].abs() <= l {
            consider(t, [0.0, 1.0, 0.0], Surface::Floor);
        }
    }
    for (axis, side) in [(0usize, 1.0), (0, -1.0), (2, 1.0), (2, -1.0)] {
        if d[axis].abs() < 1e-12 {
            continue;
        }
        let t = (side * l - o[axis]) / d[axis];
        let q = add(o, mul(d, t));
        let other = 2 - axis;
        if q[other].abs() <= l && q[1] >= 0.0 {
            let mut n = [0.0; 3];
            n[axis] = -side;
            consider(t, n, Surface::Wall); // above the wall top: sky (handled by the caller)
        }
    }
    best
}

fn shade(p: &SceneParams, obj: &Object, o: V3, d: V3, lights: &[V3]) -> RayShade {
    let room = room_hit(p, o, d);
    let hit = match (obj.intersect(p, o, d), room) {
        (Some((t, n)), r) if r.as_ref().is_none_or(|r| t < r.t) => Hit { t, normal: n, surface: Surface::Object },
        (_, Some(r)) => r,
        _ => return RayShade::Sky,
    };
    let q = add(o, mul(d, hit.t));
    if matches!(hit.surface, Surface::Wall) && q[1] > p.wall_height {
        return RayShade::Sky;
    }
    let n = hit.normal;
    // Soft visibility of the light from q: the light samples not blocked by the object contribute.
    let mut ndotl = 0.0;
    let mut spec = 0.0;
    for ls in lights {
        let to = sub(*ls, q);
        let dist = dot(to, to).sqrt();
        let l = mul(to, 1.0 / dist);
        let cos = dot(n, l);
        if cos <= 0.0 {
            continue;
        }
        let origin = add(q, mul(n, 1e-6));
        let blocked =
            !matches!(hit.surface, Surface::Object) && obj.intersect(p, origin, l).is_some_and(|(t, _)| t < dist);
        if blocked {
            continue;
        }
        ndotl += cos;
        if matches!(hit.surface, Surface::Object) {
            let r = sub(mul(n, 2.0 * cos), l);
            spec += (-dot(r, d)).max(0.0).powf(p.shininess);
        }
    }
    let k = lights.len() as f64;
    let gain = if matches!(hit.surface, Surface::Wall) { p.wall_gain } else { 1.0 };
    RayShade::Lit {
        surface: hit.surface,
        factor: (p.ambient + p.diffuse * ndotl / k) * gain,
        spec: p.specular * spec / k,
    }
}

impl GroundTruth for Shapes3DRenderer {
    fn name(&self) -> String {
        let sizes: Vec<String> = self.factors.sizes().iter().map(|s| s.to_string()).collect();
        format!("shapes3d-like {} @{}px", sizes.join("x"), self.resolution)
    }
    fn factors(&self) -> &FactorSpace {
        &self.factors
    }
    fn fingerprint(&self) -> String {
        format!(
            "shapes3d-renderer-v1 {} {:?} {}",
            self.resolution,
            self.factors,
            serde_json::to_string(&self.params).unwrap_or_default()
        )
    }
    fn image_shape(&self) -> ImageShape {
        ImageShape { channels: 3, height: self.resolution, width: self.resolution }
    }
    fn clear_memo(&self) {
        *self.memo.0.lock().unwrap_or_else(|e| e.into_inner()) = MemoInner::default();
    }
    fn write_image(&self, index: usize, out: &mut [f32]) -> Result<()> {
        let values = self.factors.values_of(index)?;
        let r = self.resolution;
        let mut rgb = vec![0u8; r * r * 3];
        self.render_rgb(&values, &mut rgb);
        super::rgb_bytes_to_chw(&rgb, out);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Faithfulness against the real reference images

/// Real 64x64 Shapes3D images with estimated labels (`shapes3d_reference_samples.npz`: `nb_images`,
/// `nb_labels_est`; scale unknown, orientation estimated).
pub struct Reference {
    pub images: Vec<Vec<u8>>,
    pub labels: Vec<[f64; 6]>,
}

impl Reference {
    pub fn open(path: impl AsRef<std::path::Path>) -> Result<Self> {
        use ndarray::{Array2, Array4, Ix2, Ix4};
        let path = path.as_ref();
        let mut npz = super::npz::Npz::open(path)?;
        let imgs: Array4<u8> = npz.array::<u8, Ix4>("nb_images")?;
        let labels: Array2<f64> = npz.array::<f64, Ix2>("nb_labels_est")?;
        if imgs.shape()[1..] != [64, 64, 3] || labels.shape() != [imgs.shape()[0], 6] {
            return Err(Error::File {
                path: path.to_path_buf(),
                message: format!(
                    "expected nb_images (N, 64, 64, 3) and nb_labels_est (N, 6), got {:?} and {:?}",
                    imgs.shape(),
                    labels.shape()
                ),
            });
        }
        let images = imgs.outer_iter().map(|a| a.iter().copied().collect()).collect();
        let labels = labels.outer_iter().map(|r| [r[0], r[1], r[2], r[3], r[4], r[5]]).collect();
        Ok(Reference { images, labels })
    }

    /// Where the reference images live under the reference data folder.
    pub const FILE: &'static str = "shapes3d/shapes3d_reference_samples.npz";

    /// The reference file in the reference data folder (`$DYDIS_REFERENCE_DATA`), if configured and present.
    pub fn find() -> Option<std::path::PathBuf> {
        crate::paths::reference_file(Self::FILE)
    }
}

/// Mean absolute pixel error (0-255, over all pixels and channels) of the renderer against real images.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReferenceReport {
    pub images: usize,
    pub mean_abs_error: f64,
    pub per_image: Vec<f64>,
    /// Scale class chosen per image (the reference has no scale labels: the best of the 8 is used).
    pub scale_class: Vec<usize>,
    /// Fraction of pixels within 16 levels on every channel.
    pub close_pixels: f64,
}

/// Render each reference image's labels (trying every scale class) and score the best against the real image.
pub fn compare_with_reference(p: &SceneParams, reference: &Reference) -> ReferenceReport {
    compare_at_scales(p, reference, None)
}

/// As [`compare_with_reference`], with each image's scale class given (`Some`) instead of searched.
pub fn compare_at_scales(p: &SceneParams, reference: &Reference, scale_class: Option<&[usize]>) -> ReferenceReport {
    use rayon::prelude::*;
    let scales = full_factors().factor(3).values.clone();
    let results: Vec<(f64, usize, f64)> = reference
        .images
        .par_iter()
        .zip(reference.labels.par_iter())
        .enumerate()
        .map(|(i, (img, lab))| {
            let mut best = (f64::INFINITY, 0, 0.0);
            let mut out = vec![0u8; 64 * 64 * 3];
            let candidates: Vec<usize> = match scale_class {
                Some(c) => vec![c[i]],
                None => (0..scales.len()).collect(),
            };
            for si in candidates {
                let s = scales[si];
                let v = [lab[0], lab[1], lab[2], s, lab[4], lab[5]];
                render(p, 64, &v, &mut out);
                let err: f64 =
                    out.iter().zip(img).map(|(&a, &b)| (a as f64 - b as f64).abs()).sum::<f64>() / out.len() as f64;
                if err < best.0 {
                    let close = out
                        .chunks(3)
                        .zip(img.chunks(3))
                        .filter(|(a, b)| a.iter().zip(b.iter()).all(|(&x, &y)| (x as i32 - y as i32).abs() <= 16))
                        .count() as f64
                        / (64.0 * 64.0);
                    best = (err, si, close);
                }
            }
            best
        })
        .collect();
    let n = results.len().max(1) as f64;
    ReferenceReport {
        images: results.len(),
        mean_abs_error: results.iter().map(|r| r.0).sum::<f64>() / n,
        per_image: results.iter().map(|r| r.0).collect(),
        scale_class: results.iter().map(|r| r.1).collect(),
        close_pixels: results.iter().map(|r| r.2).sum::<f64>() / n,
    }
}

/// Real images (top row of each pair) above their renderings at the chosen scales, `ncol` per row.
pub fn reference_panel(
    p: &SceneParams,
    reference: &Reference,
    report: &ReferenceReport,
    ncol: usize,
) -> Result<crate::display::Image> {
    let scales = full_factors().factor(3).values.clone();
    let n = reference.images.len();
    let mut real = Vec::with_capacity(n * 64 * 64 * 3);
    let mut fake = Vec::with_capacity(n * 64 * 64 * 3);
    for (i, (img, lab)) in reference.images.iter().zip(&reference.labels).enumerate() {
        real.extend_from_slice(img);
        let mut out = vec![0u8; 64 * 64 * 3];
        render(p, 64, &[lab[0], lab[1], lab[2], scales[report.scale_class[i]], lab[4], lab[5]], &mut out);
        fake.extend_from_slice(&out);
    }
    let to_t = |v: &Vec<u8>| {
        tch::Tensor::from_slice(v).view([n as i64, 64, 64, 3]).permute([0, 3, 1, 2]).to_kind(tch::Kind::Float)
    };
    let (real, fake) = (to_t(&real), to_t(&fake));
    let ncol = ncol.max(1) as i64;
    let mut rows = Vec::new();
    for start in (0..n as i64).step_by(ncol as usize) {
        let len = ncol.min(n as i64 - start);
        rows.push(real.narrow(0, start, len));
        rows.push(fake.narrow(0, start, len));
    }
    let all = tch::Tensor::cat(&rows, 0);
    crate::display::image_grid(
        &all,
        crate::display::GridOptions { ncol: ncol as usize, range: (0.0, 255.0), ..Default::default() },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rgb(r: &Shapes3DRenderer, v: [f64; 6]) -> Vec<u8> {
        let mut out = vec![0u8; r.resolution() * r.resolution() * 3];
        r.render_rgb(&v, &mut out);
        out
    }

    #[test]
    fn scene_layout_sky_walls_floor_and_a_centred_object() {
        let r = Shapes3DRenderer::new(64).unwrap();
        // Red floor (0.0), green walls (0.3), blue object (0.6), a large capsule seen head-on.
        let img = rgb(&r, [0.0, 0.3, 0.6, 1.25, 3.0, 0.0]);
        let px = |x: usize, y: usize| [img[(y * 64 + x) * 3], img[(y * 64 + x) * 3 + 1], img[(y * 64 + x) * 3 + 2]];
        assert_eq!(px(5, 0), [153, 226, 249], "flat sky at the top");
        let wall = px(5, 25);
        assert!(wall[1] > wall[0] && wall[1] > wall[2], "green wall at mid height: {wall:?}");
        let floor = px(5, 60);
        assert!(floor[0] > floor[1] && floor[0] > floor[2], "red floor at the bottom: {floor:?}");
        let obj = px(32, 35);
        assert!(obj[2] > obj[0] && obj[2] > obj[1], "blue object in the centre: {obj:?}");
        // The capsule at scale 1.25 is about 46 px tall (measured on the real GIF): count blue rows at x = 32.
        let rows = (0..64).filter(|&y| {
            let p = px(32, y);
            p[2] > 150 && p[0] < 120
        });
        let n = rows.count();
        assert!((40..=50).contains(&n), "capsule height {n} px");
    }

    #[test]
    fn hues_change_only_their_surface() {
        let r = Shapes3DRenderer::new(32).unwrap();
        let a = rgb(&r, [0.0, 0.3, 0.6, 1.0, 0.0, 0.0]);
        let b = rgb(&r, [0.5, 0.3, 0.6, 1.0, 0.0, 0.0]);
        let changed_rows: Vec<usize> =
            (0..32).filter(|&y| (0..32 * 3).any(|k| a[y * 96 + k] != b[y * 96 + k])).collect();
        assert!(changed_rows.iter().all(|&y| y >= 14), "floor hue changed something above the floor: {changed_rows:?}");
        assert!(!changed_rows.is_empty());
    }

    #[test]
    fn memoised_geometry_gives_the_bytes_of_a_direct_render() {
        let mut r = Shapes3DRenderer::subsampled([2, 2, 2, 2, 4, 3], 24).unwrap();
        for i in 0..r.len() {
            let v = r.factors().values_of(i).unwrap();
            let mut direct = vec![0u8; 24 * 24 * 3];
            render(&r.params, 24, &v, &mut direct);
            assert_eq!(rgb(&r, v.clone().try_into().unwrap()), direct, "index {i}");
        }
        assert_eq!(r.memo.0.lock().unwrap().map.len(), 2 * 4 * 3, "one geometry per scale, shape and orientation");
        // Changing the scene constants drops the kept geometries.
        let v = [0.1, 0.2, 0.3, 1.0, 2.0, 0.0];
        let before = rgb(&r, v);
        r.params.light[0] += 1.0;
        let after = rgb(&r, v);
        let mut direct = vec![0u8; 24 * 24 * 3];
        render(&r.params, 24, &v, &mut direct);
        assert_ne!(before, after);
        assert_eq!(after, direct);
        assert_eq!(r.memo.0.lock().unwrap().map.len(), 1);
    }

    #[test]
    fn grids_and_bad_configurations() {
        let q = Shapes3DRenderer::subsampled([5, 5, 5, 4, 4, 5], 32).unwrap();
        assert_eq!(q.len(), 10_000);
        let o = &q.factors().factor(5).values;
        assert_eq!((o[0], o[4]), (-30.0, 30.0), "both ends kept");
        assert!((o[1] + o[3]).abs() < 1e-9 && o[2] == 0.0, "symmetric pick: {o:?}");
        assert_eq!(q.factors().factor(4).values, vec![0.0, 1.0, 2.0, 3.0]);
        assert!(Shapes3DRenderer::subsampled([11, 1, 1, 1, 1, 1], 32).is_err());
        assert!(Shapes3DRenderer::subsampled([0, 1, 1, 1, 1, 1], 32).is_err());
        assert!(Shapes3DRenderer::new(4).unwrap_err().to_string().contains("resolution"));
        let mut f = full_factors().factors().to_vec();
        f[4] = Factor::new("shape", vec![0.0, 4.0]);
        assert!(Shapes3DRenderer::with_factors(FactorSpace::new(f).unwrap(), 32).is_err());
        assert_eq!(full_factors().len(), 480_000);
    }
}

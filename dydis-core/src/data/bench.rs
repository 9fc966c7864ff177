//! Dataset throughput, measured in one run: rendering and decoding one image at a time on one thread (the
//! reference) versus the parallel batch path, and full epochs of batch iteration.
use super::{batch, BatchIter, GroundTruth};
use crate::error::Result;
use std::sync::Arc;
use std::time::Instant;
use tch::Device;

#[derive(Debug, Clone, serde::Serialize)]
pub struct Throughput {
    pub dataset: String,
    pub images: usize,
    /// One image at a time on the calling thread.
    pub sequential_images_per_s: f64,
    /// `data::batch` (rayon over images).
    pub parallel_images_per_s: f64,
    /// parallel / sequential, measured in the same run.
    pub parallel_speedup: f64,
    /// A shuffled `BatchIter` pass (batch 128) over the same images, tensors included.
    pub batch_iter_images_per_s: f64,
}

/// Measure `n` images of `ds` (the first `n` indices of a seeded shuffle).
pub fn measure(ds: Arc<dyn GroundTruth>, n: usize) -> Result<Throughput> {
    let n = n.min(ds.len()).max(1);
    let mut order: Vec<usize> = (0..ds.len()).collect();
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(0));
    order.truncate(n);
    let numel = ds.image_shape().numel();

    let start = Instant::now();
    let mut buf = vec![0f32; numel];
    for &i in &order {
        ds.write_image(i, &mut buf)?;
    }
    let seq = n as f64 / start.elapsed().as_secs_f64();

    let start = Instant::now();
    for chunk in order.chunks(256) {
        let _ = batch(ds.as_ref(), chunk, Device::Cpu)?;
    }
    let par = n as f64 / start.elapsed().as_secs_f64();

    let start = Instant::now();
    let mut seen = 0;
    for b in BatchIter::over(ds.clone(), order.clone(), 128, Some(1), Device::Cpu)? {
        seen += b?.indices.len();
    }
    let iter = seen as f64 / start.elapsed().as_secs_f64();

    Ok(Throughput {
        dataset: ds.name(),
        images: n,
        sequential_images_per_s: seq,
        parallel_images_per_s: par,
        parallel_speedup: par / seq,
        batch_iter_images_per_s: iter,
    })
}

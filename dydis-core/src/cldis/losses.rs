//! CL-Dis's losses as tensor functions, so that tests can check them against hand computations.
use tch::{Kind, Tensor};

/// L_dt = mean over the batch of Σ_i p_i (log p_i − log q_i), p = softmax(student / τ), q = softmax(teacher / τ):
/// KL(z_sem ‖ z_disen) with z_sem first, as the paper writes it. The teacher is detached: no gradient reaches the
/// co-pilot through the distillation.
pub fn distillation(student: &Tensor, teacher: &Tensor, temperature: f64) -> Tensor {
    let log_p = (student / temperature).log_softmax(1, Kind::Float);
    let log_q = (teacher.detach() / temperature).log_softmax(1, Kind::Float);
    (log_p.exp() * (&log_p - log_q)).sum_dim_intlist(1, false, Kind::Float).mean(Kind::Float)
}

/// The co-pilot's capacity objective from its two terms: reconstruction + γ·|KL − C|, the KL averaged over the
/// batch before the absolute value (as disentanglement_lib's AnnealedVAE).
pub fn capacity_objective(reconstruction: &Tensor, kl: &Tensor, gamma: f64, capacity: f64) -> Tensor {
    reconstruction + (kl - capacity).abs() * gamma
}

/// The diffusion loss of Diff-AE: mean squared error of the noise prediction.
pub fn diffusion(pred: &Tensor, noise: &Tensor) -> Tensor {
    (pred - noise).square().mean(Kind::Float)
}

/// The navigation's loss: cross-entropy of the direction plus `shift_weight` · mean |ε̂ − ε|. Returns (loss,
/// cross-entropy, shift error, direction accuracy).
pub fn navigation(logits: &Tensor, k: &Tensor, shift_hat: &Tensor, shift: &Tensor, shift_weight: f64) -> [Tensor; 4] {
    let ce = logits.cross_entropy_for_logits(k);
    let l1 = (shift_hat - shift).abs().mean(Kind::Float);
    let acc = logits.argmax(1, false).eq_tensor(k).to_kind(Kind::Float).mean(Kind::Float);
    [&ce + &l1 * shift_weight, ce, l1, acc]
}

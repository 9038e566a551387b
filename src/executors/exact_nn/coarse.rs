//! The coarse pass of a lone query: a bf16 copy of the matrix is scanned instead of the f32
//! one, then the few rows that can still be in the top k are scored again exactly.
//!
//! # Why
//!
//! A lone query reads the whole matrix once and does little arithmetic per byte: it is
//! memory-bound. bf16 (the upper half of an f32) halves the bytes read, and widening it back is
//! one shift, which vectorizes without special instructions.
//!
//! # Why the result stays exact
//!
//! For a row `x`, let `K` be its exact key (the f32 dot product the full scan computes) and `A`
//! its coarse key (the f32 dot product with the row rounded to bf16). Rounding to bf16 moves
//! each coordinate by at most `2⁻⁸·|xᵢ|` (8 significant bits; plus `2⁻¹³⁴` below f32's normal
//! range), and an f32 dot product of length `n` is off the real one by at most
//! `γₙ·Σ|qᵢxᵢ|`, `γₙ = n·2⁻²⁴/(1 − n·2⁻²⁴)`. So `|K − A| ≤ ε` with
//! `ε = (2⁻⁸ + γₙ·(2 + 2⁻⁸))·‖q‖·max‖x‖` plus an absolute term for underflow (Cauchy–Schwarz
//! bounds `Σ|qᵢ||xᵢ|`); [`window`] returns twice that, doubled again for safety.
//!
//! The pass keeps the `k` best coarse keys. Once it holds `k`, a row whose coarse key is below
//! the worst kept one minus `2ε` has `K ≤ A + ε < worst − ε`, and every kept row has
//! `K ≥ A − ε ≥ worst − ε`: `k` rows beat it strictly, so it cannot be in the top k, whatever
//! the tie-breaking. Every other row is a candidate; candidates are scored exactly, with the
//! very arithmetic of the full scan, and ranked as the full scan ranks. The answer is the full
//! scan's, bit for bit (tested against it).
//!
//! Only for finite data whose products cannot overflow ([`window`] returns `None` otherwise,
//! and the full scan runs); only for dot-product keys (cosine and dot; Euclidean keeps the full
//! scan).

use super::{BLOCK_PANELS, Cand, DotKernel, PANEL, TopK};

/// bf16 bits of `x`, rounded to nearest, ties to even. Only finite data is searched through
/// the copy, so NaN and overflow need no care here.
pub(super) fn to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    let rounded = bits.wrapping_add(0x7FFF + ((bits >> 16) & 1));
    (rounded >> 16) as u16
}

#[inline(always)]
fn from_bf16(b: u16) -> f32 {
    f32::from_bits(u32::from(b) << 16)
}

/// The width of the window below the worst kept coarse key inside which a row stays a
/// candidate (`2ε`, doubled for safety; see the module docs), for query `q` against rows of
/// norm at most `max_norm`; `None` when no bound holds (non-finite data, products that could
/// overflow, absurd dims): the caller then scans exactly.
pub(super) fn window(q: &[f32], max_norm: f64) -> Option<f64> {
    let (sq, l1) = q.iter().fold((0.0f64, 0.0f64), |(s, l), &x| {
        let x = f64::from(x);
        (s + x * x, l + x.abs())
    });
    let q_norm = sq.sqrt();
    let n = q.len() as f64;
    let u = 2f64.powi(-24);
    if !q_norm.is_finite() || !max_norm.is_finite() || q_norm * max_norm > 1e30 || n * u >= 0.5 {
        return None;
    }
    let gamma = n * u / (1.0 - n * u);
    let bf16 = 2f64.powi(-8);
    let eps = (bf16 + gamma * (2.0 + bf16)) * q_norm * max_norm + (l1 + n) * 2f64.powi(-120);
    Some(2.0 * (2.0 * eps))
}

/// What the coarse pass over one range of rows keeps.
pub(super) struct Pass {
    /// The `k` best coarse keys.
    top: TopK,
    /// Every row not ruled out when it was seen, in index order: (coarse key, row).
    candidates: Vec<(f32, usize)>,
}

impl Pass {
    /// Joins the passes over consecutive ranges (in index order) and returns the rows that may
    /// be in the top k, in index order.
    pub(super) fn candidates(passes: Vec<Pass>, k: usize, window: f64) -> Vec<usize> {
        let mut top = TopK::new(k);
        let mut all = Vec::new();
        for p in passes {
            top.absorb(p.top);
            all.extend(p.candidates);
        }
        let floor = floor(&top, window);
        all.into_iter()
            .filter(|&(a, _)| a >= floor)
            .map(|(_, i)| i)
            .collect()
    }
}

/// The lowest coarse key that is still a candidate: the worst kept key minus the window
/// (rounded down), or minus infinity while fewer than `k` are kept.
fn floor(top: &TopK, window: f64) -> f32 {
    match top.worst() {
        Some(worst) => {
            let f = (f64::from(worst) - window) as f32;
            // `as` rounds to nearest: step down so the f32 floor is never above the real one.
            f.next_down()
        }
        None => f32::NEG_INFINITY,
    }
}

/// Scores `NP` bf16 panels against one query: `out[p][lane]` is row `lane` of panel `p`.
/// With `FMA` each step is one fused multiply-add (fewer roundings, so within the same bound;
/// only in builds where the CPU has FMA: elsewhere `mul_add` is a slow library call).
#[inline(always)]
fn tile<const NP: usize, const FMA: bool>(
    panels: [&[[u16; PANEL]]; NP],
    q: &[f32],
) -> [[f32; PANEL]; NP] {
    let dim = q.len();
    let panels = panels.map(|p| &p[..dim]);
    let mut acc = [[0.0f32; PANEL]; NP];
    for (k, &a) in q.iter().enumerate() {
        for (acc_p, p) in acc.iter_mut().zip(&panels) {
            let x = &p[k];
            for lane in 0..PANEL {
                acc_p[lane] = if FMA {
                    a.mul_add(from_bf16(x[lane]), acc_p[lane])
                } else {
                    acc_p[lane] + a * from_bf16(x[lane])
                };
            }
        }
    }
    acc
}

/// The coarse pass over `rows` rows stored in `panels` (row 0 is index row `first`).
pub(super) fn scan(
    panels: &[[u16; PANEL]],
    first: usize,
    rows: usize,
    q: &[f32],
    k: usize,
    window: f64,
) -> Pass {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: `scan_avx2` is safe code compiled with AVX2 and FMA enabled; calling it is
        // sound exactly when the CPU supports both, which was just checked. It contains no other
        // unsafe code and relies on nothing else.
        return unsafe { scan_avx2(panels, first, rows, q, k, window) };
    }
    scan_with::<4, false>(panels, first, rows, q, k, window)
}

/// [`scan`] compiled with AVX2 and FMA: 8 panels at a time, one fused multiply-add per step.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn scan_avx2(
    panels: &[[u16; PANEL]],
    first: usize,
    rows: usize,
    q: &[f32],
    k: usize,
    window: f64,
) -> Pass {
    scan_with::<8, true>(panels, first, rows, q, k, window)
}

/// The pass itself, `NP` panels at a time, in blocks of [`BLOCK_PANELS`] panels: each block's
/// keys go to the top k, then the block's rows at or above the floor become candidates.
#[inline(always)]
fn scan_with<const NP: usize, const FMA: bool>(
    panels: &[[u16; PANEL]],
    first: usize,
    rows: usize,
    q: &[f32],
    k: usize,
    window: f64,
) -> Pass {
    let dim = q.len();
    let mut pass = Pass {
        top: TopK::new(k),
        candidates: Vec::new(),
    };
    let stride = BLOCK_PANELS * PANEL;
    let mut scores = vec![0.0f32; stride];
    for (b, block) in panels.chunks(BLOCK_PANELS * dim).enumerate() {
        let count = block.len() / dim;
        let mut p = 0;
        while p + NP <= count {
            let ps: [&[[u16; PANEL]]; NP] =
                std::array::from_fn(|i| &block[(p + i) * dim..(p + i + 1) * dim]);
            for (i, s) in tile::<NP, FMA>(ps, q).iter().enumerate() {
                scores[(p + i) * PANEL..][..PANEL].copy_from_slice(s);
            }
            p += NP;
        }
        while p < count {
            let s = tile::<1, FMA>([&block[p * dim..(p + 1) * dim]], q);
            scores[p * PANEL..][..PANEL].copy_from_slice(&s[0]);
            p += 1;
        }
        let start = b * stride;
        let valid = &scores[..rows.saturating_sub(start).min(stride)];
        pass.top.offer::<DotKernel>(valid, first + start);
        let floor = floor(&pass.top, window);
        // Usually no row of a block is near the top: a branch-free count vectorizes.
        let near: u32 = valid.iter().map(|&a| u32::from(a >= floor)).sum();
        if near > 0 {
            for (i, &a) in valid.iter().enumerate() {
                if a >= floor {
                    pass.candidates.push((a, first + start + i));
                }
            }
        }
    }
    pass
}

/// The exact top `k` of `candidates` (rows in index order), scored by `exact`, best first: what
/// the full scan keeps, since it offers rows in index order too.
pub(super) fn rerank(candidates: &[usize], k: usize, exact: impl Fn(usize) -> f32) -> Vec<Cand> {
    let mut top = TopK::new(k);
    for &i in candidates {
        top.offer::<DotKernel>(&[exact(i)], i);
    }
    top.take_sorted()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_rounds_to_nearest_even_within_its_bound() {
        assert_eq!(from_bf16(to_bf16(1.0)), 1.0);
        assert_eq!(from_bf16(to_bf16(-0.5)), -0.5);
        // 1 + 2⁻⁸ is halfway between 1 and 1 + 2⁻⁷: ties go to the even one, 1.
        assert_eq!(from_bf16(to_bf16(1.0 + 2f32.powi(-8))), 1.0);
        // Just above halfway rounds up.
        let above = f32::from_bits((1.0 + 2f32.powi(-8)).to_bits() + 1);
        assert_eq!(from_bf16(to_bf16(above)), 1.0 + 2f32.powi(-7));
        let mut x = 1e-30f32;
        while x < 1e30 {
            for v in [x, -x, x * 1.37, x * 1.999] {
                let err = f64::from((from_bf16(to_bf16(v)) - v).abs());
                assert!(err <= 2f64.powi(-8) * f64::from(v.abs()), "{v}");
            }
            x *= 3.3;
        }
    }

    #[test]
    fn no_window_for_data_that_could_overflow_or_is_not_finite() {
        assert!(window(&[1.0, 0.0], 1.0).is_some());
        assert!(window(&[f32::NAN, 0.0], 1.0).is_none());
        assert!(window(&[1.0, 0.0], f64::INFINITY).is_none());
        assert!(window(&[1e20, 0.0], 1e20).is_none());
        // For 128-d unit vectors the window is about 0.016 in cosine.
        let q = [1.0f32 / 128f32.sqrt(); 128];
        let w = window(&q, 1.0).expect("a window");
        assert!(w > 4.0 * 2f64.powi(-8) && w < 0.05, "{w}");
    }
}

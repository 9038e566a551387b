//! The coarse pass of a lone query: an int8 copy of the matrix is scanned instead of the f32
//! one, then the few rows that can still be in the top k are scored again exactly.
//!
//! # Why
//!
//! A lone query reads the whole matrix once and does little arithmetic per byte: it is
//! memory-bound. An int8 copy is a quarter of the bytes, and its dot products are exact integer
//! sums that AVX2 computes 16 coordinates per instruction (`vpmaddwd`): measured here 1.0–1.5 ms
//! per query over 100,000 × 128 on one thread, against 2.6–3.9 ms for a bf16 copy (the previous
//! coarse pass) and 4.5–5.6 ms for the f32 scan.
//!
//! # The copy
//!
//! Row `x` is stored as `x̂ = round(x / s)` with its own scale `s = max|xᵢ| / 127`, so
//! `x̂ᵢ ∈ [−127, 127]`; its residual `‖x − s·x̂‖` is measured when the row is stored (in f64, with
//! a margin) and the copy keeps the largest, `R`. The query is quantized the same way to i16
//! (`q̂ = round(q / σ)`, `|q̂ᵢ| ≤ L`, `L` small enough that no integer sum can overflow), so the
//! coarse key of a row is `A = fl(I · fl(s·σ))`, `I = Σ q̂ᵢx̂ᵢ` an exact i32.
//!
//! # Why the result stays exact
//!
//! Let `K` be a row's exact key (the f32 dot product the full scan computes), `D = q·x` the real
//! one, `C = σ·s·I`. With `dq = q − σq̂`, `dx = x − s·x̂` and `M` the largest row norm:
//!
//! - `D − C = dq·(s·x̂) + q·dx`, so `|D − C| ≤ ‖dq‖(M + R) + ‖q‖R` (Cauchy–Schwarz, and
//!   `‖s·x̂‖ ≤ ‖x‖ + ‖dx‖`);
//! - `|C − A| ≤ 4u·|C| ≤ 4u(‖q‖ + ‖dq‖)(M + R)` (three roundings to f32, `u = 2⁻²⁴`; the scales
//!   are kept in f32's normal range, so no rounding is subnormal);
//! - `|K − D| ≤ γₙ‖q‖M` plus an absolute term for underflow, `γₙ = n·u/(1 − n·u)` (an f32 sum
//!   of `n` products).
//!
//! So `|K − A| ≤ ε`, the sum of the three; [`Coarse::query`] sets the window to `2ε`, doubled
//! again for safety.
//!
//! The pass keeps the `k` best coarse keys. Once it holds `k`, a row whose coarse key is below
//! the worst kept one minus `2ε` has `K ≤ A + ε < worst − ε`, and every kept row has
//! `K ≥ A − ε ≥ worst − ε`: `k` rows beat it strictly, so it cannot be in the top k, whatever
//! the tie-breaking. Every other row is a candidate; candidates are scored exactly, with the
//! very arithmetic of the full scan, and ranked as the full scan ranks. The answer is the full
//! scan's, bit for bit (tested against it).
//!
//! Only for finite data whose products cannot overflow, whose scales stay far from f32's
//! subnormals, and where the window is narrow enough to rule rows out ([`Coarse::query`]
//! returns `None` otherwise, and the full scan runs); only for dot-product keys (cosine and
//! dot; Euclidean keeps the full scan).

use super::segments::Segments;
use super::{BLOCK_PANELS, Cand, DotKernel, PANEL, TopK};

/// Bytes of one group: two coordinates of each of a panel's [`PANEL`] rows, row by row
/// (`[x₀,₂ⱼ, x₀,₂ⱼ₊₁, x₁,₂ⱼ, x₁,₂ⱼ₊₁, …]`), the shape `vpmaddwd` multiplies pairwise.
const GROUP: usize = 2 * PANEL;

/// The largest magnitude of a stored coordinate.
const ROW_LEVELS: f32 = 127.0;

/// `1.5·2²³`: adding it to an f32 of magnitude below 2²² rounds it to an integer (ties to
/// even), which is then the sum's low mantissa bits.
const ROUNDER: f32 = 12_582_912.0;

/// Scales below this are refused (see [`Coarse::query`]): the products of two stay normal f32s.
const MIN_SCALE: f32 = 1.0 / (1u64 << 60) as f32;

/// A relative margin on norms taken in f64 (their own rounding is below 2⁻⁴⁰ for any dim this
/// index accepts).
const F64_MARGIN: f64 = 1.0 + 1.0 / (1u64 << 30) as f64;

/// The int8 copy of an index's rows, in panels like the f32 matrix: panel `p` holds
/// `pairs` groups (see [`GROUP`]) and one scale per row.
#[derive(Clone, Debug)]
pub(super) struct Coarse {
    /// Groups per panel: `dim` rounded up to even, halved (an odd dim's last group pads with 0).
    pairs: usize,
    groups: Segments<[i8; GROUP]>,
    scales: Segments<[f32; PANEL]>,
    /// The largest residual norm `‖x − s·x̂‖` of a stored row (an upper bound).
    max_residual: f64,
    /// The smallest nonzero scale of a stored row (infinite while there is none).
    min_scale: f32,
}

/// Equal copies hold the same rows (scales and residuals compared by their bits).
impl PartialEq for Coarse {
    fn eq(&self, o: &Self) -> bool {
        self.pairs == o.pairs
            && self.groups == o.groups
            && self.scales.iter().flatten().map(|x| x.to_bits()).eq(o
                .scales
                .iter()
                .flatten()
                .map(|x| x.to_bits()))
            && self.max_residual.to_bits() == o.max_residual.to_bits()
            && self.min_scale.to_bits() == o.min_scale.to_bits()
    }
}

/// A query ready for the coarse pass.
pub(super) struct Query {
    /// `q̂` as pairs of i16 packed into the i32s `vpmaddwd` broadcasts (low half first).
    pairs: Vec<i32>,
    /// `σ`, the query's scale.
    scale: f32,
    /// The width below the worst kept coarse key inside which a row stays a candidate.
    window: f64,
}

impl Coarse {
    /// An empty copy for rows of `dim` coordinates, stored `per_segment` panels to a segment
    /// (as the f32 matrix, so that a range of panels in one segment of it is in one here).
    pub(super) fn new(dim: usize, per_segment: usize) -> Self {
        let pairs = dim.div_ceil(2);
        Coarse {
            pairs,
            groups: Segments::new(pairs, per_segment),
            scales: Segments::new(1, per_segment),
            max_residual: 0.0,
            min_scale: f32::INFINITY,
        }
    }

    /// Appends an empty panel (its rows zero until [`Coarse::set_row`]).
    pub(super) fn add_panel(&mut self) {
        self.groups.push([0; GROUP]);
        self.scales.push([0.0; PANEL]);
    }

    /// Stores row `x` (its f32 coordinates as the index keeps them) as row `lane` of `panel`.
    pub(super) fn set_row(&mut self, panel: usize, lane: usize, x: &[f32]) {
        let groups = self.groups.panel_mut(panel);
        #[cfg(target_arch = "x86_64")]
        let (scale, residual) = if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: `quantize_avx2` is safe code compiled with AVX2 enabled; calling it is
            // sound exactly when the CPU supports AVX2, which was just checked.
            unsafe { quantize_avx2(x, groups, lane) }
        } else {
            quantize(x, groups, lane)
        };
        #[cfg(not(target_arch = "x86_64"))]
        let (scale, residual) = quantize(x, groups, lane);
        self.scales.panel_mut(panel)[0][lane] = scale;
        self.max_residual = self.max_residual.max(residual.sqrt() * F64_MARGIN);
        if scale > 0.0 {
            self.min_scale = self.min_scale.min(scale);
        }
    }

    /// Prepares `q` for the pass over rows whose norms are at most `max_norm`, or `None` when
    /// no useful bound holds (non-finite or zero query, products that could overflow, scales
    /// near f32's subnormals, absurd dims, or a window so wide the full scan is cheaper).
    pub(super) fn query(&self, q: &[f32], max_norm: f64) -> Option<Query> {
        let n = q.len();
        // |I| ≤ (2·pairs)·127·L must fit in an i32, and so must every partial sum.
        let levels = (i32::MAX as usize / (2 * self.pairs * ROW_LEVELS as usize)).min(32_767);
        if levels < 255 {
            return None;
        }
        let top = q.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        if !top.is_finite() || top == 0.0 {
            return None;
        }
        let levels = levels as f32;
        let scale = top / levels;
        if scale < MIN_SCALE || self.min_scale < MIN_SCALE {
            return None;
        }
        let mut quantized = vec![0i16; 2 * self.pairs];
        let (mut q2, mut d2) = (0.0f64, 0.0f64);
        for (o, &v) in quantized.iter_mut().zip(q) {
            let level = (v / scale).round().clamp(-levels, levels);
            *o = level as i16;
            let d = f64::from(v) - f64::from(scale) * f64::from(level);
            q2 += f64::from(v) * f64::from(v);
            d2 += d * d;
        }
        let q_norm = q2.sqrt() * F64_MARGIN;
        let dq = d2.sqrt() * F64_MARGIN;
        let m = max_norm * F64_MARGIN;
        let r = self.max_residual;
        let nf = n as f64;
        let u = 2f64.powi(-24);
        if !m.is_finite() || q_norm * (m + r) > 1e30 || nf * u >= 0.5 {
            return None;
        }
        let gamma = nf * u / (1.0 - nf * u);
        let eps = dq * (m + r)
            + q_norm * r
            + 4.0 * u * (q_norm + dq) * (m + r)
            + gamma * q_norm * m
            + nf * 2f64.powi(-120);
        let window = 2.0 * (2.0 * eps);
        // Past this the pass rules out too little to pay for itself.
        if window > 0.05 * q_norm * m {
            return None;
        }
        let pairs = quantized
            .chunks_exact(2)
            .map(|p| i32::from(p[0] as u16) | (i32::from(p[1] as u16) << 16))
            .collect();
        Some(Query {
            pairs,
            scale,
            window,
        })
    }

    /// The coarse pass over panels `panels` holding `rows` rows (row 0 is index row `first`),
    /// all in one segment.
    pub(super) fn scan(
        &self,
        panels: std::ops::Range<usize>,
        first: usize,
        rows: usize,
        q: &Query,
        k: usize,
    ) -> Pass {
        let groups = self.groups.run(panels.clone());
        let scales = self.scales.run(panels);
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: `scan_avx2` is safe code compiled with AVX2 enabled; calling it is sound
            // exactly when the CPU supports AVX2, which was just checked. It contains no other
            // unsafe code and relies on nothing else.
            return unsafe { scan_avx2(groups, scales, self.pairs, first, rows, q, k) };
        }
        scan_with(groups, scales, self.pairs, first, rows, q, k, panel_keys)
    }

    /// Bytes the copy holds.
    #[cfg(test)]
    pub(super) fn bytes(&self) -> usize {
        self.groups.iter().count() * GROUP + self.scales.iter().count() * PANEL * 4
    }
}

/// Quantizes row `x` into row `lane` of a panel's `groups` (coordinates `2j` and `2j + 1` in
/// group `j`; an odd dim's last byte is left as it is): returns its scale `s` and the square
/// of its residual norm `‖x − s·x̂‖²`. The same bits whatever the instruction set: every step
/// is elementwise or a max, and the residual's sixteen partial sums are fixed. The levels of
/// sixteen coordinates are made, measured and stored together, in one pass after the max.
#[inline(always)]
fn quantize(x: &[f32], groups: &mut [[i8; GROUP]], lane: usize) -> (f32, f64) {
    assert!(lane < PANEL && groups.len() >= x.len().div_ceil(2));
    let top = max_abs(x);
    // Non-finite data never takes the coarse pass (the index's max norm is then infinite); its
    // bytes only need to be something.
    let scale = if top.is_finite() {
        top / ROW_LEVELS
    } else {
        0.0
    };
    // A scale so small that its inverse overflows stores level 0 (its query is refused).
    let inv = Some(1.0 / scale).filter(|i| i.is_finite()).unwrap_or(0.0);
    // The nearest level (ties to even; NaN → −127): any level would do, the residual below is
    // measured, not assumed. Rounded by adding 1.5·2²³, whose ulp is 1, and read back from the
    // sum's bits: no libm call, and no float-to-int conversion, whose NaN and saturation rules
    // keep it from vectorizing.
    let level = |v: f32| {
        #[allow(clippy::manual_clamp)] // `clamp` keeps NaN; `max` then `min` give −127.
        let y = (v * inv).max(-ROW_LEVELS).min(ROW_LEVELS);
        ((y + ROUNDER).to_bits() as i32 - ROUNDER.to_bits() as i32) as i8
    };
    // s·x̂ is exact in f64 (24 × 8 significant bits). Sixteen sums keep the adds independent:
    // with four, each add waited for the one before it on the same sum; the rounding of any
    // order is far inside `F64_MARGIN`.
    let s = f64::from(scale);
    let mut sums = [0.0f64; 16];
    let (xs, x_rest) = x.as_chunks::<16>();
    let (gs, g_rest) = groups.split_at_mut(xs.len() * 8);
    let (gs, _) = gs.as_chunks_mut::<8>();
    for (xq, gq) in xs.iter().zip(gs) {
        let mut lq = [0i8; 16];
        for k in 0..16 {
            lq[k] = level(xq[k]);
        }
        for k in 0..16 {
            let d = f64::from(xq[k]) - s * f64::from(lq[k]);
            sums[k] += d * d;
        }
        for (g, pair) in gq.iter_mut().zip(lq.as_chunks::<2>().0) {
            g[2 * lane..2 * lane + 2].copy_from_slice(pair);
        }
    }
    for (k, &v) in x_rest.iter().enumerate() {
        let l = level(v);
        let d = f64::from(v) - s * f64::from(l);
        sums[k] += d * d;
        g_rest[k / 2][2 * lane + k % 2] = l;
    }
    (scale, sums.iter().sum())
}

/// The largest `|v|` of `x` that is not NaN (0 when there is none): what
/// `x.iter().fold(0.0, |m, v| m.max(v.abs()))` gives, taken on the bits. A float's magnitude
/// orders as its bits without the sign do, and a NaN's are above infinity's, so a NaN is
/// counted as 0. Integer maxima vectorize plainly; the float fold's NaN rule cost a compare
/// and a blend per element and a long scalar tail.
#[inline(always)]
fn max_abs(x: &[f32]) -> f32 {
    const MAGNITUDE: u32 = 0x7FFF_FFFF;
    let inf = f32::INFINITY.to_bits();
    let bits = |v: f32| {
        let b = v.to_bits() & MAGNITUDE;
        if b > inf { 0 } else { b }
    };
    // Eight running maxima, in the shape the vectorizer takes (one chain became scalar code).
    let (chunks, rest) = x.as_chunks::<8>();
    let mut top = [0u32; 8];
    for c in chunks {
        for k in 0..8 {
            top[k] = top[k].max(bits(c[k]));
        }
    }
    let tail = rest.iter().fold(0, |m, &v| m.max(bits(v)));
    f32::from_bits(top.into_iter().fold(tail, u32::max))
}

/// [`quantize`] compiled with AVX2 (the same bits, in fewer instructions).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn quantize_avx2(x: &[f32], groups: &mut [[i8; GROUP]], lane: usize) -> (f32, f64) {
    quantize(x, groups, lane)
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
    pub(super) fn candidates(passes: Vec<Pass>, k: usize, q: &Query) -> Vec<usize> {
        let mut top = TopK::new(k);
        let mut all = Vec::new();
        for p in passes {
            top.absorb(p.top);
            all.extend(p.candidates);
        }
        let floor = floor(&top, q.window);
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

/// The coarse keys of one panel (`pairs` groups) for the query: portable code, whose integer
/// sums are exact, so it gives the AVX2 kernel's bits.
#[inline(always)]
fn panel_keys(groups: &[[i8; GROUP]], q: &Query, scales: &[f32; PANEL]) -> [f32; PANEL] {
    let mut sums = [0i32; PANEL];
    for (g, &p) in groups.iter().zip(&q.pairs) {
        let (lo, hi) = (i32::from(p as i16), i32::from((p >> 16) as i16));
        for (lane, s) in sums.iter_mut().enumerate() {
            *s += i32::from(g[2 * lane]) * lo + i32::from(g[2 * lane + 1]) * hi;
        }
    }
    keys(sums, q.scale, scales)
}

/// `fl(I · fl(s·σ))` per lane: the same operations in the same order in every kernel.
#[inline(always)]
fn keys(sums: [i32; PANEL], sigma: f32, scales: &[f32; PANEL]) -> [f32; PANEL] {
    std::array::from_fn(|lane| sums[lane] as f32 * (scales[lane] * sigma))
}

/// [`panel_keys`] with AVX2: each group is widened to 16 i16s and multiplied pairwise with
/// the query's pair (`vpmaddwd`), two groups in flight. No integer overflow: every partial
/// sum is bounded by the total bound checked in [`Coarse::query`], and no operand is −32768.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn panel_keys_avx2(groups: &[[i8; GROUP]], q: &Query, scales: &[f32; PANEL]) -> [f32; PANEL] {
    use std::arch::x86_64::*;
    let load = |g: &[i8; GROUP]| {
        let lo = i64::from_le_bytes(std::array::from_fn(|i| g[i] as u8));
        let hi = i64::from_le_bytes(std::array::from_fn(|i| g[8 + i] as u8));
        _mm256_cvtepi8_epi16(_mm_set_epi64x(hi, lo))
    };
    let mut a0 = _mm256_setzero_si256();
    let mut a1 = _mm256_setzero_si256();
    let mut gs = groups.chunks_exact(2);
    let mut ps = q.pairs.chunks_exact(2);
    for (g, p) in gs.by_ref().zip(ps.by_ref()) {
        a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(load(&g[0]), _mm256_set1_epi32(p[0])));
        a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(load(&g[1]), _mm256_set1_epi32(p[1])));
    }
    if let (Some(g), Some(&p)) = (gs.remainder().first(), ps.remainder().first()) {
        a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(load(g), _mm256_set1_epi32(p)));
    }
    let a = _mm256_add_epi32(a0, a1);
    let sums = [
        _mm256_extract_epi32::<0>(a),
        _mm256_extract_epi32::<1>(a),
        _mm256_extract_epi32::<2>(a),
        _mm256_extract_epi32::<3>(a),
        _mm256_extract_epi32::<4>(a),
        _mm256_extract_epi32::<5>(a),
        _mm256_extract_epi32::<6>(a),
        _mm256_extract_epi32::<7>(a),
    ];
    keys(sums, q.scale, scales)
}

/// [`scan_with`] compiled with AVX2 around [`panel_keys_avx2`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn scan_avx2(
    groups: &[[i8; GROUP]],
    scales: &[[f32; PANEL]],
    pairs: usize,
    first: usize,
    rows: usize,
    q: &Query,
    k: usize,
) -> Pass {
    scan_with(groups, scales, pairs, first, rows, q, k, |g, q, s| {
        panel_keys_avx2(g, q, s)
    })
}

/// The pass itself, in blocks of [`BLOCK_PANELS`] panels: each block's keys go to the top k,
/// then the block's rows at or above the floor become candidates.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn scan_with(
    groups: &[[i8; GROUP]],
    scales: &[[f32; PANEL]],
    pairs: usize,
    first: usize,
    rows: usize,
    q: &Query,
    k: usize,
    panel: impl Fn(&[[i8; GROUP]], &Query, &[f32; PANEL]) -> [f32; PANEL],
) -> Pass {
    let mut pass = Pass {
        top: TopK::new(k),
        candidates: Vec::new(),
    };
    let stride = BLOCK_PANELS * PANEL;
    let mut keys = vec![0.0f32; stride];
    for (b, (block, block_scales)) in groups
        .chunks(BLOCK_PANELS * pairs)
        .zip(scales.chunks(BLOCK_PANELS))
        .enumerate()
    {
        for (p, (g, s)) in block.chunks_exact(pairs).zip(block_scales).enumerate() {
            keys[p * PANEL..][..PANEL].copy_from_slice(&panel(g, q, s));
        }
        let start = b * stride;
        let valid = &keys[..rows.saturating_sub(start).min(stride)];
        pass.top.offer::<DotKernel>(valid, first + start);
        let floor = floor(&pass.top, q.window);
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

    /// A copy of `rows` (one panel per `PANEL` rows).
    fn copy_of(rows: &[Vec<f32>]) -> Coarse {
        let mut c = Coarse::new(rows[0].len(), 2);
        for (i, r) in rows.iter().enumerate() {
            if i % PANEL == 0 {
                c.add_panel();
            }
            c.set_row(i / PANEL, i % PANEL, r);
        }
        c
    }

    #[test]
    fn rows_are_stored_within_their_measured_residual() {
        let rows = vec![
            vec![1.0, -0.5, 0.25, 0.0, 0.3],
            vec![0.0; 5],
            vec![1e-3, 2e-3, -3e-3, 4e-3, 5e-3],
        ];
        let c = copy_of(&rows);
        assert_eq!(c.pairs, 3);
        // The largest coordinate is ±127 exactly; the odd dim's pad byte stays 0.
        let (groups, scales) = (c.groups.panel(0), c.scales.panel(0)[0]);
        assert_eq!(groups[0][0], 127);
        assert_eq!(groups[2][2 * 2], 127); // row 2, coordinate 4
        assert_eq!(groups[2][1], 0);
        assert_eq!(scales[1], 0.0);
        for (lane, r) in rows.iter().enumerate() {
            let s = f64::from(scales[lane]);
            let resid = r
                .iter()
                .enumerate()
                .map(|(j, &v)| {
                    let level = f64::from(groups[j / 2][2 * lane + j % 2]);
                    (f64::from(v) - s * level).powi(2)
                })
                .sum::<f64>()
                .sqrt();
            assert!(resid <= c.max_residual, "{resid} > {}", c.max_residual);
            // Each coordinate is off by at most half a step.
            assert!(resid <= s * 0.5 * (r.len() as f64).sqrt() + 1e-12);
        }
        assert_eq!(c.min_scale, 5e-3f32 / 127.0);
    }

    #[test]
    fn the_avx2_kernel_gives_the_portable_kernels_bits() {
        let dim = 37;
        let rows: Vec<Vec<f32>> = (0..3 * PANEL)
            .map(|i| {
                (0..dim)
                    .map(|j| ((i * 31 + j * 17) % 23) as f32 - 11.0)
                    .collect()
            })
            .collect();
        let c = copy_of(&rows);
        let q: Vec<f32> = (0..dim).map(|j| (j as f32 * 0.37).sin()).collect();
        let cq = c.query(&q, 100.0).expect("a query");
        for p in 0..3 {
            let (g, scales) = (c.groups.panel(p), &c.scales.panel(p)[0]);
            let portable = panel_keys(g, &cq, scales);
            // Each key is the exact integer sum, scaled.
            for (lane, &key) in portable.iter().enumerate() {
                let i: i64 = (0..dim)
                    .map(|j| {
                        i64::from(g[j / 2][2 * lane + j % 2])
                            * i64::from((q[j] / cq.scale).round() as i16)
                    })
                    .sum();
                assert_eq!(key, i as f32 * (scales[lane] * cq.scale));
            }
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: AVX2 was just detected; the function is otherwise safe code.
                let fast = unsafe { panel_keys_avx2(g, &cq, scales) };
                assert_eq!(fast.map(f32::to_bits), portable.map(f32::to_bits));
            }
        }
    }

    #[test]
    fn quantizing_gives_the_same_bits_with_and_without_avx2() {
        let rows: Vec<Vec<f32>> = vec![
            // Exact ties (0.5 and 1.5 steps of 1/127), an odd tail.
            vec![1.0, 0.5 / 127.0, 1.5 / 127.0, -2.5 / 127.0, 0.3, -0.7, 0.1],
            vec![f32::NAN, 1.0, -1.0, 0.25, 0.0],
            vec![f32::INFINITY, 1.0, f32::NEG_INFINITY],
            vec![1e-39, 0.0, -1e-39],
            vec![0.0; 9],
            vec![-0.75],
            (0..16).map(|j| (j as f32 * 0.37).cos()).collect(),
            (0..32).map(|j| (j as f32 * 0.43).sin() - 0.2).collect(),
            (0..37).map(|j| (j as f32 * 0.61).sin() * 3.0).collect(),
        ];
        for x in rows {
            for lane in [0, 3, PANEL - 1] {
                let (portable, s, r) = quantized(&x, lane, quantize);
                assert!(portable.iter().all(|l| (-127..=127).contains(l)), "{x:?}");
                if x.iter().all(|v| v.is_finite()) && s > 0.0 {
                    // Nearest level, ties to even: 0.5 → 0, 1.5 → 2, −2.5 → −2.
                    if x.get(1) == Some(&(0.5 / 127.0)) {
                        assert_eq!(portable[..4], [127, 0, 2, -2]);
                    }
                    let direct: f64 = x
                        .iter()
                        .zip(&portable)
                        .map(|(&v, &l)| (f64::from(v) - f64::from(s) * f64::from(l)).powi(2))
                        .sum();
                    assert!((direct - r).abs() <= 1e-12 * direct.max(1e-30), "{x:?}");
                }
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: AVX2 was just detected; the function is otherwise safe code.
                    let avx2 =
                        |x: &[f32], g: &mut [[i8; GROUP]], l| unsafe { quantize_avx2(x, g, l) };
                    let (fast, fs, fr) = quantized(&x, lane, avx2);
                    assert_eq!(fast, portable, "{x:?}");
                    assert_eq!((fs.to_bits(), fr.to_bits()), (s.to_bits(), r.to_bits()));
                }
            }
        }
    }

    /// `x` quantized by `f` as row `lane` of a fresh panel: its levels read back from the
    /// groups, scale and squared residual. Asserts that no other byte of the panel was written.
    fn quantized(
        x: &[f32],
        lane: usize,
        f: impl Fn(&[f32], &mut [[i8; GROUP]], usize) -> (f32, f64),
    ) -> (Vec<i8>, f32, f64) {
        let mut groups = vec![[0i8; GROUP]; x.len().div_ceil(2)];
        let (s, r) = f(x, &mut groups, lane);
        let levels: Vec<i8> = (0..x.len())
            .map(|k| groups[k / 2][2 * lane + k % 2])
            .collect();
        for (j, g) in groups.iter().enumerate() {
            for (b, &v) in g.iter().enumerate() {
                let ours = b / 2 == lane && 2 * j + b % 2 < x.len();
                assert!(
                    ours || v == 0,
                    "byte {b} of group {j} written for lane {lane}"
                );
            }
        }
        (levels, s, r)
    }

    #[test]
    fn the_max_magnitude_on_bits_is_the_float_folds() {
        let fold = |x: &[f32]| x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let rows: Vec<Vec<f32>> = vec![
            vec![],
            vec![-0.0],
            vec![f32::NAN, -f32::NAN],
            vec![f32::NAN, -3.5, 2.0],
            vec![1.0, f32::NEG_INFINITY, f32::NAN],
            vec![f32::MIN_POSITIVE / 4.0, -f32::MIN_POSITIVE / 2.0],
            vec![f32::MAX, -f32::MAX, 1.0],
            (0..37).map(|j| (j as f32 * 0.61).sin() * 3.0).collect(),
        ];
        for x in rows {
            assert_eq!(max_abs(&x).to_bits(), fold(&x).to_bits(), "{x:?}");
        }
    }

    #[test]
    fn no_query_for_data_that_could_overflow_or_is_not_finite() {
        let c = copy_of(&[vec![1.0, 0.5]]);
        assert!(c.query(&[1.0, 0.0], 1.2).is_some());
        assert!(c.query(&[f32::NAN, 0.0], 1.2).is_none());
        assert!(c.query(&[0.0, 0.0], 1.2).is_none());
        assert!(c.query(&[1.0, 0.0], f64::INFINITY).is_none());
        assert!(c.query(&[1e20, 0.0], 1e20).is_none());
        // Scales near f32's subnormals.
        assert!(c.query(&[1e-30, 0.0], 1.2).is_none());
        let tiny = copy_of(&[vec![1e-30, 0.0]]);
        assert!(tiny.query(&[1.0, 0.0], 1e-30).is_none());
        // A row whose residual is most of its norm: the window would rule nothing out.
        let spiky: Vec<f32> = (0..128).map(|j| if j == 0 { 1.0 } else { 0.003 }).collect();
        assert!(copy_of(&[spiky]).query(&[1.0; 128], 1.0).is_none());
    }

    #[test]
    fn the_window_of_unit_vectors_is_narrow() {
        let dim = 128;
        let unit = |seed: usize| {
            let v: Vec<f32> = (0..dim)
                .map(|j| ((seed * 131 + j * 71) % 97) as f32 / 97.0)
                .collect();
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter().map(|x| x / n).collect::<Vec<f32>>()
        };
        let rows: Vec<Vec<f32>> = (0..64).map(unit).collect();
        let c = copy_of(&rows);
        let q = c.query(&unit(1000), 1.0).expect("a query");
        // About 4·‖dx‖: 0.02 in cosine for such rows.
        assert!(q.window > 1e-3 && q.window < 0.05, "{}", q.window);
        assert_eq!(c.bytes(), 8 * 64 * GROUP + 8 * PANEL * 4);
    }
}

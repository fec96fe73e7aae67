//! The evaluation study: fusing observers and comparing raters or groups.
//!
//! * [`majority_vote`]: fusion of N observer masks (strict majority; ties → background).
//! * [`cohen_kappa`]: two raters, voxel-wise inside an optional region of interest, as
//!   `sklearn.metrics.cohen_kappa_score`.
//! * [`fleiss_kappa`] (subject × category table) and [`fleiss_kappa_masks`] (N binary masks),
//!   as `statsmodels.stats.inter_rater.fleiss_kappa(method="fleiss")`.
//! * [`mann_whitney_u`]: two independent groups, two-sided, as `scipy.stats.mannwhitneyu`
//!   (exact or normal approximation with tie and continuity correction), plus the
//!   common-language effect size.
//! * [`bland_altman`]: bias and 95 % limits of agreement of paired measures.
//!
//! Degenerate inputs follow documented rules instead of producing NaN: a kappa whose chance
//! agreement is 1 (every rating in one category) is 1.

use rayon::prelude::*;
use serde::Serialize;

use crate::error::{Error, Result};

fn same_len(what: &str, n: usize, m: usize) -> Result<()> {
    if n == m {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "{what}: inputs have {n} and {m} values; they must match"
        )))
    }
}

/// Majority-vote fusion: a voxel is inside (1) when **more than half** of the masks have it
/// non-zero. With an even number of observers a tie (exactly half) is outside (0). Errors when
/// no mask is given or the lengths differ.
pub fn majority_vote(masks: &[&[u8]]) -> Result<Vec<u8>> {
    let first = masks
        .first()
        .ok_or_else(|| Error::InvalidArgument("majority vote of no masks".into()))?;
    for m in masks {
        same_len("majority vote", first.len(), m.len())?;
    }
    let n = masks.len();
    Ok((0..first.len())
        .into_par_iter()
        .map(|v| {
            let votes = masks
                .iter()
                .filter(|m| m.get(v).is_some_and(|&x| x != 0))
                .count();
            u8::from(2 * votes > n)
        })
        .collect())
}

/// Cohen's kappa of two raters labelling the same voxels; each distinct byte value is a
/// category (0/1 masks give the binary kappa). Only voxels where `roi` is non-zero count when a
/// region of interest is given. `(p_o − p_e) / (1 − p_e)`; 1 when `p_e = 1` (sklearn gives NaN);
/// errors when no voxel counts.
pub fn cohen_kappa(a: &[u8], b: &[u8], roi: Option<&[u8]>) -> Result<f64> {
    same_len("Cohen's kappa", a.len(), b.len())?;
    if let Some(r) = roi {
        same_len("Cohen's kappa region of interest", a.len(), r.len())?;
    }
    const CHUNK: usize = 1 << 16;
    let cm = a
        .par_chunks(CHUNK)
        .zip(b.par_chunks(CHUNK))
        .enumerate()
        .fold(
            || vec![0u64; 256 * 256],
            |mut cm, (c, (xa, xb))| {
                for (v, (&x, &y)) in xa.iter().zip(xb).enumerate() {
                    let inside = roi.is_none_or(|r| r.get(c * CHUNK + v).is_some_and(|&q| q != 0));
                    if inside && let Some(e) = cm.get_mut(usize::from(x) * 256 + usize::from(y)) {
                        *e += 1;
                    }
                }
                cm
            },
        )
        .reduce(
            || vec![0u64; 256 * 256],
            |mut x, y| {
                x.iter_mut().zip(y).for_each(|(p, q)| *p += q);
                x
            },
        );
    let total: u64 = cm.iter().sum();
    if total == 0 {
        return Err(Error::InvalidArgument(
            "Cohen's kappa: no voxel inside the region of interest".into(),
        ));
    }
    let n = total as f64;
    let mut rows = [0u64; 256];
    let mut cols = [0u64; 256];
    let mut agree = 0u64;
    for (idx, &c) in cm.iter().enumerate() {
        let (i, j) = (idx / 256, idx % 256);
        if let Some(r) = rows.get_mut(i) {
            *r += c;
        }
        if let Some(k) = cols.get_mut(j) {
            *k += c;
        }
        if i == j {
            agree += c;
        }
    }
    let po = agree as f64 / n;
    let pe: f64 = rows
        .iter()
        .zip(&cols)
        .map(|(&r, &c)| (r as f64 / n) * (c as f64 / n))
        .sum();
    Ok(kappa(po, pe))
}

fn kappa(po: f64, pe: f64) -> f64 {
    if (1.0 - pe).abs() < 1e-15 {
        1.0
    } else {
        (po - pe) / (1.0 - pe)
    }
}

/// Fleiss' kappa from a subject × category table of rating counts; every row must sum to the
/// same number of raters n ≥ 2. 1 when the chance agreement is 1.
pub fn fleiss_kappa(table: &[Vec<u64>]) -> Result<f64> {
    let first = table
        .first()
        .ok_or_else(|| Error::InvalidArgument("Fleiss' kappa of an empty table".into()))?;
    let n_cat = first.len();
    let n_rat: u64 = first.iter().sum();
    if n_rat < 2 {
        return Err(Error::InvalidArgument(format!(
            "Fleiss' kappa: {n_rat} rating(s) per subject; at least 2 needed"
        )));
    }
    let mut cat = vec![0u64; n_cat];
    let mut p_sum = 0.0;
    for (s, row) in table.iter().enumerate() {
        if row.len() != n_cat || row.iter().sum::<u64>() != n_rat {
            return Err(Error::InvalidArgument(format!(
                "Fleiss' kappa: subject {s} has {} categories and {} ratings; expected {n_cat} and {n_rat}",
                row.len(),
                row.iter().sum::<u64>()
            )));
        }
        let sq: u64 = row.iter().map(|c| c * c).sum();
        p_sum += (sq - n_rat) as f64 / (n_rat * (n_rat - 1)) as f64;
        cat.iter_mut().zip(row).for_each(|(c, r)| *c += r);
    }
    let total = (table.len() as u64 * n_rat) as f64;
    let pe: f64 = cat.iter().map(|&c| (c as f64 / total).powi(2)).sum();
    Ok(kappa(p_sum / table.len() as f64, pe))
}

/// Fleiss' kappa of N ≥ 2 binary masks (non-zero = inside), one subject per voxel inside the
/// optional region of interest. Same value as [`fleiss_kappa`] on the voxel × {out, in} table,
/// computed from a histogram of votes without building the table.
pub fn fleiss_kappa_masks(masks: &[&[u8]], roi: Option<&[u8]>) -> Result<f64> {
    let n = masks.len();
    if n < 2 {
        return Err(Error::InvalidArgument(format!(
            "Fleiss' kappa: {n} mask(s); at least 2 needed"
        )));
    }
    let len = masks.first().map_or(0, |m| m.len());
    for m in masks {
        same_len("Fleiss' kappa", len, m.len())?;
    }
    if let Some(r) = roi {
        same_len("Fleiss' kappa region of interest", len, r.len())?;
    }
    let hist = (0..len)
        .into_par_iter()
        .fold(
            || vec![0u64; n + 1],
            |mut h, v| {
                if roi.is_none_or(|r| r.get(v).is_some_and(|&q| q != 0)) {
                    let votes = masks
                        .iter()
                        .filter(|m| m.get(v).is_some_and(|&x| x != 0))
                        .count();
                    if let Some(e) = h.get_mut(votes) {
                        *e += 1;
                    }
                }
                h
            },
        )
        .reduce(
            || vec![0u64; n + 1],
            |mut x, y| {
                x.iter_mut().zip(y).for_each(|(p, q)| *p += q);
                x
            },
        );
    let subjects: u64 = hist.iter().sum();
    if subjects == 0 {
        return Err(Error::InvalidArgument(
            "Fleiss' kappa: no voxel inside the region of interest".into(),
        ));
    }
    let nf = n as f64;
    let (mut p_sum, mut pos) = (0.0, 0.0);
    for (c, &h) in hist.iter().enumerate() {
        let (c, h) = (c as f64, h as f64);
        p_sum += h * ((nf - c).powi(2) + c * c - nf) / (nf * (nf - 1.0));
        pos += h * c;
    }
    let s = subjects as f64;
    let p_pos = pos / (s * nf);
    let pe = p_pos * p_pos + (1.0 - p_pos) * (1.0 - p_pos);
    Ok(kappa(p_sum / s, pe))
}

/// How [`mann_whitney_u`] computes its p-value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum MwuMethod {
    /// Exact when one sample has at most 8 values and there are no ties, else asymptotic
    /// (scipy's rule).
    Auto,
    /// Exact null distribution of U (not corrected for ties).
    Exact,
    /// Normal approximation with tie correction and continuity correction.
    Asymptotic,
}

/// Result of a two-sided Mann-Whitney U test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MannWhitney {
    /// U statistic of the first sample (scipy's `statistic`).
    pub u1: f64,
    /// U statistic of the second sample, `n1·n2 − u1`.
    pub u2: f64,
    /// Two-sided p-value.
    pub p_value: f64,
    /// The method used (never `Auto`).
    pub method: MwuMethod,
    /// Common-language effect size `u1 / (n1·n2)`: the probability that a value of the first
    /// group exceeds one of the second, ties counting one half.
    pub common_language: f64,
}

/// Two-sided Mann-Whitney U test of `x` against `y`, as `scipy.stats.mannwhitneyu(x, y,
/// use_continuity=True, alternative="two-sided", method=…)`. Errors on an empty sample or NaN.
pub fn mann_whitney_u(x: &[f64], y: &[f64], method: MwuMethod) -> Result<MannWhitney> {
    if x.is_empty() || y.is_empty() {
        return Err(Error::InvalidArgument(
            "Mann-Whitney U: both samples need at least one value".into(),
        ));
    }
    if x.iter().chain(y).any(|v| v.is_nan()) {
        return Err(Error::InvalidArgument(
            "Mann-Whitney U: samples contain NaN".into(),
        ));
    }
    let (n1, n2) = (x.len(), y.len());
    let mut all: Vec<(f64, bool)> = x
        .iter()
        .map(|&v| (v, true))
        .chain(y.iter().map(|&v| (v, false)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Average ranks and tie group sizes.
    let mut r1 = 0.0;
    let mut ties: Vec<f64> = Vec::new();
    let mut i = 0;
    while i < all.len() {
        let mut j = i + 1;
        while all
            .get(j)
            .is_some_and(|e| all.get(i).is_some_and(|s| e.0 == s.0))
        {
            j += 1;
        }
        let rank = (i + 1 + j) as f64 / 2.0;
        let in_x = all
            .get(i..j)
            .map_or(0, |g| g.iter().filter(|e| e.1).count());
        r1 += rank * in_x as f64;
        ties.push((j - i) as f64);
        i = j;
    }
    let (n1f, n2f) = (n1 as f64, n2 as f64);
    let u1 = r1 - n1f * (n1f + 1.0) / 2.0;
    let u2 = n1f * n2f - u1;
    let u = u1.max(u2);
    let has_ties = ties.iter().any(|&t| t > 1.0);
    let method = match method {
        MwuMethod::Auto if (n1 > 8 && n2 > 8) || has_ties => MwuMethod::Asymptotic,
        MwuMethod::Auto => MwuMethod::Exact,
        m => m,
    };
    let p = match method {
        MwuMethod::Exact => 2.0 * exact_u_cdf(n1, n2, (n1 * n2).saturating_sub(u as usize)),
        _ => {
            let n = n1f + n2f;
            let tie_term: f64 = ties.iter().map(|t| t * t * t - t).sum();
            let s = (n1f * n2f / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0)))).sqrt();
            let z = (u - n1f * n2f / 2.0 - 0.5) / s;
            if z.is_nan() {
                1.0
            } else {
                libm::erfc(z / std::f64::consts::SQRT_2)
            }
        }
    };
    Ok(MannWhitney {
        u1,
        u2,
        p_value: p.clamp(0.0, 1.0),
        method,
        common_language: u1 / (n1f * n2f),
    })
}

/// P(U ≤ k) under the null for samples of sizes `n1`, `n2` without ties: the coefficients of
/// the Gaussian binomial [n1+n2 choose m]_q, built one factor at a time.
fn exact_u_cdf(n1: usize, n2: usize, k: usize) -> f64 {
    let (m, n) = (n1.min(n2), n1.max(n2));
    let mut c = vec![0.0f64; m * n + 1];
    if let Some(c0) = c.get_mut(0) {
        *c0 = 1.0;
    }
    for i in 1..=m {
        // multiply by (1 − q^(n+i)), then divide by (1 − q^i); stays [n+i choose i]_q
        let top = (i - 1) * n; // degree before this step
        for u in (n + i..=top + n + i).rev() {
            let sub = c.get(u - (n + i)).copied().unwrap_or(0.0);
            if let Some(x) = c.get_mut(u) {
                *x -= sub;
            }
        }
        for u in i..=(i * n + i).min(m * n) {
            let add = c.get(u - i).copied().unwrap_or(0.0);
            if let Some(x) = c.get_mut(u) {
                *x += add;
            }
        }
        // exact integers: the coefficients above degree i·n are now zero up to rounding
        for x in c.iter_mut().skip(i * n + 1) {
            *x = 0.0;
        }
    }
    let total: f64 = c.iter().sum();
    c.iter().take(k + 1).sum::<f64>() / total
}

/// Bland-Altman agreement of paired measures `a` and `b` (differences `a − b`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BlandAltman {
    /// Number of pairs.
    pub n: usize,
    /// Mean difference (bias).
    pub bias: f64,
    /// Sample standard deviation of the differences (n − 1 denominator).
    pub sd: f64,
    /// `bias − 1.96·sd`.
    pub lower_loa: f64,
    /// `bias + 1.96·sd`.
    pub upper_loa: f64,
}

/// Bland-Altman bias and 95 % limits of agreement (±1.96 SD) of `a − b`. Needs at least two
/// finite pairs.
pub fn bland_altman(a: &[f64], b: &[f64]) -> Result<BlandAltman> {
    same_len("Bland-Altman", a.len(), b.len())?;
    if a.len() < 2 || a.iter().chain(b).any(|v| !v.is_finite()) {
        return Err(Error::InvalidArgument(format!(
            "Bland-Altman needs at least 2 finite pairs, got {}",
            a.len()
        )));
    }
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let n = d.len() as f64;
    let bias = d.iter().sum::<f64>() / n;
    let sd = (d.iter().map(|x| (x - bias).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    Ok(BlandAltman {
        n: d.len(),
        bias,
        sd,
        lower_loa: bias - 1.96 * sd,
        upper_loa: bias + 1.96 * sd,
    })
}

/// Box-plot statistics of one sample.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BoxStats {
    /// Number of finite values.
    pub n: usize,
    /// First quartile (25th percentile, linear interpolation as `numpy.percentile`).
    pub q1: f64,
    /// Median.
    pub median: f64,
    /// Third quartile.
    pub q3: f64,
    /// Lowest value ≥ `q1 − 1.5·IQR` (matplotlib's lower whisker).
    pub lower_whisker: f64,
    /// Highest value ≤ `q3 + 1.5·IQR`.
    pub upper_whisker: f64,
    /// Values outside the whiskers, ascending.
    pub outliers: Vec<f64>,
}

/// Percentile `p` (0–100) of sorted finite values, `numpy.percentile`'s default (linear).
fn percentile_sorted(v: &[f64], p: f64) -> f64 {
    let Some(&last) = v.last() else {
        return f64::NAN;
    };
    let pos = p / 100.0 * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let frac = pos - lo as f64;
    let a = v.get(lo).copied().unwrap_or(last);
    let b = v.get(lo + 1).copied().unwrap_or(last);
    a + (b - a) * frac
}

/// Box-plot statistics of the finite values of `values` (non-finite ones, e.g. an infinite
/// HD95 against an empty mask, are left out); `None` when there is none.
pub fn box_stats(values: &[f64]) -> Option<BoxStats> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let (q1, median, q3) = (
        percentile_sorted(&v, 25.0),
        percentile_sorted(&v, 50.0),
        percentile_sorted(&v, 75.0),
    );
    let iqr = q3 - q1;
    let (lo, hi) = (q1 - 1.5 * iqr, q3 + 1.5 * iqr);
    let lower_whisker = v.iter().copied().find(|&x| x >= lo).unwrap_or(q1);
    let upper_whisker = v.iter().rev().copied().find(|&x| x <= hi).unwrap_or(q3);
    let outliers = v
        .iter()
        .copied()
        .filter(|&x| x < lower_whisker || x > upper_whisker)
        .collect();
    Some(BoxStats {
        n: v.len(),
        q1,
        median,
        q3,
        lower_whisker,
        upper_whisker,
        outliers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_stats_match_numpy_and_matplotlib_rules() {
        // numpy.percentile([1, 2, 3, 4, 100], [25, 50, 75]) = 2, 3, 4; whiskers 1 and 4,
        // 100 is an outlier (> 4 + 1.5·2).
        let b = box_stats(&[4.0, 1.0, 100.0, 3.0, 2.0, f64::INFINITY]).unwrap();
        assert_eq!((b.n, b.q1, b.median, b.q3), (5, 2.0, 3.0, 4.0));
        assert_eq!((b.lower_whisker, b.upper_whisker), (1.0, 4.0));
        assert_eq!(b.outliers, vec![100.0]);
        // Interpolated quartiles: numpy.percentile([1, 2, 3, 4], 25) = 1.75.
        let b = box_stats(&[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert_eq!((b.q1, b.median, b.q3), (1.75, 2.5, 3.25));
        assert!(box_stats(&[f64::NAN]).is_none());
    }

    #[test]
    fn majority_vote_ties_are_background() {
        let a = [1u8, 1, 0, 0];
        let b = [1u8, 0, 1, 0];
        let c = [0u8, 1, 1, 0];
        assert_eq!(majority_vote(&[&a, &b, &c]).unwrap(), vec![1, 1, 1, 0]);
        assert_eq!(majority_vote(&[&a, &b]).unwrap(), vec![1, 0, 0, 0]);
        assert!(majority_vote(&[]).is_err());
        assert!(majority_vote(&[&a, &b[..3]]).is_err());
    }

    #[test]
    fn kappas_on_textbook_cases() {
        // Perfect agreement, and the all-one-category case documented as 1.
        assert_eq!(cohen_kappa(&[0, 1, 1], &[0, 1, 1], None).unwrap(), 1.0);
        assert_eq!(cohen_kappa(&[1, 1], &[1, 1], None).unwrap(), 1.0);
        // 2×2 table [[20, 5], [10, 15]]: po = 0.7, pe = 0.5 → 0.4
        let mut a = vec![0u8; 20];
        a.extend([0; 5]);
        a.extend([1; 10]);
        a.extend([1; 15]);
        let mut b = vec![0u8; 20];
        b.extend([1; 5]);
        b.extend([0; 10]);
        b.extend([1; 15]);
        assert!((cohen_kappa(&a, &b, None).unwrap() - 0.4).abs() < 1e-12);
        assert!(cohen_kappa(&a, &b, Some(&[0; 50])).is_err());
        // Fleiss from masks equals Fleiss from the table.
        let m = [[1u8, 0, 1, 1], [1, 0, 0, 1], [1, 1, 0, 1]];
        let table: Vec<Vec<u64>> = (0..4)
            .map(|v| {
                let pos = m.iter().filter(|r| r[v] != 0).count() as u64;
                vec![3 - pos, pos]
            })
            .collect();
        let t = fleiss_kappa(&table).unwrap();
        let k = fleiss_kappa_masks(&[&m[0], &m[1], &m[2]], None).unwrap();
        assert!((t - k).abs() < 1e-12, "{t} {k}");
    }

    #[test]
    fn exact_u_distribution_small() {
        // n1 = n2 = 2: U ∈ {0,1,2,2,3,4} over 6 arrangements.
        assert!((exact_u_cdf(2, 2, 0) - 1.0 / 6.0).abs() < 1e-15);
        assert!((exact_u_cdf(2, 2, 2) - 4.0 / 6.0).abs() < 1e-15);
        assert!((exact_u_cdf(3, 2, 6) - 1.0).abs() < 1e-15);
        let r = mann_whitney_u(&[1.0, 2.0], &[3.0, 4.0], MwuMethod::Auto).unwrap();
        assert_eq!(r.method, MwuMethod::Exact);
        assert_eq!(r.u1, 0.0);
        assert!((r.p_value - 1.0 / 3.0).abs() < 1e-15);
        assert_eq!(r.common_language, 0.0);
        assert!(mann_whitney_u(&[], &[1.0], MwuMethod::Auto).is_err());
    }

    #[test]
    fn bland_altman_simple() {
        let r = bland_altman(&[2.0, 4.0, 6.0], &[1.0, 2.0, 3.0]).unwrap();
        assert_eq!(r.bias, 2.0);
        assert_eq!(r.sd, 1.0);
        assert!((r.upper_loa - 3.96).abs() < 1e-12);
        assert!(bland_altman(&[1.0], &[1.0]).is_err());
    }
}

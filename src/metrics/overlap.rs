//! Volume overlap: voxel counts, Dice, Jaccard, volumes.

use rayon::prelude::*;
use serde::Serialize;

use super::surface::check_inputs;
use crate::error::Result;

/// Voxel counts of a mask pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct OverlapCounts {
    /// Non-zero voxels of the reference.
    pub reference: u64,
    /// Non-zero voxels of the test mask.
    pub test: u64,
    /// Voxels non-zero in both.
    pub both: u64,
}

impl OverlapCounts {
    /// Counts the voxels of two masks on a grid of `size = [columns, rows, slices]`.
    pub fn count(reference: &[u8], test: &[u8], size: [usize; 3]) -> Result<Self> {
        check_inputs(reference, test, size, [1.0; 3])?;
        let chunk = (size[0] * size[1]).max(1);
        Ok(reference
            .par_chunks(chunk)
            .zip(test.par_chunks(chunk))
            .map(|(a, b)| {
                let mut c = OverlapCounts::default();
                for (&x, &y) in a.iter().zip(b) {
                    let (x, y) = (u64::from(x != 0), u64::from(y != 0));
                    c.reference += x;
                    c.test += y;
                    c.both += x & y;
                }
                c
            })
            .reduce(OverlapCounts::default, |a, b| OverlapCounts {
                reference: a.reference + b.reference,
                test: a.test + b.test,
                both: a.both + b.both,
            }))
    }

    /// Dice = 2|A∩B| / (|A| + |B|); 1 when both masks are empty (DeepMind returns NaN there).
    pub fn dice(&self) -> f64 {
        let sum = self.reference + self.test;
        if sum == 0 {
            1.0
        } else {
            2.0 * self.both as f64 / sum as f64
        }
    }

    /// Jaccard = |A∩B| / |A∪B|; 1 when both masks are empty.
    pub fn jaccard(&self) -> f64 {
        let union = self.reference + self.test - self.both;
        if union == 0 {
            1.0
        } else {
            self.both as f64 / union as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_dice_jaccard() {
        let a = [1, 1, 0, 0, 1, 0, 0, 0];
        let b = [1, 0, 0, 0, 1, 1, 1, 0];
        let c = OverlapCounts::count(&a, &b, [2, 2, 2]).unwrap();
        assert_eq!((c.reference, c.test, c.both), (3, 4, 2));
        assert!((c.dice() - 4.0 / 7.0).abs() < 1e-15);
        assert!((c.jaccard() - 2.0 / 5.0).abs() < 1e-15);
        let e = OverlapCounts::count(&[0; 8], &[0; 8], [2, 2, 2]).unwrap();
        assert_eq!((e.dice(), e.jaccard()), (1.0, 1.0));
        let h = OverlapCounts::count(&a, &[0; 8], [2, 2, 2]).unwrap();
        assert_eq!((h.dice(), h.jaccard()), (0.0, 0.0));
        assert!(OverlapCounts::count(&a, &b[..7], [2, 2, 2]).is_err());
    }
}

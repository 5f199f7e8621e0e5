//! The `matmul` job kind's arithmetic: f32 matrices as little-endian bytes, the platform's
//! reference product, and the tolerance within which two results agree.
//!
//! GPUs sum in other orders and fuse multiply-adds, so float results are compared within a
//! tolerance, never bit for bit: element-wise |x − y| ≤ 10⁻³ · (1 + |y|), and a value that is
//! not finite agrees only with the very same bits.

/// Relative (and, near zero, absolute) tolerance of a product's element.
pub const TOLERANCE: f32 = 1e-3;

/// The f32 values of little-endian `bytes` (whose length is a multiple of 4).
pub fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// `values` as little-endian bytes.
pub fn bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// C = A·B (row-major, A m×k, B k×n) on a CPU core, summing in order of k.
pub fn product(m: usize, k: usize, n: usize, a: &[f32], b: &[f32]) -> Vec<f32> {
    let mut c = vec![0f32; m * n];
    for i in 0..m {
        for p in 0..k {
            let a_ip = a[i * k + p];
            let row = &b[p * n..(p + 1) * n];
            for (j, b_pj) in row.iter().enumerate() {
                c[i * n + j] += a_ip * b_pj;
            }
        }
    }
    c
}

/// Whether result `x` agrees with `y` element by element (see the module's rule).
pub fn agree(x: &[u8], y: &[u8]) -> bool {
    x.len() == y.len()
        && floats(x).iter().zip(floats(y)).all(|(x, y)| {
            if x.is_finite() && y.is_finite() {
                (x - y).abs() <= TOLERANCE * (1.0 + y.abs())
            } else {
                x.to_bits() == y.to_bits()
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_product_is_the_textbook_one_and_agreement_is_within_the_tolerance() {
        let (a, b) = (
            [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            [7.0, 8.0, 9.0, 10.0, 11.0, 12.0],
        );
        // (2×3)·(3×2)
        assert_eq!(product(2, 3, 2, &a, &b), vec![58.0, 64.0, 139.0, 154.0]);
        let c = bytes(&[58.0, 64.0, 139.0, 154.0]);
        assert_eq!(floats(&c), vec![58.0, 64.0, 139.0, 154.0]);
        assert!(
            agree(&bytes(&[58.01, 64.0, 139.1, 154.0]), &c),
            "within 10⁻³ relative"
        );
        assert!(!agree(&bytes(&[58.2, 64.0, 139.0, 154.0]), &c));
        assert!(!agree(&bytes(&[58.0, 64.0, 139.0]), &c), "another shape");
        assert!(!agree(&bytes(&[f32::NAN, 64.0, 139.0, 154.0]), &c));
        assert!(
            agree(&bytes(&[0.0005, 0.0]), &bytes(&[0.0, 0.0])),
            "near zero: absolute"
        );
    }
}

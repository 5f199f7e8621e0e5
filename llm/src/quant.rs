//! Tensor element types and their dequantization to f32, as ggml stores them.
//!
//! - `F32`: 4 bytes LE. `F16`: IEEE half, 2 bytes LE.
//! - `Q4_0` (blocks of 32, 18 bytes): f16 `d`, 16 bytes of nibbles; `x = d × (q − 8)`.
//! - `Q4_1` (blocks of 32, 20 bytes): f16 `d`, f16 `m`, 16 bytes of nibbles; `x = d × q + m`.
//! - `Q8_0` (blocks of 32, 34 bytes): f16 `d`, 32 signed bytes; `x = d × q`.
//!
//! In the 4-bit blocks, byte j holds element j in its low nibble and element j + 16 in its high
//! nibble. Blocks run along a tensor's first (contiguous) dimension.

/// Elements per quantized block.
pub const BLOCK: usize = 32;

/// A tensor's element type (ggml's type id in brackets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorType {
    /// f32 [0].
    F32,
    /// f16 [1].
    F16,
    /// 4-bit, symmetric [2].
    Q4_0,
    /// 4-bit with a minimum [3].
    Q4_1,
    /// 8-bit [8].
    Q8_0,
}

impl TensorType {
    /// The type of ggml id `id`; `Err(id)` for one this crate does not read.
    pub fn from_id(id: u32) -> Result<TensorType, u32> {
        Ok(match id {
            0 => TensorType::F32,
            1 => TensorType::F16,
            2 => TensorType::Q4_0,
            3 => TensorType::Q4_1,
            8 => TensorType::Q8_0,
            other => return Err(other),
        })
    }

    /// Bytes of one block and elements in it.
    fn block(self) -> (usize, usize) {
        match self {
            TensorType::F32 => (4, 1),
            TensorType::F16 => (2, 1),
            TensorType::Q4_0 => (18, BLOCK),
            TensorType::Q4_1 => (20, BLOCK),
            TensorType::Q8_0 => (34, BLOCK),
        }
    }

    /// Bytes of `elements` values in rows of `row` values.
    pub fn bytes_for(self, row: u64, elements: u64) -> Result<usize, String> {
        let (bytes, per_block) = self.block();
        if !row.is_multiple_of(per_block as u64) {
            return Err(format!(
                "rows of {row} values are not whole blocks of {per_block}"
            ));
        }
        usize::try_from(elements / per_block as u64 * bytes as u64).map_err(|e| e.to_string())
    }
}

/// An IEEE half as f32 (exact: every half is an f32).
pub fn f16_to_f32(bits: u16) -> f32 {
    let sign = u32::from(bits >> 15) << 31;
    let exponent = u32::from((bits >> 10) & 0x1f);
    let mantissa = u32::from(bits & 0x3ff);
    let magnitude = match (exponent, mantissa) {
        (0, 0) => 0,
        // Subnormal: mantissa × 2^-24.
        (0, m) => {
            let value = m as f32 * f32::powi(2.0, -24);
            return if sign == 0 { value } else { -value };
        }
        (0x1f, m) => 0x7f80_0000 | (m << 13),
        (e, m) => ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(sign | magnitude)
}

fn half(bytes: &[u8]) -> f32 {
    f16_to_f32(u16::from_le_bytes([bytes[0], bytes[1]]))
}

/// Dequantizes `bytes` of type `kind` into `out` (whose length is the element count; `bytes`
/// holds exactly them).
pub fn dequantize(kind: TensorType, bytes: &[u8], out: &mut [f32]) {
    let (block_bytes, per_block) = kind.block();
    assert_eq!(
        bytes.len() / block_bytes * per_block,
        out.len(),
        "bytes for every element"
    );
    match kind {
        TensorType::F32 => {
            for (x, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *x = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        TensorType::F16 => {
            for (x, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *x = half(b);
            }
        }
        TensorType::Q4_0 | TensorType::Q4_1 => {
            let header = if kind == TensorType::Q4_0 { 2 } else { 4 };
            for (block, xs) in bytes
                .chunks_exact(block_bytes)
                .zip(out.chunks_exact_mut(BLOCK))
            {
                let d = half(&block[0..2]);
                let (offset, min) = match kind {
                    TensorType::Q4_0 => (-8.0, 0.0),
                    _ => (0.0, half(&block[2..4])),
                };
                for (j, q) in block[header..].iter().enumerate() {
                    xs[j] = d * (f32::from(q & 0x0f) + offset) + min;
                    xs[j + 16] = d * (f32::from(q >> 4) + offset) + min;
                }
            }
        }
        TensorType::Q8_0 => {
            for (block, xs) in bytes
                .chunks_exact(block_bytes)
                .zip(out.chunks_exact_mut(BLOCK))
            {
                let d = half(&block[0..2]);
                for (x, q) in xs.iter_mut().zip(&block[2..]) {
                    *x = d * f32::from(*q as i8);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_convert_exactly() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
        assert_eq!(f16_to_f32(0x7bff), 65_504.0);
        assert_eq!(f16_to_f32(0x0001), 5.960_464_5e-8, "smallest subnormal");
        assert_eq!(f16_to_f32(0x8001), -5.960_464_5e-8);
        assert_eq!(f16_to_f32(0x0000), 0.0);
        assert!(f16_to_f32(0x7c00).is_infinite());
        assert!(f16_to_f32(0x7e00).is_nan());
    }

    #[test]
    fn blocks_dequantize_by_their_formulas() {
        // Q4_1: d = 0.5, m = -1, nibbles j and j+16 from byte j.
        let mut block = vec![0x00, 0x38, 0x00, 0xbc];
        block.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
        let mut out = [0f32; 32];
        dequantize(TensorType::Q4_1, &block, &mut out);
        assert_eq!(out[0], -1.0);
        assert_eq!(out[3], 0.5);
        assert_eq!(out[16], 6.5, "15 × 0.5 − 1");
        // Q8_0: d = 2, q = -3.
        let mut block = vec![0x00, 0x40];
        block.extend([0xfd; 32]);
        dequantize(TensorType::Q8_0, &block, &mut out);
        assert!(out.iter().all(|x| *x == -6.0));
    }
}

//! The `mlp_inference` job kind: a dense network's shapes, the layout of its weights blob, and
//! the platform's reference forward pass on a CPU core.
//!
//! Weights blob (f32 LE): for each layer in order, its weight matrix W (`inputs × outputs`,
//! row-major: `W[i · outputs + j]` links input i to output j) then its `outputs` biases. Inputs
//! blob: `batch × layers[0].inputs` values, one sample per row. Each layer computes
//! `y = x · W + b`, with ReLU after every layer but the last; the result is the last layer's
//! `batch × outputs` values (f32 LE). Results agree within [`crate::matmul::TOLERANCE`], as
//! float products do.

use serde::{Deserialize, Serialize};

use crate::error::TxError;

/// Most layers.
pub const LAYERS_MAX: usize = 16;
/// Widest layer.
pub const WIDTH_MAX: u32 = 4096;
/// Most samples in one job.
pub const BATCH_MAX: u32 = 4096;
/// Most multiply-adds of one forward pass (the platform re-executes it on a CPU core).
pub const MACS_MAX: u64 = 1 << 28;
/// Most result values.
pub const OUTPUTS_MAX: u64 = crate::job::RESULT_LEN_MAX as u64 / 4;

/// One dense layer's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerShape {
    /// Input width.
    pub inputs: u32,
    /// Output width.
    pub outputs: u32,
}

/// Checks the shapes of a network run over `batch` samples: widths chain, and every bound.
pub fn check_shapes(layers: &[LayerShape], batch: u32) -> Result<(), TxError> {
    let limit = |what: String| Err(TxError::LimitExceeded(what));
    if layers.is_empty() || layers.len() > LAYERS_MAX {
        return limit(format!("a network has 1 to {LAYERS_MAX} layers"));
    }
    if !(1..=BATCH_MAX).contains(&batch) {
        return limit(format!("batch is 1..={BATCH_MAX}"));
    }
    for (i, layer) in layers.iter().enumerate() {
        if [layer.inputs, layer.outputs]
            .iter()
            .any(|w| !(1..=WIDTH_MAX).contains(w))
        {
            return limit(format!("layer {i}: widths are 1..={WIDTH_MAX}"));
        }
        if let Some(next) = layers.get(i + 1)
            && next.inputs != layer.outputs
        {
            return Err(TxError::Malformed(format!(
                "layer {i} has {} outputs but layer {} takes {} inputs",
                layer.outputs,
                i + 1,
                next.inputs
            )));
        }
    }
    let macs: u64 = layers
        .iter()
        .map(|l| u64::from(batch) * u64::from(l.inputs) * u64::from(l.outputs))
        .sum();
    if macs > MACS_MAX {
        return limit(format!(
            "a forward pass has at most {MACS_MAX} multiply-adds (batch × Σ inputs × outputs)"
        ));
    }
    if u64::from(batch) * u64::from(output_width(layers)) > OUTPUTS_MAX {
        return limit(format!(
            "a result has at most {OUTPUTS_MAX} values (batch × last outputs)"
        ));
    }
    Ok(())
}

/// The last layer's width.
pub fn output_width(layers: &[LayerShape]) -> u32 {
    layers.last().map_or(0, |l| l.outputs)
}

/// Values in the weights blob: each layer's weights and biases.
pub fn weights_len(layers: &[LayerShape]) -> u64 {
    layers
        .iter()
        .map(|l| u64::from(l.inputs) * u64::from(l.outputs) + u64::from(l.outputs))
        .sum()
}

/// Each layer's weights and biases, cut from the weights blob's values (whose length is
/// [`weights_len`]).
pub fn split_weights<'w>(
    layers: &[LayerShape],
    mut weights: &'w [f32],
) -> Vec<(&'w [f32], &'w [f32])> {
    let mut parts = Vec::with_capacity(layers.len());
    for l in layers {
        let (w, rest) = weights.split_at(l.inputs as usize * l.outputs as usize);
        let (b, rest) = rest.split_at(l.outputs as usize);
        parts.push((w, b));
        weights = rest;
    }
    parts
}

/// The forward pass on a CPU core (f32, summing in input order): `batch × last outputs`
/// values. `weights` and `inputs` have the lengths the shapes give.
pub fn forward(layers: &[LayerShape], weights: &[f32], inputs: &[f32], batch: usize) -> Vec<f32> {
    let mut x = inputs.to_vec();
    let last = layers.len().saturating_sub(1);
    for (i, (layer, (w, b))) in layers
        .iter()
        .zip(split_weights(layers, weights))
        .enumerate()
    {
        let (k, n) = (layer.inputs as usize, layer.outputs as usize);
        let mut y = crate::matmul::product(batch, k, n, &x, w);
        for row in y.chunks_exact_mut(n) {
            for (v, bias) in row.iter_mut().zip(b) {
                *v += bias;
                if i < last {
                    *v = v.max(0.0);
                }
            }
        }
        x = y;
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(inputs: u32, outputs: u32) -> LayerShape {
        LayerShape { inputs, outputs }
    }

    #[test]
    fn the_forward_pass_is_the_textbook_one() {
        // 2 → 2 (ReLU) → 1, batch of 2.
        let layers = [shape(2, 2), shape(2, 1)];
        #[rustfmt::skip]
        let weights = [
            1.0, -1.0,  2.0, 1.0,  // W0: rows are inputs
            0.5, -3.0,             // b0
            1.0,  1.0,             // W1
            -1.0,                  // b1
        ];
        assert_eq!(weights_len(&layers), weights.len() as u64);
        let inputs = [1.0, 1.0, -1.0, 0.0];
        // Sample 1: [1,1]·W0 + b0 = [3.5, -3] → ReLU [3.5, 0] → 3.5 − 1 = 2.5.
        // Sample 2: [-1,0]·W0 + b0 = [-0.5, -2] → ReLU [0, 0] → −1 (no ReLU on the last).
        assert_eq!(forward(&layers, &weights, &inputs, 2), vec![2.5, -1.0]);
    }

    #[test]
    fn shapes_must_chain_and_stay_within_bounds() {
        assert!(check_shapes(&[shape(4, 8), shape(8, 2)], 16).is_ok());
        let code = |layers: &[LayerShape], batch| check_shapes(layers, batch).unwrap_err().code();
        assert_eq!(code(&[shape(4, 8), shape(7, 2)], 1), "malformed");
        assert_eq!(code(&[], 1), "limit_exceeded");
        assert_eq!(code(&[shape(4, 8)], 0), "limit_exceeded");
        assert_eq!(code(&[shape(0, 8)], 1), "limit_exceeded");
        assert_eq!(
            code(&[shape(4096, 4096), shape(4096, 1)], 64),
            "limit_exceeded"
        );
        assert_eq!(
            code(&[shape(1, 512)], 4096),
            "limit_exceeded",
            "result too big"
        );
        assert_eq!(code(&[shape(2, 2); 17], 1), "limit_exceeded");
    }
}

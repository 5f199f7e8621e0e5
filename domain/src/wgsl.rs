//! The `wgsl` job kind: a client's own compute shader with its buffers.
//!
//! Buffers are declared in binding order, `binding` i at index i: inputs first (each the bytes
//! of a blob, bound `var<storage, read>`), then outputs (each `size` bytes, a multiple of 4,
//! starting zeroed, bound `var<storage, read_write>`). The result is the output buffers
//! concatenated in binding order. Results are compared byte for byte unless the input says
//! `"compare": "f32"` (the outputs are f32 values, agreeing within
//! [`crate::matmul::TOLERANCE`], for shaders whose float rounding differs between GPUs).
//!
//! No CPU can check a shader: the node validates it through its GPU executor's shader compiler
//! and limits when the job is submitted, and re-executes it there when the job is verified, both
//! through a [`ShaderHost`] the node provides.

use serde::{Deserialize, Serialize};

use crate::error::TxError;
use crate::hash::Hash32;

/// Most buffers (the executor binds one more, for its loop budget).
pub const BUFFERS_MAX: usize = 7;
/// Most result bytes.
pub const OUTPUT_BYTES_MAX: u64 = crate::job::RESULT_LEN_MAX as u64;
/// Longest entry point name.
pub const ENTRY_POINT_LEN_MAX: usize = 256;

/// How two results of a shader are compared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compare {
    /// Byte for byte.
    #[default]
    Exact,
    /// As f32 values, within the float tolerance.
    F32,
}

/// One declared buffer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShaderBuffer {
    /// Its binding in group 0: its index in the list.
    pub binding: u32,
    /// An input's bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob: Option<Hash32>,
    /// An output's size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Whether it is an output.
    pub output: bool,
}

/// A `wgsl` job's input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShaderJob {
    /// WGSL source.
    pub source: String,
    /// The `@compute` entry point.
    pub entry_point: String,
    /// Workgroups dispatched, x, y, z.
    pub workgroups: [u32; 3],
    /// The buffers, in binding order.
    pub buffers: Vec<ShaderBuffer>,
    /// How results are compared.
    #[serde(default, skip_serializing_if = "is_exact")]
    pub compare: Compare,
}

fn is_exact(compare: &Compare) -> bool {
    *compare == Compare::Exact
}

impl ShaderJob {
    /// Checks the declaration (the source itself is the [`ShaderHost`]'s to check).
    pub fn check(&self) -> Result<(), TxError> {
        let malformed = |what: String| Err(TxError::Malformed(what));
        if self.source.trim().is_empty() {
            return malformed("a wgsl job has a source".into());
        }
        if self.entry_point.is_empty() || self.entry_point.len() > ENTRY_POINT_LEN_MAX {
            return malformed(format!("entry_point has 1 to {ENTRY_POINT_LEN_MAX} bytes"));
        }
        if self.workgroups.contains(&0) {
            return malformed("workgroup counts are at least 1".into());
        }
        if self.buffers.is_empty() || self.buffers.len() > BUFFERS_MAX {
            return Err(TxError::LimitExceeded(format!(
                "a wgsl job declares 1 to {BUFFERS_MAX} buffers"
            )));
        }
        let mut outputs_started = false;
        let mut output_bytes = 0u64;
        for (i, buffer) in self.buffers.iter().enumerate() {
            if buffer.binding as usize != i {
                return malformed(format!(
                    "buffer {i} has binding {}: bindings are 0, 1, … in order",
                    buffer.binding
                ));
            }
            match (buffer.output, buffer.blob, buffer.size) {
                (false, Some(_), None) if !outputs_started => {}
                (false, Some(_), None) => {
                    return malformed(format!("binding {i}: inputs come before outputs"));
                }
                (false, _, _) => {
                    return malformed(format!("binding {i}: an input has a blob and no size"));
                }
                (true, None, Some(size)) if size > 0 && size.is_multiple_of(4) => {
                    outputs_started = true;
                    output_bytes = output_bytes.saturating_add(size);
                }
                (true, None, Some(size)) => {
                    return malformed(format!(
                        "binding {i}: an output's size ({size}) is a positive multiple of 4"
                    ));
                }
                (true, _, _) => {
                    return malformed(format!(
                        "binding {i}: an output has a size and no blob (outputs start zeroed)"
                    ));
                }
            }
        }
        if !outputs_started {
            return malformed("a wgsl job has at least one output buffer".into());
        }
        if output_bytes > OUTPUT_BYTES_MAX {
            return Err(TxError::LimitExceeded(format!(
                "a wgsl job's outputs hold at most {OUTPUT_BYTES_MAX} bytes"
            )));
        }
        Ok(())
    }

    /// The input blobs, in binding order.
    pub fn input_blobs(&self) -> Vec<Hash32> {
        self.buffers.iter().filter_map(|b| b.blob).collect()
    }

    /// The output sizes, in binding order.
    pub fn output_sizes(&self) -> Vec<u64> {
        self.buffers.iter().filter_map(|b| b.size).collect()
    }
}

/// Why a [`ShaderHost`] gave no result.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShaderError {
    /// The shader or its buffers break a rule or a limit (the message says which, with the
    /// source line when there is one).
    #[error("{0}")]
    Refused(TxError),
    /// The shader could not run here (it ran out of time or loop budget on this node's
    /// executor, or the node has none): the platform has no reference for it.
    #[error("{0}")]
    NotRun(String),
    /// The executor is busy: try again later.
    #[error("{0}")]
    Busy(String),
}

/// The node's GPU executor, as the jobs module needs it.
pub trait ShaderHost: Send + Sync {
    /// Parses and validates the shader against its buffers (`inputs`: the input blobs' bytes,
    /// in binding order) and the executor's limits; nothing runs.
    fn validate(&self, job: &ShaderJob, inputs: &[Vec<u8>]) -> Result<(), ShaderError>;
    /// Runs the shader: the output buffers concatenated in binding order.
    fn run(&self, job: &ShaderJob, inputs: &[Vec<u8>]) -> Result<Vec<u8>, ShaderError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(binding: u32) -> ShaderBuffer {
        ShaderBuffer {
            binding,
            blob: Some(Hash32([7; 32])),
            size: None,
            output: false,
        }
    }

    fn output(binding: u32, size: u64) -> ShaderBuffer {
        ShaderBuffer {
            binding,
            blob: None,
            size: Some(size),
            output: true,
        }
    }

    fn job(buffers: Vec<ShaderBuffer>) -> ShaderJob {
        ShaderJob {
            source: "@compute @workgroup_size(1) fn main() {}".into(),
            entry_point: "main".into(),
            workgroups: [1, 1, 1],
            buffers,
            compare: Compare::Exact,
        }
    }

    #[test]
    fn buffers_are_inputs_then_outputs_in_binding_order() {
        let ok = job(vec![input(0), input(1), output(2, 16)]);
        assert!(ok.check().is_ok());
        assert_eq!(ok.input_blobs().len(), 2);
        assert_eq!(ok.output_sizes(), vec![16]);
        let refused = [
            job(vec![input(0)]),
            job(vec![output(0, 16), input(1)]),
            job(vec![input(1), output(0, 16)]),
            job(vec![output(0, 6)]),
            job(vec![output(0, 0)]),
            job(vec![ShaderBuffer {
                blob: Some(Hash32([1; 32])),
                ..output(0, 16)
            }]),
            job(vec![ShaderBuffer {
                size: Some(4),
                ..input(0)
            }]),
            ShaderJob {
                workgroups: [1, 0, 1],
                ..job(vec![output(0, 4)])
            },
            ShaderJob {
                entry_point: String::new(),
                ..job(vec![output(0, 4)])
            },
        ];
        for bad in refused {
            assert_eq!(bad.check().unwrap_err().code(), "malformed", "{bad:?}");
        }
        let too_big = job(vec![output(0, OUTPUT_BYTES_MAX + 4)]);
        assert_eq!(too_big.check().unwrap_err().code(), "limit_exceeded");
        let too_many = job((0..8).map(|i| output(i, 4)).collect());
        assert_eq!(too_many.check().unwrap_err().code(), "limit_exceeded");
    }
}

//! The kernels: WGSL sources (`*.wgsl`, included at compile time) with their CPU references.

pub mod llm;
pub mod matmul;
pub mod mlp;
pub mod sha256;
pub mod wgsl;

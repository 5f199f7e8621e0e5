//! A small language model on our own path: GGUF files read and dequantized, the model's
//! byte-level BPE tokenizer, and the Llama forward pass on a CPU core (the reference for the
//! GPU path and for the platform's verification of `llm_generate` jobs).
#![warn(missing_docs)]

pub mod generate;
pub mod gguf;
pub mod model;
pub mod quant;
pub mod tokenizer;

/// Longest context (prompt and generated tokens) a job may use: the GPU path's attention kernel
/// keeps a position's scores in workgroup memory (`scores` in `gpu`'s `llm.wgsl` has this many),
/// and the node admits and checks jobs within it.
pub const CONTEXT_MAX: usize = 1024;

/// Where the tests and tools look for the model file (`scripts/fetch-model.sh` puts it there):
/// `AITBC_MODEL`, else `models/SmolLM2-135M-Instruct.Q4_1.gguf` under the workspace.
pub fn default_model_path() -> std::path::PathBuf {
    match std::env::var_os("AITBC_MODEL") {
        Some(path) => path.into(),
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("models")
            .join("SmolLM2-135M-Instruct.Q4_1.gguf"),
    }
}

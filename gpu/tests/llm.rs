//! The language model's forward pass on the GPU (the software Vulkan adapter in CI) against the
//! CPU reference of `llm`: logits after a prompt within a tolerance, the same greedy tokens,
//! and a GPU completion the teacher-forced check accepts. Skipped, loudly, without the model
//! file (`scripts/fetch-model.sh`).

mod common;

use std::sync::Arc;

use gpu::kernels::llm::LlmJob;
use llm::generate::{GREEDY_MARGIN, Sampling, check_greedy, generate};
use llm::gguf::Gguf;
use llm::model::Model;
use llm::tokenizer::Tokenizer;

/// Largest |gpu − cpu| ÷ (1 + |cpu|) of a logit (sums in another order, f32; lavapipe: 2e-5).
const TOLERANCE: f32 = 1e-3;

#[test]
fn gpu_logits_and_greedy_tokens_match_the_cpu_reference() {
    let path = llm::default_model_path();
    if !path.exists() {
        eprintln!(
            "\n*** SKIPPED: no model at {} — run scripts/fetch-model.sh ***\n",
            path.display()
        );
        return;
    }
    let gguf = Gguf::open(&path).unwrap();
    let tokenizer = Tokenizer::from_gguf(&gguf).unwrap();
    let model = Arc::new(Model::from_gguf(&gguf).unwrap());
    let prompt = tokenizer.encode("The capital of France is");
    let mut limits = common::limits();
    limits.wall_time_max_ms = 120_000;
    let job = LlmJob {
        model: Arc::clone(&model),
        prompt: prompt.clone(),
        max_tokens: 4,
        eos: tokenizer.eos,
        sampling: Sampling::Greedy,
    };
    let out = common::exec().llm(job, &limits).unwrap();

    let mut cache = model.cache(prompt.len());
    let mut cpu = Vec::new();
    for token in &prompt {
        cpu = model.forward(*token, &mut cache).unwrap();
    }
    assert_eq!(out.prompt_logits.len(), cpu.len());
    let worst = out
        .prompt_logits
        .iter()
        .zip(&cpu)
        .map(|(g, c)| (g - c).abs() / (1.0 + c.abs()))
        .fold(0f32, f32::max);
    eprintln!("GPU and CPU logits differ by at most {worst} (relative)");
    assert!(worst <= TOLERANCE, "logits differ by {worst} (relative)");
    let reference = generate(&model, &prompt, 4, tokenizer.eos, Sampling::Greedy).unwrap();
    assert_eq!(out.tokens, reference, "{:?}", tokenizer.decode(&out.tokens));
    assert_eq!(tokenizer.decode(&out.tokens[..1]), " Paris");
    assert_eq!(
        check_greedy(&model, &prompt, &out.tokens, GREEDY_MARGIN).unwrap(),
        Ok(())
    );
}

//! LLM figures (issue 9) on the CPU reference: load time, prefill and decode tokens/s of
//! SmolLM2-135M-Instruct on one core, greedy.
//!
//! ```text
//! scripts/fetch-model.sh && cargo run --release -p llm --bin llm-bench -- [--tokens N]
//! ```

use std::time::Instant;

use llm::generate::{Sampling, generate};
use llm::gguf::Gguf;
use llm::model::Model;
use llm::tokenizer::{Message, Tokenizer};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let tokens: usize = args
        .iter()
        .position(|a| a == "--tokens")
        .and_then(|i| args.get(i + 1))
        .map_or(64, |v| v.parse().expect("a number"));
    let path = llm::default_model_path();
    let started = Instant::now();
    let gguf = Gguf::open(&path).unwrap_or_else(|e| panic!("{e} (run scripts/fetch-model.sh)"));
    let tokenizer = Tokenizer::from_gguf(&gguf).expect("tokenizer");
    let model = Model::from_gguf(&gguf).expect("model");
    println!(
        "llm-bench: {} loaded and dequantized in {:.2} s",
        path.display(),
        started.elapsed().as_secs_f64()
    );
    let messages = [Message {
        role: "user".into(),
        content: "Write a short story about a robot who learns to paint.".into(),
    }];
    let prompt = tokenizer.encode(&Tokenizer::chat_prompt(&messages));
    let started = Instant::now();
    let mut cache = model.cache(prompt.len());
    for token in &prompt {
        model.forward(*token, &mut cache).expect("forward");
    }
    let prefill = started.elapsed().as_secs_f64();
    println!(
        "prefill: {} tokens in {prefill:.2} s = {:.1} tokens/s",
        prompt.len(),
        prompt.len() as f64 / prefill
    );
    let started = Instant::now();
    let out = generate(&model, &prompt, tokens, u32::MAX, Sampling::Greedy).expect("generate");
    let total = started.elapsed().as_secs_f64();
    let decode = total - prefill;
    println!(
        "decode: {} tokens in {decode:.2} s = {:.1} tokens/s (CPU reference, one core, f32)",
        out.len(),
        out.len() as f64 / decode
    );
    println!("text: {:?}", tokenizer.decode(&out));
}

//! Our tokenizer and model against llama.cpp, an independent implementation
//! (`fixtures/make_llama_fixtures.py` computed `fixtures/llama_cpp.json` with it): the same token
//! ids for every text, and llama.cpp's greedy completions accepted by our teacher-forced check.
//! llama.cpp multiplies Q4_1 weights by activations it quantizes to 8 bits, we by f32 ones, so
//! near-ties may resolve differently: the check's margin is what makes honest engines agree.
//! Skipped, loudly, without the model file.

use llm::generate::{GREEDY_MARGIN, Sampling, check_greedy, generate};
use llm::gguf::Gguf;
use llm::model::Model;
use llm::tokenizer::Tokenizer;
use serde_json::Value;

fn fixture() -> Value {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/llama_cpp.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn ids(value: &Value) -> Vec<u32> {
    serde_json::from_value(value.clone()).unwrap()
}

fn gguf() -> Option<Gguf> {
    let path = llm::default_model_path();
    if !path.exists() {
        eprintln!(
            "\n*** SKIPPED: no model at {} — run scripts/fetch-model.sh ***\n",
            path.display()
        );
        return None;
    }
    Some(Gguf::open(&path).unwrap())
}

#[test]
fn token_ids_are_llama_cpps() {
    let Some(gguf) = gguf() else { return };
    let tokenizer = Tokenizer::from_gguf(&gguf).unwrap();
    for case in fixture()["tokens"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        assert_eq!(tokenizer.encode(text), ids(&case["ids"]), "{text:?}");
    }
}

#[test]
fn llama_cpps_greedy_completions_pass_our_check_and_begin_as_ours() {
    let Some(gguf) = gguf() else { return };
    let tokenizer = Tokenizer::from_gguf(&gguf).unwrap();
    let model = Model::from_gguf(&gguf).unwrap();
    for case in fixture()["greedy"].as_array().unwrap() {
        let prompt = tokenizer.encode(case["prompt"].as_str().unwrap());
        let theirs = ids(&case["ids"]);
        let verdict = check_greedy(&model, &prompt, &theirs, GREEDY_MARGIN).unwrap();
        assert_eq!(verdict, Ok(()), "{:?}", tokenizer.decode(&theirs));
        // How far their choices sit below our best: the margin must hold it with room to spare.
        let gap = worst_gap(&model, &prompt, &theirs);
        eprintln!("llama.cpp's tokens: at worst {gap} below our largest logit");
        assert!(gap < GREEDY_MARGIN / 2.0, "{gap}");
        let ours = generate(&model, &prompt, 4, tokenizer.eos, Sampling::Greedy).unwrap();
        assert_eq!(
            ours[..],
            theirs[..4],
            "the first tokens agree: {:?}",
            tokenizer.decode(&ours)
        );
    }
}

/// The largest gap, over the steps of `claimed` teacher-forced after `prompt`, between the
/// step's largest logit and the claimed token's.
fn worst_gap(model: &Model, prompt: &[u32], claimed: &[u32]) -> f32 {
    let mut cache = model.cache(prompt.len() + claimed.len());
    let mut logits = Vec::new();
    for token in prompt {
        logits = model.forward(*token, &mut cache).unwrap();
    }
    let mut worst = 0.0f32;
    for token in claimed {
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        worst = worst.max(max - logits[*token as usize]);
        logits = model.forward(*token, &mut cache).unwrap();
    }
    worst
}

//! The real model (SmolLM2-135M-Instruct, `scripts/fetch-model.sh`): it loads, its tokenizer
//! round-trips, its greedy completions make sense, the teacher-forced check accepts its own
//! output and catches a fabricated one, and seeded sampling replays. Skipped, loudly, when the
//! file is absent.

use std::sync::OnceLock;

use llm::generate::{
    DRAW_TOLERANCE, GREEDY_MARGIN, Sampling, check_greedy, check_sampled, generate,
};
use llm::gguf::Gguf;
use llm::model::Model;
use llm::tokenizer::{Message, Tokenizer};

fn loaded() -> Option<&'static (Tokenizer, Model)> {
    static MODEL: OnceLock<Option<(Tokenizer, Model)>> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            let path = llm::default_model_path();
            if !path.exists() {
                eprintln!(
                    "\n*** SKIPPED: no model at {} — run scripts/fetch-model.sh ***\n",
                    path.display()
                );
                return None;
            }
            let gguf = Gguf::open(&path).expect("the model reads");
            let tokenizer = Tokenizer::from_gguf(&gguf).expect("its tokenizer");
            let model = Model::from_gguf(&gguf).expect("its weights");
            Some((tokenizer, model))
        })
        .as_ref()
}

#[test]
fn the_model_knows_the_capital_of_france() {
    let Some((tokenizer, model)) = loaded() else {
        return;
    };
    assert_eq!(model.config.layers, 30);
    assert_eq!((model.config.heads, model.config.kv_heads), (9, 3));
    let prompt = tokenizer.encode("The capital of France is");
    let out = generate(model, &prompt, 3, tokenizer.eos, Sampling::Greedy).unwrap();
    assert_eq!(
        tokenizer.decode(&out[..1]),
        " Paris",
        "{:?}",
        tokenizer.decode(&out)
    );
}

#[test]
fn text_round_trips_through_the_tokenizer() {
    let Some((tokenizer, _)) = loaded() else {
        return;
    };
    let texts = [
        "Hello, world!",
        "  leading spaces and trailing  ",
        "tabs\tand\nnew\n\nlines",
        "numbers 12345 and 3.14159",
        "Ünïcödé — “quotes” 日本語 🙂",
        "it's they're we've I'm you'll he'd",
        "<|im_start|>user\nhi<|im_end|>",
    ];
    for text in texts {
        let ids = tokenizer.encode(text);
        assert_eq!(tokenizer.decode(&ids), text, "{ids:?}");
    }
    let ids = tokenizer.encode("<|im_start|>user");
    assert_eq!(ids.len(), 2, "a special token is one id: {ids:?}");
    let digits = tokenizer.encode("2024");
    assert_eq!(digits.len(), 4, "each digit alone: {digits:?}");
}

#[test]
fn the_chat_template_frames_the_messages() {
    let messages = [Message {
        role: "user".into(),
        content: "What is 2+2?".into(),
    }];
    assert_eq!(
        Tokenizer::chat_prompt(&messages),
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging \
         Face<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
    );
}

#[test]
fn the_greedy_check_accepts_the_models_own_output_and_catches_a_fabrication() {
    let Some((tokenizer, model)) = loaded() else {
        return;
    };
    let prompt = tokenizer.encode("The capital of France is");
    let honest = generate(model, &prompt, 8, tokenizer.eos, Sampling::Greedy).unwrap();
    assert_eq!(
        check_greedy(model, &prompt, &honest, GREEDY_MARGIN).unwrap(),
        Ok(())
    );
    let fabricated = tokenizer.encode(" Berlin, a city of bears.");
    let divergence = check_greedy(model, &prompt, &fabricated, GREEDY_MARGIN)
        .unwrap()
        .unwrap_err();
    assert_eq!(divergence.step, 0, "{divergence}");
}

#[test]
fn seeded_sampling_replays_and_seeds_differ() {
    let Some((tokenizer, model)) = loaded() else {
        return;
    };
    let prompt = tokenizer.encode("Once upon a time");
    let sampled = |seed| {
        let sampling = Sampling::Seeded {
            temperature: 1.0,
            top_p: 0.95,
            seed,
        };
        generate(model, &prompt, 12, tokenizer.eos, sampling).unwrap()
    };
    assert_eq!(sampled(7), sampled(7), "the same seed, the same text");
    assert!(
        (1..6).any(|seed| sampled(seed) != sampled(7)),
        "other seeds differ"
    );
}

#[test]
fn a_very_long_word_is_encoded_in_pieces_and_round_trips() {
    let Some((tokenizer, _)) = loaded() else {
        return;
    };
    let word = "abcdefghij".repeat(820) + "é";
    let ids = tokenizer.encode(&word);
    assert_eq!(tokenizer.decode(&ids), word);
    let short = "abcdefghij".repeat(20);
    assert_eq!(
        ids[..4],
        tokenizer.encode(&short)[..4],
        "pieces begin as the whole word would"
    );
}

#[test]
fn a_sampled_completion_passes_the_replayed_draws_and_an_altered_one_does_not() {
    let Some((tokenizer, model)) = loaded() else {
        return;
    };
    let prompt = tokenizer.encode("Once upon a time");
    let (temperature, top_p, seed) = (0.8, 0.95, 11);
    let sampling = Sampling::Seeded {
        temperature,
        top_p,
        seed,
    };
    let honest = generate(model, &prompt, 10, tokenizer.eos, sampling).unwrap();
    let params = (temperature, top_p, seed);
    assert_eq!(
        check_sampled(model, &prompt, &honest, params, DRAW_TOLERANCE).unwrap(),
        Ok(())
    );
    let mut altered = honest.clone();
    altered[3] = tokenizer.encode(" zebra")[0];
    let divergence = check_sampled(model, &prompt, &altered, params, DRAW_TOLERANCE)
        .unwrap()
        .unwrap_err();
    assert_eq!(divergence.step, 3, "{divergence}");
    let other_seed = (temperature, top_p, seed + 1);
    assert!(
        check_sampled(model, &prompt, &honest, other_seed, DRAW_TOLERANCE)
            .unwrap()
            .is_err(),
        "the draws are the seed's"
    );
}

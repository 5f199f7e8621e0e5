//! Replays every input the fuzzer kept (`fuzz/corpus/<target>.pack`): none may panic.

#[test]
fn every_corpus_input_decodes_without_panicking() {
    for (name, target) in fuzz_targets::TARGETS {
        let inputs = fuzz_targets::corpus(name).unwrap_or_else(|e| panic!("{e}"));
        assert!(!inputs.is_empty(), "no corpus for {name}");
        for (index, input) in inputs.iter().enumerate() {
            let replayed = std::panic::catch_unwind(|| target(input));
            assert!(
                replayed.is_ok(),
                "{name} panicked on input {index} of its corpus"
            );
        }
    }
}

#[test]
fn a_pack_reads_back_what_was_written() {
    let inputs = fuzz_targets::corpus("config").unwrap();
    let mut bytes = Vec::new();
    for input in &inputs {
        bytes.extend_from_slice(&(input.len() as u64).to_le_bytes());
        bytes.extend_from_slice(input);
    }
    assert_eq!(
        std::fs::read(fuzz_targets::corpus_file("config")).unwrap(),
        bytes
    );
}

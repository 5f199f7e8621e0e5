//! The byte-level BPE tokenizer of a GGUF model (`tokenizer.ggml.model = gpt2`), with the
//! `smollm` pre-tokenizer and the ChatML template.
//!
//! Encoding: the text is split at special tokens (control and user-defined tokens such as
//! `<|im_start|>`), which map to their ids directly; every other piece is pre-tokenized — each
//! digit alone, then GPT-2's pattern (`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+|
//! ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`) — each word's UTF-8 bytes mapped to GPT-2's printable
//! characters, and merged pair by pair, lowest merge rank first, until no ranked pair is left;
//! the resulting symbols are looked up in the vocabulary. Decoding maps tokens back to bytes
//! (special tokens to their text) and reads them as UTF-8 (invalid sequences replaced).

use std::collections::HashMap;

use fancy_regex::Regex;

use crate::gguf::{Gguf, GgufError, Value};

/// Longest word merged whole, bytes (see `Tokenizer::encode_word`).
const WORD_BYTES_MAX: usize = 256;

/// Token types of GGUF's `tokenizer.ggml.token_type`.
const TOKEN_CONTROL: u64 = 3;
const TOKEN_USER_DEFINED: u64 = 4;

const GPT2_PATTERN: &str =
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

/// A chat message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// Its text.
    pub content: String,
}

/// The tokenizer.
pub struct Tokenizer {
    tokens: Vec<String>,
    ids: HashMap<String, u32>,
    ranks: HashMap<(String, String), u32>,
    specials: Vec<(String, u32)>,
    byte_char: [char; 256],
    char_byte: HashMap<char, u8>,
    pattern: Regex,
    digit: Regex,
    /// End of sequence.
    pub eos: u32,
}

/// GPT-2's map from bytes to printable characters: printable Latin-1 bytes map to themselves,
/// the others to U+0100 onwards, in byte order.
fn bytes_to_chars() -> [char; 256] {
    let mut map = ['\0'; 256];
    let mut next = 256u32;
    for byte in 0..=255u8 {
        let printable = matches!(byte, b'!'..=b'~' | 0xa1..=0xac | 0xae..=0xff);
        map[usize::from(byte)] = if printable {
            char::from(byte)
        } else {
            let c = char::from_u32(next).expect("below the surrogates");
            next += 1;
            c
        };
    }
    map
}

impl Tokenizer {
    /// The tokenizer of a GGUF model.
    pub fn from_gguf(gguf: &Gguf) -> Result<Tokenizer, GgufError> {
        let model = gguf.str("tokenizer.ggml.model")?;
        if model != "gpt2" {
            return Err(GgufError::Metadata(format!(
                "tokenizer.ggml.model is {model:?}: only byte-level BPE (gpt2) is read"
            )));
        }
        let strings = |key: &str| -> Result<Vec<String>, GgufError> {
            gguf.array(key)?
                .iter()
                .map(|v| match v {
                    Value::Str(s) => Ok(s.clone()),
                    _ => Err(GgufError::Metadata(format!("{key} holds a non-string"))),
                })
                .collect()
        };
        let tokens = strings("tokenizer.ggml.tokens")?;
        let merges = strings("tokenizer.ggml.merges")?;
        let types: Vec<u64> = gguf
            .array("tokenizer.ggml.token_type")?
            .iter()
            .map(|v| match v {
                Value::Uint(t) => *t,
                Value::Int(t) => *t as u64,
                _ => 0,
            })
            .collect();
        let ids = tokens
            .iter()
            .enumerate()
            .map(|(id, token)| (token.clone(), id as u32))
            .collect();
        let mut ranks = HashMap::with_capacity(merges.len());
        for (rank, merge) in merges.iter().enumerate() {
            let (left, right) = merge
                .split_once(' ')
                .ok_or_else(|| GgufError::Metadata(format!("merge {merge:?} has no space")))?;
            ranks.insert((left.to_string(), right.to_string()), rank as u32);
        }
        // Longest first, so that one special token that is a prefix of another never wins.
        let mut specials: Vec<(String, u32)> = tokens
            .iter()
            .zip(&types)
            .enumerate()
            .filter(|(_, (_, t))| matches!(**t, TOKEN_CONTROL | TOKEN_USER_DEFINED))
            .map(|(id, (token, _))| (token.clone(), id as u32))
            .collect();
        specials.sort_by_key(|(token, _)| std::cmp::Reverse(token.len()));
        let byte_char = bytes_to_chars();
        let char_byte = byte_char
            .iter()
            .enumerate()
            .map(|(byte, c)| (*c, byte as u8))
            .collect();
        let eos = gguf.uint("tokenizer.ggml.eos_token_id")? as u32;
        Ok(Tokenizer {
            tokens,
            ids,
            ranks,
            specials,
            byte_char,
            char_byte,
            pattern: Regex::new(GPT2_PATTERN).expect("the pattern compiles"),
            digit: Regex::new(r"\p{N}").expect("the pattern compiles"),
            eos,
        })
    }

    /// Vocabulary size.
    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    /// The ids of `text`, special tokens recognized.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut ids = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let next = self
                .specials
                .iter()
                .filter_map(|(token, id)| rest.find(token.as_str()).map(|at| (at, token, *id)))
                .min_by_key(|(at, token, _)| (*at, std::cmp::Reverse(token.len())));
            match next {
                Some((at, token, id)) => {
                    self.encode_plain(&rest[..at], &mut ids);
                    ids.push(id);
                    rest = &rest[at + token.len()..];
                }
                None => {
                    self.encode_plain(rest, &mut ids);
                    rest = "";
                }
            }
        }
        ids
    }

    /// Encodes text without special tokens.
    fn encode_plain(&self, text: &str, ids: &mut Vec<u32>) {
        for piece in split_keeping(&self.digit, text) {
            let mut done = 0;
            for word in self.pattern.find_iter(piece) {
                match word {
                    Ok(word) => {
                        self.encode_word(word.as_str(), ids);
                        done = word.end();
                    }
                    // The matcher gave up (its backtracking limit): the rest as one word.
                    Err(_) => {
                        self.encode_word(&piece[done..], ids);
                        break;
                    }
                }
            }
        }
    }

    /// BPE over one pre-tokenized word; a word longer than [`WORD_BYTES_MAX`] is encoded in
    /// pieces of that length (cut at character boundaries), which keeps the quadratic merge loop
    /// bounded (llama.cpp merges such a word whole: their ids may differ there).
    fn encode_word(&self, word: &str, ids: &mut Vec<u32>) {
        let mut rest = word;
        while rest.len() > WORD_BYTES_MAX {
            let mut cut = WORD_BYTES_MAX;
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            self.merge_word(&rest[..cut], ids);
            rest = &rest[cut..];
        }
        self.merge_word(rest, ids);
    }

    /// BPE merges over one word.
    fn merge_word(&self, word: &str, ids: &mut Vec<u32>) {
        let mut symbols: Vec<String> = word
            .bytes()
            .map(|b| self.byte_char[usize::from(b)].to_string())
            .collect();
        loop {
            let best = symbols
                .windows(2)
                .enumerate()
                .filter_map(|(i, pair)| {
                    self.ranks
                        .get(&(pair[0].clone(), pair[1].clone()))
                        .map(|rank| (*rank, i))
                })
                .min();
            let Some((_, i)) = best else { break };
            let right = symbols.remove(i + 1);
            symbols[i].push_str(&right);
        }
        for symbol in symbols {
            match self.ids.get(&symbol) {
                Some(id) => ids.push(*id),
                // A symbol outside the vocabulary: its bytes one by one (each byte's character
                // is in every byte-level vocabulary).
                None => ids.extend(symbol.chars().filter_map(|c| self.ids.get(&c.to_string()))),
            }
        }
    }

    /// The bytes of `ids` (special tokens as their text).
    pub fn decode_bytes(&self, ids: &[u32]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for id in ids {
            let Some(token) = self.tokens.get(*id as usize) else {
                continue;
            };
            if self.specials.iter().any(|(_, special)| special == id) {
                bytes.extend_from_slice(token.as_bytes());
                continue;
            }
            for c in token.chars() {
                match self.char_byte.get(&c) {
                    Some(byte) => bytes.push(*byte),
                    None => bytes.extend_from_slice(c.to_string().as_bytes()),
                }
            }
        }
        bytes
    }

    /// The text of `ids` (invalid UTF-8 replaced).
    pub fn decode(&self, ids: &[u32]) -> String {
        String::from_utf8_lossy(&self.decode_bytes(ids)).into_owned()
    }

    /// The ChatML prompt of `messages`, ending with the assistant's turn (the model's own
    /// template: a default system message when the first is not one).
    pub fn chat_prompt(messages: &[Message]) -> String {
        let mut prompt = String::new();
        if messages.first().is_none_or(|m| m.role != "system") {
            prompt.push_str(
                "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by \
                 Hugging Face<|im_end|>\n",
            );
        }
        for message in messages {
            prompt.push_str(&format!(
                "<|im_start|>{}\n{}<|im_end|>\n",
                message.role, message.content
            ));
        }
        prompt.push_str("<|im_start|>assistant\n");
        prompt
    }
}

/// `text` split so that every match of `pattern` is its own piece (pieces in order, none
/// empty).
fn split_keeping<'t>(pattern: &Regex, text: &'t str) -> Vec<&'t str> {
    let mut pieces = Vec::new();
    let mut last = 0;
    for found in pattern.find_iter(text) {
        let found = found.expect("a single class does not backtrack");
        if found.start() > last {
            pieces.push(&text[last..found.start()]);
        }
        pieces.push(found.as_str());
        last = found.end();
    }
    if last < text.len() {
        pieces.push(&text[last..]);
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_map_to_printable_characters_and_back() {
        let map = bytes_to_chars();
        assert_eq!(map[usize::from(b'a')], 'a');
        assert_eq!(map[usize::from(b' ')], 'Ġ', "GPT-2's space");
        assert_eq!(map[usize::from(b'\n')], 'Ċ');
        let distinct: std::collections::HashSet<char> = map.iter().copied().collect();
        assert_eq!(distinct.len(), 256);
    }

    #[test]
    fn digits_are_split_one_by_one_before_the_pattern() {
        let digit = Regex::new(r"\p{N}").unwrap();
        assert_eq!(
            split_keeping(&digit, "ab 123c"),
            vec!["ab ", "1", "2", "3", "c"]
        );
        let pattern = Regex::new(GPT2_PATTERN).unwrap();
        let words: Vec<&str> = pattern
            .find_iter("Hello  world's\n\n end ")
            .map(|m| m.unwrap().as_str())
            .collect();
        assert_eq!(
            words,
            vec!["Hello", " ", " world", "'s", "\n\n", " end", " "]
        );
    }
}

//! The `llm_generate` job kind: text generation by a language model the node accepts, named by
//! the SHA-256 of its file (`GET /v1/models`).
//!
//! Input: `{"model", "prompt" | "messages": [{"role", "content"}], "max_tokens" (1..=512),
//! "temperature"? (0..=2, default 0: greedy), "top_p"? ((0, 1], default 1), "seed"? (default
//! 0)}`; messages are framed by the model's chat template. Result bytes: canonical JSON
//! `{"text", "token_ids"}` (keys sorted, no spaces), the text being the ids' decoding.
//!
//! No two GPUs compute the same floats, so results are not compared with each other: the
//! platform checks every result itself through a [`ModelHost`] (teacher-forcing the claimed
//! tokens: a greedy result is accepted when every token's logit is within a margin of the
//! step's largest, a sampled one when the seeded sampler replayed on the platform's logits
//! draws the same tokens), and pays each miner whose result passes.

use serde::{Deserialize, Serialize};

use crate::error::TxError;
use crate::hash::Hash32;

/// Most tokens a job generates.
pub const MAX_TOKENS_MAX: u32 = 512;
/// Longest prompt (or all messages' contents together), bytes.
pub const PROMPT_BYTES_MAX: usize = 8 * 1024;
/// Most messages.
pub const MESSAGES_MAX: usize = 32;

/// A value in thousandths, written as a JSON number (`0.7` ↔ 700).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Milli(pub u32);

impl Serialize for Milli {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(f64::from(self.0) / 1000.0)
    }
}

impl<'de> Deserialize<'de> for Milli {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = f64::deserialize(deserializer)?;
        if !(0.0..=1_000_000.0).contains(&value) {
            return Err(serde::de::Error::custom("out of range"));
        }
        Ok(Milli((value * 1000.0).round() as u32))
    }
}

impl Milli {
    /// As a float.
    pub fn as_f32(self) -> f32 {
        self.0 as f32 / 1000.0
    }
}

/// A chat message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// Its text.
    pub content: String,
}

/// An `llm_generate` job's input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmRequest {
    /// The model: the hex SHA-256 of its file.
    pub model: Hash32,
    /// A plain prompt, continued as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// A conversation, framed by the model's chat template; the reply is generated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<ChatMessage>>,
    /// Most tokens generated.
    pub max_tokens: u32,
    /// Sampling temperature (0: greedy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<Milli>,
    /// Nucleus mass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<Milli>,
    /// The sampler's seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

impl LlmRequest {
    /// Checks the bounds.
    pub fn check(&self) -> Result<(), TxError> {
        let malformed = |what: &str| Err(TxError::Malformed(what.into()));
        let limit = |what: String| Err(TxError::LimitExceeded(what));
        let text_bytes = match (&self.prompt, &self.messages) {
            (Some(prompt), None) if !prompt.is_empty() => prompt.len(),
            (None, Some(messages)) if !messages.is_empty() => {
                if messages.len() > MESSAGES_MAX {
                    return limit(format!("at most {MESSAGES_MAX} messages"));
                }
                if let Some(m) = messages
                    .iter()
                    .find(|m| !matches!(m.role.as_str(), "system" | "user" | "assistant"))
                {
                    return Err(TxError::Malformed(format!(
                        "a message's role is system, user or assistant, not {:?}",
                        m.role
                    )));
                }
                messages.iter().map(|m| m.content.len()).sum()
            }
            _ => return malformed("an llm_generate input has a prompt or messages, not both"),
        };
        if text_bytes > PROMPT_BYTES_MAX {
            return limit(format!("a prompt holds at most {PROMPT_BYTES_MAX} bytes"));
        }
        if !(1..=MAX_TOKENS_MAX).contains(&self.max_tokens) {
            return limit(format!("max_tokens is 1..={MAX_TOKENS_MAX}"));
        }
        if self.temperature.is_some_and(|t| t.0 > 2_000) {
            return malformed("temperature is 0..=2");
        }
        if self.top_p.is_some_and(|p| p.0 == 0 || p.0 > 1_000) {
            return malformed("top_p is in (0, 1]");
        }
        Ok(())
    }

    /// Whether tokens are the most likely ones (no temperature, or 0).
    pub fn greedy(&self) -> bool {
        self.temperature.is_none_or(|t| t.0 == 0)
    }
}

/// An `llm_generate` result: the generated ids and their text. Its bytes are the canonical
/// JSON of this struct (fields in key order).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmResult {
    /// The ids' decoding.
    pub text: String,
    /// The generated token ids.
    pub token_ids: Vec<u32>,
}

impl LlmResult {
    /// The result bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("results serialize")
    }

    /// A result from its bytes (refused unless canonical).
    pub fn from_bytes(bytes: &[u8]) -> Option<LlmResult> {
        let result: LlmResult = serde_json::from_slice(bytes).ok()?;
        (result.to_bytes() == bytes).then_some(result)
    }
}

/// A model a node accepts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ModelListing {
    /// Its short name.
    pub name: String,
    /// The SHA-256 of its file: what jobs name.
    pub sha256: Hash32,
    /// Its architecture (`llama`).
    pub architecture: String,
}

/// The node's models, as the jobs module needs them.
pub trait ModelHost: Send + Sync {
    /// The models this node accepts.
    fn listed(&self) -> Vec<ModelListing>;
    /// Whether this node takes `request`: its model is one of the node's (`not_found` else) and
    /// its prompt and tokens fit the model's context (`limit_exceeded`). May load the model.
    fn admit(&self, request: &LlmRequest) -> Result<(), TxError>;
    /// A result of `request`: `Ok(true)` it holds, `Ok(false)` it does not (wrong text, a token
    /// the model would not have chosen, too many tokens), `Err` the check could not run here.
    fn check(&self, request: &LlmRequest, result: &[u8]) -> Result<bool, String>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(text: &str) -> LlmRequest {
        let body = format!(r#"{{"model":"{}",{text}}}"#, Hash32::digest(b"model"));
        serde_json::from_str(&body).unwrap()
    }

    #[test]
    fn inputs_are_checked_and_numbers_keep_thousandths() {
        let ok = request(r#""prompt":"hi","max_tokens":8,"temperature":0.7,"top_p":0.95,"seed":3"#);
        assert!(ok.check().is_ok());
        assert_eq!(
            (ok.temperature, ok.top_p),
            (Some(Milli(700)), Some(Milli(950)))
        );
        assert!(!ok.greedy());
        let text = serde_json::to_string(&ok).unwrap();
        assert!(text.contains(r#""temperature":0.7"#), "{text}");
        let chat = request(r#""messages":[{"role":"user","content":"hi"}],"max_tokens":8"#);
        assert!(chat.check().is_ok() && chat.greedy());
        let refused = [
            (r#""prompt":"hi","messages":[],"max_tokens":8"#, "malformed"),
            (r#""max_tokens":8"#, "malformed"),
            (r#""prompt":"hi","max_tokens":513"#, "limit_exceeded"),
            (r#""prompt":"hi","max_tokens":0"#, "limit_exceeded"),
            (
                r#""prompt":"hi","max_tokens":8,"temperature":2.5"#,
                "malformed",
            ),
            (r#""prompt":"hi","max_tokens":8,"top_p":0"#, "malformed"),
            (
                r#""messages":[{"role":"tool","content":"x"}],"max_tokens":8"#,
                "malformed",
            ),
        ];
        for (text, code) in refused {
            assert_eq!(request(text).check().unwrap_err().code(), code, "{text}");
        }
        let long = format!(
            r#""prompt":"{}","max_tokens":8"#,
            "x".repeat(PROMPT_BYTES_MAX + 1)
        );
        assert_eq!(request(&long).check().unwrap_err().code(), "limit_exceeded");
    }

    #[test]
    fn results_are_canonical_json() {
        let result = LlmResult {
            text: " Paris".into(),
            token_ids: vec![7042],
        };
        assert_eq!(
            result.to_bytes(),
            br#"{"text":" Paris","token_ids":[7042]}"#
        );
        assert_eq!(LlmResult::from_bytes(&result.to_bytes()), Some(result));
        assert_eq!(
            LlmResult::from_bytes(br#"{"token_ids":[7042],"text":" Paris"}"#),
            None
        );
        assert_eq!(
            LlmResult::from_bytes(br#"{"text": " Paris","token_ids":[7042]}"#),
            None
        );
    }
}

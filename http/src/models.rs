//! The node's language models (`[[jobs.models]]`): `GET /v1/models`, and the check of every
//! `llm_generate` result on the CPU reference of `llm` (the platform's verification).
//!
//! A result holds when it is canonical JSON whose text is its ids' decoding; it has at most
//! `max_tokens` ids and ends where generation ends (after the end-of-sequence token, or at
//! `max_tokens`); and, teacher-forced after the prompt, every greedy token's logit is within
//! [`GREEDY_MARGIN`] of its step's largest (GPUs sum in other orders, so an honest choice may
//! differ from this CPU's argmax at a near-tie), or the seeded sampler replayed on this CPU's
//! logits draws the same tokens. Models load (dequantized, ~540 MB for SmolLM2-135M) on the
//! first check that needs them.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use actix_web::{HttpResponse, web};
use domain::TxError;
use domain::hash::Hash32;
use domain::llm_job::{LlmRequest, LlmResult, ModelHost, ModelListing};
use llm::generate::{Sampling, check_greedy, decode};
use llm::gguf::Gguf;
use llm::model::Model;
use llm::tokenizer::{Message, Tokenizer};
use serde_json::json;
use sha2::Digest;

use crate::app::App;
use crate::config::ModelConfig;
use crate::error::ApiError;

/// How far below the step's largest logit a claimed greedy token may be.
pub const GREEDY_MARGIN: f32 = 0.5;
/// Longest context a job may use (prompt and generated tokens; the GPU path's limit).
pub const CONTEXT_MAX: usize = 1024;

struct Entry {
    listing: ModelListing,
    path: std::path::PathBuf,
}

/// A model file loaded to run: its identity, tokenizer and dequantized weights (a node checks
/// results with it, a miner generates with it).
pub struct LoadedModel {
    /// The SHA-256 of the file: what jobs name.
    pub sha256: Hash32,
    /// Its tokenizer.
    pub tokenizer: Tokenizer,
    /// Its weights.
    pub model: Arc<Model>,
}

impl LoadedModel {
    /// Reads, hashes and loads the GGUF file at `path`.
    pub fn open(path: &Path) -> Result<LoadedModel, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let sha256 = Hash32(sha2::Sha256::digest(&bytes).into());
        let gguf = Gguf::parse(bytes).map_err(|e| e.to_string())?;
        Ok(LoadedModel {
            sha256,
            tokenizer: Tokenizer::from_gguf(&gguf).map_err(|e| e.to_string())?,
            model: Arc::new(Model::from_gguf(&gguf).map_err(|e| e.to_string())?),
        })
    }

    /// The prompt's token ids (messages framed by the chat template).
    pub fn prompt_ids(&self, request: &LlmRequest) -> Vec<u32> {
        match (&request.prompt, &request.messages) {
            (Some(prompt), _) => self.tokenizer.encode(prompt),
            (None, messages) => {
                let messages: Vec<Message> = messages
                    .iter()
                    .flatten()
                    .map(|m| Message {
                        role: m.role.clone(),
                        content: m.content.clone(),
                    })
                    .collect();
                self.tokenizer.encode(&Tokenizer::chat_prompt(&messages))
            }
        }
    }

    /// The result of generated ids.
    pub fn result(&self, token_ids: Vec<u32>) -> LlmResult {
        LlmResult {
            text: self.tokenizer.decode(&token_ids),
            token_ids,
        }
    }
}

/// The models of a node.
pub struct NodeModels {
    entries: Vec<Entry>,
    loaded: Mutex<HashMap<Hash32, Arc<LoadedModel>>>,
}

impl NodeModels {
    /// The configured models: each file hashed and its header read now (a missing or unreadable
    /// one is left out with a warning: the node still starts).
    pub fn open(configs: &[ModelConfig], data_dir: &Path) -> NodeModels {
        let mut entries = Vec::new();
        for config in configs {
            let path = data_dir.join(&config.path);
            let read = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|bytes| {
                    let sha256 = Hash32(sha2::Sha256::digest(&bytes).into());
                    let gguf = Gguf::parse(bytes).map_err(|e| e.to_string())?;
                    let architecture = gguf.str("general.architecture").unwrap_or("?").to_string();
                    Ok((sha256, architecture))
                });
            match read {
                Ok((sha256, architecture)) => {
                    tracing::info!(name = %config.name, %sha256, "model available");
                    let listing = ModelListing {
                        name: config.name.clone(),
                        sha256,
                        architecture,
                    };
                    entries.push(Entry { listing, path });
                }
                Err(error) => tracing::warn!(
                    name = %config.name,
                    path = %path.display(),
                    %error,
                    "model left out (scripts/fetch-model.sh installs the default one)"
                ),
            }
        }
        NodeModels {
            entries,
            loaded: Mutex::default(),
        }
    }

    fn load(&self, sha256: &Hash32) -> Result<Arc<LoadedModel>, String> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(model) = loaded.get(sha256) {
            return Ok(Arc::clone(model));
        }
        let entry = self
            .entries
            .iter()
            .find(|e| e.listing.sha256 == *sha256)
            .ok_or_else(|| format!("no model {sha256} here"))?;
        let model = Arc::new(LoadedModel::open(&entry.path)?);
        if model.sha256 != *sha256 {
            return Err(format!(
                "{} changed since the node started",
                entry.path.display()
            ));
        }
        loaded.insert(*sha256, Arc::clone(&model));
        Ok(model)
    }
}

/// How `request` chooses tokens.
pub fn sampling(request: &LlmRequest) -> Sampling {
    match request.greedy() {
        true => Sampling::Greedy,
        false => Sampling::Seeded {
            temperature: request.temperature.map_or(0.0, |t| t.as_f32()),
            top_p: request.top_p.map_or(1.0, |p| p.as_f32()),
            seed: request.seed.unwrap_or(0),
        },
    }
}

impl ModelHost for NodeModels {
    fn listed(&self) -> Vec<ModelListing> {
        self.entries.iter().map(|e| e.listing.clone()).collect()
    }

    fn admit(&self, request: &LlmRequest) -> Result<(), TxError> {
        if !self
            .entries
            .iter()
            .any(|e| e.listing.sha256 == request.model)
        {
            return Err(TxError::NotFound(format!(
                "no model {} here (GET /v1/models lists them)",
                request.model
            )));
        }
        let loaded = self
            .load(&request.model)
            .map_err(TxError::UnsupportedKind)?;
        let context = loaded.prompt_ids(request).len() + request.max_tokens as usize;
        if context > CONTEXT_MAX.min(loaded.model.config.context) {
            return Err(TxError::LimitExceeded(format!(
                "the prompt's tokens and max_tokens come to {context}, past the context of {}",
                CONTEXT_MAX.min(loaded.model.config.context)
            )));
        }
        Ok(())
    }

    fn check(&self, request: &LlmRequest, result: &[u8]) -> Result<bool, String> {
        let loaded = self.load(&request.model)?;
        let (tokenizer, model) = (&loaded.tokenizer, &*loaded.model);
        let Some(result) = LlmResult::from_bytes(result) else {
            return Ok(false);
        };
        let ids = &result.token_ids;
        let max = request.max_tokens as usize;
        let prompt = loaded.prompt_ids(request);
        let ends_right = match ids.iter().position(|t| *t == tokenizer.eos) {
            Some(at) => at + 1 == ids.len(),
            None => ids.len() == max,
        };
        if ids.is_empty()
            || ids.len() > max
            || !ends_right
            || prompt.len() + ids.len() > CONTEXT_MAX
            || ids.iter().any(|t| *t as usize >= model.config.vocab)
            || tokenizer.decode(ids) != result.text
        {
            return Ok(false);
        }
        match sampling(request) {
            Sampling::Greedy => check_greedy(model, &prompt, ids, GREEDY_MARGIN)
                .map(|verdict| verdict.is_ok())
                .map_err(|e| e.to_string()),
            seeded => {
                let mut cache = model.cache(prompt.len() + max);
                let replayed = decode(&prompt, max, tokenizer.eos, seeded, |token| {
                    model.forward(token, &mut cache)
                })
                .map_err(|e| e.to_string())?;
                Ok(replayed == *ids)
            }
        }
    }
}

/// `GET /v1/models`: the models this node accepts, with the miners holding each.
pub(crate) async fn list_models(
    app: web::Data<Arc<App>>,
    query: web::Query<crate::routes::ChainQuery>,
) -> Result<HttpResponse, ApiError> {
    let chain_id = app.chain_id(query.chain.as_deref())?.to_string();
    let listed = app.router.models().map(|m| m.listed()).unwrap_or_default();
    let miners = app.router.market().state(chain_id.clone()).await?.miners;
    let mut holders: HashMap<Hash32, usize> = HashMap::new();
    for miner in miners {
        let id = domain::miner::MinerId {
            chain_id: chain_id.clone(),
            miner,
        };
        if let Some(record) = app.router.miners().state(id).await?.record {
            for model in record.offer.models {
                *holders.entry(model).or_default() += 1;
            }
        }
    }
    let models: Vec<_> = listed
        .iter()
        .map(|m| {
            json!({
                "name": m.name,
                "sha256": m.sha256,
                "architecture": m.architecture,
                "miners": holders.get(&m.sha256).copied().unwrap_or(0),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({"chain_id": chain_id, "models": models})))
}

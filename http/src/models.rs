//! The node's language models (`[[jobs.models]]`): `GET /v1/models`, and the check of every
//! `llm_generate` result on the CPU reference of `llm` (the platform's verification).
//!
//! A result holds when it is canonical JSON (at most [`RESULT_BYTES_MAX`]) whose text is its
//! ids' decoding; it has at most `max_tokens` ids and ends where generation ends (after the
//! end-of-sequence token, or at `max_tokens`); and, teacher-forced after the prompt, every greedy
//! token's logit is within [`GREEDY_MARGIN`] of its step's largest (GPUs sum in other orders, so
//! an honest choice may differ from this CPU's argmax at a near-tie), or every sampled token is
//! the one the seeded draw picks on this CPU's logits, give or take [`DRAW_TOLERANCE`]. Models
//! load (dequantized, ~540 MB for SmolLM2-135M) on the first submission or check that needs
//! them; one that fails to load is reported as such until the node restarts. A verdict is
//! computed once per request and result (a second verification of the same job, or a result
//! two miners share, waits for it and reuses it).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use actix_web::{HttpResponse, web};
use domain::TxError;
use domain::hash::Hash32;
use domain::llm_job::{LlmRequest, LlmResult, ModelHost, ModelListing};
use llm::CONTEXT_MAX;
use llm::generate::{DRAW_TOLERANCE, GREEDY_MARGIN, Sampling, check_greedy, check_sampled};
use llm::gguf::Gguf;
use llm::model::Model;
use llm::tokenizer::{Message, Tokenizer};
use serde_json::json;
use sha2::Digest;

use crate::app::App;
use crate::config::ModelConfig;
use crate::error::ApiError;

/// Longest result checked: 512 tokens of JSON-escaped text with their ids fit well within it.
pub const RESULT_BYTES_MAX: usize = 256 * 1024;
/// Verdicts kept for reuse.
const VERDICTS_KEPT: usize = 4096;

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

/// The SHA-256 of the file at `path` (by `sha256`, given its bytes) and its parsed contents.
fn read_model_file(
    path: &Path,
    sha256: impl FnOnce(&Path, &[u8]) -> Hash32,
) -> Result<(Hash32, Gguf), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let sha256 = sha256(path, &bytes);
    let gguf = Gguf::parse(bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((sha256, gguf))
}

fn hash_bytes(_: &Path, bytes: &[u8]) -> Hash32 {
    Hash32(sha2::Sha256::digest(bytes).into())
}

/// The SHA-256 a node lists for a model file at start: taken from the record beside the file
/// (`<file>.sha256`: its size, modification time and hash) while that still describes it,
/// else computed and recorded there for the next start (best effort: where it cannot be
/// written, each start hashes again). Hashing the default model (98 MB) took about half of a
/// node's start.
/// A stale or forged record cannot change what runs: loading a model hashes the file in full
/// and refuses one that differs from what the node listed.
fn listed_sha256(path: &Path, bytes: &[u8]) -> Hash32 {
    let mut record = path.as_os_str().to_owned();
    record.push(".sha256");
    let record = PathBuf::from(record);
    let stamp = std::fs::metadata(path).ok().and_then(|meta| {
        let modified = meta
            .modified()
            .ok()?
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?;
        Some(format!("{} {}", meta.len(), modified.as_nanos()))
    });
    let Some(stamp) = stamp else {
        return hash_bytes(path, bytes);
    };
    let recorded = std::fs::read_to_string(&record).ok().and_then(|text| {
        let (recorded_stamp, hash) = text.trim_end().rsplit_once(' ')?;
        (recorded_stamp == stamp).then(|| hash.parse().ok())?
    });
    if let Some(sha256) = recorded {
        return sha256;
    }
    let sha256 = hash_bytes(path, bytes);
    // Written aside and renamed, so that a node starting meanwhile reads all of it or none.
    let mut staged = record.clone().into_os_string();
    staged.push(format!(".{}", std::process::id()));
    let written = std::fs::write(&staged, format!("{stamp} {sha256}\n"))
        .and_then(|()| std::fs::rename(&staged, &record));
    if let Err(error) = written {
        let _ = std::fs::remove_file(&staged);
        tracing::debug!(record = %record.display(), %error, "model hash not recorded");
    }
    sha256
}

impl LoadedModel {
    /// Reads, hashes and loads the GGUF file at `path`.
    pub fn open(path: &Path) -> Result<LoadedModel, String> {
        let (sha256, gguf) = read_model_file(path, hash_bytes)?;
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

    /// The longest context a job may use with this model.
    fn context_max(&self) -> usize {
        CONTEXT_MAX.min(self.model.config.context)
    }

    /// The platform's check of `result` (see the module's doc).
    fn check(&self, request: &LlmRequest, result: &LlmResult) -> Result<bool, String> {
        let (tokenizer, model) = (&self.tokenizer, &*self.model);
        let ids = &result.token_ids;
        let max = request.max_tokens as usize;
        let prompt = self.prompt_ids(request);
        let ends_right = match ids.iter().position(|t| *t == tokenizer.eos) {
            Some(at) => at + 1 == ids.len(),
            None => ids.len() == max,
        };
        if ids.is_empty()
            || ids.len() > max
            || !ends_right
            || prompt.len() + ids.len() > self.context_max()
            || ids.iter().any(|t| *t as usize >= model.config.vocab)
            || tokenizer.decode(ids) != result.text
        {
            return Ok(false);
        }
        let verdict = match sampling(request) {
            Sampling::Greedy => check_greedy(model, &prompt, ids, GREEDY_MARGIN),
            Sampling::Seeded {
                temperature,
                top_p,
                seed,
            } => check_sampled(
                model,
                &prompt,
                ids,
                (temperature, top_p, seed),
                DRAW_TOLERANCE,
            ),
        };
        verdict.map(|v| v.is_ok()).map_err(|e| e.to_string())
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

struct Entry {
    listing: ModelListing,
    path: PathBuf,
    loaded: OnceLock<Result<Arc<LoadedModel>, String>>,
}

/// A verdict, computed by the first caller while the others wait.
type VerdictCell = Arc<OnceLock<Result<bool, String>>>;

/// The models of a node.
pub struct NodeModels {
    entries: Vec<Entry>,
    verdicts: Mutex<HashMap<Hash32, VerdictCell>>,
}

impl NodeModels {
    /// The configured models: each file hashed and its header read now (a missing or unreadable
    /// one is left out with a warning: the node still starts).
    pub fn open(configs: &[ModelConfig], data_dir: &Path) -> NodeModels {
        let mut entries = Vec::new();
        for config in configs {
            let path = data_dir.join(&config.path);
            match read_model_file(&path, listed_sha256) {
                Ok((sha256, gguf)) => {
                    tracing::info!(name = %config.name, %sha256, "model available");
                    let architecture = gguf.str("general.architecture").unwrap_or("?");
                    let listing = ModelListing {
                        name: config.name.clone(),
                        sha256,
                        architecture: architecture.to_string(),
                    };
                    let loaded = OnceLock::new();
                    entries.push(Entry {
                        listing,
                        path,
                        loaded,
                    });
                }
                Err(error) => tracing::warn!(
                    name = %config.name,
                    %error,
                    "model left out (scripts/fetch-model.sh installs the default one)"
                ),
            }
        }
        NodeModels {
            entries,
            verdicts: Mutex::default(),
        }
    }

    /// Model `sha256`, loaded on first use (each model once; callers of one being loaded wait).
    fn load(&self, sha256: &Hash32) -> Result<Arc<LoadedModel>, String> {
        let entry = self
            .entries
            .iter()
            .find(|e| e.listing.sha256 == *sha256)
            .ok_or_else(|| format!("no model {sha256} here"))?;
        let loaded = entry.loaded.get_or_init(|| {
            let model = LoadedModel::open(&entry.path)?;
            if model.sha256 != *sha256 {
                return Err(format!(
                    "{} changed since the node started",
                    entry.path.display()
                ));
            }
            Ok(Arc::new(model))
        });
        loaded.clone()
    }

    /// The cell of the verdict on `result` for `request`, shared by every caller asking for it.
    fn verdict_cell(&self, request: &LlmRequest, result: &[u8]) -> (Hash32, VerdictCell) {
        let mut key = serde_json::to_vec(request).expect("requests serialize");
        key.extend_from_slice(result);
        let key = Hash32::digest(&key);
        let mut verdicts = self.verdicts.lock().unwrap_or_else(|p| p.into_inner());
        if verdicts.len() >= VERDICTS_KEPT {
            // Those being computed stay: their callers are waiting.
            verdicts.retain(|_, cell| cell.get().is_none());
        }
        (key, Arc::clone(verdicts.entry(key).or_default()))
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
            .map_err(|e| TxError::UnsupportedKind(format!("model {}: {e}", request.model)))?;
        let context = loaded.prompt_ids(request).len() + request.max_tokens as usize;
        if context > loaded.context_max() {
            return Err(TxError::LimitExceeded(format!(
                "the prompt's tokens and max_tokens come to {context}, past the context of {}",
                loaded.context_max()
            )));
        }
        Ok(())
    }

    fn check(&self, request: &LlmRequest, result: &[u8]) -> Result<bool, String> {
        if result.len() > RESULT_BYTES_MAX {
            return Ok(false);
        }
        let Some(parsed) = LlmResult::from_bytes(result) else {
            return Ok(false);
        };
        let (key, cell) = self.verdict_cell(request, result);
        let verdict = cell
            .get_or_init(|| self.load(&request.model)?.check(request, &parsed))
            .clone();
        if verdict.is_err() {
            // Not a verdict: the next verification tries again.
            self.verdicts
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key);
        }
        verdict
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record_of(path: &Path) -> PathBuf {
        PathBuf::from(format!("{}.sha256", path.display()))
    }

    /// The first start hashes and records; the next takes the record while it describes the
    /// file, and hashes again once the file changed.
    #[test]
    fn a_model_is_hashed_once_until_its_file_changes() {
        let dir = std::env::temp_dir().join(format!("aitbc-model-hash-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.gguf");
        std::fs::write(&path, b"weights").unwrap();
        let hashed = listed_sha256(&path, b"weights");
        assert_eq!(hashed, Hash32::digest(b"weights"));
        let record = std::fs::read_to_string(record_of(&path)).unwrap();
        assert!(record.trim_end().ends_with(&hashed.to_string()), "{record}");
        // A record that still describes the file is taken as it is (here: a made-up hash).
        let forged = record.replace(&hashed.to_string(), &Hash32([7; 32]).to_string());
        std::fs::write(record_of(&path), &forged).unwrap();
        assert_eq!(listed_sha256(&path, b"weights"), Hash32([7; 32]));
        // Another size: hashed again, and recorded again.
        std::fs::write(&path, b"new weights").unwrap();
        assert_eq!(
            listed_sha256(&path, b"new weights"),
            Hash32::digest(b"new weights")
        );
        assert_eq!(
            listed_sha256(&path, b"new weights"),
            Hash32::digest(b"new weights")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

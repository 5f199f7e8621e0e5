//! What the fuzzer feeds: each target takes arbitrary bytes to one of the node's decoders and
//! must return (an error is fine) without panicking or hanging. The coverage-guided fuzzer
//! (afl.rs, `fuzz/afl`, run by `scripts/fuzz.sh`) calls them; `tests/corpus.rs` replays the
//! corpus it built (`fuzz/corpus/<target>.pack`) on every test run.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use domain::codec::DomainEvent;
use domain::keys::{PublicKey, SigningKey};
use domain::tx::{SignedEnvelope, sign_text};
use gpu::AdapterReport;
use gpu::JobLimits;
use gpu::kernels::wgsl::WgslJob;
use store::{EventStore, FileStore};

/// A target: bytes in, nothing out but a panic or a hang when something is wrong.
pub type Target = fn(&[u8]);

/// Every target by name (the corpus packs are named so).
pub const TARGETS: [(&str, Target); 6] = [
    ("envelope", envelope),
    ("events", events),
    ("log", log),
    ("snapshot", snapshot),
    ("config", config),
    ("wgsl", wgsl),
];

/// A transaction as `POST /v1/transactions` takes it. The bytes are read twice: as a whole
/// envelope (JSON, hex, sizes, signature), and as a payload text that a fixed key signs, so
/// that the payload and every kind's body parser are reached (the sender binding, which a
/// fuzzer cannot satisfy, is the one check left out).
pub fn envelope(data: &[u8]) {
    if let Ok(envelope) = serde_json::from_slice::<SignedEnvelope>(data) {
        let _ = envelope.verify();
    }
    if let Ok(payload) = std::str::from_utf8(data) {
        let key = SigningKey::from_seed([7; 32]);
        let _ = sign_text(&key, payload.to_string()).verify_as_caller(PublicKey::from_bytes);
    }
}

/// A stored event as every reader decodes it: the type name, a NUL byte, the JSON data.
pub fn events(data: &[u8]) {
    let Some(split) = data.iter().position(|&b| b == 0) else {
        return;
    };
    if let Ok(event_type) = std::str::from_utf8(&data[..split]) {
        let _ = DomainEvent::decode(event_type, &data[split + 1..], 0);
    }
}

/// A log segment: the record and group-frame decoders, as `aitbc store check` and the
/// recovery at open run them, then every event read back.
pub fn log(data: &[u8]) {
    let dir = scratch("log");
    let log = dir.join("log");
    reset(&log);
    std::fs::write(log.join("00000000000000000000.seg"), data).unwrap();
    let Ok(report) = store::check(&dir) else {
        return;
    };
    if report.corrupt.is_none()
        && let Ok(store) = FileStore::open(&dir)
    {
        let _ = futures::executor::block_on(store.read_all(0, usize::MAX));
        store.close();
    }
}

/// A snapshot file (an aggregate's state or a process manager's checkpoint) as it is loaded.
pub fn snapshot(data: &[u8]) {
    let dir = scratch("snapshot");
    let snapshots = dir.join("snapshots");
    reset(&snapshots);
    reset(&dir.join("log"));
    let key = "wallet/fuzz";
    std::fs::write(snapshots.join(format!("{}.snap", hex::encode(key))), data).unwrap();
    if let Ok(store) = FileStore::open(&dir) {
        let _ = futures::executor::block_on(store.load_snapshot(key));
        store.close();
    }
}

/// The node's TOML configuration, parsed and checked.
pub fn config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = http::config::NodeConfig::parse(text);
    }
}

/// A client's WGSL shader, validated as the node does before any device sees it.
pub fn wgsl(data: &[u8]) {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    let job = WgslJob {
        source: source.to_string(),
        entry_point: "main".into(),
        inputs: vec![vec![0; 16]],
        output_sizes: vec![16],
        workgroups: [1, 1, 1],
    };
    let _ = job.validate(&JobLimits::default(), &AdapterReport::portable());
}

/// The pack of `target`'s corpus: each input as its length (8 bytes, little-endian) and its bytes.
pub fn corpus_file(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../corpus")
        .join(format!("{target}.pack"))
}

/// The inputs of `target`'s corpus.
pub fn corpus(target: &str) -> Result<Vec<Vec<u8>>, String> {
    let file = corpus_file(target);
    let bytes = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut inputs = Vec::new();
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        let (len, tail) = rest
            .split_first_chunk::<8>()
            .ok_or_else(|| format!("{}: a length cut short", file.display()))?;
        let len = usize::try_from(u64::from_le_bytes(*len)).unwrap_or(usize::MAX);
        if len > tail.len() {
            return Err(format!("{}: an input cut short", file.display()));
        }
        inputs.push(tail[..len].to_vec());
        rest = &tail[len..];
    }
    Ok(inputs)
}

/// Replaces `target`'s corpus with `inputs`.
pub fn write_corpus(target: &str, inputs: &[Vec<u8>]) -> Result<(), String> {
    let mut bytes = Vec::new();
    for input in inputs {
        bytes.extend_from_slice(&(input.len() as u64).to_le_bytes());
        bytes.extend_from_slice(input);
    }
    let file = corpus_file(target);
    std::fs::write(&file, bytes).map_err(|e| format!("{}: {e}", file.display()))
}

/// A directory for `target`'s files, the same for every input of this process.
fn scratch(target: &str) -> PathBuf {
    static ROOT: OnceLock<tempfile::TempDir> = OnceLock::new();
    let root = ROOT.get_or_init(|| tempfile::tempdir().expect("a temporary directory"));
    root.path().join(target)
}

fn reset(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
}

//! The CLI's HTTP client: one place that turns transport and API errors into messages that say
//! what to do next.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use serde_json::Value;

/// What every client command needs.
pub struct Context {
    pub node: String,
    pub chain: Option<String>,
    pub keystore: PathBuf,
    /// Amounts on the command line are base units (`--base-units`), not `12.5AIT`.
    pub base_units: bool,
    /// Answers as the node's JSON (`--json`), not sentences.
    pub json: bool,
    agent: ureq::Agent,
}

impl Context {
    pub fn new(
        node: &str,
        chain: Option<String>,
        keystore: Option<PathBuf>,
        base_units: bool,
        json: bool,
    ) -> Context {
        let keystore = keystore.unwrap_or_else(|| {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("."));
            home.join(".aitbc").join("keystore")
        });
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(30))
            .build();
        // `--node host:port` means plain HTTP.
        let node = match node.contains("://") {
            true => node.trim_end_matches('/').to_string(),
            false => format!("http://{}", node.trim_end_matches('/')),
        };
        Context {
            node,
            chain,
            keystore,
            base_units,
            json,
            agent,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.node, path)
    }

    fn answer(&self, result: Result<ureq::Response, ureq::Error>) -> anyhow::Result<Value> {
        match result {
            Ok(response) => response
                .into_json()
                .context("the node sent a response that is not JSON"),
            Err(ureq::Error::Status(status, response)) => {
                let body: Value = response.into_json().unwrap_or(Value::Null);
                let code = body["error"]["code"].as_str().unwrap_or("error");
                let message = body["error"]["message"].as_str().unwrap_or("");
                Err(anyhow!(
                    "the node refused the request ({status} {code}): {message}"
                ))
            }
            Err(ureq::Error::Transport(transport)) => Err(anyhow!(
                "cannot reach the node at {}: {transport}\nIs `aitbc node` running? Use --node or AITBC_NODE to point elsewhere.",
                self.node
            )),
        }
    }

    pub fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.get_with(path, &[])
    }

    /// GET `path` with query parameters (encoded here).
    pub fn get_with(&self, path: &str, params: &[(&str, &str)]) -> anyhow::Result<Value> {
        let mut request = self.agent.get(&self.url(path));
        for (name, value) in params {
            request = request.query(name, value);
        }
        if let Some(chain) = &self.chain {
            request = request.query("chain", chain);
        }
        self.answer(request.call())
    }

    /// GET `path`'s raw bytes.
    pub fn get_bytes(&self, path: &str) -> anyhow::Result<Vec<u8>> {
        let response = match self.agent.get(&self.url(path)).call() {
            Ok(response) => response,
            Err(error) => return self.answer(Err(error)).map(|_| Vec::new()),
        };
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut response.into_reader(), &mut bytes)
            .context("reading the node's answer")?;
        Ok(bytes)
    }

    pub fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.post_with(path, &[], body)
    }

    /// POST JSON with extra headers.
    pub fn post_with(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: &Value,
    ) -> anyhow::Result<Value> {
        let mut request = self.agent.post(&self.url(path));
        for (name, value) in headers {
            request = request.set(name, value);
        }
        self.answer(request.send_json(body))
    }
}

/// `aitbc status`: the node's health, version and chains with their heights.
pub fn status(ctx: &Context) -> anyhow::Result<Value> {
    let index = ctx.get("/")?;
    let health = match ctx.agent.get(&ctx.url("/health")).call() {
        Ok(response) | Err(ureq::Error::Status(_, response)) => {
            response.into_json::<Value>().unwrap_or(Value::Null)["status"].clone()
        }
        Err(error) => return Err(anyhow!("the node stopped answering: {error}")),
    };
    let chains = ctx.get("/v1/chains")?;
    let heights: Vec<Value> = chains["chains"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| serde_json::json!({"chain_id": c["chain_id"], "height": c["height"]}))
        .collect();
    Ok(serde_json::json!({
        "node": ctx.node,
        "health": health,
        "version": index["version"],
        "default_chain": chains["default_chain"],
        "chains": heights,
    }))
}

/// `aitbc version`: the client's, and the node's when it answers.
pub fn versions(ctx: &Context) -> Value {
    let node = ctx
        .get("/")
        .map(|index| index["version"].clone())
        .unwrap_or(Value::Null);
    serde_json::json!({"aitbc": env!("CARGO_PKG_VERSION"), "node": node, "node_url": ctx.node})
}

/// Prints a JSON answer.
pub fn print(value: anyhow::Result<Value>) -> anyhow::Result<()> {
    out(serde_json::to_string_pretty(&value?)?);
    Ok(())
}

/// Writes a line to standard output; a closed pipe (`aitbc … | head`) ends the command quietly,
/// as it does other tools.
pub fn out(line: impl std::fmt::Display) {
    use std::io::Write;
    if let Err(error) = writeln!(std::io::stdout().lock(), "{line}") {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: writing to standard output: {error}");
        std::process::exit(1);
    }
}

/// `println!` through [`out`].
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::client::out(format_args!($($arg)*))
    };
}
pub(crate) use outln;

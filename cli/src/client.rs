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
    agent: ureq::Agent,
}

impl Context {
    pub fn new(node: &str, chain: Option<String>, keystore: Option<PathBuf>) -> Context {
        let keystore = keystore.unwrap_or_else(|| {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("."));
            home.join(".aitbc").join("keystore")
        });
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(30))
            .build();
        Context {
            node: node.trim_end_matches('/').to_string(),
            chain,
            keystore,
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
        self.answer(self.agent.post(&self.url(path)).send_json(body))
    }
}

/// Prints a JSON answer.
pub fn print(value: anyhow::Result<Value>) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(&value?)?);
    Ok(())
}

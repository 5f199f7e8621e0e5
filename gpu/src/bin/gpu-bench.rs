//! `gpu-bench info` | `gpu-bench bench [--matmul N] [--sha-messages N] [--pow-bits N]
//! [--mlp-batch N] [--pow-nonces N] [--repeats N] [--json]` | `gpu-bench llm [--tokens N]`
//! (the language model at `llm::default_model_path()`: prefill and decode tokens/s)

use std::process::ExitCode;

use gpu::bench::BenchConfig;

const USAGE: &str = "usage: gpu-bench info [--json]
       gpu-bench bench [--matmul N] [--sha-messages N] [--pow-bits N] [--pow-nonces N]
                       [--mlp-batch N] [--repeats N] [--json]
       gpu-bench llm [--tokens N]";

fn parse<T: std::str::FromStr>(flag: &str, value: Option<&String>) -> Result<T, String> {
    value
        .ok_or_else(|| format!("{flag} needs a value"))?
        .parse()
        .map_err(|_| format!("{flag}: not a valid number"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    let result = match args.first().map(String::as_str) {
        Some("info") => gpu::info().map_err(|e| e.to_string()).map(|r| {
            if json {
                serde_json::to_string_pretty(&r).unwrap_or_default()
            } else {
                r.to_string()
            }
        }),
        Some("bench") => bench(&args[1..], json),
        Some("llm") => llm_bench(&args[1..]),
        _ => Err(USAGE.to_string()),
    };
    match result {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gpu-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Prefill (a prompt, then one token) and greedy decode on this process's adapter.
fn llm_bench(args: &[String]) -> Result<String, String> {
    use llm::generate::Sampling;
    use std::sync::Arc;
    let tokens: u32 = match args {
        [flag, value] if flag == "--tokens" => parse(flag, Some(value))?,
        [] => 32,
        _ => return Err(USAGE.to_string()),
    };
    let path = llm::default_model_path();
    let gguf = llm::gguf::Gguf::open(&path).map_err(|e| format!("{e} (scripts/fetch-model.sh)"))?;
    let tokenizer = llm::tokenizer::Tokenizer::from_gguf(&gguf).map_err(|e| e.to_string())?;
    let model = Arc::new(llm::model::Model::from_gguf(&gguf).map_err(|e| e.to_string())?);
    let executor = gpu::Executor::global().map_err(|e| e.to_string())?;
    let prompt = tokenizer.encode("Write a short story about a robot who learns to paint.");
    let limits = gpu::JobLimits {
        wall_time_max_ms: 600_000,
        ..gpu::JobLimits::default()
    };
    let run = |max_tokens: u32| {
        let job = gpu::kernels::llm::LlmJob {
            model: Arc::clone(&model),
            prompt: prompt.clone(),
            max_tokens,
            eos: u32::MAX,
            sampling: Sampling::Greedy,
        };
        let started = std::time::Instant::now();
        let out = executor.llm(job, &limits).map_err(|e| e.to_string())?;
        Ok::<_, String>((started.elapsed().as_secs_f64(), out.tokens))
    };
    let (prefill_s, _) = run(1)?;
    let (total_s, out) = run(tokens)?;
    let decode_s = total_s - prefill_s;
    Ok(format!(
        "adapter: {}\nprefill: {} tokens + 1 in {prefill_s:.2} s ({:.1} tokens/s, weights upload included)\n\
         decode: {} tokens in {decode_s:.2} s = {:.1} tokens/s\ntext: {:?}",
        executor.adapter().name,
        prompt.len(),
        (prompt.len() + 1) as f64 / prefill_s,
        out.len() - 1,
        (out.len() - 1) as f64 / decode_s,
        tokenizer.decode(&out)
    ))
}

fn bench(args: &[String], json: bool) -> Result<String, String> {
    let mut config = BenchConfig::default();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--matmul" => config.matmul_n = parse(flag, it.next())?,
            "--sha-messages" => config.sha_messages = parse(flag, it.next())?,
            "--pow-bits" => config.pow_bits = parse(flag, it.next())?,
            "--pow-nonces" => config.pow_nonces = parse(flag, it.next())?,
            "--mlp-batch" => config.mlp_batch = parse(flag, it.next())?,
            "--repeats" => config.repeats = parse(flag, it.next())?,
            "--json" => {}
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    let report = gpu::bench::run(&config).map_err(|e| e.to_string())?;
    Ok(if json {
        serde_json::to_string_pretty(&report).unwrap_or_default()
    } else {
        report.to_string()
    })
}

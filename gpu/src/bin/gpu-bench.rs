//! `gpu-bench info` | `gpu-bench bench [--matmul N] [--sha-messages N] [--pow-bits N]
//! [--mlp-batch N] [--pow-nonces N] [--repeats N] [--json]`

use std::process::ExitCode;

use gpu::bench::BenchConfig;

const USAGE: &str = "usage: gpu-bench info [--json]
       gpu-bench bench [--matmul N] [--sha-messages N] [--pow-bits N] [--pow-nonces N]
                       [--mlp-batch N] [--repeats N] [--json]";

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

//! Benchmark of the [`store::FileStore`] log: durable append throughput and latency under 1,
//! 64 and 1024 concurrent appenders (one 256-byte event per append, one stream per appender),
//! then replay throughput on open.
//!
//! ```text
//! cargo run --release -p store --bin store-bench -- [--dir D] [--events N] [--secs S]
//! ```
//!
//! `--dir` (default: the current directory) must be on the disk under test, not a tmpfs.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use store::{EventId, EventStore, ExpectedRevision, FileStore, NewEvent};

const EVENT_DATA_LEN: usize = 256;
const CONCURRENCIES: [usize; 3] = [1, 64, 1024];

struct Args {
    dir: PathBuf,
    events: u64,
    secs: f64,
}

fn usage() -> ! {
    eprintln!("usage: store-bench [--dir D] [--events N] [--secs S]");
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut args = Args {
        dir: PathBuf::from("."),
        events: 1_000_000,
        secs: 3.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--dir" => args.dir = PathBuf::from(value),
            "--events" => args.events = value.parse().unwrap_or_else(|_| usage()),
            "--secs" => args.secs = value.parse().unwrap_or_else(|_| usage()),
            _ => usage(),
        }
    }
    args
}

/// Sum and count of a histogram in the default registry.
fn histogram(name: &str) -> (f64, u64) {
    prometheus::gather()
        .iter()
        .filter(|f| f.name() == name)
        .flat_map(|f| f.get_metric().iter())
        .map(|m| {
            let h = m.get_histogram();
            (h.get_sample_sum(), h.get_sample_count())
        })
        .fold((0.0, 0), |(s, c), (s2, c2)| (s + s2, c + c2))
}

struct Row {
    appenders: usize,
    events: u64,
    events_per_s: f64,
    p50_us: u32,
    p99_us: u32,
    events_per_sync: f64,
    sync_ms: f64,
}

fn event(id: u128) -> NewEvent {
    let mut data = vec![b'x'; EVENT_DATA_LEN];
    data[..16].copy_from_slice(&id.to_le_bytes());
    NewEvent {
        id: EventId(id),
        event_type: "BenchEvent".into(),
        data,
    }
}

async fn appenders(dir: &Path, concurrency: usize, secs: f64) -> Row {
    let store = FileStore::open(dir).expect("open store");
    let (sync_sum0, syncs0) = histogram("aitbc_store_fdatasync_seconds");
    let (events0, _) = histogram("aitbc_store_group_commit_events");
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(secs);
    let mut tasks = Vec::with_capacity(concurrency);
    for t in 0..concurrency {
        let store: Arc<dyn EventStore> = store.clone();
        tasks.push(tokio::spawn(async move {
            let stream = format!("bench-{concurrency}-{t}");
            let mut latencies_us = Vec::with_capacity(4096);
            let mut revision: Option<u64> = None;
            let mut seq = 0u128;
            while Instant::now() < deadline {
                let id = (t as u128) << 64 | seq;
                seq += 1;
                let expected = revision.map_or(ExpectedRevision::NoStream, ExpectedRevision::Exact);
                let sent = Instant::now();
                let out = store
                    .append(&stream, expected, vec![event(id)])
                    .await
                    .expect("append");
                latencies_us.push(sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                revision = Some(out.revisions[0]);
            }
            latencies_us
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.expect("appender"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (sync_sum1, syncs1) = histogram("aitbc_store_fdatasync_seconds");
    let (events1, _) = histogram("aitbc_store_group_commit_events");
    store.close();
    latencies.sort_unstable();
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize];
    let syncs = (syncs1 - syncs0).max(1) as f64;
    Row {
        appenders: concurrency,
        events: latencies.len() as u64,
        events_per_s: latencies.len() as f64 / elapsed,
        p50_us: pct(0.50),
        p99_us: pct(0.99),
        events_per_sync: (events1 - events0) / syncs,
        sync_ms: (sync_sum1 - sync_sum0) / syncs * 1e3,
    }
}

async fn fill(dir: &Path, events: u64) -> Duration {
    const BATCH: u64 = 1000;
    const STREAMS: u64 = 1000;
    let store = FileStore::open(dir).expect("open store");
    let started = Instant::now();
    let mut written = 0;
    let mut i = 0u64;
    while written < events {
        let n = BATCH.min(events - written);
        let batch: Vec<NewEvent> = (0..n)
            .map(|k| event(u128::from(written + k) | 1 << 100))
            .collect();
        let stream = format!("replay-{}", i % STREAMS);
        store
            .append(&stream, ExpectedRevision::Any, batch)
            .await
            .expect("append");
        written += n;
        i += 1;
    }
    let took = started.elapsed();
    store.close();
    took
}

fn main() {
    let args = parse_args();
    let base = args.dir.join(format!("store-bench-{}", std::process::id()));
    std::fs::create_dir_all(&base).expect("create bench directory");
    let base = base.canonicalize().expect("bench directory");
    println!(
        "store-bench in {} ({} s per run)",
        base.display(),
        args.secs
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut rows = Vec::new();
    for c in CONCURRENCIES {
        let row = rt.block_on(appenders(&base.join(format!("append-{c}")), c, args.secs));
        rows.push(row);
    }
    println!();
    println!(
        "durable appends: one {EVENT_DATA_LEN}-byte event per append, one stream per appender"
    );
    println!(
        "{:>10} {:>10} {:>12} {:>10} {:>10} {:>12} {:>10}",
        "appenders", "events", "events/s", "p50 ms", "p99 ms", "events/sync", "sync ms"
    );
    for r in &rows {
        println!(
            "{:>10} {:>10} {:>12.0} {:>10.3} {:>10.3} {:>12.1} {:>10.3}",
            r.appenders,
            r.events,
            r.events_per_s,
            f64::from(r.p50_us) / 1e3,
            f64::from(r.p99_us) / 1e3,
            r.events_per_sync,
            r.sync_ms
        );
    }

    let replay_dir = base.join("replay");
    let fill_took = rt.block_on(fill(&replay_dir, args.events));
    let bytes: u64 = std::fs::read_dir(replay_dir.join("log"))
        .expect("log dir")
        .map(|e| e.expect("entry").metadata().expect("metadata").len())
        .sum();
    let started = Instant::now();
    let store = FileStore::open(&replay_dir).expect("reopen");
    let took = started.elapsed().as_secs_f64();
    assert_eq!(store.next_position(), args.events);
    drop(store);
    println!();
    println!(
        "replay on open: {} events, {:.1} MiB in segments (written in {:.2} s, batches of 1000)",
        args.events,
        bytes as f64 / (1 << 20) as f64,
        fill_took.as_secs_f64()
    );
    println!("{:>10} {:>12} {:>12}", "seconds", "events/s", "MiB/s");
    println!(
        "{:>10.3} {:>12.0} {:>12.0}",
        took,
        args.events as f64 / took,
        bytes as f64 / (1 << 20) as f64 / took
    );
    if let Err(e) = std::fs::remove_dir_all(&base) {
        eprintln!("could not remove {}: {e}", base.display());
    }
}

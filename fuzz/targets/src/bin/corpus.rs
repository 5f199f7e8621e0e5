//! The corpus packs (`fuzz/corpus/<target>.pack`, one file per target instead of thousands):
//!
//! ```text
//! corpus unpack TARGET DIR   # each input into DIR, named by the start of its SHA-256
//! corpus pack DIR TARGET     # every file of DIR into the target's pack, in name order
//! ```

use std::path::Path;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["unpack", target, dir] => unpack(target, Path::new(dir)),
        ["pack", dir, target] => pack(Path::new(dir), target),
        _ => Err("usage: corpus unpack TARGET DIR | corpus pack DIR TARGET".to_string()),
    };
    if let Err(error) = result {
        eprintln!("corpus: {error}");
        std::process::exit(1);
    }
}

fn unpack(target: &str, dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for input in fuzz_targets::corpus(target)? {
        let name = &domain::hash::Hash32::digest(&input).to_hex()[..16];
        std::fs::write(dir.join(name), input).map_err(|e| format!("{name}: {e}"))?;
    }
    Ok(())
}

fn pack(dir: &Path, target: &str) -> Result<(), String> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .map(|entry| entry.map(|e| e.path()).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    names.sort();
    let inputs = names
        .iter()
        .map(|path| std::fs::read(path).map_err(|e| format!("{}: {e}", path.display())))
        .collect::<Result<Vec<_>, _>>()?;
    fuzz_targets::write_corpus(target, &inputs)
}

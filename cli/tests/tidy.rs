//! Style checked by a test, not by review: no debugging leftovers, no ignored tests, no
//! placeholder macros, and no very long lines in product code.

use std::path::{Path, PathBuf};

const LINE_LEN_MAX: usize = 150;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() {
            if !name.starts_with('.') && !name.starts_with("target") && name != "aitbc-data" {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

#[test]
fn the_code_is_tidy() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(files.len() > 20, "found the workspace's sources");
    let banned = [
        ["db", "g!("].concat(),
        ["to", "do!("].concat(),
        ["unimpl", "emented!("].concat(),
        ["#[ig", "nore"].concat(),
    ];
    let mut problems = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("readable source");
        let product = file.components().any(|c| c.as_os_str() == "src");
        for (number, line) in text.lines().enumerate() {
            for word in &banned {
                if line.contains(word.as_str()) {
                    problems.push(format!(
                        "{}:{}: contains {word}",
                        file.display(),
                        number + 1
                    ));
                }
            }
            if product && line.chars().count() > LINE_LEN_MAX {
                problems.push(format!(
                    "{}:{}: longer than {LINE_LEN_MAX} characters",
                    file.display(),
                    number + 1
                ));
            }
        }
    }
    assert!(problems.is_empty(), "untidy code:\n{}", problems.join("\n"));
}

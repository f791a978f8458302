//! The engine holds no channel-specific code: it never names a channel kind nor a
//! configured channel's provider kind outside its tests. What differs from one channel to
//! another is data (capabilities, `relais_core::channel::ChannelKind`'s rules) or lives
//! in `relais-channels`.

use relais_core::channel::ChannelKind;
use std::path::{Path, PathBuf};

fn sources(dir: &Path, found: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// The file's code without its unit tests (a `#[cfg(test)]` module, which Relais keeps
/// at the bottom of a file, or a whole `tests.rs`).
fn code_of(path: &Path) -> String {
    if path.file_name().is_some_and(|n| n == "tests.rs") {
        return String::new();
    }
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

/// Where the engine names a channel, as `file:line: text`.
fn channel_names(root: &Path) -> Vec<String> {
    let mut files = Vec::new();
    sources(root, &mut files);
    files.sort();
    let mut names: Vec<String> = ChannelKind::ALL
        .iter()
        .map(|kind| format!("ChannelKind::{kind:?}"))
        .collect();
    names.extend(
        relais_channels::configured::KINDS
            .iter()
            .map(|kind| format!("\"{kind}\"")),
    );
    let mut found = Vec::new();
    for file in files {
        for (number, line) in code_of(&file).lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for name in &names {
                let named = code.match_indices(name.as_str()).any(|(at, _)| {
                    let after = &code[at + name.len()..];
                    // `ChannelKind::Sms` but not `ChannelKind::SmsFoo`; `"email"` but not
                    // the key of a JSON object (`json!({"email": agent.email})`).
                    let longer_name = after.starts_with(|c: char| c.is_alphanumeric() || c == '_');
                    let json_key = name.starts_with('"') && after.trim_start().starts_with(':');
                    !longer_name && !json_key
                });
                if named {
                    found.push(format!(
                        "{}:{}: {}",
                        file.display(),
                        number + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    found
}

#[test]
fn the_engine_names_no_channel_outside_its_tests() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = channel_names(&root);
    assert!(
        found.is_empty(),
        "channel-specific code in the engine (make it data, or move it to relais-channels):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_finds_a_channel_named_in_code() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::write(
        dir.path().join("route.rs"),
        "fn pick(k: ChannelKind) -> bool {\n    k == ChannelKind::Whatsapp // a branch\n}\n\
         fn provider(kind: &str) -> bool { kind == \"smpp\" }\n\
         #[cfg(test)]\nmod tests {\n    fn t() { let _ = ChannelKind::Sms; }\n}\n",
    )
    .expect("a source file");
    let found = channel_names(dir.path());
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].ends_with("route.rs:2: k == ChannelKind::Whatsapp // a branch"));
    assert!(found[1].contains("\"smpp\""));
}

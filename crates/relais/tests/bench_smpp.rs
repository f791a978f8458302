//! `relais bench smpp` end to end on a few messages, Kannel off: exits 0 and prints a rate.

#[test]
fn bench_smpp_runs_and_prints_a_rate() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_relais"))
        .args(["bench", "smpp", "--messages", "200", "--kannel", "no"])
        .env("RELAIS_LOG", "warn")
        .output()
        .expect("run relais bench smpp");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("relais msg/s: "))
        .unwrap_or_else(|| panic!("no msg/s line in:\n{stdout}"));
    let rate: f64 = line["relais msg/s: ".len()..]
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no number in {line:?}"));
    assert!(rate > 0.0, "{line}");
    assert!(stdout.contains("relais         200"), "{stdout}");
}

//! The benchmark harness's regression guard: every scenario runs briefly
//! against the real binaries (ceiling included) and must finish without a
//! single failed request. Timings are printed, never asserted: CI machines
//! are noisy; the numbers that count come from `ec2-bench` in release mode.

use std::process::Command;

#[test]
fn every_bench_scenario_runs_without_errors() {
    let output = Command::new(env!("CARGO_BIN_EXE_ec2-bench"))
        .args([
            "--quick",
            "--fail-on-errors",
            "--gateway-binary",
            env!("CARGO_BIN_EXE_ec2-gateway"),
        ])
        .output()
        .expect("run ec2-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "ec2-bench failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for scenario in [
        "describe-zones",
        "describe-instances full @300",
        "run-instances @10",
        "run-terminate churn",
        "mixed",
    ] {
        assert!(
            stdout.contains(scenario),
            "{scenario} missing from the report"
        );
    }
    assert!(
        stdout.contains("bare-hyper ceiling"),
        "the ceiling probe did not run"
    );
}

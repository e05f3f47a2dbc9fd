//! `kubectl-approval` against the real control plane: the binary as approvers run it, with
//! users by impersonation (`--as`), also through kubectl's and tkn's plugin mechanisms.

use std::path::PathBuf;
use std::process::Output;

use approval_e2e::*;
use serde_json::json;

/// The CLI binary (e2e.sh sets it to the one `make build` produced).
fn cli_path() -> PathBuf {
    std::env::var_os("APPROVAL_E2E_CLI")
        .map(PathBuf::from)
        .expect("APPROVAL_E2E_CLI (set by e2e.sh)")
}

/// Runs the CLI in the scenario's namespace; `(exit code, stdout, stderr)`.
async fn cli(s: &Scenario, args: &[&str]) -> (i32, String, String) {
    let output = tokio::process::Command::new(cli_path())
        .args(args)
        .args(["-n", &s.namespace])
        .output()
        .await
        .expect("running kubectl-approval");
    split(output)
}

fn split(output: Output) -> (i32, String, String) {
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The table row of `gate`, split into columns.
fn row<'a>(table: &'a str, gate: &str) -> Vec<&'a str> {
    table
        .lines()
        .find(|line| line.split_whitespace().next() == Some(gate))
        .unwrap_or_else(|| panic!("no row for {gate} in:\n{table}"))
        .split_whitespace()
        .collect()
}

fn single_gate(approvers: &[&str], min_approvals: &str) -> serde_json::Value {
    json!({"tasks": [
        gate_task("approve", &[], json!([
            {"name": "approvers", "value": approvers},
            {"name": "minApprovals", "value": min_approvals},
            {"name": "message", "value": "Release v1.2 to production?"},
        ])),
        noop_task("deploy", &["approve"]),
    ]})
}

#[tokio::test]
async fn list_shows_a_waiting_gate_decidable_by_alice_and_not_by_mallory() {
    let s = scenario("cli_list").await;
    s.start_pipeline("release", single_gate(&["alice"], "1"), json!({}))
        .await;
    s.wait_gate_reason("release-approve", "AwaitingApproval")
        .await;

    let (code, table, stderr) = cli(&s, &["list", "--as", "alice"]).await;
    assert_eq!(code, 0, "{stderr}");
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "PIPELINERUN",
            "STATUS",
            "APPROVALS",
            "APPROVERS",
            "AGE",
            "DEADLINE",
            "CAN-DECIDE"
        ]
    );
    let alice_row = row(&table, "release-approve");
    assert_eq!(
        alice_row[1..5],
        ["release", "AwaitingApproval", "0/1", "alice"]
    );
    assert_eq!(alice_row[7], "yes", "{table}");

    let (code, table, stderr) = cli(&s, &["list", "--as", "mallory", "--as-group", "qa"]).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(row(&table, "release-approve")[7], "no", "{table}");

    let (code, json_out, _) = cli(&s, &["list", "--as", "alice", "-o", "json"]).await;
    assert_eq!(code, 0);
    let data: serde_json::Value = serde_json::from_str(&json_out).unwrap();
    assert_eq!(data["items"][0]["name"], "release-approve");
    assert_eq!(data["items"][0]["canDecide"], true);
    assert_eq!(data["items"][0]["message"], "Release v1.2 to production?");
}

#[tokio::test]
async fn the_plugin_works_through_kubectl_and_tkn() {
    let s = scenario("cli_plugins").await;
    s.start_pipeline("release", single_gate(&["alice"], "1"), json!({}))
        .await;
    s.wait_gate_reason("release-approve", "AwaitingApproval")
        .await;
    // Both tools find `<tool>-approval` on PATH (tkn also in its plugins directory).
    let plugins = std::env::temp_dir().join(format!("approval-plugins-{}", s.namespace));
    std::fs::create_dir_all(&plugins).unwrap();
    for name in ["kubectl-approval", "tkn-approval"] {
        let link = plugins.join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(cli_path(), &link).unwrap();
    }
    let path = format!(
        "{}:{}",
        plugins.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for (tool, env) in [
        ("APPROVAL_E2E_KUBECTL", "kubectl approval"),
        ("APPROVAL_E2E_TKN", "tkn approval"),
    ] {
        let program = std::env::var(tool).unwrap_or_else(|_| panic!("{tool} (set by e2e.sh)"));
        let output = tokio::process::Command::new(&program)
            .args(["approval", "list", "-n", &s.namespace, "--as", "alice"])
            .env("PATH", &path)
            .env("TKN_PLUGINS_DIR", &plugins)
            .output()
            .await
            .unwrap();
        let (code, table, stderr) = split(output);
        assert_eq!(code, 0, "{env} list: {stderr}");
        assert_eq!(row(&table, "release-approve")[7], "yes", "{env}:\n{table}");
        // The plugin names itself after the tool that ran it.
        let output = tokio::process::Command::new(&program)
            .args(["approval", "--help"])
            .env("PATH", &path)
            .env("TKN_PLUGINS_DIR", &plugins)
            .output()
            .await
            .unwrap();
        let (_, help, _) = split(output);
        assert!(help.contains(&format!("Usage: {env} ")), "{help}");
    }
    let _ = std::fs::remove_dir_all(&plugins);
}

#[tokio::test]
async fn approve_as_alice_moves_the_pipeline_on_and_prints_the_outcome() {
    let s = scenario("cli_approve").await;
    s.start_pipeline("release", single_gate(&["alice"], "1"), json!({}))
        .await;
    s.wait_gate_reason("release-approve", "AwaitingApproval")
        .await;

    let (code, stdout, stderr) = cli(
        &s,
        &[
            "approve",
            "pipelinerun/release",
            "-m",
            "ship it",
            "--as",
            "alice",
        ],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "approved: Approved by alice\n");
    let pipeline = s.wait_pipelinerun_done("release").await;
    assert_eq!(
        pipelinerun_condition(&pipeline).unwrap(),
        ("True".into(), "Succeeded".into())
    );
    let gate = s.customruns().get("release-approve").await.unwrap();
    assert_eq!(result(&gate, "comments"), r#"["alice: ship it"]"#);

    let (code, text, stderr) = cli(&s, &["describe", "release-approve", "--as", "alice"]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(text.contains("PipelineRun:    release\n"), "{text}");
    assert!(text.contains("Pipeline task:  approve\n"), "{text}");
    let decision = text
        .lines()
        .find(|l| l.contains(" alice ") && l.contains(" approve "))
        .unwrap_or_else(|| panic!("no decision line in:\n{text}"));
    assert!(decision.ends_with("ship it"), "{text}");
    assert!(text.contains("decision:     approved"), "{text}");

    // Deciding again: the gate has ended; nothing is written.
    let (code, _, stderr) = cli(&s, &["approve", "release-approve", "--as", "alice"]).await;
    assert_eq!(code, 5, "{stderr}");
    assert!(stderr.contains("was approved at"), "{stderr}");
}

#[tokio::test]
async fn approve_with_an_input_for_later_is_shown_by_describe_and_list() {
    let s = scenario("cli_input_later").await;
    s.start_pipeline(
        "release",
        json!({"tasks": [gate_task("approve", &[], json!([
            {"name": "approvers", "value": ["alice", "bob"]},
            {"name": "inputs", "value": "- {name: target, choices: [staging, production], required: true}"},
        ]))]}),
        json!({}),
    )
    .await;
    s.wait_gate_reason("release-approve", "AwaitingApproval")
        .await;
    let (code, text, stderr) = cli(&s, &["describe", "release-approve", "--as", "alice"]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        text.contains("  target   staging|production   (required)"),
        "{text}"
    );
    let (code, _, stderr) = cli(
        &s,
        &[
            "approve",
            "pr/release",
            "--input",
            "target=qa",
            "--as",
            "alice",
        ],
    )
    .await;
    assert_eq!(code, 3, "denied: {stderr}");
    assert!(
        stderr.contains("input `target` must be one of staging, production, got `qa`"),
        "{stderr}"
    );
    let (code, stdout, stderr) = cli(
        &s,
        &[
            "approve",
            "pr/release",
            "--input",
            "target=production",
            "--in",
            "30m",
            "--as",
            "alice",
        ],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.starts_with("recorded: Waiting for 1 more approval (0 of 1)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("; alice's approval takes effect at "),
        "{stdout}"
    );
    assert!(stdout.trim_end().ends_with("(deferred)"), "{stdout}");
    let (code, text, stderr) = cli(&s, &["describe", "release-approve", "--as", "bob"]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        text.contains("Waiting until:  alice's approval takes effect at "),
        "{text}"
    );
    assert!(
        text.contains("(in 29m)") || text.contains("(in 30m)"),
        "{text}"
    );
    assert!(text.contains("target=production"), "{text}");
    let (code, table, stderr) = cli(&s, &["list", "--as", "bob"]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        table
            .lines()
            .next()
            .unwrap()
            .contains("DEADLINE   WAITING-UNTIL   CAN-DECIDE"),
        "{table}"
    );
    let columns = row(&table, "release-approve");
    assert!(columns[7] == "29m" || columns[7] == "30m", "{table}");
}

#[tokio::test]
async fn reject_with_a_comment_fails_the_gate_after_an_approval_was_recorded() {
    let s = scenario("cli_reject").await;
    s.start_pipeline("release", single_gate(&["alice", "bob"], "2"), json!({}))
        .await;
    s.wait_gate_reason("release-approve", "AwaitingApproval")
        .await;

    let (code, stdout, stderr) = cli(&s, &["approve", "release-approve", "--as", "bob"]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.starts_with("recorded: Waiting for 1 more approval (1 of 2)"),
        "{stdout}"
    );

    let (code, stdout, stderr) = cli(
        &s,
        &[
            "reject",
            "pipelinerun/release",
            "-m",
            "not during the freeze",
            "--as",
            "alice",
        ],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout,
        "rejected: Rejected by alice: not during the freeze\n"
    );
    let gate = s.wait_gate_reason("release-approve", "Rejected").await;
    assert_eq!(condition(&gate).0, "False");
    assert_eq!(result(&gate, "decision"), "rejected");
    assert_eq!(result(&gate, "rejectedBy"), r#"["alice"]"#);
    assert_eq!(
        result(&gate, "comments"),
        r#"["alice: not during the freeze"]"#
    );
    let pipeline = s.wait_pipelinerun_done("release").await;
    assert_eq!(pipelinerun_condition(&pipeline).unwrap().0, "False");
}

#[tokio::test]
async fn mallory_is_denied_in_the_webhooks_own_words() {
    let s = scenario("cli_denied").await;
    s.start_pipeline("release", single_gate(&["alice"], "1"), json!({}))
        .await;
    s.wait_gate_reason("release-approve", "AwaitingApproval")
        .await;

    let (code, stdout, stderr) = cli(
        &s,
        &[
            "approve",
            "release-approve",
            "-m",
            "lgtm",
            "--as",
            "mallory",
        ],
    )
    .await;
    assert_eq!(code, 3, "{stderr}");
    assert_eq!(stdout, "");
    assert_eq!(
        stderr,
        format!(
            "mallory may not decide gate {}/release-approve: its approvers are alice. Ask one \
             of them to approve; being able to annotate is not being an approver\n",
            s.namespace
        )
    );
    let gate = s.customruns().get("release-approve").await.unwrap();
    assert_eq!(condition(&gate).1, "AwaitingApproval");

    let (code, _, stderr) = cli(&s, &["approve", "no-such-gate", "--as", "alice"]).await;
    assert_eq!(code, 4, "{stderr}");
    let (code, _, stderr) = cli(&s, &["reject", "pipelinerun/no-such-run", "--as", "alice"]).await;
    assert_eq!(code, 4, "{stderr}");
    assert!(
        stderr.contains("pipelinerun no-such-run has no approval gate"),
        "{stderr}"
    );
}

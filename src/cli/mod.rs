//! `kubectl-approval` (also installed as `tkn-approval`): the approver's command line.
//!
//! The pure modules decide (arguments, which gate a NAME means, what a gate looks like,
//! tables and describe text, what the API server's answers mean, exit codes); [`cluster`] is
//! the only one that talks to the API server, and this module only wires the two together
//! and prints. The clock is read only here, and passed down.

pub mod args;
pub mod cluster;
pub mod decide;
pub mod describe;
pub mod exit;
pub mod table;
pub mod target;
pub mod text;
pub mod view;

use std::ffi::OsString;
use std::process::ExitCode;

use chrono::Utc;
use serde::Serialize;

use self::args::{Cli, Command, DecideArgs, ListArgs, Output, Shell};
use self::cluster::Cluster;
use self::exit::CliError;
use self::target::Target;
use self::view::GateView;
use crate::approval::ledger::Decision;

/// Runs the command line `args` (the first item is the program's path, which decides
/// whether it calls itself `kubectl approval` or `tkn approval`).
pub async fn run(args: Vec<OsString>) -> ExitCode {
    let display_name = args::display_name(args.first());
    let cli = match args::parse(&display_name, args) {
        Ok(cli) => cli,
        Err(error) => {
            // clap prints help and version to stdout with code 0, mistakes to stderr with 2.
            let _ = error.print();
            return ExitCode::from(error.exit_code().clamp(0, 255) as u8);
        }
    };
    match execute(cli, &display_name).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{}", error.report());
            ExitCode::from(error.exit_code())
        }
    }
}

async fn execute(cli: Cli, display_name: &str) -> Result<(), CliError> {
    match cli.command {
        Command::Completion(completion) => {
            print!("{}", completion_script(completion.shell, display_name));
            Ok(())
        }
        Command::List(list_args) => {
            list(&Cluster::connect(&cli.connection).await?, list_args).await
        }
        // NAMEs are read before connecting: a mistake in one is a usage error, whatever the
        // state of the cluster.
        Command::Describe(describe_args) => {
            let target = Target::parse(&describe_args.name)?;
            let cluster = Cluster::connect(&cli.connection).await?;
            describe(&cluster, &target, describe_args.output).await
        }
        Command::Approve(approve_args) => {
            let target = Target::parse(&approve_args.decide.name)?;
            let cluster = Cluster::connect(&cli.connection).await?;
            let extras = decide::Extras {
                inputs: approve_args.inputs,
                effective_at: match (approve_args.at, approve_args.after) {
                    (Some(at), _) => Some(at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
                    // The webhook adds a duration to its own clock: the approver's may be off.
                    (None, Some(after)) => Some(crate::api::time::format_go_duration(after)),
                    (None, None) => None,
                },
            };
            let decision = Decision::Approve;
            decide(&cluster, &target, decision, approve_args.decide, extras).await
        }
        Command::Reject(decide_args) => {
            let target = Target::parse(&decide_args.name)?;
            let cluster = Cluster::connect(&cli.connection).await?;
            let extras = decide::Extras::default();
            decide(&cluster, &target, Decision::Reject, decide_args, extras).await
        }
    }
}

/// A completion script for the executable `kubectl-approval` or `tkn-approval`. Shells complete
/// executables by name; a name with a space (`kubectl approval`) would make clap_complete
/// write functions that do not match each other.
pub fn completion_script(shell: Shell, display_name: &str) -> String {
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let executable = args::executable_name(display_name);
    let mut command = args::command(display_name)
        .name(executable.clone())
        .bin_name(executable.clone());
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, executable.clone(), &mut script);
    let script = String::from_utf8_lossy(&script).into_owned();
    if shell != clap_complete::Shell::Bash {
        return script;
    }
    // clap_complete's bash script spells a hyphenated executable two ways (clap-rs/clap#6421):
    // the loop that tracks the subcommand writes `kubectl__approval__subcmd__list`, the case
    // arms `kubectl__subcmd__approval__subcmd__list`, so no subcommand's options would ever
    // complete. Spell the arms as the loop does.
    const SEP: &str = "__subcmd__";
    let arms = format!("{}{SEP}", executable.replace('-', SEP));
    let state = format!("{}{SEP}", executable.replace('-', "__"));
    script.replace(&arms, &state)
}

async fn list(cluster: &Cluster, list_args: ListArgs) -> Result<(), CliError> {
    let namespace = (!list_args.all_namespaces).then_some(cluster.namespace.as_str());
    let (runs, identity) = tokio::join!(cluster.gates(namespace), cluster.identity());
    let now = Utc::now();
    let mut views: Vec<GateView> = runs?
        .iter()
        .map(|run| GateView::new(run, identity.as_ref(), now))
        .filter(|view| table::is_listed(view, list_args.all))
        .collect();
    views.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    match list_args.output {
        Some(format) => print!("{}", render(&GateList { items: &views }, format)?),
        // kubectl says "No resources found" on stderr, so that scripts reading stdout see none.
        None if views.is_empty() => {
            eprintln!("{}", table::nothing_listed(list_args.all, namespace))
        }
        None => print!("{}", table::table(&views, list_args.all_namespaces, now)),
    }
    Ok(())
}

async fn describe(
    cluster: &Cluster,
    target: &Target,
    output: Option<Output>,
) -> Result<(), CliError> {
    let (run, identity) = tokio::join!(cluster.find(target), cluster.identity());
    let view = GateView::new(&run?, identity.as_ref(), Utc::now());
    match output {
        Some(format) => print!("{}", render(&view, format)?),
        None => print!(
            "{}",
            describe::describe(&view, identity.as_ref(), Utc::now())
        ),
    }
    Ok(())
}

async fn decide(
    cluster: &Cluster,
    target: &Target,
    decision: Decision,
    decide_args: DecideArgs,
    extras: decide::Extras,
) -> Result<(), CliError> {
    let before = cluster.find(target).await?;
    let name = before.metadata.name.clone().unwrap_or_default();
    let ask = crate::deciding::Ask {
        decision,
        comment: &decide_args.message,
        extras: &extras,
        field_manager: "kubectl-approval",
    };
    let (after, recorded) = cluster.decide(&before, ask).await?;
    let report = match recorded.progress(&after) {
        Some(report) => report,
        None => cluster
            .wait_for(&name, decide_args.wait, |run| {
                recorded.progress(run).is_some()
            })
            .await
            .and_then(|run| recorded.progress(&run))
            .unwrap_or_else(|| recorded.unconfirmed()),
    };
    println!("{}", report.line(&name));
    Ok(())
}

/// `-o json|yaml` of a list: kubectl's shape, so that `jq '.items[]'` works the same.
#[derive(Serialize)]
struct GateList<'a> {
    items: &'a [GateView],
}

/// Data as JSON (pretty, with a final newline) or YAML.
pub fn render<T: Serialize>(data: &T, format: Output) -> Result<String, CliError> {
    let text = match format {
        Output::Json => serde_json::to_string_pretty(data)
            .map(|json| json + "\n")
            .map_err(|e| CliError::Other(e.to_string()))?,
        Output::Yaml => {
            serde_saphyr::to_string(data).map_err(|e| CliError::Other(e.to_string()))?
        }
    };
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::view::tests::{alice, run, waiting_gate};

    #[test]
    fn data_output_is_the_view_in_json_or_yaml() {
        let view = GateView::new(
            &run(waiting_gate()),
            Some(&alice()),
            crate::cli::view::tests::now(),
        );
        let json = render(
            &GateList {
                items: std::slice::from_ref(&view),
            },
            Output::Json,
        )
        .unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
        let item = &parsed["items"][0];
        assert_eq!(item["name"], "release-x7k2p-approve");
        assert_eq!(item["pipelineRun"], "release-x7k2p");
        assert_eq!(item["approvals"], 1);
        assert_eq!(item["minApprovals"], 2);
        assert_eq!(item["canDecide"], true);
        assert_eq!(item["deadline"], "2026-11-23T10:00:01Z");
        assert_eq!(item["decisions"][0]["user"], "bob");
        let yaml = render(&view, Output::Yaml).unwrap();
        assert!(yaml.contains("name: release-x7k2p-approve\n"), "{yaml}");
        assert!(yaml.contains("canDecide: true\n"), "{yaml}");
    }

    #[test]
    fn completion_scripts_complete_the_executable_as_installed() {
        let bash = completion_script(Shell::Bash, "tkn approval");
        assert!(bash.contains("-o default tkn-approval\n"), "{bash}");
        // Every subcommand's case label is one the dispatcher can reach.
        assert!(
            bash.contains("cmd=\"tkn__approval__subcmd__approve\"")
                || bash.contains("cmd=\"tkn-approval__subcmd__approve\""),
            "{bash}"
        );
        let dispatched: Vec<&str> = bash
            .lines()
            .filter_map(|l| l.trim().strip_prefix("cmd=\""))
            .map(|l| l.trim_end_matches('"'))
            .filter(|cmd| !cmd.is_empty())
            .collect();
        assert_eq!(dispatched.len(), 7, "{dispatched:?}");
        for cmd in &dispatched {
            assert!(
                bash.contains(&format!("        {cmd})")),
                "no case for {cmd}"
            );
        }
        assert!(!bash.contains("tkn approval"), "{bash}");
        let zsh = completion_script(Shell::Zsh, "kubectl approval");
        assert!(zsh.starts_with("#compdef kubectl-approval\n"), "{zsh}");
        let fish = completion_script(Shell::Fish, "kubectl approval");
        assert!(fish.contains("complete -c kubectl-approval"), "{fish}");
    }
}

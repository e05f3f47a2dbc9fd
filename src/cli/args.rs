//! The command line: flags, subcommands, help text and the name the program goes by.
//! Pure: parsing a list of strings, no environment and no cluster.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

use super::exit::CliError;
use crate::api::time::parse_go_duration;

/// The exit codes, as documented in `--help` (kept here so the help and the code agree).
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  done (for approve/reject: the decision was recorded)
  1  any other error (cluster unreachable, decision not recorded, ...)
  2  bad command line, or a NAME that matches several gates
  3  denied: the approval webhook or RBAC refused the decision
  4  not found: no such gate (or the PipelineRun has none)
  5  already ended: the gate was decided, timed out or cancelled";

/// The approver's command line for Tekton approval gates: see which gates wait for you,
/// what they ask, and approve or reject them.
#[derive(Parser, Debug, PartialEq)]
#[command(version, disable_help_subcommand = true)]
pub struct Cli {
    /// How to reach the cluster and as whom.
    #[command(flatten)]
    pub connection: Connection,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// kubectl's connection flags; accepted before or after the subcommand.
#[derive(Args, Debug, Default, PartialEq)]
#[command(next_help_heading = "Connection options (as kubectl's)")]
pub struct Connection {
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// The kubeconfig cluster to use.
    #[arg(long, global = true, value_name = "NAME")]
    pub cluster: Option<String>,
    /// The kubeconfig user to use.
    #[arg(long, global = true, value_name = "NAME")]
    pub user: Option<String>,
    /// The namespace (default: the context's namespace).
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Act as this user (impersonation): the webhook then sees this user decide.
    #[arg(long = "as", global = true, value_name = "USER")]
    pub impersonate: Option<String>,
    /// Act as a member of this group (repeat for several); needs --as.
    #[arg(
        long = "as-group",
        global = true,
        value_name = "GROUP",
        requires = "impersonate"
    )]
    pub impersonate_groups: Vec<String>,
}

/// The subcommands.
#[derive(Subcommand, Debug, PartialEq)]
pub enum Command {
    /// List gates: the waiting ones, or all with --all.
    #[command(visible_alias = "ls")]
    List(ListArgs),
    /// Show one gate: what is asked, who may decide, who did, the deadline and the results.
    Describe(DescribeArgs),
    /// Approve a gate (annotates it with approval.tekton.dev/approve).
    Approve(ApproveArgs),
    /// Reject a gate (annotates it with approval.tekton.dev/reject).
    Reject(DecideArgs),
    /// Print a shell completion script.
    Completion(CompletionArgs),
}

/// `list`.
#[derive(Args, Debug, PartialEq)]
pub struct ListArgs {
    /// List gates in every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// List gates in every state, not only the waiting ones.
    #[arg(long)]
    pub all: bool,
    /// Print data instead of a table.
    #[arg(short = 'o', long, value_enum, value_name = "FORMAT")]
    pub output: Option<Output>,
}

/// `describe`.
#[derive(Args, Debug, PartialEq)]
pub struct DescribeArgs {
    /// The gate: a CustomRun name, or pipelinerun/<name> for the gate of a PipelineRun.
    pub name: String,
    /// Print data instead of text.
    #[arg(short = 'o', long, value_enum, value_name = "FORMAT")]
    pub output: Option<Output>,
}

/// `approve` and `reject`.
#[derive(Args, Debug, PartialEq)]
pub struct DecideArgs {
    /// The gate: a CustomRun name, or pipelinerun/<name> for the gate of a PipelineRun.
    pub name: String,
    /// A comment, recorded with the decision and reported in the gate's results.
    #[arg(
        short = 'm',
        long = "message",
        value_name = "TEXT",
        default_value = "",
        hide_default_value = true
    )]
    pub message: String,
    /// How long to wait for the controller to report the outcome (a Go duration; 0s: do not wait).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = wait_duration)]
    pub wait: Duration,
}

/// `approve`: a decision, and what only an approval can say.
#[derive(Args, Debug, PartialEq)]
pub struct ApproveArgs {
    /// The gate, comment and wait.
    #[command(flatten)]
    pub decide: DecideArgs,
    /// A value for one of the gate's inputs (repeat for several); `describe` lists them.
    #[arg(long = "input", value_name = "NAME=VALUE", value_parser = input_pair)]
    pub inputs: Vec<(String, String)>,
    /// Let the approval take effect at this time (RFC 3339, e.g. 2026-12-01T09:00:00Z); a
    /// rejection before then wins.
    #[arg(long, value_name = "TIME", value_parser = rfc3339_time, conflicts_with = "after")]
    pub at: Option<chrono::DateTime<chrono::Utc>>,
    /// Let the approval take effect this long from now (a Go duration, e.g. 2h).
    #[arg(long = "in", value_name = "DURATION", value_parser = wait_duration)]
    pub after: Option<Duration>,
}

/// `completion`.
#[derive(Args, Debug, PartialEq)]
pub struct CompletionArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// A shell `completion` can write a script for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    /// bash
    Bash,
    /// zsh
    Zsh,
    /// fish
    Fish,
}

/// A data format for `-o`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

fn wait_duration(text: &str) -> Result<Duration, String> {
    parse_go_duration(text).map_err(|e| e.to_string())
}

fn input_pair(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_string(), value.to_string()))
        }
        _ => Err(format!(
            "`{text}` is not NAME=VALUE (e.g. --input target=production)"
        )),
    }
}

fn rfc3339_time(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|_| format!("`{text}` is not an RFC 3339 time (e.g. 2026-12-01T09:00:00Z)"))
}

/// The kubeconfig files to read, as kubectl picks them: `--kubeconfig` alone if given, else
/// the files listed in `KUBECONFIG` that exist (kubectl skips missing ones; kube-rs alone would
/// fail on them). `None` leaves the choice to the defaults (`~/.kube/config`, in-cluster).
pub fn kubeconfig_files(
    flag: Option<&Path>,
    env: Option<&OsStr>,
    exists: impl Fn(&Path) -> bool,
) -> Result<Option<Vec<PathBuf>>, CliError> {
    if let Some(path) = flag {
        return Ok(Some(vec![path.to_path_buf()]));
    }
    let Some(value) = env else {
        return Ok(None);
    };
    let listed: Vec<PathBuf> = std::env::split_paths(value)
        .filter(|p| !p.as_os_str().is_empty())
        .collect();
    if listed.is_empty() {
        return Ok(None);
    }
    let existing: Vec<PathBuf> = listed.iter().filter(|p| exists(p)).cloned().collect();
    if existing.is_empty() {
        let names: Vec<String> = listed.iter().map(|p| p.display().to_string()).collect();
        return Err(CliError::Other(format!(
            "no Kubernetes configuration found: none of the KUBECONFIG files exist ({})",
            names.join(", ")
        )));
    }
    Ok(Some(existing))
}

/// How the program calls itself in help and messages: `kubectl approval` or `tkn approval`,
/// from the name it was started under (kubectl and tkn both run `<tool>-<plugin>` from PATH).
pub fn display_name(argv0: Option<&OsString>) -> String {
    let stem = argv0
        .map(PathBuf::from)
        .and_then(|path| path.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let host = if stem.starts_with("tkn-") || stem.starts_with("tkn_") {
        "tkn"
    } else {
        "kubectl"
    };
    format!("{host} approval")
}

/// The executable name the completion scripts are for (`kubectl-approval`, `tkn-approval`):
/// shells complete executables, and `kubectl approval` is run by the shell as `kubectl`.
pub fn executable_name(display_name: &str) -> String {
    display_name.replace(' ', "-")
}

/// The clap command, with help text naming the program as it was started.
pub fn command(display_name: &str) -> clap::Command {
    let examples = |lines: &[&str]| -> String {
        let mut text = String::from("Examples:\n");
        for line in lines {
            if let Some(comment) = line.strip_prefix('#') {
                text.push_str(&format!("  #{comment}\n"));
            } else {
                text.push_str(&format!("  {display_name} {line}\n"));
            }
        }
        text
    };
    let top = format!(
        "{}\nNAME is a CustomRun name, or pipelinerun/<name> (also pr/<name>) for the gate of a \
         PipelineRun.\n\n{EXIT_CODES_HELP}",
        examples(&[
            "# gates waiting in the current namespace, and whether you may decide them",
            "list",
            "# approve the gate of a PipelineRun, with a comment",
            "approve pipelinerun/release-x7k2p -m \"ship it\"",
            "# what a gate asks, who decided so far, its deadline",
            "describe release-x7k2p-approve -n ci",
        ])
    );
    Cli::command()
        .name(display_name.to_string())
        .bin_name(display_name.to_string())
        .after_help(top)
        .mut_subcommand("list", |c| {
            c.after_help(examples(&["list", "list --all -A", "list -n ci -o yaml"]))
        })
        .mut_subcommand("describe", |c| {
            c.after_help(examples(&[
                "describe release-x7k2p-approve",
                "describe pipelinerun/release-x7k2p -o json",
            ]))
        })
        .mut_subcommand("approve", |c| {
            c.after_help(format!(
                "{}\n{EXIT_CODES_HELP}",
                examples(&[
                    "approve release-x7k2p-approve",
                    "approve pipelinerun/release-x7k2p -m \"ship it\" -n ci",
                ])
            ))
        })
        .mut_subcommand("reject", |c| {
            c.after_help(format!(
                "{}\n{EXIT_CODES_HELP}",
                examples(&["reject pipelinerun/release-x7k2p -m \"not during the freeze\""])
            ))
        })
        .mut_subcommand("completion", |c| {
            let exe = executable_name(display_name);
            c.after_help(format!(
                "Examples:\n  \
                 # bash: load now, or install for every session\n  \
                 source <({display_name} completion bash)\n  \
                 {display_name} completion bash > /etc/bash_completion.d/{exe}\n  \
                 # zsh\n  \
                 {display_name} completion zsh > \"${{fpath[1]}}/_{exe}\"\n  \
                 # fish\n  \
                 {display_name} completion fish > ~/.config/fish/completions/{exe}.fish\n\n\
                 The scripts complete the {exe} executable, as PATH provides it."
            ))
        })
}

/// Parses a command line (the first item is the program's own name, as in `std::env::args_os`).
pub fn parse(display_name: &str, args: Vec<OsString>) -> Result<Cli, clap::Error> {
    let mut command = command(display_name);
    let matches = command.try_get_matches_from_mut(args)?;
    Cli::from_arg_matches(&matches).map_err(|e| e.format(&mut command))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_line(line: &str) -> Result<Cli, clap::Error> {
        let args = std::iter::once("kubectl-approval")
            .chain(line.split_whitespace())
            .map(OsString::from)
            .collect();
        parse("kubectl approval", args)
    }

    #[test]
    fn the_program_is_named_after_the_tool_that_runs_it() {
        let name = |s: &str| display_name(Some(&OsString::from(s)));
        assert_eq!(name("/usr/local/bin/kubectl-approval"), "kubectl approval");
        assert_eq!(
            name("/home/me/.krew/bin/kubectl-approval"),
            "kubectl approval"
        );
        assert_eq!(name("tkn-approval"), "tkn approval");
        assert_eq!(name("/usr/bin/tkn-approval.exe"), "tkn approval");
        assert_eq!(display_name(None), "kubectl approval");
        assert_eq!(executable_name("tkn approval"), "tkn-approval");
    }

    #[test]
    fn connection_flags_are_accepted_before_or_after_the_subcommand() {
        let before = parse_line("--context prod -n ci --as alice --as-group qa list").unwrap();
        let after = parse_line("list --context prod -n ci --as alice --as-group qa").unwrap();
        assert_eq!(before, after);
        assert_eq!(before.connection.context.as_deref(), Some("prod"));
        assert_eq!(before.connection.namespace.as_deref(), Some("ci"));
        assert_eq!(before.connection.impersonate.as_deref(), Some("alice"));
        assert_eq!(before.connection.impersonate_groups, ["qa"]);
    }

    #[test]
    fn impersonating_a_group_needs_a_user() {
        let err = parse_line("list --as-group qa").unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
    }

    #[test]
    fn list_defaults_to_waiting_gates_in_a_table() {
        let cli = parse_line("list").unwrap();
        assert_eq!(
            cli.command,
            Command::List(ListArgs {
                all_namespaces: false,
                all: false,
                output: None
            })
        );
        let cli = parse_line("ls -A --all -o yaml").unwrap();
        assert_eq!(
            cli.command,
            Command::List(ListArgs {
                all_namespaces: true,
                all: true,
                output: Some(Output::Yaml)
            })
        );
    }

    #[test]
    fn approve_takes_a_name_a_comment_and_a_wait() {
        let args: Vec<OsString> = [
            "kubectl-approval",
            "approve",
            "pipelinerun/release",
            "-m",
            "ship it",
        ]
        .map(OsString::from)
        .into();
        let cli = parse("kubectl approval", args).unwrap();
        assert_eq!(
            cli.command,
            Command::Approve(ApproveArgs {
                decide: DecideArgs {
                    name: "pipelinerun/release".into(),
                    message: "ship it".into(),
                    wait: Duration::from_secs(10),
                },
                inputs: vec![],
                at: None,
                after: None,
            })
        );
        let cli = parse_line("reject gate --wait 0s").unwrap();
        assert_eq!(
            cli.command,
            Command::Reject(DecideArgs {
                name: "gate".into(),
                message: String::new(),
                wait: Duration::ZERO,
            })
        );
    }

    #[test]
    fn approve_takes_inputs_and_a_time_to_take_effect() {
        let cli =
            parse_line("approve gate --input target=production --input note=a=b --in 2h").unwrap();
        let Command::Approve(args) = cli.command else {
            panic!("approve")
        };
        assert_eq!(
            args.inputs,
            [
                ("target".to_string(), "production".to_string()),
                ("note".to_string(), "a=b".to_string())
            ]
        );
        assert_eq!(args.after, Some(Duration::from_secs(7200)));
        let cli = parse_line("approve gate --at 2026-12-01T09:00:00+01:00").unwrap();
        let Command::Approve(args) = cli.command else {
            panic!("approve")
        };
        assert_eq!(args.at, Some("2026-12-01T08:00:00Z".parse().unwrap()));
    }

    #[test]
    fn bad_command_lines_are_usage_errors() {
        for line in [
            "approve gate --input target",
            "approve gate --at tomorrow",
            "approve gate --at 2026-12-01T09:00:00Z --in 2h",
            "reject gate --input target=x",
            "approve",
            "describe",
            "list -o table",
            "approve gate --wait soon",
            "completion powershell",
            "approve a b",
        ] {
            let err = parse_line(line).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{line}: {err}");
        }
    }

    #[test]
    fn all_namespaces_is_a_list_flag_only() {
        assert!(parse_line("describe gate -A").is_err());
    }

    #[test]
    fn help_names_the_program_as_started_and_documents_exit_codes() {
        let help = command("tkn approval").render_long_help().to_string();
        assert!(
            help.contains("Usage: tkn approval [OPTIONS] <COMMAND>"),
            "{help}"
        );
        assert!(help.contains("tkn approval approve pipelinerun/release-x7k2p"));
        assert!(help.contains("3  denied"));
        assert!(help.contains("5  already ended"));
        let mut approve = command("kubectl approval");
        let approve = approve.find_subcommand_mut("approve").unwrap();
        let help = approve.render_long_help().to_string();
        assert!(
            help.contains("kubectl approval approve release-x7k2p-approve"),
            "{help}"
        );
        assert!(help.contains("4  not found"));
    }

    #[test]
    fn the_command_definition_is_consistent() {
        command("kubectl approval").debug_assert();
    }

    #[test]
    fn kubeconfig_files_are_chosen_as_kubectl_chooses_them() {
        let exists = |p: &Path| p != Path::new("/missing");
        let flag = Path::new("/flag");
        assert_eq!(
            kubeconfig_files(Some(flag), Some(OsStr::new("/a:/b")), exists),
            Ok(Some(vec![PathBuf::from("/flag")]))
        );
        assert_eq!(
            kubeconfig_files(None, Some(OsStr::new("/missing:/a::/b")), exists),
            Ok(Some(vec![PathBuf::from("/a"), PathBuf::from("/b")]))
        );
        assert_eq!(kubeconfig_files(None, None, exists), Ok(None));
        assert_eq!(
            kubeconfig_files(None, Some(OsStr::new("")), exists),
            Ok(None)
        );
        let err = kubeconfig_files(None, Some(OsStr::new("/missing")), exists).unwrap_err();
        assert_eq!(err.exit_code(), 1);
        assert!(
            err.to_string()
                .contains("none of the KUBECONFIG files exist (/missing)")
        );
    }
}

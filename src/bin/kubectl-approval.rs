//! `kubectl-approval`, also installed as `tkn-approval`: the approver's command line. All of
//! it lives in the library's `cli` module; this only hands over the command line.

use std::process::ExitCode;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    tekton_approval::cli::run(std::env::args_os().collect()).await
}

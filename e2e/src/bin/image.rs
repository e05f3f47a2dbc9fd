//! `make image`: our controller's image as an OCI archive, built without a container engine
//! from the binary the tests run (see `approval_e2e::image`). Load it anywhere:
//! `docker load -i`, `podman load -i`, `ctr -n k8s.io images import`, `skopeo copy
//! oci-archive:...`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Container images without a container engine")]
struct Args {
    #[command(subcommand)]
    image: Image,
}

#[derive(Subcommand)]
enum Image {
    /// The approval controller's image: the binary, the libraries it links, the CA bundle,
    /// and the numeric non-root user 65532.
    Controller {
        /// The binary to put in it.
        #[arg(long, default_value = "target/debug/approval-controller")]
        binary: PathBuf,
        /// `name:tag` the loaders give it.
        #[arg(
            long,
            default_value = "ghcr.io/tekton-approval/approval-controller:dev"
        )]
        tag: String,
        /// The CA bundle to trust.
        #[arg(long, default_value = "/etc/ssl/certs/ca-certificates.crt")]
        ca_bundle: PathBuf,
        /// Where to write the archive.
        #[arg(long, default_value = "target/image/approval-controller.tar")]
        out: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    match Args::parse().image {
        Image::Controller {
            binary,
            tag,
            ca_bundle,
            out,
        } => {
            let spec = approval_e2e::image::controller(&binary, &tag, &ca_bundle)?;
            let written = approval_e2e::image::write(&spec, &out)?;
            println!(
                "{} {} ({:.1} MB, {})",
                out.display(),
                tag,
                written.size as f64 / 1e6,
                written.digest
            );
        }
    }
    Ok(())
}

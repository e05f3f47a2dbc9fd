//! Container images as OCI archives, built without a container engine (see
//! `approval_e2e::image`): `make image` (our controller, from the binary the tests run), and
//! the base images of the local node (`e2e/scripts/images.sh`: busybox, pause). Load them
//! anywhere: `docker load -i`, `podman load -i`, `ctr -n k8s.io images import`,
//! `skopeo copy oci-archive:...`.

use std::path::PathBuf;

use approval_e2e::image::{Entry, Source, Spec};
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
    /// An image of the files given, nothing else.
    Files {
        /// `name:tag` the loaders give it.
        #[arg(long)]
        tag: String,
        /// Where to write the archive.
        #[arg(long)]
        out: PathBuf,
        /// `SOURCE:PATH[:MODE]`: a file of this machine at PATH in the image (MODE in
        /// octal, default 755).
        #[arg(long = "file")]
        files: Vec<String>,
        /// `TARGET:PATH`: a symbolic link at PATH.
        #[arg(long = "link")]
        links: Vec<String>,
        /// `PATH:MODE`: an empty directory (MODE in octal, e.g. 1777 for /tmp).
        #[arg(long = "dir")]
        dirs: Vec<String>,
        /// The entrypoint, one argument per flag.
        #[arg(long = "entrypoint")]
        entrypoint: Vec<String>,
        /// `uid:gid` to run as.
        #[arg(long)]
        user: Option<String>,
    },
}

/// Reads `SOURCE:PATH[:MODE]`.
fn file_entry(text: &str) -> anyhow::Result<Entry> {
    let mut parts = text.split(':');
    let (Some(source), Some(path)) = (parts.next(), parts.next()) else {
        anyhow::bail!("--file {text}: write SOURCE:PATH[:MODE]");
    };
    let mode = match parts.next() {
        Some(mode) => u32::from_str_radix(mode, 8)
            .map_err(|_| anyhow::anyhow!("--file {text}: MODE is octal, e.g. 755"))?,
        None => 0o755,
    };
    Ok(Entry {
        path: path.into(),
        source: Source::File(source.into()),
        mode,
    })
}

/// Reads `PATH:MODE`.
fn dir_entry(text: &str) -> anyhow::Result<Entry> {
    let (path, mode) = text
        .split_once(':')
        .ok_or_else(|| anyhow::anyhow!("--dir {text}: write PATH:MODE"))?;
    let mode = u32::from_str_radix(mode, 8)
        .map_err(|_| anyhow::anyhow!("--dir {text}: MODE is octal, e.g. 1777"))?;
    Ok(Entry {
        path: path.into(),
        source: Source::Dir,
        mode,
    })
}

/// Reads `TARGET:PATH`.
fn link_entry(text: &str) -> anyhow::Result<Entry> {
    let (target, path) = text
        .split_once(':')
        .ok_or_else(|| anyhow::anyhow!("--link {text}: write TARGET:PATH"))?;
    Ok(Entry {
        path: path.into(),
        source: Source::Symlink(target.into()),
        mode: 0o777,
    })
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
            write(&spec, &out)
        }
        Image::Files {
            tag,
            out,
            files,
            links,
            dirs,
            entrypoint,
            user,
        } => {
            let mut entries = files
                .iter()
                .map(|f| file_entry(f))
                .collect::<anyhow::Result<Vec<_>>>()?;
            for link in &links {
                entries.push(link_entry(link)?);
            }
            for dir in &dirs {
                entries.push(dir_entry(dir)?);
            }
            let spec = Spec {
                tag,
                entries,
                user,
                entrypoint,
                ..Spec::default()
            };
            write(&spec, &out)
        }
    }
}

fn write(spec: &Spec, out: &std::path::Path) -> anyhow::Result<()> {
    let written = approval_e2e::image::write(spec, out)?;
    println!(
        "{} {} ({:.1} MB, {})",
        out.display(),
        spec.tag,
        written.size as f64 / 1e6,
        written.digest
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_links_are_read_as_written_and_mistakes_say_the_form() {
        let entry = file_entry("/bin/busybox:/bin/busybox").unwrap();
        assert_eq!((entry.path.as_str(), entry.mode), ("/bin/busybox", 0o755));
        assert_eq!(file_entry("/etc/x:/etc/x:644").unwrap().mode, 0o644);
        assert!(
            file_entry("/only-one")
                .unwrap_err()
                .to_string()
                .contains("SOURCE:PATH[:MODE]")
        );
        assert!(
            file_entry("/a:/b:rwx")
                .unwrap_err()
                .to_string()
                .contains("octal")
        );
        let link = link_entry("/bin/busybox:/bin/sh").unwrap();
        assert!(matches!(link.source, Source::Symlink(ref t) if t == "/bin/busybox"));
        assert_eq!(link.path, "/bin/sh");
        assert!(link_entry("nothing").is_err());
    }
}

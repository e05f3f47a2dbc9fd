//! Container images without a container engine: one layer from a list of files, written as
//! an OCI image layout in a tar archive that also carries Docker's `manifest.json`, so
//! `docker load`, `podman load`, `ctr images import` and `skopeo copy oci-archive:` all
//! read it. The archive is deterministic (sorted entries, zero times and owners), so the
//! same inputs give the same digest and a build can be cached by it.
//!
//! Layers are not compressed: these images go into a registry on this machine, and an
//! uncompressed layer is the one form every loader accepts.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use ring::digest::{SHA256, digest};
use serde_json::{Value, json};

/// What an entry of the layer holds.
#[derive(Clone, Debug)]
pub enum Source {
    /// A file of this machine, copied (symlinks followed).
    File(PathBuf),
    /// These bytes.
    Bytes(Vec<u8>),
    /// A symbolic link to this target.
    Symlink(String),
    /// A directory.
    Dir,
}

/// One entry of the layer.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Its absolute path in the image.
    pub path: String,
    /// What it holds.
    pub source: Source,
    /// Its permission bits.
    pub mode: u32,
}

/// An image to write.
#[derive(Clone, Debug, Default)]
pub struct Spec {
    /// `name:tag`, as `docker load` will name it.
    pub tag: String,
    /// The layer's entries; parent directories are added as needed.
    pub entries: Vec<Entry>,
    /// `uid:gid` the container runs as (numeric, for `runAsNonRoot`).
    pub user: Option<String>,
    /// The entrypoint.
    pub entrypoint: Vec<String>,
    /// `KEY=value` pairs.
    pub env: Vec<String>,
    /// The working directory.
    pub workdir: Option<String>,
}

/// The image's digest (`sha256:...` of its OCI manifest) and size of the archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    /// The manifest digest.
    pub digest: String,
    /// Bytes written.
    pub size: u64,
}

fn sha256(bytes: &[u8]) -> String {
    let hash = digest(&SHA256, bytes);
    hash.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn header(path: &str, kind: tar::EntryType, mode: u32, size: u64) -> anyhow::Result<tar::Header> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_path(path)?;
    header.set_mode(mode);
    header.set_size(size);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_cksum();
    Ok(header)
}

/// The layer: a tar of the entries (paths relative, parents first, in order).
pub fn layer(entries: &[Entry]) -> anyhow::Result<Vec<u8>> {
    let mut by_path: BTreeMap<String, &Entry> = BTreeMap::new();
    for entry in entries {
        let path = entry
            .path
            .trim_start_matches('/')
            .trim_end_matches('/')
            .to_string();
        if path.is_empty() || path.split('/').any(|part| part == ".." || part == ".") {
            bail!(
                "image entry `{}`: give an absolute path without . or ..",
                entry.path
            );
        }
        if by_path.insert(path.clone(), entry).is_some() {
            bail!("image entry `{}` is given twice", entry.path);
        }
    }
    let mut dirs: std::collections::BTreeSet<String> = Default::default();
    for path in by_path.keys() {
        let mut parent = Path::new(path).parent();
        while let Some(dir) = parent.filter(|d| !d.as_os_str().is_empty()) {
            let name = dir.to_string_lossy().to_string();
            if !by_path.contains_key(&name) {
                dirs.insert(name);
            }
            parent = dir.parent();
        }
    }
    let mut builder = tar::Builder::new(Vec::new());
    let mut all: Vec<(String, Option<&Entry>)> = dirs.into_iter().map(|d| (d, None)).collect();
    all.extend(by_path.iter().map(|(p, e)| (p.clone(), Some(*e))));
    // Sorted by path, a directory sorts before what it holds.
    all.sort_by(|a, b| a.0.cmp(&b.0));
    for (path, entry) in all {
        match entry.map(|e| (&e.source, e.mode)) {
            None => {
                let header = header(&format!("{path}/"), tar::EntryType::Directory, 0o755, 0)?;
                builder.append(&header, std::io::empty())?;
            }
            Some((Source::Dir, mode)) => {
                let header = header(&format!("{path}/"), tar::EntryType::Directory, mode, 0)?;
                builder.append(&header, std::io::empty())?;
            }
            Some((Source::Symlink(target), mode)) => {
                let mut header = header(&path, tar::EntryType::Symlink, mode, 0)?;
                header.set_link_name(target)?;
                header.set_cksum();
                builder.append(&header, std::io::empty())?;
            }
            Some((Source::Bytes(bytes), mode)) => {
                let header = header(&path, tar::EntryType::Regular, mode, bytes.len() as u64)?;
                builder.append(&header, bytes.as_slice())?;
            }
            Some((Source::File(source), mode)) => {
                let bytes = std::fs::read(source)
                    .with_context(|| format!("reading {} for the image", source.display()))?;
                let header = header(&path, tar::EntryType::Regular, mode, bytes.len() as u64)?;
                builder.append(&header, bytes.as_slice())?;
            }
        }
    }
    Ok(builder.into_inner()?)
}

/// Writes the image archive to `out`.
pub fn write(spec: &Spec, out: &Path) -> anyhow::Result<Written> {
    let layer = layer(&spec.entries)?;
    let layer_digest = sha256(&layer);
    let mut config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": spec.env, "Entrypoint": spec.entrypoint},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{layer_digest}")]},
        "history": [{"created_by": "approval-e2e image", "comment": "one layer, no base image"}],
    });
    if let Some(user) = &spec.user {
        config["config"]["User"] = user.clone().into();
    }
    if let Some(dir) = &spec.workdir {
        config["config"]["WorkingDir"] = dir.clone().into();
    }
    let config = serde_json::to_vec(&config)?;
    let config_digest = sha256(&config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": format!("sha256:{config_digest}"), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": format!("sha256:{layer_digest}"), "size": layer.len()}],
    }))?;
    let manifest_digest = sha256(&manifest);
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": format!("sha256:{manifest_digest}"), "size": manifest.len(),
                       "annotations": {"io.containerd.image.name": spec.tag,
                                       "org.opencontainers.image.ref.name": tag_of(&spec.tag)}}],
    }))?;
    let docker = serde_json::to_vec(&json!([{
        "Config": format!("blobs/sha256/{config_digest}"),
        "RepoTags": [spec.tag],
        "Layers": [format!("blobs/sha256/{layer_digest}")],
    }]))?;
    let files: [(String, &[u8]); 6] = [
        ("blobs/sha256/".into(), &[]),
        (format!("blobs/sha256/{config_digest}"), &config),
        (format!("blobs/sha256/{layer_digest}"), &layer),
        (format!("blobs/sha256/{manifest_digest}"), &manifest),
        ("index.json".into(), &index),
        ("manifest.json".into(), &docker),
    ];
    let mut archive = tar::Builder::new(Vec::new());
    for (name, bytes) in [("blobs/", &[][..])]
        .into_iter()
        .chain(files.iter().map(|(n, b)| (n.as_str(), *b)))
    {
        if name.ends_with('/') {
            archive.append(
                &header(name, tar::EntryType::Directory, 0o755, 0)?,
                std::io::empty(),
            )?;
        } else {
            archive.append(
                &header(name, tar::EntryType::Regular, 0o644, bytes.len() as u64)?,
                bytes,
            )?;
        }
    }
    let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
    archive.append(
        &header(
            "oci-layout",
            tar::EntryType::Regular,
            0o644,
            layout.len() as u64,
        )?,
        &layout[..],
    )?;
    let archive = archive.into_inner()?;
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // Written beside, then renamed: a half-written archive is never taken for an image.
    let partial = out.with_extension("partial");
    std::fs::File::create(&partial)?.write_all(&archive)?;
    std::fs::rename(&partial, out)?;
    Ok(Written {
        digest: format!("sha256:{manifest_digest}"),
        size: archive.len() as u64,
    })
}

/// The tag part of `name:tag` (`latest` without one).
fn tag_of(reference: &str) -> String {
    match reference.rsplit_once(':') {
        Some((_, tag)) if !tag.contains('/') => tag.to_string(),
        _ => "latest".to_string(),
    }
}

/// The shared libraries a dynamically linked program loads (`ldd`), as entries at the same
/// paths: the whole userland our binary needs, so the image needs no base image.
pub fn shared_libraries(program: &Path) -> anyhow::Result<Vec<Entry>> {
    let output = std::process::Command::new("ldd")
        .arg(program)
        .output()
        .context("running ldd")?;
    if !output.status.success() {
        bail!(
            "ldd {}: {}",
            program.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let mut entries = Vec::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)` or `/lib64/ld-linux-x86-64.so.2 (0x...)`
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line
                .split_whitespace()
                .next()
                .filter(|p| p.starts_with('/')),
        };
        if let Some(path) = path.filter(|p| p.starts_with('/')) {
            entries.push(Entry {
                path: path.to_string(),
                source: Source::File(path.into()),
                mode: 0o755,
            });
        }
    }
    Ok(entries)
}

/// Our controller's image, with the layout the Dockerfile promises: the binary at
/// `/approval-controller`, the numeric non-root user 65532 (`nonroot`, as distroless), the CA
/// bundle, and the libraries the binary links.
pub fn controller(binary: &Path, tag: &str, ca_bundle: &Path) -> anyhow::Result<Spec> {
    let mut entries = shared_libraries(binary)?;
    entries.extend([
        Entry { path: "/approval-controller".into(), source: Source::File(binary.into()), mode: 0o755 },
        Entry {
            path: "/etc/passwd".into(),
            source: Source::Bytes(b"root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n".to_vec()),
            mode: 0o644,
        },
        Entry {
            path: "/etc/group".into(),
            source: Source::Bytes(b"root:x:0:\nnonroot:x:65532:\n".to_vec()),
            mode: 0o644,
        },
        Entry {
            path: "/etc/ssl/certs/ca-certificates.crt".into(),
            source: Source::File(ca_bundle.into()),
            mode: 0o644,
        },
        // Owned by root like everything in the layer: 0755 so that 65532 can enter it.
        Entry { path: "/home/nonroot".into(), source: Source::Dir, mode: 0o755 },
        Entry { path: "/tmp".into(), source: Source::Dir, mode: 0o1777 },
    ]);
    Ok(Spec {
        tag: tag.to_string(),
        entries,
        user: Some("65532:65532".into()),
        entrypoint: vec!["/approval-controller".into()],
        env: vec!["SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt".into()],
        workdir: Some("/home/nonroot".into()),
    })
}

/// Reads an archive back: its files by name (for checks).
pub fn read(archive: &[u8]) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let mut files = BTreeMap::new();
    for entry in tar::Archive::new(archive).entries()? {
        let mut entry = entry?;
        let name = entry.path()?.to_string_lossy().to_string();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes)?;
        files.insert(name, bytes);
    }
    Ok(files)
}

/// What an archive holds, as [`inspect`] reads it back.
pub struct Inspected {
    /// The manifest `index.json` names.
    pub manifest: Value,
    /// Its config.
    pub config: Value,
    /// The layer's entries: mode and content by path.
    pub files: BTreeMap<String, (u32, Vec<u8>)>,
}

/// Reads an archive back, checking every digest on the way.
pub fn inspect(archive: &[u8]) -> anyhow::Result<Inspected> {
    let files = read(archive)?;
    let blob = |digest: &str| -> anyhow::Result<&Vec<u8>> {
        let name = format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"));
        let bytes = files
            .get(&name)
            .with_context(|| format!("{name} missing"))?;
        if sha256(bytes) != digest.trim_start_matches("sha256:") {
            bail!("{name} does not match its digest");
        }
        Ok(bytes)
    };
    let index: Value =
        serde_json::from_slice(files.get("index.json").context("index.json missing")?)?;
    let manifest: Value = serde_json::from_slice(blob(
        index["manifests"][0]["digest"].as_str().unwrap_or_default(),
    )?)?;
    let config: Value = serde_json::from_slice(blob(
        manifest["config"]["digest"].as_str().unwrap_or_default(),
    )?)?;
    let layer = blob(manifest["layers"][0]["digest"].as_str().unwrap_or_default())?;
    if config["rootfs"]["diff_ids"][0] != manifest["layers"][0]["digest"] {
        bail!("the config's diff_id is not the layer's digest");
    }
    let mut entries = BTreeMap::new();
    for entry in tar::Archive::new(layer.as_slice()).entries()? {
        let mut entry = entry?;
        let name = entry.path()?.to_string_lossy().to_string();
        let mode = entry.header().mode()?;
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes)?;
        entries.insert(name, (mode, bytes));
    }
    Ok(Inspected {
        manifest,
        config,
        files: entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn program() -> PathBuf {
        // Any dynamically linked program of this machine stands in for ours.
        std::env::current_exe().unwrap()
    }

    #[test]
    fn the_controller_image_has_the_layout_the_dockerfile_promises() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.crt");
        std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\n").unwrap();
        let spec = controller(
            &program(),
            "ghcr.io/tekton-approval/approval-controller:dev",
            &ca,
        )
        .unwrap();
        let out = dir.path().join("image.tar");
        let written = write(&spec, &out).unwrap();
        let archive = std::fs::read(&out).unwrap();
        assert_eq!(written.size, archive.len() as u64);
        let Inspected {
            manifest,
            config,
            files,
        } = inspect(&archive).unwrap();
        assert_eq!(
            manifest["mediaType"],
            "application/vnd.oci.image.manifest.v1+json"
        );
        assert_eq!(
            config["config"]["User"], "65532:65532",
            "numeric, for runAsNonRoot"
        );
        assert_eq!(
            config["config"]["Entrypoint"],
            json!(["/approval-controller"])
        );
        let (mode, binary) = &files["approval-controller"];
        assert_eq!(*mode, 0o755);
        assert_eq!(binary, &std::fs::read(program()).unwrap());
        assert!(String::from_utf8_lossy(&files["etc/passwd"].1).contains("nonroot:x:65532:65532"));
        assert!(files.contains_key("etc/ssl/certs/ca-certificates.crt"));
        assert_eq!(files["tmp/"].0, 0o1777);
        assert!(
            files.keys().any(|k| k.contains("libc.so")),
            "{:?}",
            files.keys()
        );
        // Docker's loader finds the same blobs.
        let all = read(&archive).unwrap();
        let docker: Value = serde_json::from_slice(&all["manifest.json"]).unwrap();
        assert_eq!(
            docker[0]["RepoTags"][0],
            "ghcr.io/tekton-approval/approval-controller:dev"
        );
        assert!(all.contains_key(docker[0]["Layers"][0].as_str().unwrap()));
        assert_eq!(all["oci-layout"], br#"{"imageLayoutVersion":"1.0.0"}"#);
    }

    #[test]
    fn the_same_inputs_give_the_same_digest() {
        let dir = tempfile::tempdir().unwrap();
        let spec = Spec {
            tag: "busybox:1".into(),
            entries: vec![
                Entry {
                    path: "/bin/busybox".into(),
                    source: Source::Bytes(b"\x7fELF".to_vec()),
                    mode: 0o755,
                },
                Entry {
                    path: "/bin/sh".into(),
                    source: Source::Symlink("busybox".into()),
                    mode: 0o777,
                },
            ],
            ..Spec::default()
        };
        let first = write(&spec, &dir.path().join("a.tar")).unwrap();
        let second = write(&spec, &dir.path().join("b.tar")).unwrap();
        assert_eq!(first, second);
        let files = inspect(&std::fs::read(dir.path().join("a.tar")).unwrap())
            .unwrap()
            .files;
        assert_eq!(
            files.keys().collect::<Vec<_>>(),
            ["bin/", "bin/busybox", "bin/sh"]
        );
    }

    #[test]
    fn paths_that_escape_or_repeat_are_refused() {
        let entry = |path: &str| Entry {
            path: path.into(),
            source: Source::Dir,
            mode: 0o755,
        };
        assert!(
            layer(&[entry("/etc/../root")])
                .unwrap_err()
                .to_string()
                .contains("without . or ..")
        );
        assert!(layer(&[entry("/")]).is_err());
        assert!(
            layer(&[entry("/a"), entry("/a/")])
                .unwrap_err()
                .to_string()
                .contains("given twice")
        );
        assert_eq!(tag_of("127.0.0.1:5000/busybox"), "latest");
        assert_eq!(tag_of("127.0.0.1:5000/busybox:1.36"), "1.36");
    }
}

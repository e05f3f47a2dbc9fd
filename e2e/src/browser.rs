//! A headless Chromium for the web UI's browser tests, driven over WebDriver with fantoccini
//! through Debian's chromium-driver (`e2e/scripts/browser.sh` installs both). This module
//! owns the browser's whole lifetime: a chromedriver per [`Browser`] on a free loopback port,
//! a fresh profile directory per session (two browsers share no cookies or storage, like two
//! people), and the clean-up, including after a test panicked.

use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use http_body_util::{BodyExt as _, Empty};
use hyper::StatusCode;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustix::process::{Pid, Signal};
use serde_json::{Value, json};

/// How long chromedriver may take to answer its status endpoint after it started.
const DRIVER_START: Duration = Duration::from_secs(20);

/// How long creating a session (starting Chromium) may take; chromedriver's own limit is 60 s.
const SESSION_START: Duration = Duration::from_secs(60);

/// The Chromium and ChromeDriver binaries: `$APPROVAL_E2E_CHROMIUM` and
/// `$APPROVAL_E2E_CHROMEDRIVER` when set, else Debian's `/usr/bin/chromium` and
/// `/usr/bin/chromedriver` when both exist; `None` when there is no browser to drive.
pub fn chromium() -> Option<(PathBuf, PathBuf)> {
    Some((
        binary("APPROVAL_E2E_CHROMIUM", "/usr/bin/chromium")?,
        binary("APPROVAL_E2E_CHROMEDRIVER", "/usr/bin/chromedriver")?,
    ))
}

/// A path from the environment as given (a wrong one fails loudly at start), else the
/// default if it exists.
fn binary(variable: &str, default: &str) -> Option<PathBuf> {
    match std::env::var_os(variable) {
        Some(path) if !path.is_empty() => Some(PathBuf::from(path)),
        _ => Path::new(default).exists().then(|| PathBuf::from(default)),
    }
}

/// One headless Chromium session with its own chromedriver and profile.
pub struct Browser {
    /// The WebDriver session: navigate, find elements, click, run scripts.
    pub client: fantoccini::Client,
    driver: tokio::process::Child,
    /// A fresh, empty `--user-data-dir`, removed with the browser.
    profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver on a free loopback port and a headless Chromium session through
    /// it. Its output goes to `$APPROVAL_STATE/logs/chromedriver-<port>.log` when the e2e
    /// cluster's state directory is set, else nowhere.
    pub async fn start() -> anyhow::Result<Browser> {
        let (chromium, chromedriver) = chromium().ok_or_else(|| {
            anyhow!(
                "no Chromium: run e2e/scripts/browser.sh, or set APPROVAL_E2E_CHROMIUM and \
                 APPROVAL_E2E_CHROMEDRIVER"
            )
        })?;
        let profile = tempfile::Builder::new()
            .prefix("approval-e2e-chromium-")
            .tempdir()
            .context("creating a Chromium profile directory")?;
        let port = free_port()?;
        let (stdout, stderr, log) = driver_output(port);
        let mut driver = tokio::process::Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            // The session's Chromium is killed by profile in Drop; this covers the driver.
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", chromedriver.display()))?;
        let log = log.map_or_else(String::new, |log| format!(" (log: {})", log.display()));
        match connect(&mut driver, port, &chromium, profile.path()).await {
            Ok(client) => Ok(Browser {
                client,
                driver,
                profile,
            }),
            Err(error) => {
                // A session that failed half-way may have started a Chromium already.
                kill_profile_processes(profile.path());
                let _ = driver.kill().await;
                Err(error.context(format!("starting a headless Chromium{log}")))
            }
        }
    }

    /// Ends the session (Chromium quits), stops chromedriver and removes the profile.
    /// Dropping a `Browser` does the same without the orderly goodbye, e.g. when a test
    /// panicked.
    pub async fn close(mut self) {
        if let Err(error) = self.client.clone().close().await {
            eprintln!("browser: closing the WebDriver session: {error}");
        }
        // Chromium normally quits with its session; one that hung must not outlive the test.
        kill_profile_processes(self.profile.path());
        let _ = self.driver.kill().await;
        if let Err(error) = std::fs::remove_dir_all(self.profile.path()) {
            eprintln!(
                "browser: removing the profile {}: {error}",
                self.profile.path().display()
            );
        }
    }

    /// Saves a PNG of the current viewport, e.g. for a failing test's report.
    pub async fn screenshot(&self, path: &Path) -> anyhow::Result<()> {
        let png = self
            .client
            .screenshot()
            .await
            .context("taking a screenshot")?;
        tokio::fs::write(path, png)
            .await
            .with_context(|| format!("writing {}", path.display()))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Killing chromedriver (kill_on_drop, after this) leaves its Chromium running as an
        // orphan; after close() this finds nothing. TempDir then removes the profile.
        kill_profile_processes(self.profile.path());
    }
}

/// A loopback port nothing listens on right now. chromedriver binds it a moment later; the
/// kernel hands out ephemeral ports in turn, so parallel tests do not collide in practice.
fn free_port() -> anyhow::Result<u16> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").context("finding a free loopback port")?;
    Ok(listener.local_addr()?.port())
}

/// Where chromedriver's stdout and stderr go: the cluster's log directory when there is one
/// (as for the harness's other logs), else nowhere.
fn driver_output(port: u16) -> (Stdio, Stdio, Option<PathBuf>) {
    let Ok(state) = std::env::var("APPROVAL_STATE") else {
        return (Stdio::null(), Stdio::null(), None);
    };
    let path = PathBuf::from(format!("{state}/logs/chromedriver-{port}.log"));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path);
    match file.and_then(|file| Ok((file.try_clone()?, file))) {
        Ok((stdout, stderr)) => (stdout.into(), stderr.into(), Some(path)),
        Err(_) => (Stdio::null(), Stdio::null(), None),
    }
}

/// Waits until chromedriver answers, then opens a session with a headless Chromium.
async fn connect(
    driver: &mut tokio::process::Child,
    port: u16,
    chromium: &Path,
    profile: &Path,
) -> anyhow::Result<fantoccini::Client> {
    let url = format!("http://127.0.0.1:{port}");
    let status: Client<HttpConnector, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let deadline = Instant::now() + DRIVER_START;
    loop {
        if let Some(exit) = driver.try_wait()? {
            bail!("chromedriver exited at start: {exit}");
        }
        if driver_ready(&status, &url).await {
            break;
        }
        if Instant::now() >= deadline {
            bail!("chromedriver did not answer {url}/status within {DRIVER_START:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless=new",
                // Runs as root in CI, where Chromium's sandbox refuses to start.
                "--no-sandbox",
                "--disable-gpu",
                // /dev/shm is small in containers; Chromium crashes when it runs out.
                "--disable-dev-shm-usage",
                // No outbound connections of Chromium's own (updates, sync, field trials):
                // the machine may have no internet, and their failures flood the log.
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--window-size=1280,900",
                format!("--user-data-dir={}", profile.display()),
            ],
        },
    });
    let Value::Object(capabilities) = capabilities else {
        unreachable!("json! of an object is an object")
    };
    // Plain http to the driver on loopback: no TLS connector (see e2e/Cargo.toml).
    let mut session = fantoccini::ClientBuilder::new(HttpConnector::new());
    session.capabilities(capabilities);
    match tokio::time::timeout(SESSION_START, session.connect(&url)).await {
        Ok(session) => session.context("creating a WebDriver session"),
        Err(_) => bail!("Chromium did not start within {SESSION_START:?}"),
    }
}

/// Whether chromedriver's `/status` says it is ready for a new session.
async fn driver_ready(client: &Client<HttpConnector, Empty<Bytes>>, url: &str) -> bool {
    let Ok(uri) = format!("{url}/status").parse() else {
        return false;
    };
    let answer = async {
        let response = client.get(uri).await.ok()?;
        if response.status() != StatusCode::OK {
            return None;
        }
        let body = response.into_body().collect().await.ok()?.to_bytes();
        let status: Value = serde_json::from_slice(&body).ok()?;
        status["value"]["ready"].as_bool()
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), answer).await,
        Ok(Some(true))
    )
}

/// Kills every process started with this profile (Chromium passes `--user-data-dir` on to
/// all its helper processes) and waits briefly until they are gone, so the profile can be
/// removed: killing only the main process leaves e.g. the network service to write its
/// cache index into the profile after it was removed. The profile is a fresh temporary
/// directory: nothing else can match.
fn kill_profile_processes(profile: &Path) {
    let pids = profile_processes(profile);
    for &pid in &pids {
        let _ = rustix::process::kill_process(pid, Signal::KILL);
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while pids.iter().any(|&pid| alive(pid)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The processes whose command line has `--user-data-dir=<profile>`, from /proc (our own
/// excepted: a test may mention the path).
fn profile_processes(profile: &Path) -> Vec<Pid> {
    let mut needle = b"--user-data-dir=".to_vec();
    needle.extend_from_slice(profile.as_os_str().as_bytes());
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let own = std::process::id();
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            // Chromium's helpers (network service, renderers, ...) rewrite their argv into
            // one space-separated title, so look for the argument anywhere, ending at a NUL,
            // a space or the end.
            let matches = cmdline
                .windows(needle.len())
                .enumerate()
                .any(|(at, window)| {
                    window == needle.as_slice()
                        && matches!(cmdline.get(at + needle.len()), None | Some(0 | b' '))
                });
            (matches && pid != own)
                .then(|| Pid::from_raw(pid.try_into().ok()?))
                .flatten()
        })
        .collect()
}

/// Whether a process still runs (a zombie only waits to be reaped: it writes no files).
fn alive(pid: Pid) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{}/stat", pid.as_raw_nonzero())) else {
        return false;
    };
    // "<pid> (<command, may contain spaces and parentheses>) <state> ..."
    let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
    !matches!(
        state.and_then(|rest| rest.chars().next()),
        Some('Z') | Some('X') | None
    )
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::net::SocketAddr;

    use fantoccini::Locator;
    use http_body_util::Full;
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper::{Response, header};
    use hyper_util::rt::TokioIo;

    use super::*;

    const PAGE: &str = r#"<!doctype html>
<html><head><title>browser helper</title></head>
<body>
  <p id="text">not clicked</p>
  <button id="button" onclick="document.getElementById('text').textContent = 'clicked'">
    Click
  </button>
</body></html>
"#;

    /// Serves PAGE for every request on a loopback port.
    async fn serve_page() -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let service = service_fn(|_request| async {
                        let mut response = Response::new(Full::new(Bytes::from(PAGE)));
                        response.headers_mut().insert(
                            header::CONTENT_TYPE,
                            header::HeaderValue::from_static("text/html; charset=utf-8"),
                        );
                        Ok::<_, Infallible>(response)
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        address
    }

    /// Whether this machine can run the browser tests; says why not when it cannot.
    fn have_chromium() -> bool {
        let found = chromium().is_some();
        if !found {
            eprintln!(
                "skipped: no Chromium/ChromeDriver (run e2e/scripts/browser.sh, or set \
                 APPROVAL_E2E_CHROMIUM and APPROVAL_E2E_CHROMEDRIVER)"
            );
        }
        found
    }

    #[tokio::test]
    async fn a_page_is_rendered_and_clicked() {
        if !have_chromium() {
            return;
        }
        let page = serve_page().await;
        let browser = Browser::start().await.unwrap();
        browser
            .client
            .goto(&format!("http://{page}/"))
            .await
            .unwrap();
        assert_eq!(browser.client.title().await.unwrap(), "browser helper");
        let text = browser.client.find(Locator::Id("text")).await.unwrap();
        assert_eq!(text.text().await.unwrap(), "not clicked");
        browser
            .client
            .find(Locator::Id("button"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        assert_eq!(text.text().await.unwrap(), "clicked");

        let shots = tempfile::tempdir().unwrap();
        let png = shots.path().join("page.png");
        browser.screenshot(&png).await.unwrap();
        let bytes = std::fs::read(&png).unwrap();
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
        browser.close().await;
    }

    #[tokio::test]
    async fn two_browsers_share_nothing_and_leave_nothing_behind() {
        if !have_chromium() {
            return;
        }
        let page = format!("http://{}/", serve_page().await);
        let (alice, bob) = tokio::join!(Browser::start(), Browser::start());
        let (alice, bob) = (alice.unwrap(), bob.unwrap());
        let cookie = |browser: &Browser| {
            let client = browser.client.clone();
            async move {
                let cookie = client
                    .execute("return document.cookie", vec![])
                    .await
                    .unwrap();
                cookie.as_str().unwrap().to_string()
            }
        };
        alice.client.goto(&page).await.unwrap();
        alice
            .client
            .execute("document.cookie = 'who=alice'", vec![])
            .await
            .unwrap();
        bob.client.goto(&page).await.unwrap();
        assert_eq!(cookie(&alice).await, "who=alice");
        assert_eq!(cookie(&bob).await, "", "bob sees alice's cookie");

        let profiles = [
            alice.profile.path().to_owned(),
            bob.profile.path().to_owned(),
        ];
        // The main process and its helpers (their command lines are rewritten).
        assert!(profile_processes(&profiles[1]).len() > 1);
        alice.close().await;
        // Bob's test "panicked": no close, only Drop.
        drop(bob);
        // Nothing left to write into a profile after it was removed (a helper that outlived
        // the main process used to recreate its cache there).
        tokio::time::sleep(Duration::from_millis(500)).await;
        for profile in &profiles {
            assert_eq!(profile_processes(profile), vec![], "{}", profile.display());
            assert!(!profile.exists(), "{} remains", profile.display());
        }
    }
}

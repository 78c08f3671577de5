//! `airlock serve` kept running on the manager for a stack: started detached by `up --swarm`
//! (its own process group, so that Ctrl-C on `up` leaves it running; its log in
//! `DIR/.airlock-serve.log`), recorded in the stack's state (pid, address, bundles),
//! reused when it already serves the same bundles, restarted on the same address when the
//! bundles change (a delta layered over its base), and probed by `check --swarm`. Also the
//! systemd unit an operator installs to keep it across reboots (`up --swarm --print-unit`).

use super::SwarmError;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The serve log, next to the compose files.
pub const LOG: &str = ".airlock-serve.log";

/// A running `airlock serve`, as the state records it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Serving {
    pub pid: u32,
    /// The address it listens on (`127.0.0.1:5000`).
    pub listen: String,
    /// `host:port` every node pulls from (in every image name of the stack file).
    pub advertise: String,
    /// The bundles served, the newest first (a delta before its base).
    pub bundles: Vec<PathBuf>,
    /// Identity of each bundle (sha256 of its bundle.json), in `bundles` order.
    pub ids: Vec<String>,
    pub log: PathBuf,
}

/// Whether process `pid` runs and is an `airlock ... serve` (a pid the kernel gave to
/// another program since is not ours).
pub fn alive(pid: u32) -> bool {
    let Ok(cmdline) = fs_err::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let zombie = fs_err::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true);
    !zombie && args.iter().any(|a| *a == b"serve")
}

/// Whether the registry at `addr` answers `GET /v2/` within 2 s.
pub async fn answers(addr: &str) -> bool {
    let Ok(client) = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .no_proxy()
        .build()
    else {
        return false;
    };
    client
        .get(format!("http://{addr}/v2/"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

/// Whether the registry at `addr` (plain HTTP) has every manifest of `images`
/// (repository, digest): a server the operator runs (the unit) that `up` can use as it is.
pub async fn serves(addr: &str, images: &[(String, String)]) -> bool {
    let Ok(client) = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .no_proxy()
        .build()
    else {
        return false;
    };
    for (repo, digest) in images {
        let ok = client
            .head(format!("http://{addr}/v2/{repo}/manifests/{digest}"))
            .header(
                "Accept",
                "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json",
            )
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if !ok {
            return false;
        }
    }
    true
}

/// Stop `serving` (SIGTERM, then up to 10 s for it to finish requests in flight).
pub fn stop(serving: &Serving) {
    if serving.pid == 0 || !alive(serving.pid) {
        return;
    }
    let Ok(pid) = i32::try_from(serving.pid) else {
        return;
    };
    // SAFETY: kill(2) with a pid checked above to be an airlock serve process.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let start = Instant::now();
    while alive(serving.pid) && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Start `airlock serve BUNDLES --addr LISTEN` detached, and wait until it listens; the
/// actual address comes from its JSON start line (port 0 picks a free port).
pub fn start(
    dir: &Path,
    bundles: &[PathBuf],
    ids: &[String],
    listen: &str,
    advertise: Option<&str>,
) -> crate::error::Result<Serving> {
    use std::os::unix::process::CommandExt as _;
    let exe = std::env::current_exe().map_err(|e| SwarmError::Serve {
        message: format!("cannot find the airlock binary: {e}"),
    })?;
    let log = dir.join(LOG);
    let file = fs_err::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)?;
    let offset = file.metadata().map(|m| m.len()).unwrap_or(0);
    let err = file.try_clone()?;
    let mut cmd = std::process::Command::new(&exe);
    cmd.arg("serve")
        .args(bundles)
        .args(["--addr", listen, "--json"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::from(file.into_parts().0))
        .stderr(std::process::Stdio::from(err.into_parts().0))
        .env("NO_COLOR", "1")
        .process_group(0);
    if let Some(a) = advertise {
        cmd.args(["--advertise", a]);
    }
    let mut child = cmd.spawn().map_err(|e| SwarmError::Serve {
        message: format!("cannot start `{} serve`: {e}", exe.display()),
    })?;
    let pid = child.id();
    let start = Instant::now();
    loop {
        let mut text = String::new();
        if let Ok(mut f) = fs_err::File::open(&log) {
            use std::io::Seek as _;
            let _ = f.seek(std::io::SeekFrom::Start(offset));
            let _ = f.read_to_string(&mut text);
        }
        if let Some(doc) = text
            .lines()
            .filter(|l| l.starts_with('{'))
            .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        {
            let listen = doc["listen"].as_str().unwrap_or(listen).to_string();
            let advertise = doc["advertise"].as_str().unwrap_or(&listen).to_string();
            return Ok(Serving {
                pid,
                listen,
                advertise,
                bundles: bundles.to_vec(),
                ids: ids.to_vec(),
                log,
            });
        }
        if let Ok(Some(status)) = child.try_wait() {
            let tail: Vec<&str> = text
                .lines()
                .rev()
                .take(8)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            return Err(SwarmError::Serve {
                message: format!(
                    "`airlock serve` on {listen} stopped at once ({status}):\n  {}",
                    tail.join("\n  ")
                ),
            }
            .into());
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            return Err(SwarmError::Serve {
                message: format!(
                    "`airlock serve` on {listen} did not start within 30 s (log: {})",
                    log.display()
                ),
            }
            .into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A systemd unit that keeps `airlock serve` running for a stack across reboots.
pub fn unit(stack: &str, bundles: &[PathBuf], listen: &str, advertise: Option<&str>) -> String {
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "/usr/local/bin/airlock".into());
    let mut exec = format!("{exe} serve");
    for b in bundles {
        let abs = std::path::absolute(b).unwrap_or_else(|_| b.clone());
        exec.push_str(&format!(" {}", abs.display()));
    }
    exec.push_str(&format!(" --addr {listen}"));
    if let Some(a) = advertise {
        exec.push_str(&format!(" --advertise {a}"));
    }
    format!(
        "# /etc/systemd/system/airlock-serve-{stack}.service\n\
# install: systemctl daemon-reload && systemctl enable --now airlock-serve-{stack}\n\
# then run `airlock up --swarm` with the same --serve-addr: it uses the server that answers there\n\
[Unit]\n\
Description=airlock serve: the registry the nodes of stack {stack} pull from\n\
After=network-online.target\n\
Wants=network-online.target\n\n\
[Service]\n\
ExecStart={exec}\n\
Restart=always\n\
RestartSec=2\n\n\
[Install]\n\
WantedBy=multi-user.target\n"
    )
}

//! `airlock serve BUNDLE...`: a read-only registry for a fleet of offline hosts.
//!
//! Pipeline: `bundle::read` (one pass over the tar headers of each bundle) ->
//! `serve::Catalog` (blob offsets, manifests, repositories) -> `serve::Server` (HTTP or
//! TLS, Basic auth, access log on stderr) until SIGTERM or Ctrl-C. At start it prints the
//! `daemon.json` keys and the compose override that point engines and services at it
//! (`--json`: one line, schema in docs/json.md).

use super::output::Output;
use crate::error::Context as _;
use crate::serve::handlers::{DEFAULT_CHUNK, State};
use crate::serve::{self, Catalog, CatalogOptions, Server, ServerOptions};
use clap::Args;
use indicatif::HumanBytes;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Bundle file(s) to serve (plain tar, as `pack` writes it); content is shared by digest.
    #[arg(value_name = "BUNDLE", required = true)]
    pub bundles: Vec<PathBuf>,
    /// Refuse the bundle unless `airlock/SHA256SUMS` carries a good signature by this minisign
    /// public key (a `.pub` file or the `RW...` key itself); checked before anything else.
    #[arg(long, value_name = "PUB")]
    pub key: Option<PathBuf>,
    /// Address to listen on (`0.0.0.0:5000` for the whole LAN; port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:5000", value_name = "HOST:PORT")]
    pub addr: String,
    /// The `host:port` engines use to reach this server, for the printed snippets
    /// (default: the listen address, or this machine's host name when listening on all addresses).
    #[arg(long, value_name = "HOST[:PORT]")]
    pub advertise: Option<String>,
    /// Serve HTTPS with this PEM certificate (chain); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require Basic auth against this htpasswd file (bcrypt entries, `htpasswd -B`).
    #[arg(long, value_name = "FILE")]
    pub htpasswd: Option<PathBuf>,
    /// Also act as a Docker Hub mirror (`registry-mirrors`): Hub images win name clashes,
    /// and the printed daemon.json uses `registry-mirrors`.
    #[arg(long)]
    pub mirror: bool,
    /// For a patch bundle: a base bundle its patches apply to, read but not served (the
    /// bundles served are searched first; may be repeated).
    #[arg(long, value_name = "BUNDLE")]
    pub base: Vec<PathBuf>,
    /// Also write the compose override to this file.
    #[arg(long, value_name = "FILE")]
    pub override_out: Option<PathBuf>,
    /// Seconds requests in flight may take to finish after SIGTERM or Ctrl-C.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub grace: u64,
}

pub fn run(args: ServeArgs, out: &Output) -> crate::error::Result<ExitCode> {
    for bundle in &args.bundles {
        super::shared::check_signature(bundle, args.key.as_deref(), out)?;
    }
    let catalog = Catalog::open(
        &args.bundles,
        &CatalogOptions {
            mirror: args.mirror,
            patch_bases: args.base.clone(),
        },
    )
    .context("Cannot index the bundle(s)")?;
    let auth = match &args.htpasswd {
        Some(p) => Some(serve::auth::Htpasswd::read(p)?),
        None => None,
    };
    let tls = args.tls_cert.clone().zip(args.tls_key.clone());
    let opts = ServerOptions {
        addr: args.addr.clone(),
        tls: tls.clone(),
        grace: Duration::from_secs(args.grace),
    };
    let runtime = crate::runtime::build(crate::runtime::Workers::PerCpu)?;
    runtime.block_on(async move {
        let state = State {
            catalog,
            auth,
            chunk: DEFAULT_CHUNK,
        };
        let server = Server::bind(state, &opts).await?;
        let local = server
            .local_addr()
            .context("Cannot read the listening address")?;
        let advertise = args.advertise.clone().unwrap_or_else(|| advertised(local));
        startup(&args, &server, local, &advertise, tls.is_some(), out)?;
        let log: serve::server::LogSink = if out.quiet {
            Arc::new(|_| {})
        } else {
            Arc::new(|line| {
                let mut err = std::io::stderr().lock();
                let _ = writeln!(err, "{line}");
            })
        };
        server.run(crate::runtime::shutdown_signal(), log).await;
        out.status("airlock serve: stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// The name engines should use: the listen address, or the host name for `0.0.0.0`/`::`.
fn advertised(local: SocketAddr) -> String {
    if local.ip().is_unspecified() {
        let host = fs_err::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into());
        format!("{host}:{}", local.port())
    } else {
        local.to_string()
    }
}

fn startup(
    args: &ServeArgs,
    server: &Server,
    local: SocketAddr,
    advertise: &str,
    tls: bool,
    out: &Output,
) -> crate::error::Result<()> {
    let catalog = &server.state().catalog;
    let scheme = if tls { "https" } else { "http" };
    let daemon = serve::daemon_json(advertise, tls, args.mirror);
    let comment = format!(
        "airlock serve: pull every service's image from {advertise}\nuse: docker-compose -f <your compose file> -f <this file> up -d"
    );
    let override_yaml = serve::compose_override(&catalog.images, advertise, &comment);
    if let Some(path) = &args.override_out {
        fs_err::write(path, &override_yaml)?;
    }
    let (blobs, bytes) = catalog.served_bytes();
    for w in &catalog.warnings {
        out.warn(w);
    }
    if out.json {
        let images: Vec<serde_json::Value> = catalog
            .images
            .iter()
            .map(|i| {
                serde_json::json!({
                    "ref": i.reference,
                    "name": i.name_at(advertise),
                    "repository": i.repository,
                    "tag": i.tag,
                    "digest": i.top.digest,
                    "services": i.services,
                })
            })
            .collect();
        let doc = serde_json::json!({
            "url": format!("{scheme}://{local}"),
            "listen": local.to_string(),
            "advertise": advertise,
            "tls": tls,
            "auth": args.htpasswd.is_some(),
            "mirror": args.mirror,
            "bundles": args.bundles,
            "repositories": catalog.repos.len(),
            "blobs": blobs,
            "size": bytes,
            "images": images,
            "daemon_json": daemon,
            "override": override_yaml,
            "warnings": catalog.warnings,
        });
        // One line: the server keeps running, so readers take the first line.
        super::output::stdout_line(&doc.to_string());
        return Ok(());
    }
    out.print(&format!(
        "Serving {} image(s) in {} repositories ({} blobs, {}) from {} bundle(s) on {scheme}://{local}",
        catalog.images.len(),
        catalog.repos.len(),
        blobs,
        HumanBytes(bytes),
        args.bundles.len()
    ));
    out.print("");
    for i in &catalog.images {
        out.print(&format!(
            "  {:<50} <- {}",
            i.name_at(advertise),
            i.reference
        ));
    }
    out.print("");
    out.print("Engines: merge into /etc/docker/daemon.json, then `systemctl reload docker`:");
    out.print(&serde_json::to_string_pretty(&daemon).unwrap_or_default());
    if tls {
        out.print(&format!(
            "and copy the CA certificate to /etc/docker/certs.d/{advertise}/ca.crt"
        ));
    }
    if args.mirror {
        out.print("(a mirror serves Docker Hub images only; other images need the override below)");
    }
    out.print("");
    out.print("Compose override:");
    out.print(&override_yaml);
    let _ = std::io::stdout().flush();
    out.status("access log follows; stop with Ctrl-C or SIGTERM");
    Ok(())
}

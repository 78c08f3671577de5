//! `airlock doctor`: what this host's engine can take, for an operator deciding what to
//! carry. Owns the facts (engine and API version, image store kind, free space under the
//! data root, the Compose CLIs that run here) and the capabilities derived from them (zstd
//! layers, digest-pinned references, delta bundles, several platforms, what `load` skips).
//! Rendering is the command's (`cli::doctor`). The table of engines and the tests behind each
//! capability is docs/engines.md.

use crate::compose_cli::ComposeCli;
use crate::engine::{Engine, EngineError};
use serde::Serialize;

/// How the engine keeps images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Store {
    /// A graphdriver (overlay2, fuse-overlayfs, vfs, ...): image ID = config digest.
    Classic,
    /// The containerd image store (`driver-type: io.containerd.snapshotter.v1`).
    Containerd,
    /// podman's containers/storage behind its Docker-compatible API.
    Podman,
}

/// The engine, as it describes itself.
#[derive(Debug, Clone, Serialize)]
pub struct EngineFacts {
    /// `DOCKER_HOST` or the default socket.
    pub host: String,
    /// `Docker Engine` or `Podman Engine`.
    pub product: String,
    pub version: String,
    pub api_version: String,
    pub os: String,
    pub arch: String,
    pub store: Store,
    /// Storage driver as `docker info` names it (`overlay2`, `overlayfs`, `vfs`, ...).
    pub storage_driver: String,
    pub data_root: Option<String>,
    /// Free bytes under the data root (when it is on this machine).
    pub free_bytes: Option<u64>,
}

/// One Compose CLI that runs here.
#[derive(Debug, Clone, Serialize)]
pub struct ComposeFacts {
    #[serde(flatten)]
    pub cli: ComposeCli,
    /// The one `airlock up` uses (`AIRLOCK_COMPOSE` picks; default: v2 when it runs).
    pub used_by_up: bool,
}

/// Whether the engine takes something, and why (or what to do instead).
#[derive(Debug, Clone, Serialize)]
pub struct Capability {
    /// `zstd-layers`, `digest-pins`, `deltas`, `platforms`, `load-skips`.
    pub code: &'static str,
    pub title: &'static str,
    /// `yes`, `no` or `partial`.
    pub status: &'static str,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub engine: EngineFacts,
    pub compose: Vec<ComposeFacts>,
    pub capabilities: Vec<Capability>,
}

/// `major.minor` of a version string (`26.1.5+dfsg1` -> (26, 1)); (0, 0) when unreadable.
fn major_minor(v: &str) -> (u32, u32) {
    let mut parts = v
        .trim_start_matches('v')
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// Ask the engine (`GET /version`, `GET /info`) and look at the data root and Compose CLIs.
pub async fn examine(engine: &Engine) -> Result<Report, EngineError> {
    let version = engine
        .docker
        .version()
        .await
        .map_err(|e| crate::engine::request_error(&engine.host, "GET /version", e))?;
    let info = engine
        .docker
        .info()
        .await
        .map_err(|e| crate::engine::request_error(&engine.host, "GET /info", e))?;
    let product = version
        .platform
        .as_ref()
        .map(|p| p.name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "Docker Engine".to_string());
    let podman = crate::engine::is_podman(&version);
    let containerd = crate::engine::is_containerd_store(&info);
    let store = if podman {
        Store::Podman
    } else if containerd {
        Store::Containerd
    } else {
        Store::Classic
    };
    let data_root = info.docker_root_dir.clone();
    let free_bytes = data_root
        .as_deref()
        .filter(|_| engine.host.starts_with("unix://"))
        .and_then(|d| crate::disk::free_bytes(std::path::Path::new(d)));
    let facts = EngineFacts {
        host: engine.host.clone(),
        product: if podman {
            "Podman Engine".into()
        } else {
            product
        },
        version: version.version.clone().unwrap_or_default(),
        api_version: version.api_version.clone().unwrap_or_default(),
        os: version.os.clone().unwrap_or_default(),
        arch: version.arch.clone().unwrap_or_default(),
        store,
        storage_driver: info.driver.clone().unwrap_or_default(),
        data_root,
        free_bytes,
    };
    let compose = compose_tools();
    let capabilities = capabilities(&facts);
    Ok(Report {
        engine: facts,
        compose,
        capabilities,
    })
}

/// Every Compose CLI that runs here, the one `airlock up` uses marked.
pub fn compose_tools() -> Vec<ComposeFacts> {
    let used = crate::compose_cli::chosen().ok().flatten();
    crate::compose_cli::installed()
        .into_iter()
        .map(|cli| ComposeFacts {
            used_by_up: used.as_ref() == Some(&cli),
            cli,
        })
        .collect()
}

/// What the engine can take, from what it is (docs/engines.md names the test behind each).
pub fn capabilities(e: &EngineFacts) -> Vec<Capability> {
    let (major, _) = major_minor(&e.version);
    let zstd = match e.store {
        Store::Containerd | Store::Podman => true,
        // zstd layer decompression arrived in the classic store with Engine 23.0.
        Store::Classic => major >= 23,
    };
    vec![
        Capability {
            code: "zstd-layers",
            title: "zstd-compressed layers",
            status: if zstd { "yes" } else { "no" },
            detail: if zstd {
                "layers compressed with zstd load as they are".into()
            } else {
                format!(
                    "Engine {} (classic store) reads gzip and plain layers only: pack gzip layers for this host",
                    e.version
                )
            },
        },
        Capability {
            code: "digest-pins",
            title: "digest-pinned references (name@sha256:...)",
            status: if e.store == Store::Classic { "partial" } else { "yes" },
            detail: if e.store == Store::Classic {
                "the classic store records no repo digest on load: `airlock load` tags such images `name:airlock-<hex>` and `up` writes an override using that tag".into()
            } else {
                "the store keeps the digest on load: compose files may name images by digest".into()
            },
        },
        Capability {
            code: "deltas",
            title: "delta bundles (pack --since)",
            status: if e.store == Store::Podman { "no" } else { "yes" },
            detail: match e.store {
                Store::Classic => "a delta loads on top of the base's images (airlock load/up, and plain `docker load -i`)".into(),
                Store::Containerd => "a delta loads while every base image is on the engine by ID, its digest (airlock load/up refuse otherwise, naming them; plain `docker load -i` too)".into(),
                Store::Podman => "not tested on podman: carry a full bundle".into(),
            },
        },
        Capability {
            code: "platforms",
            title: "images of several platforms",
            status: if e.store == Store::Containerd { "yes" } else { "partial" },
            detail: if e.store == Store::Containerd {
                format!(
                    "the containerd store keeps several platforms of one name; this engine runs {}/{} natively",
                    e.os, e.arch
                )
            } else {
                format!(
                    "one platform per name: pack for {}/{} (`pack --platform`)",
                    e.os, e.arch
                )
            },
        },
        Capability {
            code: "load-skips",
            title: "load sends only what the engine lacks",
            status: if e.store == Store::Classic { "yes" } else { "partial" },
            detail: match e.store {
                Store::Classic => "images and layers the engine holds are skipped".into(),
                Store::Containerd => "images the engine holds are skipped, and the blobs of bundle images whose digest is an image ID there; the rest of the bundle is sent".into(),
                Store::Podman => "images the engine holds are skipped; layer skipping is not tested on podman".into(),
            },
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(version: &str, store: Store) -> EngineFacts {
        EngineFacts {
            host: "unix:///var/run/docker.sock".into(),
            product: "Docker Engine".into(),
            version: version.into(),
            api_version: "1.41".into(),
            os: "linux".into(),
            arch: "amd64".into(),
            store,
            storage_driver: "overlay2".into(),
            data_root: None,
            free_bytes: None,
        }
    }

    fn status(caps: &[Capability], code: &str) -> &'static str {
        caps.iter().find(|c| c.code == code).unwrap().status
    }

    #[test]
    fn classic_20_10_takes_deltas_but_not_zstd() {
        let c = capabilities(&facts("20.10.24+dfsg1", Store::Classic));
        assert_eq!(status(&c, "zstd-layers"), "no");
        assert_eq!(status(&c, "deltas"), "yes");
        assert_eq!(status(&c, "digest-pins"), "partial");
        assert_eq!(status(&c, "load-skips"), "yes");
    }

    #[test]
    fn containerd_26_keeps_digests_and_platforms() {
        let c = capabilities(&facts("26.1.5+dfsg1", Store::Containerd));
        assert_eq!(status(&c, "zstd-layers"), "yes");
        assert_eq!(status(&c, "digest-pins"), "yes");
        assert_eq!(status(&c, "platforms"), "yes");
        assert_eq!(status(&c, "deltas"), "yes");
    }

    #[test]
    fn classic_engines_from_23_read_zstd() {
        let c = capabilities(&facts("27.3.1", Store::Classic));
        assert_eq!(status(&c, "zstd-layers"), "yes");
        assert_eq!(major_minor("v2.40.3"), (2, 40));
        assert_eq!(major_minor("garbage"), (0, 0));
    }
}

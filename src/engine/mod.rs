//! The Docker engine as a medium: owns the connection (bollard, `DOCKER_HOST` honoured,
//! API version negotiated), image listing and inspection, tagging, the containers of a
//! Compose project (by the `com.docker.compose.project` label), their logs, and free disk
//! space (`/info` DockerRootDir + statvfs when the engine is local). `load` streams a
//! bundle into `/images/load`. Used by `cli` (load, up, check), `check` and `pack`.

pub mod content;
pub mod load;
pub mod save;

use crate::digest::Digest;
use crate::error::{Class, Classify};
use bollard::Docker;
use futures_util::StreamExt;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

/// Compose's label naming a container's project.
pub const PROJECT_LABEL: &str = "com.docker.compose.project";
/// Compose's label naming a container's service.
pub const SERVICE_LABEL: &str = "com.docker.compose.service";
/// Set to `True` on `docker compose run` containers.
pub const ONEOFF_LABEL: &str = "com.docker.compose.oneoff";

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("Cannot reach the Docker engine at `{host}`")]
    Connect {
        host: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("The Docker engine at `{host}` failed `{action}`")]
    Api {
        host: String,
        action: String,
        #[source]
        source: bollard::errors::Error,
    },
    /// The connection broke or could not be made mid-command (engine stopped, restarted,
    /// socket gone): nothing the engine answered, so nothing to blame on the input.
    #[error(
        "Lost the connection to the Docker engine at `{host}` during `{action}`; check that the engine runs (DOCKER_HOST) and run the command again"
    )]
    Lost {
        host: String,
        action: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("The engine refused to load bundle `{}`: {message}", bundle.display())]
    LoadRefused {
        bundle: std::path::PathBuf,
        message: String,
    },
    #[error(
        "Not enough disk space for the engine: loading needs about {needed} bytes under `{}`, {available} are free",
        path.display()
    )]
    DiskSpace {
        path: std::path::PathBuf,
        needed: u64,
        available: u64,
    },
    #[error("After loading, the engine does not have image `{reference}` (config `{config}`)")]
    NotLoaded { reference: String, config: Digest },
    #[error("Blob `{digest}` in bundle `{}` is corrupt: its content hashes to {actual}", bundle.display())]
    CorruptBlob {
        bundle: std::path::PathBuf,
        digest: Digest,
        actual: Digest,
    },
    #[error(
        "Layer `{digest}` in bundle `{}` does not decompress to its DiffID `{diff_id}` (got {actual})",
        bundle.display()
    )]
    CorruptLayer {
        bundle: std::path::PathBuf,
        digest: Digest,
        diff_id: Digest,
        actual: Digest,
    },
    #[error(transparent)]
    Bundle(#[from] crate::bundle::read::ReadError),
    /// Reading blobs from the source of a load.
    #[error(transparent)]
    Source(#[from] crate::source::SourceError),
    #[error("Failed to run the bundle reader thread")]
    Join(#[source] tokio::task::JoinError),
    /// A delta bundle whose base is not (wholly) on the engine.
    #[error(transparent)]
    Delta(#[from] crate::bundle::delta::DeltaError),
}

impl Classify for EngineError {
    fn class(&self) -> Class {
        match self {
            EngineError::Connect { .. }
            | EngineError::Api { .. }
            | EngineError::Lost { .. }
            | EngineError::DiskSpace { .. }
            | EngineError::Join(_) => Class::Environment,
            EngineError::LoadRefused { .. }
            | EngineError::NotLoaded { .. }
            | EngineError::CorruptBlob { .. }
            | EngineError::CorruptLayer { .. } => Class::Failed,
            EngineError::Bundle(e) => e.class(),
            EngineError::Source(e) => e.class(),
            EngineError::Delta(e) => e.class(),
        }
    }
    fn hint(&self) -> Option<String> {
        match self {
            EngineError::Bundle(e) => e.hint(),
            EngineError::Delta(e) => e.hint(),
            EngineError::Source(e) => e.hint(),
            _ => None,
        }
    }
}

/// Whether a bollard error is an answer from the engine (a status, an error in a stream)
/// rather than a broken or refused connection.
pub fn engine_answered(e: &bollard::errors::Error) -> bool {
    use bollard::errors::Error as B;
    matches!(
        e,
        B::DockerResponseServerError { .. }
            | B::DockerStreamError { .. }
            | B::DockerContainerWaitError { .. }
            | B::JsonDataError { .. }
            | B::JsonSerdeError { .. }
    )
}

/// The error for a failed request `action` to the engine at `host`: `Api` when the engine
/// answered, `Lost` when the connection failed.
pub fn request_error(
    host: &str,
    action: impl Into<String>,
    source: bollard::errors::Error,
) -> EngineError {
    let (host, action) = (host.to_string(), action.into());
    if engine_answered(&source) {
        EngineError::Api {
            host,
            action,
            source,
        }
    } else {
        EngineError::Lost {
            host,
            action,
            source,
        }
    }
}

/// Whether a bollard error is a 404 from the engine.
pub fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// A connected engine.
#[derive(Clone)]
pub struct Engine {
    pub docker: Docker,
    /// `DOCKER_HOST` or the default socket, as used.
    pub host: String,
}

/// The engine's `DOCKER_HOST` (default: the local socket).
pub fn docker_host() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unix:///var/run/docker.sock".to_string())
}

/// Connect to the engine named by `DOCKER_HOST` (or the local socket) and negotiate the
/// API version (Engine 20.10 speaks 1.41). Requests may run for an hour: loads are long.
pub async fn connect() -> Result<Engine, EngineError> {
    let host = docker_host();
    let docker = Docker::connect_with_defaults().map_err(|source| EngineError::Connect {
        host: host.clone(),
        source,
    })?;
    let docker = docker
        .with_timeout(Duration::from_secs(3600))
        .negotiate_version()
        .await
        .map_err(|source| EngineError::Connect {
            host: host.clone(),
            source,
        })?;
    Ok(Engine { docker, host })
}

/// An image the engine has.
#[derive(Debug, Clone)]
pub struct EngineImage {
    /// Image ID (config digest on the classic store; manifest/index digest on containerd).
    pub id: Digest,
    pub repo_tags: Vec<String>,
    /// `rootfs.diff_ids`, in order.
    pub layers: Vec<Digest>,
}

/// Engine facts the load planner needs.
#[derive(Debug, Clone, Default)]
pub struct EngineState {
    pub images: HashMap<Digest, EngineImage>,
    /// Repo tag (`redis:7`, familiar form) -> image ID.
    pub tags: HashMap<String, Digest>,
    /// ChainIDs of every layer stack the engine holds (classic store reuses layers by ChainID).
    pub chains: HashSet<Digest>,
    /// The engine stores images in containerd (Engine 25+ with the snapshotter) rather than a graphdriver.
    pub containerd_store: bool,
    /// The engine is podman behind its Docker-compatible API: its `docker load` wants every
    /// layer file a `manifest.json` names, even of layers it holds.
    pub podman: bool,
    pub root_dir: Option<std::path::PathBuf>,
    /// Containerd store: blobs its content store holds beyond those of images a bundle
    /// names, from the manifests airlock kept of earlier loads (`content::known_blobs`;
    /// filled by `load::load_from`).
    pub known_blobs: HashSet<Digest>,
}

/// A container of a Compose project, as `check` reads it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    pub service: String,
    pub image: String,
    /// `created`, `running`, `restarting`, `exited`, `dead`, ...
    pub state: String,
    /// `healthy`, `unhealthy`, `starting`, or `None` without a healthcheck.
    pub health: Option<String>,
    pub restarts: i64,
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
    pub one_off: bool,
    /// Published ports: (host IP, host port, container port, protocol).
    pub ports: Vec<PublishedPort>,
    /// Health check failure output (last probe), when unhealthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_log: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PublishedPort {
    pub host_ip: String,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: String,
}

/// What `GET /containers/json` says of a container, in the shape `GET /containers/{id}/json`
/// answers: its name, state (`exited` for podman's `stopped`) and the exit code from the
/// status text (`Exited (3) 2 seconds ago`).
fn summary_inspect(
    c: &bollard::models::ContainerSummary,
) -> bollard::models::ContainerInspectResponse {
    use bollard::models::{ContainerState, ContainerStateStatusEnum as S};
    let text = c.status.clone().unwrap_or_default();
    let exit_code = text
        .strip_prefix("Exited (")
        .and_then(|r| r.split(')').next())
        .and_then(|n| n.parse::<i64>().ok());
    let status = match c.state.map(|s| s.to_string()).as_deref() {
        Some("created") => S::CREATED,
        Some("running") => S::RUNNING,
        Some("paused") => S::PAUSED,
        Some("restarting") => S::RESTARTING,
        Some("removing") => S::REMOVING,
        Some("dead") => S::DEAD,
        _ => S::EXITED,
    };
    bollard::models::ContainerInspectResponse {
        name: c.names.as_ref().and_then(|n| n.first().cloned()),
        state: Some(ContainerState {
            status: Some(status),
            exit_code,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `GET /info` says the images live in containerd's content store (the snapshotter).
pub fn is_containerd_store(info: &bollard::models::SystemInfo) -> bool {
    info.driver_status.iter().flatten().any(|kv| {
        kv.first().is_some_and(|k| k == "driver-type")
            && kv.get(1).is_some_and(|v| v.contains("containerd"))
    })
}

/// `GET /version` names podman (its platform or a component "Podman Engine").
pub fn is_podman(version: &bollard::models::SystemVersion) -> bool {
    version
        .platform
        .as_ref()
        .is_some_and(|p| p.name.contains("Podman"))
        || version
            .components
            .iter()
            .flatten()
            .any(|c| c.name.contains("Podman"))
}

impl Engine {
    /// Maps a failed request `action` to `Api` or `Lost`, naming this engine.
    fn api(&self, action: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> EngineError {
        let action = action.into();
        let host = self.host.clone();
        move |source| request_error(&host, action, source)
    }

    /// Every image with its tags and layers.
    pub async fn state(&self) -> Result<EngineState, EngineError> {
        let info = self.docker.info().await.map_err(self.api("GET /info"))?;
        let version = self
            .docker
            .version()
            .await
            .map_err(self.api("GET /version"))?;
        let containerd_store = is_containerd_store(&info);
        let podman = is_podman(&version);
        let root_dir = info.docker_root_dir.map(std::path::PathBuf::from);
        // On the containerd store the list answers 404 ("content digest ...: not found")
        // while an image is being removed (its content goes before the image record): asked
        // again, it answers once the removal is done.
        let mut attempt = 0;
        let summaries = loop {
            match self
                .docker
                .list_images(Some(bollard::query_parameters::ListImagesOptions {
                    all: false,
                    ..Default::default()
                }))
                .await
            {
                Err(e) if is_not_found(&e) && attempt < 10 => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(100 * attempt)).await;
                }
                r => break r.map_err(self.api("GET /images/json"))?,
            }
        };
        let mut state = EngineState {
            containerd_store,
            podman,
            root_dir,
            ..Default::default()
        };
        // One inspect per image for its layers, 8 at a time: on a containerd-store engine
        // each takes 10-20 ms, which an engine holding a hundred images would otherwise
        // add to every load.
        let inspected: Vec<Option<(bollard::models::ImageSummary, Vec<Digest>)>> =
            futures_util::stream::iter(summaries)
                .map(|s| async move {
                    match self.docker.inspect_image(&s.id).await {
                        Ok(i) => {
                            let layers = i
                                .root_fs
                                .and_then(|r| r.layers)
                                .unwrap_or_default()
                                .iter()
                                .filter_map(|l| l.parse().ok())
                                .collect();
                            Ok(Some((s, layers)))
                        }
                        Err(e) if is_not_found(&e) => Ok(None), // removed meanwhile
                        Err(e) => Err(self.api(format!("GET /images/{}/json", s.id))(e)),
                    }
                })
                .buffered(8)
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect::<Result<_, _>>()?;
        for (s, layers) in inspected.into_iter().flatten() {
            let Ok(id) = s.id.parse::<Digest>() else {
                continue;
            };
            for c in crate::image::chain_ids(&layers) {
                state.chains.insert(c);
            }
            for t in s.repo_tags.iter().filter(|t| t.as_str() != "<none>:<none>") {
                state.tags.insert(t.clone(), id.clone());
            }
            state.images.insert(
                id.clone(),
                EngineImage {
                    id,
                    repo_tags: s.repo_tags,
                    layers,
                },
            );
        }
        Ok(state)
    }

    /// The image ID a reference or ID resolves to, `None` when absent.
    pub async fn image_id(&self, name: &str) -> Result<Option<Digest>, EngineError> {
        match self.docker.inspect_image(name).await {
            Ok(i) => Ok(i.id.and_then(|id| id.parse().ok())),
            Err(e) if is_not_found(&e) => Ok(None),
            // Digest references the engine cannot look up come back as 400 on some versions.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 400, ..
            }) => Ok(None),
            Err(e) => Err(self.api(format!("GET /images/{name}/json"))(e)),
        }
    }

    /// Tag image `id` as `repo:tag` (moving the tag if it named another image).
    pub async fn tag(&self, id: &Digest, repo: &str, tag: &str) -> Result<(), EngineError> {
        let opts = bollard::query_parameters::TagImageOptions {
            repo: Some(repo.to_string()),
            tag: Some(tag.to_string()),
        };
        self.docker
            .tag_image(&id.to_string(), Some(opts))
            .await
            .map_err(self.api(format!("tag {id} as {repo}:{tag}")))
    }

    /// Free bytes of the filesystem holding the engine's data root, when the engine is local
    /// (unix socket) and the directory is visible from here.
    pub fn free_space(
        &self,
        root_dir: Option<&std::path::Path>,
    ) -> Option<(std::path::PathBuf, u64)> {
        if !self.host.starts_with("unix://") {
            return None;
        }
        let dir = root_dir?;
        crate::disk::free_bytes(dir).map(|n| (dir.to_path_buf(), n))
    }

    /// Every container (running or not) of Compose project `project`, sorted by service and name.
    pub async fn containers(&self, project: &str) -> Result<Vec<ContainerInfo>, EngineError> {
        let mut filters = HashMap::new();
        filters.insert(
            "label".to_string(),
            vec![format!("{PROJECT_LABEL}={project}")],
        );
        let opts = bollard::query_parameters::ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        };
        // podman 4.3 lists a container between two restarts as `"State": "stopped"`, which
        // the Docker API does not have and bollard refuses: that state lasts a moment, so ask
        // again (up to 3 s) before giving up.
        let mut tries = 0;
        let list = loop {
            match self.docker.list_containers(Some(opts.clone())).await {
                Err(bollard::errors::Error::JsonDataError { .. }) if tries < 10 => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                }
                r => break r.map_err(self.api("GET /containers/json"))?,
            }
        };
        let mut out = Vec::new();
        for c in list {
            let Some(id) = c.id.clone() else { continue };
            let inspect = match self.docker.inspect_container(&id, None).await {
                Ok(i) => i,
                Err(e) if is_not_found(&e) => continue,
                // podman 4.3 reports states the Docker API does not have (`"Status": "stopped"`
                // for a container between restarts), which bollard refuses: take what the
                // list says instead (state, and the exit code from its status text).
                Err(bollard::errors::Error::JsonDataError { .. }) => summary_inspect(&c),
                Err(e) => return Err(self.api(format!("GET /containers/{id}/json"))(e)),
            };
            let labels = c.labels.clone().unwrap_or_default();
            let state = inspect.state.clone().unwrap_or_default();
            let health = state
                .health
                .as_ref()
                .and_then(|h| h.status)
                .map(|s| s.to_string())
                .filter(|s| !s.is_empty() && s != "none");
            let health_log = state
                .health
                .as_ref()
                .and_then(|h| h.log.as_ref())
                .and_then(|l| l.last())
                .and_then(|r| r.output.clone())
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty());
            let mut ports: Vec<PublishedPort> = c
                .ports
                .iter()
                .flatten()
                .filter_map(|p| {
                    Some(PublishedPort {
                        host_ip: p.ip.clone().unwrap_or_default(),
                        host_port: p.public_port?,
                        container_port: p.private_port,
                        protocol: p.typ.map(|t| t.to_string()).unwrap_or_else(|| "tcp".into()),
                    })
                })
                .collect();
            ports.sort_by(|a, b| {
                (a.container_port, a.host_port, &a.host_ip).cmp(&(
                    b.container_port,
                    b.host_port,
                    &b.host_ip,
                ))
            });
            ports.dedup_by(|a, b| {
                a.host_port == b.host_port
                    && a.protocol == b.protocol
                    && a.container_port == b.container_port
            });
            let status = state.status.map(|s| s.to_string()).unwrap_or_default();
            out.push(ContainerInfo {
                id,
                name: inspect
                    .name
                    .clone()
                    .unwrap_or_default()
                    .trim_start_matches('/')
                    .to_string(),
                service: labels.get(SERVICE_LABEL).cloned().unwrap_or_default(),
                image: c.image.clone().unwrap_or_default(),
                exit_code: if status == "exited" || status == "dead" {
                    state.exit_code
                } else {
                    None
                },
                state: status,
                health,
                restarts: inspect.restart_count.unwrap_or(0),
                oom_killed: state.oom_killed.unwrap_or(false),
                one_off: labels
                    .get(ONEOFF_LABEL)
                    .is_some_and(|v| v.eq_ignore_ascii_case("true")),
                ports,
                health_log,
            });
        }
        out.sort_by(|a, b| (&a.service, &a.name).cmp(&(&b.service, &b.name)));
        Ok(out)
    }

    /// The last `tail` lines of a container's logs (stdout and stderr interleaved).
    pub async fn logs(&self, id: &str, tail: usize) -> Result<Vec<String>, EngineError> {
        let opts = bollard::query_parameters::LogsOptions {
            stdout: true,
            stderr: true,
            tail: tail.to_string(),
            ..Default::default()
        };
        let mut stream = self.docker.logs(id, Some(opts));
        let mut text = String::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(chunk) => text.push_str(&String::from_utf8_lossy(chunk.as_ref())),
                Err(e) if is_not_found(&e) => break,
                Err(e) => return Err(self.api(format!("GET /containers/{id}/logs"))(e)),
            }
        }
        Ok(text.lines().map(str::to_string).collect())
    }

    /// Image IDs by reference, for the references given (absent ones omitted).
    pub async fn resolve_all(
        &self,
        references: &[String],
    ) -> Result<BTreeMap<String, Digest>, EngineError> {
        let mut out = BTreeMap::new();
        for r in references {
            if let Some(id) = self.image_id(r).await? {
                out.insert(r.clone(), id);
            }
        }
        Ok(out)
    }
}

//! Image discovery: owns `PlanImage` and `Kind`, and finds every image a project needs:
//! service images and build tags, image volumes, and for each `build:` its Dockerfile's
//! bases, `COPY --from` images and BuildKit frontends, and `docker-image://` contexts. It
//! reads the references and platforms `plan` parsed at the edge, parses the Dockerfile
//! references itself, and reports what it could not read as `BuildNote`s (facts, worded by
//! `findings`).

use super::{Error, PlanOptions, Target, parse_ref, rel};
use crate::compose::{Project, Service};
use crate::dockerfile::{self, Use};
use crate::platform::Platform;
use crate::reference::{Pinned, Reference};
use serde::ser::SerializeStruct;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Why the project needs an image (vocabulary of the shared fixtures' README).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// `image:` of a service without `build:`, an image volume source: pulled.
    Image,
    /// `image:` of a service with `build:`: the name of the locally built image.
    BuildTag,
    /// External base of a FROM in a stage the build needs.
    BuildFrom,
    /// FROM (or `--from`) an image another service of the project builds.
    BuildFromLocal,
    /// FROM / `--from` image of a stage the build target does not need.
    BuildFromUnusedStage,
    /// `COPY --from=` / `RUN --mount=from=` image in a needed stage.
    BuildCopyFrom,
    /// BuildKit frontend of a `# syntax=` directive.
    BuildSyntax,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Image => "image",
            Kind::BuildTag => "build-tag",
            Kind::BuildFrom => "build-from",
            Kind::BuildFromLocal => "build-from-local",
            Kind::BuildFromUnusedStage => "build-from-unused-stage",
            Kind::BuildCopyFrom => "build-copy-from",
            Kind::BuildSyntax => "build-syntax",
        }
    }

    /// Whether the image comes from a registry (as opposed to being built here).
    pub fn pulled(self) -> bool {
        !matches!(self, Kind::BuildTag | Kind::BuildFromLocal)
    }
}

/// One image of the plan: unique per (kind, reference as written).
///
/// JSON (docs/json.md): `ref` (as written), `normalized`, `kind`, `services`, `pinned`,
/// `platforms` (strings), `sources`.
#[derive(Debug, Clone)]
pub struct PlanImage {
    /// Parsed once; `original()` is the text as written after interpolation / substitution.
    pub reference: Reference,
    pub kind: Kind,
    /// Services that need it, sorted.
    pub services: Vec<String>,
    /// Platforms it is needed for, sorted (the target, a service's `platform:`, a `FROM --platform=`).
    pub platforms: Vec<Platform>,
    /// Where it is named: `compose.yaml`, `backend/Dockerfile:2`, relative to the project directory.
    pub sources: Vec<String>,
}

impl PlanImage {
    /// The normalised reference (`docker.io/library/redis:7`).
    pub fn normalized(&self) -> String {
        self.reference.normalized()
    }

    pub fn pinned(&self) -> Pinned {
        self.reference.pinned()
    }
}

impl serde::Serialize for PlanImage {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let platforms: Vec<String> = self.platforms.iter().map(Platform::to_string).collect();
        let mut st = s.serialize_struct("PlanImage", 7)?;
        st.serialize_field("ref", self.reference.original())?;
        st.serialize_field("normalized", &self.normalized())?;
        st.serialize_field("kind", &self.kind)?;
        st.serialize_field("services", &self.services)?;
        st.serialize_field("pinned", &self.pinned())?;
        st.serialize_field("platforms", &platforms)?;
        st.serialize_field("sources", &self.sources)?;
        st.end()
    }
}

/// Something about a `build:` that discovery could not see through; `findings` words it.
#[derive(Debug, Clone)]
pub(super) enum BuildNote {
    /// The service is built from a Dockerfile that was read.
    Built { service: String },
    /// A remote context (git or http URL): its Dockerfile was not read.
    RemoteContext { service: String, context: String },
    /// The Dockerfile does not exist: its bases are unknown.
    DockerfileMissing { service: String, path: PathBuf },
    /// Bases named only in stages the target does not need (sorted, unique).
    UnusedStages {
        service: String,
        references: Vec<String>,
    },
}

/// The images of a project, and what its builds left unseen.
pub(super) struct Discovery {
    /// Sorted by (reference as written, kind).
    pub(super) images: Vec<PlanImage>,
    pub(super) notes: Vec<BuildNote>,
}

struct Collector<'a> {
    project: &'a Project,
    images: BTreeMap<(String, Kind), PlanImage>,
    notes: Vec<BuildNote>,
}

impl Collector<'_> {
    fn rel(&self, path: &Path) -> String {
        rel(self.project, path)
    }

    fn add(
        &mut self,
        kind: Kind,
        reference: Reference,
        service: &str,
        platform: &Platform,
        source: String,
    ) {
        let entry = self
            .images
            .entry((reference.original().to_string(), kind))
            .or_insert_with(|| PlanImage {
                reference,
                kind,
                services: Vec::new(),
                platforms: Vec::new(),
                sources: Vec::new(),
            });
        if !entry.services.iter().any(|s| s == service) {
            entry.services.push(service.to_string());
            entry.services.sort();
        }
        if !entry.platforms.contains(platform) {
            entry.platforms.push(platform.clone());
            entry.platforms.sort_by_key(Platform::to_string);
        }
        if !entry.sources.contains(&source) {
            entry.sources.push(source);
            entry.sources.sort();
        }
    }
}

/// Find every image the enabled services of `project` need (`targets`, one per service).
pub(super) fn discover(
    project: &Project,
    targets: &[Target<'_>],
    opts: &PlanOptions,
) -> Result<Discovery, Error> {
    let mut c = Collector {
        project,
        images: BTreeMap::new(),
        notes: Vec::new(),
    };
    // Images the project builds itself: normalised tag -> service.
    let mut built: BTreeMap<String, String> = BTreeMap::new();
    for t in targets.iter().filter(|t| t.service.build.is_some()) {
        let tag = match &t.image {
            Some(r) => Some(r.normalized()),
            None => Reference::parse(&format!("{}-{}", project.name, t.service.name))
                .ok()
                .map(|r| r.normalized()),
        };
        if let Some(tag) = tag {
            built.insert(tag, t.service.name.clone());
        }
    }
    for t in targets {
        let s = t.service;
        let name = s.name.as_str();
        let compose_source = c.rel(&s.file);
        if let Some(image) = &t.image {
            let kind = if s.build.is_some() {
                Kind::BuildTag
            } else {
                Kind::Image
            };
            // The file that set `image:`, not the last one that touched the service.
            let set_by = if s.image_file.as_os_str().is_empty() {
                &s.file
            } else {
                &s.image_file
            };
            let source = c.rel(set_by);
            c.add(kind, image.clone(), name, &t.platform, source);
        }
        for r in &t.volume_images {
            let source = format!("{compose_source} (volume)");
            c.add(Kind::Image, r.clone(), name, &t.platform, source);
        }
        if s.build.is_some() {
            // A build makes the image for each of `build.platforms` (else the service's).
            let platforms = if t.build_platforms.is_empty() {
                std::slice::from_ref(&t.platform)
            } else {
                t.build_platforms.as_slice()
            };
            build_images(&mut c, s, platforms, opts, &built)?;
        }
    }
    Ok(Discovery {
        images: c.images.into_values().collect(),
        notes: c.notes,
    })
}

/// Largest Dockerfile read (real ones are a few KiB; the compose loader's limit).
const MAX_DOCKERFILE_BYTES: u64 = crate::compose::MAX_FILE_BYTES;

/// Read a Dockerfile, at most `MAX_DOCKERFILE_BYTES` (a device such as `/dev/zero` reports
/// no size, so the read itself is bounded).
fn read_dockerfile(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    fs_err::File::open(path)?
        .take(MAX_DOCKERFILE_BYTES + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_DOCKERFILE_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("Dockerfiles over {MAX_DOCKERFILE_BYTES} bytes are refused"),
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "not valid UTF-8 (byte offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}
/// The images a `build:` section needs: its Dockerfile's bases and `additional_contexts` images.
fn build_images(
    c: &mut Collector<'_>,
    s: &Service,
    platforms: &[Platform],
    opts: &PlanOptions,
    built: &BTreeMap<String, String>,
) -> Result<(), Error> {
    let Some(build) = &s.build else { return Ok(()) };
    let name = s.name.as_str();
    // `additional_contexts` that name images: `docker-image://ref`; `service:name` is a local build.
    let mut contexts: BTreeMap<String, String> = BTreeMap::new();
    let mut context_used = BTreeSet::new();
    for (key, value) in &build.additional_contexts {
        contexts.insert(key.clone(), value.clone());
    }

    let (text, dockerfile_path, shown) = if let Some(inline) = &build.dockerfile_inline {
        let shown = format!("{} (dockerfile_inline)", c.rel(&s.file));
        (
            inline.clone(),
            PathBuf::from(format!("{} (dockerfile_inline)", s.file.display())),
            shown,
        )
    } else {
        let Some(context) = &build.context else {
            c.notes.push(BuildNote::RemoteContext {
                service: name.to_string(),
                context: build.context_raw.clone(),
            });
            add_context_images(c, s, platforms, &contexts, &context_used)?;
            return Ok(());
        };
        let file = build.dockerfile.as_deref().unwrap_or("Dockerfile");
        let path = context.join(file);
        match read_dockerfile(&path) {
            Ok(text) => {
                let shown = c.rel(&path);
                (text, path, shown)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                c.notes.push(BuildNote::DockerfileMissing {
                    service: name.to_string(),
                    path,
                });
                add_context_images(c, s, platforms, &contexts, &context_used)?;
                return Ok(());
            }
            Err(source) => {
                return Err(Error::Read {
                    service: name.to_string(),
                    path,
                    source,
                });
            }
        }
    };

    c.notes.push(BuildNote::Built {
        service: name.to_string(),
    });
    let mut unused = Vec::new();
    for platform in platforms {
        let dopts = dockerfile::Options {
            build_args: build
                .args
                .iter()
                .filter_map(|(k, v)| v.as_ref().map(|v| (k.clone(), v.clone())))
                .collect(),
            target: build.target.clone(),
            platform: platform.clone(),
            build_platform: opts
                .build_platform
                .clone()
                .unwrap_or_else(|| platform.clone()),
        };
        let analysis = dockerfile::analyze(&text, &dopts).map_err(|source| Error::Dockerfile {
            service: name.to_string(),
            file: dockerfile_path.clone(),
            source: Box::new(source),
        })?;
        for u in &analysis.images {
            let mut reference = u.reference.clone();
            let mut local = false;
            // A named context replaces the image of the same name (BuildKit matches the name as written).
            if u.kind != Use::Syntax
                && let Some(value) = contexts.get(&reference)
            {
                context_used.insert(reference.clone());
                if let Some(image) = value.strip_prefix("docker-image://") {
                    reference = image.to_string();
                } else if let Some(other) = value.strip_prefix("service:") {
                    // The image another service of the project builds: built here, not pulled.
                    reference = match c.project.services.get(other).and_then(|o| o.image.clone()) {
                        Some(image) => image,
                        None => format!("{}-{other}", c.project.name),
                    };
                    local = true;
                } else {
                    continue; // a directory or URL context: nothing to pull here
                }
            }
            let r = Reference::parse(&reference).map_err(|source| Error::InvalidReference {
                service: name.to_string(),
                file: dockerfile_path.clone(),
                line: (u.line > 0).then_some(u.line),
                reference: reference.clone(),
                source: Box::new(source),
            })?;
            let kind = match u.kind {
                _ if local || (u.kind != Use::Syntax && built.contains_key(&r.normalized())) => {
                    Kind::BuildFromLocal
                }
                Use::From => Kind::BuildFrom,
                Use::CopyFrom => Kind::BuildCopyFrom,
                Use::UnusedStage => Kind::BuildFromUnusedStage,
                Use::Syntax => Kind::BuildSyntax,
            };
            if kind == Kind::BuildFromUnusedStage {
                unused.push(r.original().to_string());
            }
            let image_platform = u
                .platform
                .as_deref()
                .and_then(|p| p.parse::<Platform>().ok())
                .unwrap_or_else(|| platform.clone());
            let source = if u.line > 0 {
                format!("{shown}:{}", u.line)
            } else {
                format!("{shown} (BUILDKIT_SYNTAX)")
            };
            c.add(kind, r, name, &image_platform, source);
        }
    }
    if !unused.is_empty() {
        unused.sort();
        unused.dedup();
        c.notes.push(BuildNote::UnusedStages {
            service: name.to_string(),
            references: unused,
        });
    }
    add_context_images(c, s, platforms, &contexts, &context_used)
}

/// `docker-image://` contexts not consumed by a FROM / `--from`: still listed (BuildKit may resolve them).
fn add_context_images(
    c: &mut Collector<'_>,
    s: &Service,
    platforms: &[Platform],
    contexts: &BTreeMap<String, String>,
    used: &BTreeSet<String>,
) -> Result<(), Error> {
    for (key, value) in contexts {
        if used.contains(key) {
            continue;
        }
        if let Some(image) = value.strip_prefix("docker-image://") {
            let r = parse_ref(image, s, &s.file)?;
            let source = format!(
                "{} (service {}, additional_contexts.{key})",
                c.rel(&s.file),
                s.name
            );
            for platform in platforms {
                c.add(
                    Kind::BuildFrom,
                    r.clone(),
                    &s.name,
                    platform,
                    source.clone(),
                );
            }
        }
    }
    Ok(())
}

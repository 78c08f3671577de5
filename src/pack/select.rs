//! Which images a pack or a lock handles: the plan's images of kinds `image`, `build-from`,
//! `build-copy-from` and `build-syntax` (and `build-tag` with `--from-docker`, taken from
//! the engine), plus `--image`, each reference once with every kind and service that named
//! it and the one platform it is packed for.

use crate::compose::{self, Project};
use crate::error::Classified;
use crate::error::Context as _;
use crate::plan::{self, Kind, PlanOptions};
use crate::platform::Platform;
use crate::reference::Reference;

use super::SelectOptions;

/// Where an image of the pack comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Registry,
    /// Exported from the local engine; the service that builds it.
    Engine {
        service: String,
    },
}

impl Origin {
    /// `registry` or `engine`, as bundle metadata and `--json` write it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Origin::Registry => "registry",
            Origin::Engine { .. } => "engine",
        }
    }
}

/// One reference to pack, with what the plan says of it.
#[derive(Debug, Clone)]
pub struct PackImage {
    pub reference: Reference,
    /// Plan kinds that named it (`image`, `build-from`, ...; `extra` for `--image`).
    pub kinds: Vec<String>,
    pub services: Vec<String>,
    pub origin: Origin,
    /// The platform it is packed for (see `platform_for`).
    pub platform: Platform,
}

/// The project (if any) and the images `pack`/`lock` handle, in plan order then `--image` order.
pub struct Selection {
    pub project: Option<Project>,
    pub images: Vec<PackImage>,
    /// The project's run files as the plan assessed them (`run_files`).
    pub run_files: Vec<crate::run_files::Assessed>,
    /// What the user should know: platforms left out.
    pub notes: Vec<String>,
}

impl Selection {
    /// The references pulled from registries, each with the platform to pull.
    pub fn registry_refs(&self) -> Vec<(Reference, Platform)> {
        self.images
            .iter()
            .filter(|i| i.origin == Origin::Registry)
            .map(|i| (i.reference.clone(), i.platform.clone()))
            .collect()
    }
}

/// A reference as the selection gathers it, before its platform is chosen.
struct Gathered {
    reference: Reference,
    kinds: Vec<String>,
    services: Vec<String>,
    origin: Origin,
    platforms: Vec<Platform>,
}

/// Load the project and plan it. Without a compose file, `--image` alone is enough.
/// `from_docker`: built images (`build-tag`) come from the engine; otherwise they are refused.
pub fn select(opts: &SelectOptions, from_docker: bool) -> crate::error::Result<Selection> {
    let loaded = match compose::load(&opts.project) {
        Ok(p) => Some(p),
        Err(compose::Error::NoComposeFile { .. })
            if !opts.images.is_empty() && opts.project.files.is_empty() =>
        {
            None
        }
        Err(e) => {
            return Err(crate::error::Error::new(e).context("Failed to load the compose project"));
        }
    };
    let mut images: Vec<Gathered> = Vec::new();
    let mut add = |reference: Reference,
                   kind: &str,
                   services: &[String],
                   origin: Origin,
                   platforms: &[Platform]| {
        match images
            .iter_mut()
            .find(|i| i.reference.original() == reference.original())
        {
            Some(existing) => {
                if !existing.kinds.iter().any(|k| k == kind) {
                    existing.kinds.push(kind.to_string());
                }
                for s in services {
                    if !existing.services.contains(s) {
                        existing.services.push(s.clone());
                    }
                }
                for p in platforms {
                    if !existing.platforms.contains(p) {
                        existing.platforms.push(p.clone());
                    }
                }
                // A reference that is built here and also pulled elsewhere comes from the engine.
                if matches!(origin, Origin::Engine { .. }) {
                    existing.origin = origin;
                }
            }
            None => images.push(Gathered {
                reference,
                kinds: vec![kind.to_string()],
                services: services.to_vec(),
                origin,
                platforms: platforms.to_vec(),
            }),
        }
    };
    let mut run_files = Vec::new();
    if let Some(p) = &loaded {
        let plan_opts = PlanOptions {
            platform: opts.platform.clone(),
            ..Default::default()
        };
        let mut plan = plan::plan(p, &plan_opts).context("Failed to plan the compose project")?;
        run_files = std::mem::take(&mut plan.run_files);
        let mut unbuilt = Vec::new();
        for img in &plan.images {
            match img.kind {
                Kind::Image | Kind::BuildFrom | Kind::BuildCopyFrom | Kind::BuildSyntax => add(
                    img.reference.clone(),
                    img.kind.as_str(),
                    &img.services,
                    Origin::Registry,
                    &img.platforms,
                ),
                Kind::BuildTag if from_docker => {
                    let service = img.services.first().cloned().unwrap_or_default();
                    add(
                        img.reference.clone(),
                        img.kind.as_str(),
                        &img.services,
                        Origin::Engine { service },
                        &img.platforms,
                    )
                }
                Kind::BuildTag => unbuilt.push(img),
                Kind::BuildFromLocal | Kind::BuildFromUnusedStage => {}
            }
        }
        if let Some(first) = unbuilt.first() {
            let services: Vec<String> = unbuilt
                .iter()
                .flat_map(|i| i.services.iter().cloned())
                .collect();
            return Err(Classified::input(format!(
                "Service `{}` builds its image `{}` locally; build it first and pack with --from-docker",
                first.services.join("`, `"),
                first.reference,
            ))
            .with_hint(format!(
                "`docker-compose build {}` then `airlock pack --from-docker`",
                services.join(" ")
            ))
            .into());
        }
    }
    for r in &opts.images {
        add(r.clone(), "extra", &[], Origin::Registry, &[]);
    }
    if images.is_empty() {
        return Err(Classified::input(
            "Nothing to pack: the project needs no image and no --image was given",
        )
        .into());
    }
    let mut notes = Vec::new();
    let images = images
        .into_iter()
        .map(|g| {
            let (platform, note) = platform_for(&g.reference, &g.platforms, &opts.platform);
            notes.extend(note);
            PackImage {
                reference: g.reference,
                kinds: g.kinds,
                services: g.services,
                origin: g.origin,
                platform,
            }
        })
        .collect();
    Ok(Selection {
        project: loaded,
        images,
        run_files,
        notes,
    })
}

/// The platform to pack `reference` for: the one platform the plan needs it for when that
/// is not the bundle's (`platform: linux/arm64` on a service), else the bundle's. A
/// reference needed for several platforms gets the bundle's (a docker-save tar holds one
/// image per tag) and a note saying which platforms are left out.
pub fn platform_for(
    reference: &Reference,
    wanted: &[Platform],
    target: &Platform,
) -> (Platform, Option<String>) {
    match wanted {
        [only] if !target.matches(only) => (only.clone(), None),
        _ => {
            let others: Vec<String> = wanted
                .iter()
                .filter(|p| !target.matches(p))
                .map(|p| p.to_string())
                .collect();
            let note = (!others.is_empty()).then(|| {
                format!(
                    "`{reference}` is needed for {} too; a bundle holds one image per reference, so only {target} is packed",
                    others.join(", ")
                )
            });
            (target.clone(), note)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn platform(platforms: &[&str], target: &Platform) -> (Platform, Option<String>) {
        let wanted: Vec<Platform> = platforms.iter().map(|p| p.parse().unwrap()).collect();
        platform_for(&Reference::parse("redis:7").unwrap(), &wanted, target)
    }

    #[test]
    fn a_service_platform_picks_the_image_platform() {
        let amd64 = Platform::linux_amd64();
        let arm64: Platform = "linux/arm64".parse().unwrap();
        // --image: no plan platforms, the target.
        assert_eq!(platform(&[], &amd64), (amd64.clone(), None));
        assert_eq!(platform(&["linux/amd64"], &amd64), (amd64.clone(), None));
        assert_eq!(platform(&["linux/arm64"], &amd64), (arm64.clone(), None));
        // Two platforms: the target, and a note naming the other.
        let (p, note) = platform(&["linux/amd64", "linux/arm64"], &amd64);
        assert_eq!(p, amd64);
        assert!(note.unwrap().contains("linux/arm64 too"));
        let (p, note) = platform(&["linux/arm64", "linux/arm/v7"], &amd64);
        assert_eq!(p, amd64);
        assert!(note.unwrap().contains("linux/arm64, linux/arm/v7"));
    }
}

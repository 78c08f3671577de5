//! The checks `verify` runs once a bundle has been read: integrity (every file against
//! `SHA256SUMS`, every blob against its name), structure (`manifest.json`, `index.json`,
//! manifests and configs parse and agree), completeness (every image of `bundle.json` is
//! whole and named) and `compose_completeness` (the compose project finds every image it
//! needs). They judge `Contents`, what the pipeline in `verify` gathered, and never read the
//! bundle themselves: a new check is a method here, fed by the same single read.

use super::{ImageCheck, Problem, ProblemKind, blob_of};
use crate::bundle::meta::{SIGNATURE_PATH, SUMS_PATH};
use crate::bundle::read::{BLOBS_DIR, INDEX_PATH, MANIFEST_PATH, Meta};
use crate::digest::Digest;
use crate::image::{Config, ImageError, Links, media};
use crate::platform::Platform;
use crate::reference::Reference;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Deepest chain of indexes followed below `index.json` (registries nest at most one).
const MAX_INDEX_DEPTH: usize = 4;

/// What the pipeline read of a bundle, for the checks to judge.
#[derive(Default)]
pub(super) struct Contents {
    /// Every regular member: name -> size.
    pub(super) members: BTreeMap<String, u64>,
    /// The sha256 and length of every member read to its end.
    pub(super) hashed: HashMap<String, (Digest, u64)>,
    /// JSON blobs kept in memory for the structure checks: digest -> bytes.
    pub(super) json: HashMap<Digest, Vec<u8>>,
    /// JSON blobs too large to keep (their structure is not checked).
    pub(super) json_skipped: Vec<String>,
}

/// Every image the bundle's compose project needs (planned for the bundle's platform, with
/// the compose and env files the bundle carries and the process environment) is in the
/// bundle: service images, and the build bases of services whose built image is not carried.
pub fn compose_completeness(meta: &Meta) -> Result<Vec<Problem>, String> {
    let staged = crate::stage::open(meta, &crate::stage::StageOptions::default())
        .map_err(|e| e.to_string())?;
    Ok(crate::stage::missing(&staged.plan, |img| crate::stage::carried(meta, img))
        .into_iter()
        .map(|img| Problem {
            kind: ProblemKind::MissingImage,
            file: None,
            blob: None,
            image: Some(img.reference.to_string()),
            message: format!(
                "the compose project needs `{}` (services: {}) for {}, but the bundle does not carry it",
                img.reference,
                img.services.join(", "),
                meta.meta.platform
            ),
        })
        .collect())
}

/// The checks of one bundle: they judge `Contents` against the metadata and collect problems.
pub(super) struct Checks<'a> {
    pub(super) c: &'a Contents,
    pub(super) problems: Vec<Problem>,
    pub(super) images: Vec<ImageCheck>,
}

impl Checks<'_> {
    fn problem(
        &mut self,
        kind: ProblemKind,
        file: Option<&str>,
        image: Option<&str>,
        message: String,
    ) {
        let blob = file.and_then(blob_of);
        let p = Problem {
            kind,
            file: file.map(str::to_string),
            blob,
            image: image.map(str::to_string),
            message,
        };
        if !self.problems.contains(&p) {
            self.problems.push(p);
        }
    }

    fn has(&self, name: &str) -> bool {
        self.c.members.contains_key(name)
    }

    /// Every file against SHA256SUMS, every blob against its name.
    pub(super) fn integrity(&mut self, meta: Option<&Meta>) {
        let sums = meta.map(|m| m.sums.clone()).unwrap_or_default();
        if meta.is_some() && sums.is_empty() {
            self.problem(
                ProblemKind::MissingFile,
                Some(SUMS_PATH),
                None,
                format!("`{SUMS_PATH}` is missing or empty"),
            );
        }
        for (name, expected) in &sums {
            match self.c.hashed.get(name) {
                Some((actual, _)) if actual != expected => self.problem(
                    ProblemKind::SumMismatch,
                    Some(name),
                    None,
                    format!("`{name}` has sha256 {actual}, but {SUMS_PATH} says {expected}"),
                ),
                Some(_) => {}
                None if self.has(name) => {} // unreadable: already reported
                None => self.problem(
                    ProblemKind::MissingFile,
                    Some(name),
                    None,
                    format!("`{name}` is listed in {SUMS_PATH} but not in the bundle"),
                ),
            }
        }
        for name in self.c.members.keys() {
            if meta.is_some()
                && name != SUMS_PATH
                && name != SIGNATURE_PATH
                && !sums.contains_key(name)
            {
                self.problem(
                    ProblemKind::UnlistedFile,
                    Some(name),
                    None,
                    format!("`{name}` is in the bundle but not listed in {SUMS_PATH}"),
                );
            }
            if let Some(hex) = name.strip_prefix(BLOBS_DIR) {
                let Ok(expected) = Digest::from_hex(hex) else {
                    self.problem(
                        ProblemKind::Structure,
                        Some(name),
                        None,
                        format!("`{name}` is not named by a sha256 digest"),
                    );
                    continue;
                };
                if let Some((actual, _)) = self.c.hashed.get(name)
                    && *actual != expected
                {
                    self.problem(
                        ProblemKind::BlobDigest,
                        Some(name),
                        None,
                        format!("blob `{expected}` is corrupt: its content hashes to {actual}"),
                    );
                }
            }
        }
    }

    fn blob_path(d: &Digest) -> String {
        format!("{BLOBS_DIR}{}", d.hex())
    }

    /// A blob must be carried, or (delta bundles) be assumed present on the target.
    fn need_blob(&mut self, d: &Digest, meta: &Meta, image: Option<&str>, what: &str) -> bool {
        let path = Self::blob_path(d);
        if self.has(&path) {
            return true;
        }
        if meta
            .meta
            .base
            .as_ref()
            .is_some_and(|b| b.assumed.contains(d) || b.patch_for(d).is_some())
        {
            return false;
        }
        self.problem(
            ProblemKind::MissingFile,
            Some(&path),
            image,
            format!("{what} `{d}` is not in the bundle"),
        );
        false
    }

    /// A config read during the walk: `None` when its bytes were not kept or are not JSON.
    fn config(&self, d: &Digest) -> Option<Result<Config, ImageError>> {
        match Config::parse(self.c.json.get(d)?) {
            Err(ImageError::Syntax(_)) => None,
            parsed => Some(parsed),
        }
    }

    /// manifest.json, index.json, manifests and configs parse and agree.
    pub(super) fn structure(&mut self, meta: &Meta) {
        if !self.has(MANIFEST_PATH) {
            self.problem(
                ProblemKind::Structure,
                Some(MANIFEST_PATH),
                None,
                format!("`{MANIFEST_PATH}` is missing: `docker load` needs it"),
            );
        }
        let platform = &meta.meta.platform;
        for entry in &meta.manifest {
            let image = entry
                .repo_tags
                .first()
                .cloned()
                .unwrap_or_else(|| entry.config.clone());
            let img = Some(image.as_str());
            for tag in &entry.repo_tags {
                if Reference::parse(tag)
                    .map(|r| r.tag().is_none())
                    .unwrap_or(true)
                {
                    self.problem(
                        ProblemKind::Structure,
                        Some(MANIFEST_PATH),
                        img,
                        format!("RepoTag `{tag}` is not a `name:tag` reference"),
                    );
                }
            }
            let Some(cfg) = blob_of(&entry.config) else {
                self.problem(
                    ProblemKind::Structure,
                    Some(MANIFEST_PATH),
                    img,
                    format!("Config path `{}` is not `blobs/sha256/<hex>`", entry.config),
                );
                continue;
            };
            if !self.need_blob(&cfg, meta, img, "config") {
                continue;
            }
            let config = match self.config(&cfg) {
                Some(Ok(config)) => config,
                Some(Err(e)) => {
                    self.problem(
                        ProblemKind::Structure,
                        Some(&entry.config),
                        img,
                        format!("config `{cfg}` is not an image config: {e}"),
                    );
                    continue;
                }
                None => {
                    if self.c.json_skipped.contains(&entry.config) {
                        continue;
                    }
                    self.problem(
                        ProblemKind::Structure,
                        Some(&entry.config),
                        img,
                        format!("config `{cfg}` is not valid JSON"),
                    );
                    continue;
                }
            };
            let diff_ids = config.rootfs.as_ref().map(|r| r.diff_ids.len());
            if diff_ids != Some(entry.layers.len()) {
                self.problem(
                    ProblemKind::Structure,
                    Some(&entry.config),
                    img,
                    format!(
                        "config `{cfg}` lists {} diff_ids but manifest.json lists {} layers",
                        diff_ids.unwrap_or(0),
                        entry.layers.len()
                    ),
                );
            }
            for layer in &entry.layers {
                match blob_of(layer) {
                    Some(d) => {
                        self.need_blob(&d, meta, img, "layer");
                    }
                    None if self.has(layer) => {}
                    None => self.problem(
                        ProblemKind::MissingFile,
                        Some(layer),
                        img,
                        format!("layer `{layer}` is not in the bundle"),
                    ),
                }
            }
            let have = config.platform();
            if !platform.matches(&have) {
                self.problem(
                    ProblemKind::Platform,
                    Some(&entry.config),
                    img,
                    format!("image `{image}` is for {have}, the bundle is for {platform}"),
                );
            }
        }
        match &meta.index {
            None if meta.oci_layout => self.problem(
                ProblemKind::Structure,
                Some(INDEX_PATH),
                None,
                format!("`{INDEX_PATH}` is missing although `oci-layout` is present"),
            ),
            None => {}
            Some(index) => {
                for desc in &index.manifests {
                    let name = desc
                        .annotations
                        .get("io.containerd.image.name")
                        .cloned()
                        .unwrap_or_else(|| desc.digest.to_string());
                    if !self.need_blob(&desc.digest, meta, Some(&name), "index entry") {
                        continue;
                    }
                    if let Some(size) = self.c.members.get(&Self::blob_path(&desc.digest))
                        && *size != desc.size
                    {
                        self.problem(
                            ProblemKind::Structure,
                            Some(INDEX_PATH),
                            Some(&name),
                            format!(
                                "index.json says `{}` is {} bytes, the blob is {size}",
                                desc.digest, desc.size
                            ),
                        );
                    }
                    self.oci_object(
                        &desc.digest,
                        &desc.media_type,
                        meta,
                        &name,
                        Some(platform),
                        0,
                    );
                }
            }
        }
    }

    /// An index or manifest of the OCI side: its children for the platform are present.
    /// `depth` counts the indexes above; a hostile index may name itself or a cycle.
    fn oci_object(
        &mut self,
        digest: &Digest,
        media_type: &str,
        meta: &Meta,
        image: &str,
        platform: Option<&Platform>,
        depth: usize,
    ) {
        if depth > MAX_INDEX_DEPTH {
            self.problem(
                ProblemKind::Structure,
                Some(&Self::blob_path(digest)),
                Some(image),
                format!(
                    "index `{digest}` nests more than {MAX_INDEX_DEPTH} indexes deep (a cycle?)"
                ),
            );
            return;
        }
        // Fields that do not parse are not followed (the blobs they name go unchecked here).
        let links = match self.c.json.get(digest).map(|b| Links::parse(b)) {
            None => return,
            Some(Ok(links)) => links,
            Some(Err(ImageError::Shape(_))) => Links::default(),
            Some(Err(ImageError::Syntax(_))) => {
                self.problem(
                    ProblemKind::Structure,
                    Some(&Self::blob_path(digest)),
                    Some(image),
                    format!("`{digest}` is not valid JSON"),
                );
                return;
            }
        };
        let mt = links.media_type.as_deref().unwrap_or(media_type);
        if media::is_index(mt) {
            let chosen = links
                .manifests
                .iter()
                .filter(|c| {
                    c.platform
                        .as_ref()
                        .is_some_and(|p| platform.is_none_or(|want| want.matches(p)))
                })
                .find(|c| self.has(&Self::blob_path(&c.digest)));
            match chosen {
                Some(c) => self.oci_object(
                    &c.digest.clone(),
                    &c.media_type.clone(),
                    meta,
                    image,
                    platform,
                    depth + 1,
                ),
                None => self.problem(
                    ProblemKind::MissingImage,
                    Some(&Self::blob_path(digest)),
                    Some(image),
                    format!(
                        "no manifest for {} of index `{digest}` is in the bundle",
                        platform.map(|p| p.to_string()).unwrap_or_default()
                    ),
                ),
            }
        } else if media::is_manifest(mt) || links.config.is_some() || !links.layers.is_empty() {
            if let Some(cfg) = &links.config {
                self.need_blob(&cfg.digest, meta, Some(image), "config");
            }
            for l in &links.layers {
                self.need_blob(&l.digest, meta, Some(image), "layer");
            }
        }
    }

    /// Every image bundle.json promises: blobs present, tagged in manifest.json, named in index.json.
    pub(super) fn completeness(&mut self, meta: &Meta) {
        for img in &meta.meta.images {
            let before = self.problems.len();
            let r = img.reference.original();
            self.need_blob(&img.top.digest, meta, Some(r), "top-level manifest");
            self.need_blob(&img.manifest.digest, meta, Some(r), "manifest");
            let have_config = self.need_blob(&img.config.digest, meta, Some(r), "config");
            for l in &img.layers {
                self.need_blob(&l.blob.digest, meta, Some(r), "layer");
            }
            let config_path = Self::blob_path(&img.config.digest);
            let entry = meta.manifest.iter().find(|e| e.config == config_path);
            match entry {
                None => self.problem(
                    ProblemKind::MissingImage,
                    Some(MANIFEST_PATH),
                    Some(r),
                    format!("image `{r}` has no entry in manifest.json"),
                ),
                Some(e) => {
                    let reference = &img.reference;
                    if let Some(tag) = reference.familiar_tagged()
                        && reference.digest().is_none()
                        && !e.repo_tags.iter().any(|t| same_tag(t, &tag))
                    {
                        self.problem(
                            ProblemKind::MissingImage,
                            Some(MANIFEST_PATH),
                            Some(r),
                            format!("manifest.json does not tag image `{r}` as `{tag}`"),
                        );
                    }
                }
            }
            if have_config && let Some(config) = self.config(&img.config.digest) {
                let diff_ids: Vec<Digest> = config
                    .ok()
                    .and_then(|c| c.rootfs)
                    .map(|r| r.diff_ids)
                    .unwrap_or_default();
                let listed: Vec<Digest> = img.layers.iter().map(|l| l.diff_id.clone()).collect();
                if diff_ids != listed {
                    self.problem(
                        ProblemKind::Structure,
                        Some(&config_path),
                        Some(r),
                        format!("bundle.json's layers of `{r}` differ from its config's diff_ids"),
                    );
                }
            }
            if let Some(index) = &meta.index {
                let normalized = img.reference.normalized();
                let named = index.manifests.iter().any(|d| {
                    d.digest == img.top.digest
                        && d.annotations
                            .get("io.containerd.image.name")
                            .is_none_or(|n| *n == normalized || normalized.starts_with(n.as_str()))
                });
                if !named {
                    self.problem(
                        ProblemKind::MissingImage,
                        Some(INDEX_PATH),
                        Some(r),
                        format!("index.json has no entry for `{normalized}`"),
                    );
                }
            }
            let mut blobs: BTreeSet<&Digest> =
                [&img.top.digest, &img.manifest.digest, &img.config.digest]
                    .into_iter()
                    .collect();
            blobs.extend(img.layers.iter().map(|l| &l.blob.digest));
            let ok = self.problems[before..].is_empty()
                && !self.problems.iter().any(|p| {
                    p.image.as_deref() == Some(r)
                        || p.blob.as_ref().is_some_and(|b| blobs.contains(b))
                });
            self.images.push(ImageCheck {
                reference: img.reference.to_string(),
                config: img.config.digest.clone(),
                ok,
            });
        }
    }
}

/// `redis:7` and `docker.io/library/redis:7` name the same tag.
fn same_tag(a: &str, b: &str) -> bool {
    match (Reference::parse(a), Reference::parse(b)) {
        (Ok(x), Ok(y)) => x.normalized() == y.normalized(),
        _ => a == b,
    }
}

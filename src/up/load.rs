//! Loading a bundle into the engine for `up` and `airlock load`: a split bundle's parts are
//! checked against its parts file first (one extra read, so a corrupt part is named before
//! anything reaches the engine), then `engine::load` sends only what the engine lacks.
//!
//! A patch bundle (bundle.json `base.patches`) is loaded through its patched view
//! (`bundle::patched`): every patch header is checked, the delta's base layers are checked
//! against the engine, and every patched layer the load needs is rebuilt into the cache and
//! checked against its diff_id (base layers from `--base`, else exported from the engine)
//! BEFORE the load request starts, so a corrupt patch or a wrong base leaves the engine
//! untouched. The rebuilt layers are removed from the cache once loaded.

use crate::bundle::patched::{self, BaseLayer, PatchedError};
use crate::bundle::read::Meta;
use crate::bundle::source::BundleSource;
use crate::engine::Engine;
use crate::engine::load::LoadReport;
use crate::error::Classified;
use crate::error::Context as _;
use crate::progress::Reporter;
use crate::source::Source;
use crate::store::Store;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Load `meta`'s bundle; steps and the byte total go to `reporter`.
pub async fn load_bundle(
    engine: &Engine,
    meta: &Meta,
    reporter: Arc<dyn Reporter>,
) -> crate::error::Result<LoadReport> {
    load_bundle_with(engine, meta, None, reporter).await
}

/// `load_bundle`, with the base bundle a patch bundle's patches apply to (`--base`); without
/// it, base layers are exported from the engine.
pub async fn load_bundle_with(
    engine: &Engine,
    meta: &Meta,
    base: Option<&Path>,
    reporter: Arc<dyn Reporter>,
) -> crate::error::Result<LoadReport> {
    if let Some(parts) = &meta.bundle.parts {
        reporter.step(&format!("checking {} parts", parts.parts.len()));
        let parts = Arc::clone(parts);
        let bad = tokio::task::spawn_blocking(move || parts.check_hashes())
            .await
            .context("The part checker stopped")??;
        if let Some(first) = bad.into_iter().next() {
            return Err(crate::error::Error::new(first).context(format!(
                "Cannot load `{}`; nothing was loaded",
                meta.bundle.path.display()
            )));
        }
    }
    let context = || {
        format!(
            "Cannot load `{}` into the engine at `{}`",
            meta.bundle.path.display(),
            engine.host
        )
    };
    if meta.meta.patches().is_empty() {
        // The cache only saves bytes here (`engine::content`): a load goes on without it.
        let store = Store::default_root().and_then(Store::open).ok();
        return crate::engine::load::load(engine, meta, store.as_ref(), reporter)
            .await
            .with_context(context);
    }
    let store = Store::open(Store::default_root()?)?;
    let (view, rebuilt, stats) = prepare(engine, meta, base, &store, Arc::clone(&reporter))
        .await
        .with_context(context)?;
    let source: Arc<dyn Source> = Arc::new(patched::source(meta, &store));
    let mut report = crate::engine::load::load_from(engine, &view, source, Some(&store), reporter)
        .await
        .with_context(context)?;
    report.rebuilt = stats.layers;
    report.rebuilt_bytes = stats.bytes;
    // Loaded: the rebuilt layers are on the engine now.
    for d in rebuilt {
        let _ = store.remove(&d);
    }
    Ok(report)
}

/// The patched view of a patch bundle, with every patched layer the engine needs rebuilt
/// into `store` (their diff_ids returned). Nothing reaches the engine.
async fn prepare(
    engine: &Engine,
    meta: &Meta,
    base: Option<&Path>,
    store: &Store,
    reporter: Arc<dyn Reporter>,
) -> crate::error::Result<(Meta, Vec<crate::digest::Digest>, patched::Rebuilt)> {
    let delta = BundleSource::of(meta.clone());
    let bad = patched::check_headers(meta, &delta);
    if let Some(first) = bad.first() {
        return Err(Classified::failed(format!(
            "{}; nothing was loaded",
            bad.iter()
                .map(|p| p.message.clone())
                .collect::<Vec<_>>()
                .join("; ")
        ))
        .with_hint(format!(
            "copy the bundle again (`airlock verify` names every damaged blob; first: `{}`)",
            first.patch
        ))
        .into());
    }
    let view = patched::view(meta, &delta, store)?;
    let state = engine.state().await?;
    // The delta's other layers must be on the engine; said before any rebuild.
    crate::engine::load::check_delta(&view.meta, &state)?;
    let view_tops: HashMap<String, crate::digest::Digest> = view
        .meta
        .images
        .iter()
        .map(|i| (i.reference.to_string(), i.top.digest.clone()))
        .collect();
    let present = |img: &crate::bundle::meta::ImageMeta| {
        if state.containerd_store {
            view_tops
                .get(&img.reference.to_string())
                .is_some_and(|t| state.images.contains_key(t))
        } else {
            state.images.contains_key(&img.config.digest)
        }
    };
    let needed: Vec<crate::bundle::meta::PatchMeta> = patched::needed(meta, &present)
        .into_iter()
        .cloned()
        .collect();
    if needed.is_empty() {
        return Ok((view, Vec::new(), patched::Rebuilt::default()));
    }
    let tmp = tempfile::Builder::new()
        .prefix("rebuild-base-")
        .tempdir_in(store.root())
        .context("Cannot create a temporary directory in the cache")?;
    // Base layers: from the base bundle, or exported from the engine (once per base image).
    let mut exported: HashMap<crate::digest::Digest, PathBuf> = HashMap::new();
    let from = match base {
        Some(p) => format!("base bundle `{}`", p.display()),
        None => "the engine".to_string(),
    };
    if base.is_none() {
        let mut by_image: BTreeMap<(String, String, String), BTreeSet<crate::digest::Digest>> =
            BTreeMap::new();
        for p in needed.iter().filter(|p| !store.has(&p.diff_id, p.size)) {
            by_image
                .entry((
                    p.base.image.to_string(),
                    p.base.top.to_string(),
                    p.base.config.to_string(),
                ))
                .or_default()
                .insert(p.base.diff_id.clone());
        }
        for ((reference, top, config), wanted) in by_image {
            let id = if state.containerd_store { top } else { config };
            let name = if engine.image_id(&id).await?.is_some() {
                id
            } else if engine.image_id(&reference).await?.is_some() {
                reference.clone()
            } else {
                continue; // every patch on it is refused below, naming the layer
            };
            reporter.step(&format!(
                "exporting base layers of {reference} from the engine"
            ));
            let got = crate::engine::save::export_layers(engine, &name, &wanted, tmp.path())
                .await
                .with_context(|| {
                    format!("Cannot export base image `{reference}` from the engine")
                })?;
            exported.extend(got);
        }
    }
    let base_source = match base {
        Some(p) => Some(
            BundleSource::open(p)
                .with_context(|| format!("Cannot read the base bundle `{}`", p.display()))?,
        ),
        None => None,
    };
    let store2 = store.clone();
    let meta2 = meta.clone();
    let rebuilt = tokio::task::spawn_blocking(move || {
        let delta = BundleSource::of(meta2);
        let refs: Vec<&crate::bundle::meta::PatchMeta> = needed.iter().collect();
        let mut base_layer = |p: &crate::bundle::meta::PatchMeta| -> Result<BaseLayer, PatchedError> {
            match &base_source {
                Some(s) if s.blob_size(&p.base.layer).is_some() => {
                    Ok(BaseLayer::Blob(s.open(&p.base.layer, 0)?))
                }
                Some(s) => Ok(BaseLayer::Missing(s.describe())),
                None => Ok(match exported.get(&p.base.diff_id) {
                    Some(path) => BaseLayer::Tar(path.clone()),
                    None => BaseLayer::Missing(format!(
                        "the engine (no image `{}` holding it; give the base bundle with `--base`)",
                        p.base.image
                    )),
                }),
            }
        };
        patched::rebuild(&refs, &delta, &mut base_layer, &from, &store2, reporter.as_ref())
            .map(|stats| {
                let ids = needed.iter().map(|p| p.diff_id.clone()).collect::<Vec<_>>();
                (ids, stats)
            })
    })
    .await
    .context("The layer rebuild stopped")??;
    drop(tmp);
    let (rebuilt, stats) = rebuilt;
    Ok((view, rebuilt, stats))
}

//! Loading a bundle into the engine for `up` and `airlock load`: a split bundle's parts are
//! checked against its parts file first (one extra read, so a corrupt part is named before
//! anything reaches the engine), then `engine::load` sends only what the engine lacks.

use crate::bundle::read::Meta;
use crate::engine::Engine;
use crate::engine::load::LoadReport;
use crate::error::Context as _;
use crate::progress::Reporter;
use std::sync::Arc;

/// Load `meta`'s bundle; steps and the byte total go to `reporter`.
pub async fn load_bundle(
    engine: &Engine,
    meta: &Meta,
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
    crate::engine::load::load(engine, meta, reporter)
        .await
        .with_context(|| {
            format!(
                "Cannot load `{}` into the engine at `{}`",
                meta.bundle.path.display(),
                engine.host
            )
        })
}
